"""User-facing errors: one short line naming the key or file and the fix, exit code 2.

Raise a :class:`UserError` subclass for anything a user can fix (bad config value, missing data,
bad checkpoint). The CLI entry points print ``error: <message>`` and exit with
:attr:`UserError.exit_code`, without a traceback unless ``HYDRA_FULL_ERROR=1`` is set.

Exit codes of ``resnet-train`` (and ``resnet-gradcam``):

====  ======================================================================================
0     completed (``metrics.json`` status ``completed``)
1     a bug: an unexpected exception, shown with its traceback (status ``failed``); after a
      sweep, a job that failed that way
2     bad input: config (wrong type, unknown key, out of range; also what Hydra refuses while
      composing), data, checkpoint, unwritable output folder, CUDA out of memory (status
      ``failed``)
3     the loss became non-finite (:class:`resnet_cli.engine.Diverged`, status ``diverged``)
130   SIGINT/SIGTERM (:class:`resnet_cli.engine.Interrupted`, status ``interrupted``)
====  ======================================================================================
"""

from __future__ import annotations


class UserError(Exception):
    """An error the user can fix; its message is printed alone on one line. Exit code 2."""

    exit_code = 2


class ConfigError(UserError):
    """A configuration value is of the wrong type or out of range (names the key)."""


class DataError(UserError):
    """Data is missing, unreadable or inconsistent (names the path)."""


class CheckpointError(UserError):
    """A checkpoint is missing, truncated, or not written by resnet-cli (names the file)."""
