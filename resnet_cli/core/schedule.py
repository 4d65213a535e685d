"""The learning-rate schedule: ``scheduler.max_lr``/``min_lr`` (a positive number or ``find``), the
rules that read them off a range-test curve (README, "How the LR range test picks the LRs"; the
test itself: :mod:`resnet_cli.core.lr_finder`), and the One Cycle (Smith & Topin 2019, arXiv:1708.07120).
"""

from __future__ import annotations

import logging
import math
from contextlib import suppress
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

LR_RULES = ("min_loss", "max_acc", "min_loss_div10", "valley", "steepest")  # lr_finder.rule
MIN_LR_RULES = ("fall", "change")  # lr_finder.min_rule
MIN_LR_CAP = 10.0  # a found min_lr is at most max_lr / MIN_LR_CAP (Smith 2017, arXiv:1506.01186, section 3.3)
MIN_LR_FALL = 0.02  # fraction (0-1) of the starting smoothed loss that marks "the loss starts to move" (min_lr)


@dataclass
class LRs:
    """The LRs a run trains with, as given in the config (optimizer units, per mean loss)."""

    max_lr: float
    min_lr: float
    rule: str = "given"
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class LRFindResult:
    """A range test's curve and chosen LRs (optimizer units, per mean loss).

    ``lrs``/``losses``: LR of each step and the smoothed training loss after it; ``accs``: raw batch
    accuracy per step (fraction 0-1); ``step_mode``: ``linear`` or ``exp``; ``end_lr``: the end of
    the ramp that gave this curve; ``zooms``: repeats of a too-steep ramp
    (:func:`resnet_cli.core.lr_finder.zoom_end_lr`); ``earlier``: those ramps' ``{"lrs", "losses"}``.
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


def lrs_from_dict(d: dict) -> LRs | LRFindResult:
    """A checkpoint's ``lr`` entry (``as_dict()`` of either class) as that class; no curve: :class:`LRs`."""
    if d.get("lrs"):
        return LRFindResult(**d)
    return LRs(d["max_lr"], d["min_lr"], d["rule"], list(d.get("warnings") or []))


def smooth(values: Iterable[float], smooth_f: float) -> np.ndarray:
    """Exponential moving average as torch-lr-finder smooths the loss (pandas ``ewm``,
    ``adjust=False``): ``s[0] = v[0]``, ``s[i] = smooth_f * v[i] + (1 - smooth_f) * s[i - 1]``; float64 (N,)."""
    import pandas as pd

    return pd.Series(list(values), dtype=float).ewm(alpha=smooth_f, adjust=False).mean().to_numpy()


def pick_lrs(lrs: np.ndarray, losses: np.ndarray, rule: str, start_lr: float,
             accs: np.ndarray | None = None, min_rule: str = "fall") -> tuple[float, float]:
    """Apply ``rule`` (:data:`LR_RULES`) to a range-test curve; returns (max_lr, min_lr).

    ``lrs``, smoothed ``losses``: float (N,), non-finite losses ignored (at least 3 finite); ``accs``:
    smoothed batch accuracy (fractions 0-1), needed by ``max_acc``. ``min_rule``: ``fall``, min_lr where
    the loss is first 2 % below its start; ``change``, first 2 % away either way; floored at ``start_lr``,
    capped (:func:`cap_min_lr`). ValueError: too few finite points, an unknown rule, or ``max_acc``
    without ``accs``.
    """
    lrs, losses = np.asarray(lrs, float), np.asarray(losses, float)
    ok = np.isfinite(losses)
    if accs is not None:
        accs = np.asarray(accs, float)[ok]
    lrs, losses = lrs[ok], losses[ok]
    if len(lrs) < 3:
        raise ValueError("the LR range test produced fewer than 3 finite losses; raise lr_finder.num_iter")
    i_min = int(np.argmin(losses))
    if rule == "min_loss_div10":
        max_lr = lrs[i_min] / 10.0
    elif rule == "min_loss":
        max_lr = lrs[i_min]
    elif rule == "max_acc":
        if accs is None or len(accs) != len(lrs):
            raise ValueError("lr_finder.rule=max_acc needs the batch accuracies of the range test")
        max_lr = lrs[int(np.argmax(accs))]
    elif rule == "valley":
        max_lr = lrs[valley_index(losses)]
    elif rule == "steepest":
        upto = max(i_min, 2) + 1  # the descent before the minimum
        grads = np.gradient(losses[:upto], np.log(lrs[:upto]))
        max_lr = lrs[int(np.argmin(grads))]
    else:
        raise ValueError(f"unknown lr_finder.rule {rule!r}; one of {', '.join(LR_RULES)}")
    if min_rule == "fall":
        moved = losses < losses[0] * (1.0 - MIN_LR_FALL)
    elif min_rule == "change":
        moved = np.abs(losses - losses[0]) > losses[0] * MIN_LR_FALL
    else:
        raise ValueError(f"unknown lr_finder.min_rule {min_rule!r}; one of {', '.join(MIN_LR_RULES)}")
    fall_lr = lrs[moved][0] if moved.any() else lrs[0]
    return float(max_lr), cap_min_lr(max(fall_lr, start_lr), max_lr)


def valley_index(losses: np.ndarray) -> int:
    """fastai's ``valley`` suggestion (``fastai.callback.schedule.valley``, fastai 2.5+): the step
    ``start + int(n / 3) + int(n / 6)`` of the longest strictly decreasing subsequence of ``losses``
    (float (N,), smoothed, finite), spanning ``n`` steps from ``start``."""
    losses = np.asarray(losses, float)
    n = len(losses)
    lds = np.ones(n, dtype=int)  # longest decreasing subsequence ending at each step
    max_start = max_end = 0
    for i in range(1, n):
        lds[i] = 1 + lds[:i][losses[:i] > losses[i]].max(initial=0)
        if lds[max_end] < lds[i]:
            max_end, max_start = i, i - int(lds[i])
    sections = (max_end - max_start) / 3
    return int(min(n - 1, max(0, max_start + int(sections) + int(sections / 2))))


def rule_picks(lrs: Sequence[float], losses: Sequence[float], accs: Sequence[float] = (),
               smooth_f: float = 0.05) -> dict[str, float]:
    """max_lr as each rule of :data:`LR_RULES` picks it on this curve (``accs``: raw, smoothed here);
    rules that cannot read the curve are left out."""
    if len(lrs) < 3:
        return {}
    smoothed = smooth(accs, smooth_f) if len(accs) == len(lrs) else None
    out = {}
    for rule in LR_RULES:
        with suppress(ValueError):
            out[rule] = pick_lrs(np.asarray(lrs), np.asarray(losses), rule, float(lrs[0]), smoothed)[0]
    return out


def lr_setting(value: Any, key: str) -> float | None:
    """``scheduler.<key>`` as a number, or None for ``find``; ConfigError for anything else than a finite
    positive number."""
    if isinstance(value, str) and value == "find":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"scheduler.{key}={value!r} is not allowed: use a positive number or 'find'")
    if not value > 0 or not math.isfinite(value):
        raise ConfigError(f"scheduler.{key}={value!r} is not allowed: must be a finite number > 0 (or 'find'), "
                          f"e.g. scheduler.{key}={0.4 if key == 'max_lr' else 0.004}")
    return float(value)


def check_lrs(max_lr: float, min_lr: float, found: bool = False) -> None:
    """Raise ConfigError naming ``scheduler.min_lr`` if ``min_lr > max_lr``; ``found``: max_lr came from the
    range test (named in the message)."""
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
                plot: Callable[[LRFindResult], Any] = lambda result: None) -> LRs | LRFindResult:
    """``scheduler.max_lr``/``min_lr`` as given, or the range test's answer for those set to ``find``
    (``range_test`` runs only then; ``plot`` draws its curve before the check, so a refused pair is
    seen). Returns :class:`LRs` when both were given, else the :class:`LRFindResult`. ConfigError for a
    bad setting, or a min_lr above max_lr.
    """
    fixed_max, fixed_min = lr_setting(max_lr, "max_lr"), lr_setting(min_lr, "min_lr")
    if fixed_max is not None and fixed_min is not None:
        check_lrs(fixed_max, fixed_min)
        log.info("lr: max_lr %.4g and min_lr %.4g given, range test skipped", fixed_max, fixed_min)
        return LRs(fixed_max, fixed_min)
    found = range_test()
    max_lr = fixed_max if fixed_max is not None else found.max_lr
    min_lr = fixed_min if fixed_min is not None else cap_min_lr(found.min_lr, max_lr)
    result = replace(found, max_lr=max_lr, min_lr=min_lr)
    plot(result)
    check_lrs(max_lr, min_lr, found=fixed_max is None)
    return result


def annihilation_factor(annihilation: bool) -> float:
    """The ``final_div_factor`` equal to the deprecated ``scheduler.annihilation``: true ended the cycle at
    ``min_lr / 1e4`` (1e4), false at ``min_lr`` (1)."""
    return 1e4 if annihilation else 1.0


def one_cycle(optimizer: torch.optim.Optimizer, *, max_lr: float, min_lr: float, epochs: int, steps_per_epoch: int,
              max_epoch: int, anneal_strategy: str = "linear", final_div_factor: float = 1e4,
              cycle_momentum: bool = True, base_momentum: float = 0.85, max_momentum: float = 0.95,
              annihilation: bool | None = None) -> torch.optim.lr_scheduler.OneCycleLR:
    """``torch.optim.lr_scheduler.OneCycleLR`` stepped once per batch (Smith & Topin 2019,
    arXiv:1708.07120; PyTorch OneCycleLR docs); ``conf/scheduler/one_cycle.yaml``'s ``_target_``.

    The LR (optimizer units) rises from ``min_lr`` to ``max_lr`` on the last batch of epoch
    ``max_epoch`` and falls to ``min_lr / final_div_factor`` on the last batch (PyTorch's meaning:
    1 ends at ``min_lr``, 1e4 near zero); ``max_epoch == epochs`` is a warm-up only. Momentum cycles
    when ``cycle_momentum``. ``annihilation``: the deprecated boolean that ``final_div_factor``
    replaces (None: not given; else it wins, :func:`annihilation_factor`). ConfigError: ``min_lr`` above
    ``max_lr`` (the cycle would run upside down); ValueError: a non-positive LR.
    """
    if annihilation is not None:
        final_div_factor = annihilation_factor(annihilation)
    if not (min_lr > 0 and max_lr > 0):
        raise ValueError(f"One Cycle needs positive LRs, got min_lr={min_lr!r}, max_lr={max_lr!r}")
    check_lrs(max_lr, min_lr)
    steps = epochs * steps_per_epoch
    # warm-up only: OneCycleLR's descent would have zero length (a division by zero on the step
    # after the last); one virtual step after the end keeps the peak on the last real batch
    extra = 1 if max_epoch == epochs else 0
    from torch.optim.lr_scheduler import OneCycleLR

    return OneCycleLR(optimizer, max_lr=max_lr, total_steps=steps + extra,
                      pct_start=max_epoch / epochs if not extra else steps / (steps + 1),
                      anneal_strategy=anneal_strategy, div_factor=max_lr / min_lr,
                      final_div_factor=float(final_div_factor), cycle_momentum=cycle_momentum,
                      base_momentum=base_momentum, max_momentum=max_momentum, three_phase=False)
