"""What the trackers share; apart from the package's ``__init__`` so that a tracker module imports only this."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

log = logging.getLogger("resnet_cli")

# the final metrics (metrics.json) the trackers record as the run's summary (ema_*: with trainer.ema_decay)
FINAL_KEYS = ("test_acc", "test_loss", "train_acc", "train_loss", "train_seconds", "ema_test_acc", "ema_test_loss")


def epoch_values(row: Mapping[str, Any]) -> dict[str, float]:
    """A history row's numbers without ``epoch``; its ``lr`` becomes ``epoch_lr`` (``lr`` is the per-step one)."""
    return {("epoch_lr" if k == "lr" else k): v for k, v in numbers(row).items() if k != "epoch"}


def numbers(row: Mapping[str, Any], keys: Iterable[str] | None = None) -> dict[str, float]:
    """The numeric, non-None entries of ``row`` (restricted to ``keys``) as floats."""
    keys = row.keys() if keys is None else keys
    return {k: float(row[k]) for k in keys
            if k in row and isinstance(row[k], (int, float, np.floating, np.integer)) and not isinstance(row[k], bool)}


def pngs(plots_dir: Path, limit: int, who: str) -> list[Path]:
    """The PNGs under ``plots_dir`` sorted by path, at most ``limit`` (logged when capped)."""
    plots_dir = Path(plots_dir)
    paths = sorted(plots_dir.rglob("*.png")) if plots_dir.is_dir() else []
    if len(paths) > limit:
        log.info("%s: logging %d of %d plots (max_images)", who, limit, len(paths))
        paths = paths[:limit]
    return paths
