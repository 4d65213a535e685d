"""What the trackers share: the base class :class:`Tracker` and the values they log. Apart from the
package's ``__init__`` so that a tracker module imports only this."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

log = logging.getLogger("resnet_cli")

# the final metrics (metrics.json) the trackers record as the run's summary (ema_*: with trainer.ema_decay)
FINAL_KEYS = ("test_acc", "test_loss", "train_acc", "train_loss", "train_seconds", "ema_test_acc", "ema_test_loss")


class Tracker:
    """What every tracker (a :class:`resnet_cli.tracking.RunLogger`) has: ``requires``, (importable module,
    pyproject extra that installs it) or None, and :meth:`check` of its options before any data loads."""

    requires: tuple[str, str] | None = None
    int_options: Mapping[str, int] = {}  # option -> its least allowed value
    choices: Mapping[str, tuple[str, ...]] = {}  # option -> its allowed values, the default first

    @classmethod
    def check(cls, opts: Mapping[str, Any], key: str = "logger") -> None:
        """Raises ConfigError: an option of :attr:`choices` has another value, or one of :attr:`int_options`
        is not an integer >= its least value."""
        from ..errors import ConfigError

        for name, allowed in cls.choices.items():
            v = opts.get(name, allowed[0])
            if v not in allowed:
                raise ConfigError(f"{key}.{name}={v!r} is not allowed: one of {', '.join(allowed)}")
        for name, low in cls.int_options.items():
            v = opts.get(name, low)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(f"{key}.{name}={v!r} is not allowed: must be an integer >= {low}")


def numbers(row: Mapping[str, Any], keys: Iterable[str] | None = None) -> dict[str, float]:
    """The numeric, non-None entries of ``row`` (restricted to ``keys``) as floats."""
    keys = row.keys() if keys is None else keys
    return {k: float(row[k]) for k in keys
            if k in row and isinstance(row[k], (int, float, np.floating, np.integer)) and not isinstance(row[k], bool)}


def epoch_values(row: Mapping[str, Any]) -> dict[str, float]:
    """A history row's numbers without ``epoch``; its ``lr`` becomes ``epoch_lr`` (``lr`` is the per-step one)."""
    return {("epoch_lr" if k == "lr" else k): v for k, v in numbers(row).items() if k != "epoch"}


def final_values(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The :data:`FINAL_KEYS` numbers of ``metrics``, named ``final_<key>``."""
    return {f"final_{k}": v for k, v in numbers(metrics, FINAL_KEYS).items()}


def step_values(lr: float, momentum: float | None) -> dict[str, float]:
    """``{"lr": lr, "momentum": momentum}``, without ``momentum`` when it is None."""
    return {"lr": float(lr), **({} if momentum is None else {"momentum": float(momentum)})}


def plot_images(plots_dir: Path, limit: int, who: str) -> dict[str, Path]:
    """``{"plots/<relative path without .png>": path}`` of the PNGs under ``plots_dir``, sorted by path, at
    most ``limit`` (logged when capped)."""
    plots_dir = Path(plots_dir)
    paths = sorted(plots_dir.rglob("*.png")) if plots_dir.is_dir() else []
    if len(paths) > limit:
        log.info("%s: logging %d of %d plots (max_images)", who, limit, len(paths))
        paths = paths[:limit]
    return {"plots/" + p.relative_to(plots_dir).with_suffix("").as_posix(): p for p in paths}
