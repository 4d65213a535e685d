"""User-facing errors and the exit-code table: one place for how a command ends.

Raise a :class:`UserError` subclass for anything a user can fix (bad config value, missing data,
bad checkpoint). The CLI entry points (:func:`resnet_cli.cli.task_wrapper`) print
``error: <message>`` and exit with the error's :attr:`~UserError.exit_code`, without a traceback
unless ``HYDRA_FULL_ERROR=1`` is set, and record the outcome as ``status`` in the run folder's
``metrics.json`` (:func:`resnet_cli.run_status.record_status`).

Exit codes of ``resnet-train`` (and ``resnet-gradcam``):

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
    import sys

    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)
