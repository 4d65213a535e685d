"""A run's checkpoint, ``<run folder>/checkpoints/last.pt``: its path and keys, and atomic, safe
checkpoint and JSON I/O. Files go to a temporary sibling moved into place with :func:`os.replace`
(a crash mid-write keeps the previous file); ``torch.load(weights_only=True)`` reads only tensors
and plain values, so an untrusted checkpoint cannot run code.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable

import torch

from .config_tree import LAST, OURS, TRUSTED_ENV, check_stored_config  # noqa: F401 - public here too
from ..errors import OUTPUT_ERRNOS, CheckpointError, OutputError, first_line, write_failed_message

FORMAT = "resnet-cli/1"  # the ``format`` key that marks a checkpoint as written by this tool


def last_checkpoint(run_dir: str | Path) -> Path:
    """``run_dir``'s checkpoint path (:data:`LAST`)."""
    return Path(run_dir) / LAST


def run_dir_of(checkpoint: str | Path) -> Path:
    """The run folder a checkpoint at its usual place (:data:`LAST`) belongs to (absolute)."""
    return Path(checkpoint).resolve().parent.parent


STATE_KEYS = ("history", "step_lrs", "epoch", "step", "partial")  # RunState's fields of the same names
WEIGHT_KEYS = ("model", "optimizer", "scheduler", "torch_rng")
TENSOR_KEYS = (*WEIGHT_KEYS, "ema")
"""The tensor entries (``ema`` with ``trainer.ema_decay`` only); the others are plain values."""
MODEL_KEYS = ("model", "config", "classes", "mean", "std", "image_size")  # what model_from_checkpoint needs
RESUME_KEYS = (*WEIGHT_KEYS, *STATE_KEYS, "config", "classes", "mean", "std", "lr", "train_seconds")
"""Keys ``resnet-train resume=`` needs (:func:`save_training` writes them all)."""


def save_training(path: str | Path, state: Any, config: dict[str, Any], data: Any, train_seconds: float,
                  runtime: dict[str, Any] | None = None) -> Path:
    """Atomically write a resumable checkpoint of ``state`` (a :class:`~resnet_cli.core.run_folder.RunState`)
    with the resolved ``config`` (absolute ``data.root``), ``data``'s classes and normalisation, the
    training seconds so far, the torch CPU RNG state and ``runtime`` (what ran:
    :func:`resnet_cli.core.precision.runtime_record`; older checkpoints lack it).

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
        **({"runtime": dict(runtime)} if runtime is not None else {}),
    })


def _write_bytes(f, data: bytes | Callable[[BinaryIO], None]) -> None:
    """Write ``data`` (bytes, or a function that writes to ``f``) to the open file ``f``, flush and
    fsync it (OSError on a full disk)."""
    if callable(data):
        data(f)
    else:
        f.write(data)
    f.flush()
    os.fsync(f.fileno())


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes | Callable[[BinaryIO], None], needed: int | None = None) -> Path:
    """Write ``data`` to ``path`` atomically (temporary sibling, fsync, :func:`os.replace`); a failed
    write removes the temporary file and keeps a previous ``path``. ``data``: bytes, or a function
    that writes them to the open temporary file (raising OSError on a full disk), ``needed`` bytes
    (an estimate, for the error message; default ``len(data)``).

    Raises:
        OutputError: a full disk, quota, file-size limit or read-only file system (one line naming
            the file and the bytes needed).
        OSError: any other I/O error.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600: give the file the mode open() would
        with os.fdopen(fd, "wb") as f:
            _write_bytes(f, data)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in OUTPUT_ERRNOS:
            e.filename = str(path)
            raise OutputError(write_failed_message(e, len(data) if needed is None else needed)) from None
        raise
    return path


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors, containers, plain values only) atomically with ``format`` set to
    :data:`FORMAT`; returns the path.

    Raises:
        OutputError: the file cannot be written for want of space (the previous file is kept).
    """
    payload = {**payload, "format": FORMAT}

    def write(f: BinaryIO) -> None:  # straight into the temporary file: no copy of the ~80 MB in memory
        out = _KeepWriteError(f)
        try:
            torch.save(payload, out)
        except RuntimeError:  # torch reports a failed write as "unexpected pos ...": raise the OSError instead
            if out.error is not None:
                raise out.error from None
            raise

    return atomic_write_bytes(path, write, needed=_tensor_bytes(payload))


class _KeepWriteError:
    """A writable stream over the open file ``f`` that keeps the OSError a write raised (a full
    disk), which torch.save turns into a RuntimeError."""

    def __init__(self, f: BinaryIO):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def _tensor_bytes(value: Any) -> int:
    """Bytes of the tensors in ``value`` (nested dicts, lists, tuples): about a checkpoint's size."""
    if isinstance(value, torch.Tensor):
        return value.untyped_storage().nbytes()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def load_checkpoint(path: str | Path, *, key: str = "ckpt", require: Iterable[str] = ()) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` onto the CPU; ``key``: the config key
    the path came from (named in errors); ``require``: keys the caller needs.

    Raises:
        CheckpointError: one line naming the file: missing, a folder, unreadable, truncated, holding
            Python objects ``weights_only`` refuses, no ``format`` marker, or a ``require`` key missing.
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
        raise CheckpointError(f"{path} is not a resnet-cli checkpoint: it holds Python objects other than tensors "
                              f"and plain values, which are refused unread for safety; {OURS}") from None
    except Exception as e:  # truncated zip, not a torch file at all, I/O error...
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot read checkpoint {path} ({reason}): the file is truncated or not a checkpoint; "
                              f"use a complete {LAST} written by resnet-train") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a resnet-cli checkpoint (no format={FORMAT!r} marker); {OURS}")
    check_keys(payload, path, require)
    if "config" in payload:
        check_stored_config(payload["config"], path)
    return payload


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER, first in a legacy (non-zip) file


def _file_kind(path: Path) -> str:
    """``torch`` (zip archive or legacy pickle), ``truncated`` (a zip without its central directory),
    or what the file is instead, for the error message."""
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
        return "torch"
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
        OutputError: no space for it (the previous file is kept).
    """
    return atomic_write_bytes(path, json.dumps(data, indent=2, default=float).encode())


def weights_mismatch(model: torch.nn.Module, state: dict[str, Any]) -> str | None:
    """The first difference between ``model``'s state dict and ``state``, in words (a shape, a
    missing or an unexpected key), or None when they fit."""
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
    """Load ``state`` into ``model`` (strict).

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
    """Rebuild the trained network from a resnet-train checkpoint alone; returns ``(model, checkpoint)``,
    the model in eval mode on ``device``; the dict holds ``classes``, ``mean``/``std`` (fractions
    0-1), ``image_size`` (pixels) and ``config``. The stored config is checked first
    (:func:`check_stored_config`), so a checkpoint cannot name another callable.

    Raises:
        CheckpointError: a bad file or a stored config naming a callable outside the allow-list
            (:func:`load_checkpoint`), no run config, or weights that do not fit.
    """
    import importlib

    ckpt = load_checkpoint(path, key="ckpt", require=MODEL_KEYS)  # its config passed check_stored_config
    if not isinstance(ckpt["config"].get("data"), dict) or not isinstance(ckpt["config"].get("model"), dict):
        raise CheckpointError(f"{path} holds no run config; {OURS}")
    target = ckpt["config"]["model"].get("_target_")
    if not isinstance(ckpt["config"]["data"].get("_target_"), str) or not isinstance(target, str):
        raise CheckpointError(f"{path}: its stored config names no model or data loader; {OURS}")
    try:
        # the run's model node (e.g. logit_scale), so the network computes what it trained as; the class
        # is imported by the name the allow-list accepted, and given plain values only (no Hydra instantiate)
        module, name = target.rsplit(".", 1)
        node = {k: v for k, v in ckpt["config"]["model"].items() if k != "_target_"}
        model = getattr(importlib.import_module(module), name)(**node, num_classes=len(ckpt["classes"]))
    except Exception as e:  # noqa: BLE001 - a class that is gone or takes other arguments
        raise CheckpointError(f"{path}: model._target_={target} cannot be built ({first_line(e) or type(e).__name__}); "
                              f"use a {LAST} written by this version of resnet-train") from None
    load_weights(model, ckpt["model"], path, key="ckpt")
    model = model.to(device)
    if ckpt["config"]["trainer"]["channels_last"]:  # the run's layout: bf16 results match it
        model = model.to(memory_format=torch.channels_last)
    return model.eval(), ckpt
