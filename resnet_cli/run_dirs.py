"""The run folder's lifecycle around one command: claimed before Hydra writes into it, removed
again when the command fails before it produced anything worth keeping.

:class:`ClaimRunDir` is a Hydra callback (``hydra.callbacks.claim_run_dir`` in conf/train.yaml
and conf/gradcam.yaml). In ``on_run_start``, before Hydra creates the folder, writes ``.hydra/``
or opens the log file, it:

* makes the default folder unique: ``outputs/<date>/<HH-MM-SS>`` is created with
  :func:`os.mkdir`, which fails when the folder exists, so of two commands started in the same
  second the second gets ``<HH-MM-SS>-2`` (then ``-3``...; the Python API's
  :func:`resnet_cli.api.default_output_dir` names them alike), never a folder another command holds;
* refuses (:class:`~resnet_cli.errors.ConfigError`, exit 2) an explicit ``hydra.run.dir`` that
  already holds a run's ``metrics.json``, so a later command never changes a finished run's
  records (``.hydra/``, log, metrics);
* remembers the folder as *created by this command* (:func:`owned_run_dir`).

A command that then fails before training wrote a record (a bad config value, missing data, a
refused resume, any resnet-gradcam error) leaves no folder behind: the entry points' failure
path calls :func:`discard_if_empty`, which removes a folder this command created and that holds
neither ``metrics.json``, ``checkpoints/`` nor the range test's plot (a min_lr refused after the
range test keeps its folder, the plot and a failed status). Multirun sweeps are left as Hydra makes them
(their jobs' folders are read back by the sweep summary).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from .errors import ConfigError, exit_with, output_dir_message

MAX_SUFFIX = 1000
"""How many ``-N`` suffixes are tried before giving up (a folder per run in one second)."""

_owned: Path | None = None
_new_parents: list[Path] = []  # folders above it this command created (deepest first), removed with it when empty


def owned_run_dir() -> Path | None:
    """The run folder this process created in :class:`ClaimRunDir` (absolute), or None."""
    return _owned


def claim(base: Path, default_name: bool) -> Path:
    """Create and return the run folder for ``base``.

    ``default_name`` (the folder name comes from the clock): ``base`` or, if it exists,
    ``base-2``, ``base-3``... whichever :func:`os.mkdir` creates first (atomic, so two
    processes never get the same one). Otherwise ``base`` itself (created if missing).

    Raises:
        ConfigError: ``base`` holds a run's ``metrics.json`` (explicit folder only), or no free
            name was found.
        OSError: the parent folder cannot be created (the caller turns it into one line).
    """
    base = Path(base).absolute()
    _new_parents[:] = [p for p in base.parents if not p.exists()]
    if not default_name:
        if (base / "metrics.json").is_file():
            raise ConfigError(f"hydra.run.dir={base} already holds a run (metrics.json); a new command never "
                              "writes into a finished run's folder: choose a new hydra.run.dir=<folder>")
        if base.is_dir():
            return base  # an existing folder without a run: used, but not ours to remove
        base.mkdir(parents=True)
        _set_owned(base)
        return base
    base.parent.mkdir(parents=True, exist_ok=True)
    for i in range(MAX_SUFFIX):
        path = base if i == 0 else base.with_name(f"{base.name}-{i + 1}")  # -2, -3... as the Python API names them
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        _set_owned(path)
        return path
    raise ConfigError(f"{MAX_SUFFIX} run folders named {base}-N exist already; choose hydra.run.dir=<folder>")


def _set_owned(path: Path) -> None:
    global _owned
    _owned = path


def discard_if_empty(run_dir: Path | None) -> bool:
    """Remove ``run_dir`` if this command created it and it holds no record and no work (no
    ``metrics.json``, no ``checkpoints/``, no range-test plot ``plots/lr_finder.png``): what a
    command that failed before training leaves. True if removed."""
    if run_dir is None or _owned is None or Path(run_dir).absolute() != _owned:
        return False
    if any((_owned / keep).exists() for keep in ("metrics.json", "checkpoints", "plots/lr_finder.png")):
        return False
    shutil.rmtree(_owned, ignore_errors=True)
    for parent in _new_parents:  # e.g. outputs/<date>/ made by this command: removed when left empty
        try:
            parent.rmdir()
        except OSError:
            break
    return not _owned.exists()


def _uses_clock(cfg: DictConfig, key: str) -> bool:
    """True when ``key``'s value (unresolved) names its folder after the clock (``${now:...}``)."""
    raw = OmegaConf.to_container(OmegaConf.select(cfg, key.rsplit(".", 1)[0]), resolve=False)
    return "${now:" in str(raw.get(key.rsplit(".", 1)[1], ""))


class ClaimRunDir(Callback):
    """Hydra callback: a run folder of its own for every single run (see the module)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Claim ``hydra.run.dir`` before Hydra writes into it; set it to the folder claimed.

        A refusal ends the command here (``error: <message>``, exit 2): Hydra turns an exception
        of a callback into a warning and would go on writing into the folder."""
        default_name = _uses_clock(config, "hydra.run.dir")
        try:
            path = claim(Path(str(config.hydra.run.dir)), default_name)
        except ConfigError as e:
            exit_with(str(e), e.exit_code)
        except OSError as e:
            exit_with(output_dir_message(e), ConfigError.exit_code)
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.run.dir = str(path)
