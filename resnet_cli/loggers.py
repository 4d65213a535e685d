"""Experiment loggers chosen with ``logger=...`` (off by default: ``logger: null``).

``logger=tensorboard`` writes TensorBoard event files with
:class:`torch.utils.tensorboard.SummaryWriter` under ``<run>/<logger.log_dir>`` (default
``<run>/tensorboard``); view them with ``tensorboard --logdir <run or sweep folder>``:

=====================  =========================================================  ===============
tag                    value                                                      x axis
=====================  =========================================================  ===============
``lr/step``            learning rate applied at each optimizer step              global step (1..)
``momentum/step``      SGD momentum at each step (cycled by One Cycle)           global step
``loss/train``         mean training cross-entropy of the epoch                  epoch (1..)
``loss/test``          mean test cross-entropy after the epoch                   epoch
``acc/train``          training accuracy, fraction 0-1                           epoch
``acc/test``           test accuracy, fraction 0-1                               epoch
``time/epoch_seconds`` training seconds of the epoch (evaluation excluded)        epoch
``plots/<name>``       every PNG under ``<run>/plots`` at the end of the run      last epoch
                       (curves, LR schedule, misclassified grid, Grad-CAM, ...)
=====================  =========================================================  ===============

The run's hyper-parameters (max_lr and min_lr actually used, weight decay, batch size, epochs,
max_epoch, model, augment, seed) and final test/train accuracy and loss are also written for
TensorBoard's HParams dashboard, so a sweep folder opened in TensorBoard compares its jobs.

Only rank 0 of a distributed run logs (the other ranks get :class:`NullLogger`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Protocol

import numpy as np

log = logging.getLogger("resnet_cli")

EPOCH_SCALARS = {"loss/train": "train_loss", "loss/test": "test_loss", "acc/train": "train_acc",
                 "acc/test": "test_acc", "time/epoch_seconds": "seconds"}
"""TensorBoard tag -> key of a history row (see :data:`resnet_cli.run_folder.HISTORY_KEYS`)."""


class RunLogger(Protocol):
    """What the trainer calls; every method is cheap and never synchronises a GPU."""

    def start(self, hparams: Mapping[str, Any]) -> None: ...

    def log_step(self, step: int, lr: float, momentum: float | None = None) -> None: ...

    def log_epoch(self, row: Mapping[str, Any]) -> None: ...

    def log_images(self, plots_dir: Path, step: int) -> int: ...

    def finish(self, metrics: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class NullLogger:
    """``logger: null`` (and ranks other than 0): does nothing."""

    def start(self, hparams: Mapping[str, Any]) -> None:
        pass

    def log_step(self, step: int, lr: float, momentum: float | None = None) -> None:
        pass

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        pass

    def log_images(self, plots_dir: Path, step: int) -> int:
        return 0

    def finish(self, metrics: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def _hparam_value(v: Any) -> Any:
    """HParams accepts int, float, str, bool (and torch scalars); anything else becomes its str()."""
    if v is None:
        return "null"
    return v if isinstance(v, (bool, int, float, str)) else str(v)


class TensorBoardLogger:
    """Writes the tags listed in the module docstring with one :class:`SummaryWriter`.

    ``conf/logger/tensorboard.yaml``'s ``_target_`` (``_partial_``: the run passes ``run_dir``).

    Args:
        run_dir: the run folder.
        log_dir: folder for the event files, relative to ``run_dir`` (created).
        flush_secs: how often (seconds) pending events are flushed to disk.
        images: log the PNGs under ``plots/`` at the end of the run.
        max_images: at most this many PNGs (sorted by path) are logged.

    Raises:
        ConfigError: see :func:`check_logger`.
    """

    def __init__(self, run_dir: str | Path, log_dir: str, flush_secs: int, images: bool, max_images: int):
        from torch.utils.tensorboard import SummaryWriter

        check_logger({"flush_secs": flush_secs, "max_images": max_images})
        self.log_dir = Path(run_dir) / log_dir
        log.info("tensorboard: logging to %s", self.log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir), flush_secs=flush_secs)
        self.images, self.max_images = images, max_images
        self.hparams: dict[str, Any] = {}
        self._closed = False

    def start(self, hparams: Mapping[str, Any]) -> None:
        """Record the hyper-parameters (HParams experiment + session start)."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        self.hparams = {k: _hparam_value(v) for k, v in hparams.items()}
        metric_tags = {tag: 0.0 for tag in ("acc/test", "acc/train", "loss/test", "loss/train")}
        exp, ssi, _ = hparams_summary(self.hparams, metric_tags)
        fw = self.writer._get_file_writer()
        fw.add_summary(exp)
        fw.add_summary(ssi)

    def log_step(self, step: int, lr: float, momentum: float | None = None) -> None:
        self.writer.add_scalar("lr/step", lr, step)
        if momentum is not None:
            self.writer.add_scalar("momentum/step", momentum, step)

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        for tag, key in EPOCH_SCALARS.items():
            if row.get(key) is not None:
                self.writer.add_scalar(tag, float(row[key]), int(row["epoch"]))

    def log_images(self, plots_dir: Path, step: int) -> int:
        """Add every PNG under ``plots_dir`` as image ``plots/<relative path without .png>``;
        returns how many were logged. Unreadable files are skipped with a warning."""
        if not self.images:
            return 0
        from PIL import Image

        plots_dir = Path(plots_dir)
        paths = sorted(plots_dir.rglob("*.png")) if plots_dir.is_dir() else []
        if len(paths) > self.max_images:
            log.info("tensorboard: logging %d of %d plots (logger.max_images)", self.max_images, len(paths))
            paths = paths[: self.max_images]
        n = 0
        for p in paths:
            try:
                with Image.open(p) as im:
                    arr = np.asarray(im.convert("RGB"))
            except OSError as e:
                log.warning("tensorboard: cannot read %s (%s); not logged", p, e)
                continue
            tag = "plots/" + p.relative_to(plots_dir).with_suffix("").as_posix()
            self.writer.add_image(tag, arr, step, dataformats="HWC")
            n += 1
        return n

    def finish(self, metrics: Mapping[str, Any]) -> None:
        """Mark the HParams session as finished successfully."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        if self.hparams:
            _, _, sei = hparams_summary(self.hparams, {})
            self.writer._get_file_writer().add_summary(sei)

    def close(self) -> None:
        if not self._closed:
            self.writer.close()
            self._closed = True


def check_logger(lcfg: Mapping[str, Any]) -> None:
    """Check a ``logger`` config's values (:func:`resnet_cli.config.validate`, before any data loads).

    Raises:
        ConfigError: ``flush_secs`` < 1 or ``max_images`` < 0, or the TensorBoard logger without
            the ``tensorboard`` package (an extra: ``pip install -e ".[tensorboard]"``).
    """
    import importlib.util

    from .errors import ConfigError

    if "tensorboard" in str(lcfg.get("_target_", "")).lower() and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("logger=tensorboard needs the tensorboard package, an optional extra: "
                          "pip install -e \".[tensorboard]\" (or pip install tensorboard)")
    if int(lcfg["flush_secs"]) <= 0:
        raise ConfigError(f"logger.flush_secs={lcfg['flush_secs']!r} is not allowed: must be >= 1")
    if int(lcfg["max_images"]) < 0:
        raise ConfigError(f"logger.max_images={lcfg['max_images']!r} is not allowed: must be >= 0")


def build_logger(lcfg: Mapping[str, Any] | None, run_dir: Path, enabled: bool = True) -> RunLogger:
    """The logger ``cfg.logger`` instantiates (its ``_target_``, given ``run_dir``); None (no
    logger) or ``enabled=False`` (ranks other than 0) give a :class:`NullLogger`.

    Raises:
        ConfigError: see :func:`check_logger`.
    """
    if lcfg is None or not enabled:
        return NullLogger()
    from hydra.utils import instantiate

    return instantiate(lcfg)(run_dir=Path(run_dir))
