"""User-facing errors: one short line naming the key or file and the fix, exit code 2.

Raise a :class:`UserError` subclass for anything a user can fix (bad config value, missing data,
bad checkpoint). The CLI entry points print ``error: <message>`` and exit with
:attr:`UserError.exit_code`, without a traceback unless ``HYDRA_FULL_ERROR=1`` is set.
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
