"""The learning-rate schedule: range-test result -> :func:`resolve_lrs` -> :func:`one_cycle`.

Every rule about the two LRs lives here, once:

* ``scheduler.max_lr`` / ``scheduler.min_lr`` are each a positive number or ``find``
  (:func:`lr_setting`);
* ``min_lr <= max_lr`` (:func:`check_lrs`), whether both were given or one was found;
* a found min_lr is capped at ``max_lr / 10`` (:func:`cap_min_lr`), so the cycle spans at least
  a factor of 10 (Smith 2017, arXiv:1506.01186, section 3.3: min_lr a third to a tenth of max_lr);
* the One Cycle itself (Smith & Topin 2019, arXiv:1708.07120) through
  ``torch.optim.lr_scheduler.OneCycleLR``, stepped once per batch, peaking at the end of epoch
  ``max_epoch`` and ending at min_lr (no annihilation) as the recipe asks.

The range test that produces the curve is :mod:`resnet_cli.lr_finder`; :func:`resolve_lrs` takes
it as a callable, so this module does not depend on it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch

from .errors import ConfigError

log = logging.getLogger(__name__)

MIN_LR_CAP = 10.0
"""A found min_lr is at most ``max_lr / MIN_LR_CAP``."""


@dataclass
class LRFindResult:
    """Outcome of a range test: the curve and the chosen LRs (optimizer units, per mean loss).

    ``lrs``: LR of each step; ``losses``: smoothed training loss after it; ``accs``: batch training
    accuracy of each step (fraction 0-1, unsmoothed; empty for LRs given, not found);
    ``rule``: the max_lr rule (``given`` when both LRs came from the config); ``step_mode``:
    ``linear`` (warm-up test) or ``exp``; ``warnings``: what looked wrong; ``smooth_f``: the loss
    smoothing used (the accuracy plot is smoothed alike); ``end_lr``: the end of the ramp that gave
    this curve; ``zooms``: how often a too-steep ramp was repeated (:func:`resnet_cli.lr_finder.zoom_end_lr`);
    ``earlier``: the ramps before this one, each ``{"lrs": [...], "losses": [...]}`` (plotted).
    """

    lrs: list[float]
    losses: list[float]
    max_lr: float
    min_lr: float
    rule: str
    accs: list[float] = field(default_factory=list)
    step_mode: str = ""
    warnings: list[str] = field(default_factory=list)
    smooth_f: float = 0.05
    end_lr: float = 0.0
    zooms: int = 0
    earlier: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def lr_setting(value: Any, key: str) -> float | None:
    """``scheduler.<key>`` as a number, or None for ``find``.

    Raises:
        ConfigError: not ``find`` and not a finite positive number (nan and inf refused).
    """
    if isinstance(value, str) and value == "find":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"scheduler.{key}={value!r} is not allowed: use a positive number or 'find'")
    if not value > 0 or not math.isfinite(value):  # nan, inf, -inf, 0 and below
        raise ConfigError(f"scheduler.{key}={value!r} is not allowed: must be a finite number > 0 (or 'find'), "
                          f"e.g. scheduler.{key}={0.4 if key == 'max_lr' else 0.004}")
    return float(value)


def check_lrs(max_lr: float, min_lr: float, found: bool = False) -> None:
    """Refuse a cycle that would run upside down (``min_lr > max_lr``).

    Args:
        max_lr, min_lr: the LRs (optimizer units).
        found: max_lr came from the range test (the message then points at its plot).

    Raises:
        ConfigError: naming ``scheduler.min_lr``.
    """
    if min_lr <= max_lr:
        return
    if found:
        raise ConfigError(f"scheduler.min_lr={min_lr:.4g} is not allowed: must be <= the max_lr {max_lr:.4g} "
                          "that the range test found (plots/lr_finder.png); lower scheduler.min_lr or set "
                          "scheduler.max_lr")
    raise ConfigError(f"scheduler.min_lr={min_lr!r} is not allowed: must be <= scheduler.max_lr={max_lr!r}")


def cap_min_lr(min_lr: float, max_lr: float) -> float:
    """A found min_lr, at most ``max_lr / MIN_LR_CAP``."""
    return float(min(min_lr, max_lr / MIN_LR_CAP))


def resolve_lrs(max_lr: Any, min_lr: Any, range_test: Callable[[], LRFindResult],
                plot: Callable[[LRFindResult], Any] = lambda result: None) -> LRFindResult:
    """The LRs the run trains with: ``scheduler.max_lr`` and ``scheduler.min_lr`` as given, the
    range test's answer for those set to ``find`` (``range_test`` runs only if one is). ``plot``
    draws the test's curve with the LRs chosen, before they are checked (so a refused pair can be
    seen in plots/lr_finder.png).

    Returns:
        :class:`LRFindResult`; rule ``given`` and an empty curve when both LRs were given.

    Raises:
        ConfigError: a bad setting, or a min_lr above max_lr.
    """
    fixed_max, fixed_min = lr_setting(max_lr, "max_lr"), lr_setting(min_lr, "min_lr")
    if fixed_max is not None and fixed_min is not None:
        check_lrs(fixed_max, fixed_min)
        log.info("lr: max_lr %.4g and min_lr %.4g given, range test skipped", fixed_max, fixed_min)
        return LRFindResult([], [], fixed_max, fixed_min, "given")
    found = range_test()
    max_lr = fixed_max if fixed_max is not None else found.max_lr
    min_lr = fixed_min if fixed_min is not None else cap_min_lr(found.min_lr, max_lr)
    result = dataclasses.replace(found, max_lr=max_lr, min_lr=min_lr)
    plot(result)
    check_lrs(max_lr, min_lr, found=fixed_max is None)
    return result


def one_cycle(
    optimizer: torch.optim.Optimizer,
    *,
    max_lr: float,
    min_lr: float,
    epochs: int,
    steps_per_epoch: int,
    max_epoch: int,
    anneal_strategy: str,
    annihilation: bool,
    cycle_momentum: bool,
    base_momentum: float,
    max_momentum: float,
) -> torch.optim.lr_scheduler.OneCycleLR:
    """``torch.optim.lr_scheduler.OneCycleLR`` stepped once per batch (Smith & Topin 2019,
    "Super-Convergence", arXiv:1708.07120); ``conf/scheduler/one_cycle.yaml``'s ``_target_``.

    The LR starts at ``min_lr`` (``div_factor = max_lr / min_lr``), reaches ``max_lr`` on the
    last batch of epoch ``max_epoch`` (``pct_start = max_epoch / epochs``) and returns to
    ``min_lr`` on the last batch (``final_div_factor = 1``), or to ``min_lr / 1e4`` with
    ``annihilation``. LRs are in the optimizer's units (per mean-reduced loss); momentum cycles
    ``max_momentum -> base_momentum -> max_momentum`` when ``cycle_momentum``.

    ``max_epoch == epochs`` (e.g. a one-epoch run, ``trainer.epochs=1 scheduler.max_epoch=1``) is
    a warm-up only: the LR rises from ``min_lr`` to ``max_lr`` on the last batch, with no descent.

    Raises:
        ConfigError: ``min_lr`` above ``max_lr`` (the cycle would run upside down).
        ValueError: a non-positive LR.
    """
    if not (min_lr > 0 and max_lr > 0):
        raise ValueError(f"One Cycle needs positive LRs, got min_lr={min_lr!r}, max_lr={max_lr!r}")
    check_lrs(max_lr, min_lr)
    steps = epochs * steps_per_epoch
    # warm-up only: OneCycleLR's descent would have zero length (a division by zero on the step
    # after the last); one virtual step after the end keeps the peak on the last real batch
    extra = 1 if max_epoch == epochs else 0
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=max_lr,
        total_steps=steps + extra,
        pct_start=max_epoch / epochs if not extra else steps / (steps + 1),
        anneal_strategy=anneal_strategy,
        div_factor=max_lr / min_lr,
        final_div_factor=1e4 if annihilation else 1.0,
        cycle_momentum=cycle_momentum,
        base_momentum=base_momentum,
        max_momentum=max_momentum,
        three_phase=False,
    )
