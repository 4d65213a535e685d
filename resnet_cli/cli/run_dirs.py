"""A single run's folder: claimed before Hydra writes into it (:class:`ClaimRunDir`, a callback of each
command's YAML) and removed by :func:`discard_if_empty` when the command fails before producing anything
worth keeping. Multirun sweeps are left as Hydra makes them."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from ..errors import ConfigError, exit_with, output_dir_message

MAX_SUFFIX = 1000  # -N suffixes tried before giving up

_owned: Path | None = None
_new_parents: list[Path] = []  # folders above it this command created (deepest first), removed with it when empty


def owned_run_dir() -> Path | None:
    """The run folder this process created in :class:`ClaimRunDir` (absolute), or None."""
    return _owned


def claim(base: Path, default_name: bool) -> Path:
    """Create and return the run folder: with ``default_name`` (named after the clock) ``base`` or
    the first free ``base-2``, ``base-3``... (atomic :func:`os.mkdir`); else ``base`` itself.

    Raises:
        ConfigError: an explicit ``base`` holds a run's ``metrics.json``, or no free name was found.
        OSError: the parent folder cannot be created.
    """
    global _owned
    base = Path(base).absolute()
    _new_parents[:] = [p for p in base.parents if not p.exists()]
    if not default_name:
        if (base / "metrics.json").is_file():
            raise ConfigError(f"hydra.run.dir={base} already holds a run (metrics.json); a new command never "
                              "writes into a finished run's folder: choose a new hydra.run.dir=<folder>")
        if base.is_dir():
            try:  # a test write (read-only mount, permissions): else Hydra's log handler fails with a traceback
                tempfile.TemporaryFile(dir=base).close()
            except OSError as e:
                raise ConfigError(f"cannot write the output folder: {base} ({e.strerror or type(e).__name__}; it "
                                  "exists but is not writable): choose another with hydra.run.dir=<folder>") from None
            return base  # used, but not ours to remove
        base.mkdir(parents=True)
        _owned = base
        return base
    base.parent.mkdir(parents=True, exist_ok=True)
    for i in range(MAX_SUFFIX):
        path = base if i == 0 else base.with_name(f"{base.name}-{i + 1}")
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        _owned = path
        return path
    raise ConfigError(f"{MAX_SUFFIX} run folders named {base}-N exist already; choose hydra.run.dir=<folder>")


def discard_if_empty(run_dir: Path | None) -> bool:
    """Remove ``run_dir`` if this command created it and it holds no ``metrics.json``,
    ``checkpoints/`` or ``plots/lr_finder.png``; True if removed."""
    if run_dir is None or _owned is None or Path(run_dir).absolute() != _owned:
        return False
    if any((_owned / keep).exists() for keep in ("metrics.json", "checkpoints", "plots/lr_finder.png")):
        return False
    shutil.rmtree(_owned, ignore_errors=True)
    for parent in _new_parents:  # e.g. outputs/<date>/, when left empty
        try:
            parent.rmdir()
        except OSError:
            break
    return not _owned.exists()


class ClaimRunDir(Callback):
    """Hydra callback: a run folder of its own for every single run; the clock-named default made unique
    (``<HH-MM-SS>-2``, ``-3``..., as :func:`resnet_cli.api.default_output_dir`), an explicit one refused
    when it holds a finished run (:func:`claim`)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Claim ``hydra.run.dir`` and set it to the folder claimed. A refusal exits here (exit 2):
        Hydra would turn a callback's exception into a warning and go on."""
        default_name = "${now:" in str(OmegaConf.to_container(config.hydra.run, resolve=False).get("dir", ""))
        try:
            path = claim(Path(str(config.hydra.run.dir)), default_name)
        except ConfigError as e:
            exit_with(str(e), e.exit_code)
        except OSError as e:
            exit_with(output_dir_message(e), ConfigError.exit_code)
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.run.dir = str(path)
