"""``logger=csv``: :class:`CSVLogger`, CSV files and a JSON with the standard library only (no extra)."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any, Mapping

from .common import FINAL_KEYS, Tracker, numbers

log = logging.getLogger("resnet_cli")


class CSVLogger(Tracker):
    """Under ``<run>/<log_dir>``: ``epochs.csv`` (the history, empty cell = not evaluated), ``steps.csv``
    (step, lr, momentum) and ``hparams.json`` (hyper-parameters, ``group``, at the end ``final``);
    flushed every epoch, so a crashed run keeps what it logged."""

    def __init__(self, run_dir: str | Path, log_dir: str = "csv", group: str | None = None):
        self.log_dir = Path(run_dir) / log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.group = group
        self.hparams: dict[str, Any] = {}
        self._steps = open(self.log_dir / "steps.csv", "w", newline="")
        self._step_writer = csv.writer(self._steps)
        self._step_writer.writerow(["step", "lr", "momentum"])
        self._epochs = self._epoch_writer = None
        log.info("csv: logging to %s", self.log_dir)

    def _write_hparams(self, **extra: Any) -> None:
        (self.log_dir / "hparams.json").write_text(
            json.dumps({"hparams": self.hparams, "group": self.group, **extra}, indent=2, default=str) + "\n")

    def start(self, hparams: Mapping[str, Any]) -> None:
        self.hparams = dict(hparams)
        self._write_hparams()

    def log_step(self, step: int, lr: float, momentum: float | None = None) -> None:
        self._step_writer.writerow([step, lr, "" if momentum is None else momentum])

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        if self._epoch_writer is None:
            self._epochs = open(self.log_dir / "epochs.csv", "w", newline="")
            self._epoch_writer = csv.DictWriter(self._epochs, fieldnames=list(row), extrasaction="ignore", restval="")
            self._epoch_writer.writeheader()
        self._epoch_writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        self._epochs.flush()
        self._steps.flush()

    def log_images(self, plots_dir: Path, step: int) -> int:
        return 0  # the PNGs are in the run folder already

    def finish(self, metrics: Mapping[str, Any]) -> None:
        self._write_hparams(final=numbers(metrics, FINAL_KEYS))

    def close(self) -> None:
        for f in (self._steps, self._epochs):
            if f is not None:
                f.close()
