"""A run's checkpoint, ``<run folder>/checkpoints/last.pt``: its path and keys (here only), and
atomic, safe checkpoint and JSON I/O.

Files are written to a temporary sibling and moved into place with :func:`os.replace`, so a
crash mid-write leaves the previous file intact. Checkpoints are loaded with
``torch.load(weights_only=True)``: only tensors, containers and plain values are accepted, so a
checkpoint from an untrusted source cannot run code.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterable

import torch

from .errors import OUTPUT_ERRNOS, CheckpointError, OutputError, first_line, write_failed_message

FORMAT = "resnet-cli/1"
"""Value of the ``format`` key that marks a checkpoint as written by this tool."""

LAST = "checkpoints/last.pt"
"""A run's checkpoint, relative to its run folder (rank 0 rewrites it after every epoch)."""
OURS = f"use a {LAST} written by resnet-train"


def last_checkpoint(run_dir: str | Path) -> Path:
    """``run_dir``'s checkpoint path (:data:`LAST`)."""
    return Path(run_dir) / LAST


def run_dir_of(checkpoint: str | Path) -> Path:
    """The run folder a checkpoint at its usual place (:data:`LAST`) belongs to (absolute)."""
    return Path(checkpoint).resolve().parent.parent


STATE_KEYS = ("history", "step_lrs", "epoch", "step", "partial")
"""Where training stands: :class:`resnet_cli.run_folder.RunState`'s fields of the same names."""
WEIGHT_KEYS = ("model", "optimizer", "scheduler", "torch_rng")
"""The tensors every training checkpoint holds; with ``ema`` (``trainer.ema_decay`` only) they make
:data:`TENSOR_KEYS`; the other keys are plain values (:func:`resnet_cli.evaluation.load_model` returns those)."""
TENSOR_KEYS = (*WEIGHT_KEYS, "ema")
MODEL_KEYS = ("model", "config", "classes", "mean", "std", "image_size")
"""Keys :func:`model_from_checkpoint` needs."""
RESUME_KEYS = (*WEIGHT_KEYS, *STATE_KEYS, "config", "classes", "mean", "std", "lr", "train_seconds")
"""Keys ``resnet-train resume=`` needs (every checkpoint written by :func:`save_training` has them)."""


def save_training(path: str | Path, state: Any, config: dict[str, Any], data: Any, train_seconds: float) -> Path:
    """Write a resumable checkpoint of ``state`` (a :class:`resnet_cli.run_folder.RunState`: model,
    optimizer, scheduler, LRs, :data:`STATE_KEYS`, the EMA as ``ema`` when kept) with the run's resolved ``config`` (its
    ``data.root`` absolute), the normalisation and class names of ``data`` (a DataBundle), the
    training seconds so far and the torch CPU RNG state; atomically (:func:`save_checkpoint`).

    Raises:
        OutputError: the file cannot be written for want of space (the previous file is kept).
    """
    return save_checkpoint(path, {
        "model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(), **{k: getattr(state, k) for k in STATE_KEYS},
        "config": config, "classes": list(data.classes), "mean": [float(m) for m in data.mean],
        "std": [float(s) for s in data.std], "image_size": int(config["data"]["image_size"]),
        "lr": state.lr.as_dict(), "train_seconds": train_seconds, "torch_rng": torch.get_rng_state(),
        **({"ema": state.ema.state_dict()} if state.ema is not None else {}),
    })


def _write_bytes(f, data: bytes) -> None:
    """Write ``data`` to the open file ``f``, flush and fsync it (OSError on a full disk)."""
    f.write(data)
    f.flush()
    os.fsync(f.fileno())


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary sibling, fsync, :func:`os.replace`.

    A failed write removes the temporary file and leaves a previous ``path`` as it was.

    Raises:
        OutputError: the disk is full, a quota or file-size limit is reached, or the file
            system is read-only (one line naming the file and the bytes needed).
        OSError: any other I/O error.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            _write_bytes(f, data)
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if e.errno in OUTPUT_ERRNOS:
            e.filename = str(path)
            raise OutputError(write_failed_message(e, len(data))) from None
        raise
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors, dicts, lists, str/int/float/bool/None only) atomically.

    The ``format`` key is set to :data:`FORMAT`. Returns the path written.

    Raises:
        OutputError: the file cannot be written for want of space (the previous file is kept).
    """
    payload = {**payload, "format": FORMAT}
    buffer = io.BytesIO()  # serialised in memory: a full disk fails in our write (OSError), not inside torch
    torch.save(payload, buffer)
    return atomic_write_bytes(path, buffer.getbuffer().tobytes())


def load_checkpoint(path: str | Path, *, key: str = "ckpt", require: Iterable[str] = ()) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` onto the CPU.

    Args:
        path: the checkpoint file.
        key: the config key the path came from (``ckpt``, ``resume``), named in error messages.
        require: keys the caller needs, e.g. :data:`RESUME_KEYS`.

    Raises:
        CheckpointError: one line naming the file: it is missing or a folder, unreadable,
            truncated, holds Python objects that ``weights_only`` refuses to unpickle (no code
            from it runs), lacks the resnet-cli ``format`` marker, or lacks one of the ``require`` keys.
    """
    path = Path(path)
    if path.is_dir():
        inside = last_checkpoint(path)
        hint = f"; did you mean {key}={inside}?" if inside.is_file() else ""
        raise CheckpointError(f"{key}={path} is a folder, not a checkpoint file{hint}")
    if not path.is_file():
        raise CheckpointError(f"{key}={path}: checkpoint not found (pass {key}=<run folder>/{LAST})")
    kind = _file_kind(path)
    if kind == "truncated":
        raise CheckpointError(f"{key}={path} is truncated (an incomplete zip archive: its write was cut off); "
                              f"use a complete {LAST} written by resnet-train")
    if kind != "torch":
        raise CheckpointError(f"{key}={path} is not a checkpoint but {kind}; "
                              f"pass a {LAST} written by resnet-train")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refused a global: not written by resnet-cli, maybe hostile
        raise CheckpointError(
            f"{path} is not a resnet-cli checkpoint: it holds Python objects other than tensors and plain "
            f"values, which are refused unread for safety; {OURS}"
        ) from None
    except Exception as e:  # truncated zip, not a torch file at all, I/O error...
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"cannot read checkpoint {path} ({reason}): the file is truncated or not a checkpoint; "
            f"use a complete {LAST} written by resnet-train"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a resnet-cli checkpoint (no format={FORMAT!r} marker); {OURS}"
        )
    check_keys(payload, path, require)
    return payload


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
"""The number torch.save's legacy (non-zip) format pickles first (torch.serialization.MAGIC_NUMBER)."""


def _file_kind(path: Path) -> str:
    """``torch`` (a zip archive, torch.save's format, or a legacy pickle), ``truncated`` (a zip
    without its central directory), or what the file is instead, for the error message."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path} ({e.strerror})") from None
    if not head:
        return "an empty file"
    if head.startswith(b"PK\x03\x04"):
        return "torch" if zipfile.is_zipfile(path) else "truncated"
    if head[:1] == b"\x80" and head[2:4] == b"\x8a\x0a" and int.from_bytes(head[4:14], "little") == _LEGACY_MAGIC:
        return "torch"  # torch's legacy format: a pickle that starts with torch's magic number
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "a binary file of another kind (neither a zip archive nor a pickle written by torch.save)"


def check_keys(payload: dict[str, Any], path: str | Path, keys: Iterable[str]) -> None:
    """Raise CheckpointError naming ``path`` and the ``keys`` missing from a loaded checkpoint."""
    missing = [k for k in keys if k not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}, so it cannot be used here; {OURS}")


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON atomically; returns the path.

    Raises:
        OutputError: the file cannot be written for want of space (the previous file is kept).
    """
    return atomic_write_bytes(path, json.dumps(data, indent=2, default=float).encode())


def weights_mismatch(model: torch.nn.Module, state: dict[str, Any]) -> str | None:
    """The first difference between ``model``'s parameters/buffers and the state dict ``state``,
    in words (``key layer1.conv.weight: shape (64, 3, 3, 3) in the file, (8, 3, 3, 3) in the
    model``, a missing or an unexpected key), or None when they fit."""
    if not isinstance(state, dict):
        return f"the weights are a {type(state).__name__}, not a state dict"
    own = model.state_dict()
    for name, tensor in own.items():
        if name not in state:
            return f"key {name} is missing from the file"
        theirs = state[name]
        if not isinstance(theirs, torch.Tensor):
            return f"key {name} is a {type(theirs).__name__} in the file, not a tensor"
        if tuple(theirs.shape) != tuple(tensor.shape):
            return f"key {name}: shape {tuple(theirs.shape)} in the file, {tuple(tensor.shape)} in the model"
    extra = [k for k in state if k not in own]
    return f"unexpected key {extra[0]} in the file" if extra else None


def load_weights(model: torch.nn.Module, state: dict[str, Any], path: str | Path, key: str = "ckpt") -> None:
    """Load ``state`` into ``model`` (strict), or raise one line naming the file and the first
    mismatching key (:func:`weights_mismatch`).

    Raises:
        CheckpointError: the weights do not fit ``model`` (another network, another class count).
    """
    problem = weights_mismatch(model, state)
    if problem is None:
        try:
            model.load_state_dict(state)
            return
        except Exception as e:  # noqa: BLE001 - a check weights_mismatch does not make
            problem = first_line(e) or type(e).__name__
    raise CheckpointError(f"{key}={path}: its weights do not fit {type(model).__name__} ({problem}); "
                          f"use the {LAST} of a run of this model, unchanged")


def model_from_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the trained network from a resnet-train checkpoint alone.

    Returns ``(model, checkpoint)``: the model in eval mode on ``device``, with the checkpoint's
    weights; the checkpoint dict holds ``classes``, ``mean``/``std`` (fractions 0-1),
    ``image_size`` (pixels) and ``config`` (the run's resolved config, absolute ``data.root``).
    Only ``resnet_cli.models`` classes are instantiated and only ``resnet_cli.data`` loaders may
    read its test split later, so a checkpoint cannot name another callable.

    Raises:
        CheckpointError: missing, unreadable or foreign file, a missing key, no run config, a
            model class outside resnet_cli.models, a data loader outside resnet_cli.data, or
            weights that do not fit the model.
    """
    from hydra.utils import instantiate

    ckpt = load_checkpoint(path, key="ckpt", require=MODEL_KEYS)
    if not isinstance(ckpt["config"], dict) or not isinstance(ckpt["config"].get("data"), dict):
        raise CheckpointError(f"{path} holds no run config; {OURS}")
    target = str(ckpt["config"].get("model", {}).get("_target_", ""))
    if not target.startswith("resnet_cli.models."):
        raise CheckpointError(
            f"{path}: model._target_={target!r} is not a resnet_cli.models network; {OURS}"
        )
    loader = str(ckpt["config"]["data"].get("_target_", ""))
    if not loader.startswith("resnet_cli.data.load_"):
        raise CheckpointError(f"{path}: data._target_={loader!r} is not a resnet_cli.data loader; {OURS}")
    try:
        # the run's model node (e.g. logit_scale), so the network computes what it trained as
        node = {k: v for k, v in dict(ckpt["config"]["model"]).items() if k != "_target_"}
        model = instantiate({"_target_": target, **node}, num_classes=len(ckpt["classes"]))
    except Exception as e:  # noqa: BLE001 - a class that is gone or takes other arguments
        raise CheckpointError(f"{path}: model._target_={target} cannot be built ({first_line(e) or type(e).__name__}); "
                              f"use a {LAST} written by this version of resnet-train") from None
    load_weights(model, ckpt["model"], path, key="ckpt")
    model = model.to(device)
    if (ckpt["config"].get("trainer") or {}).get("channels_last"):  # the run's layout: bf16 results match it
        model = model.to(memory_format=torch.channels_last)
    return model.eval(), ckpt
