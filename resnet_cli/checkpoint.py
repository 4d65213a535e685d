"""Atomic, safe checkpoint and JSON I/O.

Files are written to a temporary sibling and moved into place with :func:`os.replace`, so a
crash mid-write leaves the previous file intact. Checkpoints are loaded with
``torch.load(weights_only=True)``: only tensors, containers and plain values are accepted, so a
checkpoint from an untrusted source cannot run code.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError

FORMAT = "resnet-cli/1"
"""Value of the ``format`` key that marks a checkpoint as written by this tool."""


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors, dicts, lists, str/int/float/bool/None only) atomically.

    The ``format`` key is set to :data:`FORMAT`. Returns the path written.
    """
    payload = {**payload, "format": FORMAT}
    _atomic_write(Path(path), lambda f: torch.save(payload, f))
    return Path(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` onto the CPU.

    Raises:
        CheckpointError: the file is missing, unreadable, truncated, unsafe to unpickle, or
            lacks the resnet-cli ``format`` marker.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (pass ckpt=<run>/checkpoints/last.pt)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle refused by weights_only, not a torch file...
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"cannot read checkpoint {path}: {reason} (is the file complete and written by resnet-train?)"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a resnet-cli checkpoint (no format={FORMAT!r} marker); "
            "use a checkpoints/last.pt written by resnet-train"
        )
    return payload


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON atomically; returns the path."""
    text = json.dumps(data, indent=2, default=float).encode()
    _atomic_write(Path(path), lambda f: f.write(text))
    return Path(path)
