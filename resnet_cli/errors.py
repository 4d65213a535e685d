"""User-facing errors and the exit-code table (also in the README, "Errors, exit codes"): 0 completed,
1 a bug (traceback; after a sweep, also a killed job), 2 bad input (config, data, checkpoint, output
folder, full disk, CUDA out of memory), 3 diverged, 130 SIGINT/SIGTERM; :data:`STATUS` gives each its
``metrics.json`` status. Raise a :class:`UserError` subclass for anything a user can fix: the entry
points (:func:`resnet_cli.cli.entry.task_wrapper`) print ``error: <message>`` and exit with its code.
"""

from __future__ import annotations

import errno
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any, Sequence

EXIT_COMPLETED = 0
EXIT_BUG = 1
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, whatever the signal

STATUS = {EXIT_COMPLETED: "completed", EXIT_BUG: "failed", EXIT_BAD_INPUT: "failed", EXIT_DIVERGED: "diverged",
          EXIT_INTERRUPTED: "interrupted"}  # metrics.json status of each exit code


def exit_code_of(metrics: dict | None) -> int:
    """A job's exit code from its ``metrics.json``: the recorded ``exit_code``, else by ``status``;
    1 for no record or one left at ``running`` (a killed job)."""
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
    """Data is missing, unreadable or inconsistent (names the path). ``problem``: the fact alone,
    without resnet-train's advice, for commands with keys of their own (default: the message)."""

    def __init__(self, message: str, problem: str | None = None):
        super().__init__(message)
        self.problem = problem or message


class CheckpointError(UserError):
    """A checkpoint is missing, truncated, or not written by resnet-cli (names the file)."""


class OutputError(UserError):
    """A record could not be written (full disk, quota, read-only); names the file. The previous file is kept."""


class ExportMismatch(UserError):
    """An exported model (ONNX, TorchScript) disagrees with PyTorch beyond the tolerance (exit 2)."""


class Diverged(UserError):
    """The training loss became non-finite; the last good checkpoint is kept. Exit code 3."""

    exit_code = EXIT_DIVERGED


class Interrupted(UserError):
    """SIGINT/SIGTERM stopped training after a step; a resumable checkpoint was written. Exit 130."""

    exit_code = EXIT_INTERRUPTED


class StopRequest(KeyboardInterrupt):
    """SIGINT/SIGTERM that stops the run at once (during set-up, or a second Ctrl-C). Exit 130."""

    def __init__(self, signame: str):
        super().__init__(signame)
        self.signame = signame


def check_choice(key: str, value: Any, allowed: Sequence[str]) -> None:
    """Raise ConfigError ``<key>=<value!r> is not allowed: one of ...`` unless ``value`` is in ``allowed``."""
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed: one of {', '.join(allowed)}")


def exit_with(message: str, code: int) -> None:
    """Print ``error: <message>`` on stderr and exit with ``code`` (the table above)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


OUTPUT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)  # no space or read-only: not a bug


def first_line(text: Any) -> str:
    """The first non-blank line of ``str(text)``, stripped ("" if none)."""
    return next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")


def output_dir_message(ex: OSError) -> str:
    """One line for an :class:`OSError` raised while creating the run folder or its log."""
    where = ex.filename or "the output folder"
    return (f"cannot write the output folder: {where} ({ex.strerror or type(ex).__name__}); "
            "choose another with hydra.run.dir=<folder> (hydra.sweep.dir=<folder> with -m)")


def write_failed_message(ex: OSError, needed: int | None = None) -> str:
    """One line for a record that could not be written: file, reason, space needed (``needed`` bytes) and free."""
    import shutil

    where = Path(ex.filename) if ex.filename else None
    head = f"cannot write {where or 'a record of the run'}: {ex.strerror or type(ex).__name__}"
    kept = "the previous file and the records of finished epochs are kept"
    if ex.errno in (errno.EROFS, errno.EACCES, errno.EPERM):  # no space is missing: the folder is not writable
        return f"{head} (the folder is read-only); {kept}; choose hydra.run.dir=<a writable folder>"
    space = ""
    with suppress(OSError):
        if where is not None:
            free = shutil.disk_usage(where if where.is_dir() else where.parent).free
            space = (f" ({needed / 1e6:.1f} MB needed, " if needed else " (") + f"{free / 1e6:.1f} MB free)"
    return f"{head}{space}; {kept}; free some space or choose hydra.run.dir=<folder on another disk>"
