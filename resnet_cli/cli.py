"""Shared plumbing for the Hydra entry points: where ``conf/`` is, and how user errors end."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Iterator

from .checkpoint import write_json
from .errors import UserError

log = logging.getLogger("resnet_cli")


def config_dir() -> str:
    """Absolute path of the YAML config tree.

    A built wheel ships it inside the package (``resnet_cli/conf``, mapped from the top-level
    ``conf/`` by pyproject.toml); an editable install or a source checkout reads ``conf/``
    beside the package.
    """
    packaged = Path(str(resources.files("resnet_cli"))) / "conf"
    if (packaged / "train.yaml").is_file():
        return str(packaged)
    source = Path(__file__).resolve().parent.parent / "conf"
    if (source / "train.yaml").is_file():
        return str(source)
    raise RuntimeError(f"resnet-cli config tree not found in {packaged} or {source}; reinstall the package")


def _is_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:  # noqa: BLE001 - outside Hydra
        return False


@contextmanager
def user_errors(run_dir: Path | None = None) -> Iterator[None]:
    """End a CLI run cleanly on a :class:`UserError` or Ctrl-C.

    Single run: log the message, print ``error: <message>`` to stderr, exit with the error's
    code (2 for bad input) and no traceback. In a multirun sweep the job is recorded as failed
    (``metrics.json`` gets ``status: failed`` unless the run already wrote a status) and the
    sweep goes on. ``HYDRA_FULL_ERROR=1`` re-raises for a full traceback.
    """
    try:
        yield
    except (UserError, KeyboardInterrupt) as e:
        if isinstance(e, KeyboardInterrupt):
            e = UserError("interrupted before training started; nothing to resume")
            e.exit_code = 130
        log.error("%s", e)
        if run_dir is not None and not (run_dir / "metrics.json").exists():
            try:
                write_json(run_dir / "metrics.json", {"status": "failed", "error": str(e)})
            except OSError:
                pass
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if _is_multirun():
            return
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
