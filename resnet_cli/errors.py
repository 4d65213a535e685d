"""User-facing errors and the exit-code table: one place for how a command ends.

Raise a :class:`UserError` subclass for anything a user can fix (bad config value, missing data,
bad checkpoint). The CLI entry points (:func:`resnet_cli.entry.task_wrapper`) print
``error: <message>`` and exit with the error's :attr:`~UserError.exit_code`, without a traceback
unless ``HYDRA_FULL_ERROR=1`` is set, and record the outcome as ``status`` in the run folder's
``metrics.json`` (:func:`resnet_cli.run_status.record_status`). An :class:`OSError` of a full or
read-only disk gets one line too (:func:`write_failed_message`, :func:`output_dir_message`).

Exit codes of ``resnet-train`` (and ``resnet-gradcam``, ``resnet-predict``, ``resnet-export``):

====  ======================================================================================
0     completed (``metrics.json`` status ``completed``)
1     a bug: an unexpected exception, shown with its traceback (status ``failed``); after a
      sweep, a job that failed that way or was killed
2     bad input: config (wrong type, unknown key, out of range; also what Hydra refuses while
      composing), data, checkpoint, unwritable output folder or a record that cannot be
      written (full disk: :class:`OutputError`), CUDA out of memory (status ``failed``)
3     the loss became non-finite (:class:`Diverged`, status ``diverged``)
130   SIGINT/SIGTERM (:class:`Interrupted`, :class:`StopRequest`; status ``interrupted``)
====  ======================================================================================

After a multirun sweep in which jobs did not complete, the command exits with the largest of
their codes (:func:`exit_code_of`).
"""

from __future__ import annotations

import errno
import sys
from pathlib import Path
from typing import Any

EXIT_COMPLETED = 0
EXIT_BUG = 1
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130
"""128 + SIGINT, whatever the signal (SIGINT or SIGTERM)."""

STATUS = {EXIT_COMPLETED: "completed", EXIT_BUG: "failed", EXIT_BAD_INPUT: "failed", EXIT_DIVERGED: "diverged",
          EXIT_INTERRUPTED: "interrupted"}
"""``metrics.json`` status for each exit code."""

def exit_code_of(metrics: dict | None) -> int:
    """The exit code of a job, read back from its ``metrics.json``: the ``exit_code`` the
    failure path recorded (:func:`resnet_cli.run_status.record_status`), else by ``status``:
    ``completed`` 0, ``diverged`` 3, ``interrupted`` 130; no record, or one left at
    ``running`` (the job was killed), 1."""
    metrics = metrics or {}
    if isinstance(metrics.get("exit_code"), int):
        return metrics["exit_code"]
    return {"completed": EXIT_COMPLETED, "diverged": EXIT_DIVERGED, "interrupted": EXIT_INTERRUPTED}.get(
        metrics.get("status"), EXIT_BUG)


class UserError(Exception):
    """An error the user can fix; its message is printed alone on one line. Exit code 2."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(UserError):
    """A configuration value is of the wrong type or out of range (names the key)."""


class DataError(UserError):
    """Data is missing, unreadable or inconsistent (names the path).

    ``problem``: the fact alone (e.g. ``data folder not found: /x``), without the advice in
    resnet-train's keys that the message adds, for commands with keys of their own
    (resnet-gradcam's ``data_root``); defaults to the whole message."""

    def __init__(self, message: str, problem: str | None = None):
        super().__init__(message)
        self.problem = problem or message


class CheckpointError(UserError):
    """A checkpoint is missing, truncated, or not written by resnet-cli (names the file)."""


class OutputError(UserError):
    """A record (checkpoint, metrics.json, history.csv) could not be written: a full disk, a
    quota, a read-only folder (names the file and the space needed). The previous file is kept."""


class ExportMismatch(UserError):
    """An exported model (ONNX, TorchScript) disagrees with PyTorch beyond the tolerance (exit 2)."""


class Diverged(UserError):
    """The training loss became non-finite; the last good checkpoint is kept. Exit code 3."""

    exit_code = EXIT_DIVERGED


class Interrupted(UserError):
    """SIGINT/SIGTERM stopped training after a step; a resumable checkpoint was written. Exit 130."""

    exit_code = EXIT_INTERRUPTED


class StopRequest(KeyboardInterrupt):
    """SIGINT/SIGTERM that stops the run at once (during set-up, or a second Ctrl-C);
    ``signame`` names the signal. The entry points turn it into exit 130."""

    def __init__(self, signame: str):
        super().__init__(signame)
        self.signame = signame


def exit_with(message: str, code: int) -> None:
    """Print ``error: <message>`` on stderr and exit with ``code`` (the table above)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


# -- one line for an OSError of a record or the output folder -----------------------------------

OUTPUT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)
"""errno values of a write that failed for want of space or a writable disk (not a bug)."""


def first_line(text: Any) -> str:
    """The first non-blank line of ``str(text)``, stripped ("" if none)."""
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[0] if lines else ""


def output_dir_message(ex: OSError) -> str:
    """One line for an :class:`OSError` raised while creating the run folder or its log."""
    where = ex.filename or "the output folder"
    return (f"cannot write the output folder: {where} ({ex.strerror or type(ex).__name__}); "
            "choose another with hydra.run.dir=<folder> (hydra.sweep.dir=<folder> with -m)")


def write_failed_message(ex: OSError, needed: int | None = None) -> str:
    """One line for a record that could not be written: the file, the reason, the space needed
    and free (when ``needed`` bytes is known) and what to do; the previous file is kept."""
    import shutil

    where = Path(ex.filename) if ex.filename else None
    space = ""
    if where is not None:
        try:
            free = shutil.disk_usage(where.parent if not where.is_dir() else where).free
            space = (f" ({needed / 1e6:.1f} MB needed, " if needed else " (") + f"{free / 1e6:.1f} MB free)"
        except OSError:
            pass
    name = str(where) if where is not None else "a record of the run"
    return (f"cannot write {name}: {ex.strerror or type(ex).__name__}{space}; the previous file and the records "
            "of finished epochs are kept; free some space or choose hydra.run.dir=<folder on another disk>")
