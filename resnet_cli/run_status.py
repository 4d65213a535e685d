"""How a run ended, as its run folder's ``metrics.json`` says: ``status`` and ``error``.

The run itself writes ``status`` while it works (``running``) and when it ends on its own terms
(``completed``, ``diverged``, ``interrupted``; see :mod:`resnet_cli.run_folder`). When a job ends
on an exception instead, the entry points' failure path (:func:`resnet_cli.entry.task_wrapper`)
calls :func:`record_status`; a finished sweep reads every job back with :func:`read_metrics_json`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("resnet_cli")

def read_metrics_json(run_dir: str | Path) -> dict[str, Any] | None:
    """``run_dir/metrics.json`` as a dict; None when there is none. An unreadable or non-object
    file reads as ``{"status": "failed", "error": "unreadable metrics.json (<reason>)"}``."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return {"status": "failed", "error": f"unreadable metrics.json ({e})"}
    return data if isinstance(data, dict) else {"status": "failed", "error": "unreadable metrics.json (not an object)"}


def record_status(run_dir: str | Path | None, status: str, error: str, exit_code: int) -> None:
    """Set ``status``, ``error`` and ``exit_code`` in ``run_dir/metrics.json``, keeping everything
    else it holds.

    Creates the file, or updates one whose status is still ``running`` (or missing); a final
    status the run wrote itself (``completed``, ``diverged``, ``interrupted``, ``failed``) is
    kept, with its own fields. Nothing is written when ``run_dir`` is None (torchrun ranks > 0);
    a write that fails is logged, since the job is failing already.

    Args:
        run_dir: the run folder.
        status: ``failed`` or ``interrupted`` (:data:`resnet_cli.errors.STATUS`).
        error: the one-line message (a bug: ``"<ExceptionType>: <message>"``).
        exit_code: the command's exit code (:mod:`resnet_cli.errors`), read back after a sweep.
    """
    if run_dir is None:
        return
    from .checkpoint import write_json
    from .errors import OutputError

    path = Path(run_dir) / "metrics.json"
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        data = {}  # unreadable: replaced by the status record
    if not isinstance(data, dict):
        data = {}
    if data.get("status") not in (None, "running"):
        return
    data.update(status=status, error=error, exit_code=exit_code)
    try:
        write_json(path, data)
    except (OSError, OutputError) as e:
        log.error("cannot record status %s in %s: %s", status, path, e)
