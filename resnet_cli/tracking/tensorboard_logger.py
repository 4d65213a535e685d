"""``logger=tensorboard``: :class:`TensorBoardLogger` under ``<run>/tensorboard/`` (extra ``tensorboard``).

Tags (x axis: optimizer step 1.. for ``*/step``, else epoch 1..): ``lr/step``, ``momentum/step``,
``loss/train``, ``loss/test``, ``acc/train``, ``acc/test`` (fractions 0-1), ``time/epoch_seconds``,
``speed/images_per_s``, ``plots/<name>`` (PNG images), and the hyper-parameters (HParams dashboard).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .common import Tracker, plot_images

log = logging.getLogger("resnet_cli")

EPOCH_SCALARS = {"loss/train": "train_loss", "loss/test": "test_loss", "acc/train": "train_acc",
                 "acc/test": "test_acc", "loss/test_ema": "ema_test_loss", "acc/test_ema": "ema_test_acc",
                 "time/epoch_seconds": "seconds", "speed/images_per_s": "images_per_s"}  # tag -> history key


class TensorBoardLogger(Tracker):
    """The tags of the module docstring, with one ``SummaryWriter``
    (https://pytorch.org/docs/stable/tensorboard.html).

    Args:
        log_dir: folder for the event files, relative to ``run_dir``.
        flush_secs: how often (seconds) pending events are flushed to disk.
        images, max_images: log at most ``max_images`` PNGs under ``plots/`` (sorted by path) at the end.
        group: the sweep folder in a multirun (unused: TensorBoard groups runs by folder).

    Raises:
        ConfigError: ``flush_secs`` < 1 or ``max_images`` < 0.
    """

    requires = ("tensorboard", "tensorboard")
    int_options = {"flush_secs": 1, "max_images": 0}

    def __init__(self, run_dir: str | Path, log_dir: str = "tensorboard", flush_secs: int = 30, images: bool = True,
                 max_images: int = 64, group: str | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.check({"flush_secs": flush_secs, "max_images": max_images})
        self.log_dir = Path(run_dir) / log_dir
        log.info("tensorboard: logging to %s", self.log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir), flush_secs=flush_secs)
        self.images, self.max_images = images, max_images
        self.hparams: dict[str, Any] = {}

    def start(self, hparams: Mapping[str, Any]) -> None:
        """Record the hyper-parameters (HParams experiment + session start)."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        # HParams takes int, float, str and bool: anything else as its str()
        self.hparams = {k: "null" if v is None else v if isinstance(v, (bool, int, float, str)) else str(v)
                        for k, v in hparams.items()}
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
        """Add the PNGs under ``plots_dir`` as ``plots/<relative path without .png>``; returns how many."""
        if not self.images:
            return 0
        from PIL import Image

        n = 0
        for tag, p in plot_images(plots_dir, self.max_images, "tensorboard").items():
            try:
                with Image.open(p) as im:
                    image = np.asarray(im.convert("RGB"))
            except OSError as e:
                log.warning("tensorboard: cannot read %s (%s); not logged", p, e)
            else:
                self.writer.add_image(tag, image, step, dataformats="HWC")
                n += 1
        return n

    def finish(self, metrics: Mapping[str, Any]) -> None:
        """Mark the HParams session as finished successfully."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        if self.hparams:
            _, _, sei = hparams_summary(self.hparams, {})
            self.writer._get_file_writer().add_summary(sei)

    def close(self) -> None:
        self.writer.close()  # a second close does nothing
