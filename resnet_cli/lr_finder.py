"""LR range test (torch-lr-finder) and the rules that turn its curve into max_lr and min_lr.

The test (Smith 2017, "Cyclical Learning Rates for Training Neural Networks", arXiv:1506.01186,
section 3.3) raises the LR exponentially from ``start_lr`` to ``end_lr`` over ``num_iter``
batches and records the exponentially smoothed training loss (``smooth_f``), stopping early when
the loss exceeds ``diverge_th`` times its best value. Weights and optimizer are then reset, so
training starts from the initial weights.

Rules for max_lr (``lr_finder.rule``):

* ``min_loss`` (default): the LR at the smoothed-loss minimum, Smith 2017's upper bound (the LR
  at which the loss stops improving and turns ragged). On the custom ResNet the loss starts high
  (about 4.5: the recipe has no logit scaling) and falls steadily to a minimum near 1e-2, then
  climbs; this rule lands at that minimum.
* ``min_loss_div10``: the minimum divided by 10 (fastai's "minimum / 10"), a cautious choice.
* ``steepest``: the LR where the smoothed loss falls fastest (most negative d loss / d log lr),
  torch-lr-finder's suggestion. On this network it picks the initial logit-calibration drop and
  so a very low LR; prefer it for pretrained or logit-scaled networks.

min_lr: Smith 2017's lower bound, the LR where the loss starts to fall, taken as the first LR at
which the smoothed loss is 2 % below its starting value; capped at max_lr / 10 and floored at
``start_lr``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch_lr_finder import LRFinder, TrainDataLoaderIter

log = logging.getLogger(__name__)

MIN_LR_FALL = 0.02
"""Fraction below the starting smoothed loss that marks "the loss starts to fall" (min_lr)."""


@dataclass
class LRFindResult:
    """Outcome of a range test: the curve (``lrs``, smoothed ``losses``) and the chosen LRs."""

    lrs: list[float]
    losses: list[float]
    max_lr: float
    min_lr: float
    rule: str

    def as_dict(self) -> dict:
        return asdict(self)


def pick_lrs(lrs: np.ndarray, losses: np.ndarray, rule: str, start_lr: float) -> tuple[float, float]:
    """Apply ``rule`` (see module doc) to a range-test curve; returns (max_lr, min_lr).

    ``lrs`` and ``losses`` are float arrays of equal length >= 3. Non-finite losses are ignored.

    Raises:
        ValueError: too few finite points or an unknown rule.
    """
    ok = np.isfinite(losses)
    lrs, losses = np.asarray(lrs, float)[ok], np.asarray(losses, float)[ok]
    if len(lrs) < 3:
        raise ValueError("the LR range test produced fewer than 3 finite losses; raise lr_finder.num_iter")
    i_min = int(np.argmin(losses))
    if rule == "min_loss_div10":
        max_lr = lrs[i_min] / 10.0
    elif rule == "min_loss":
        max_lr = lrs[i_min]
    elif rule == "steepest":
        upto = max(i_min, 2) + 1  # the descent before the minimum
        grads = np.gradient(losses[:upto], np.log(lrs[:upto]))
        max_lr = lrs[int(np.argmin(grads))]
    else:
        raise ValueError(f"unknown lr_finder.rule {rule!r}")
    falling = np.flatnonzero(losses < losses[0] * (1.0 - MIN_LR_FALL))
    fall_lr = lrs[falling[0]] if len(falling) else lrs[0]
    min_lr = float(min(max(fall_lr, start_lr), max_lr / 10.0))
    return float(max_lr), min_lr


class _Cycle:
    """Endless stream of training batches (successive epochs) for the range test."""

    def __init__(self, batches, first_epoch: int = 10_000):
        self.batches, self.first_epoch = batches, first_epoch

    def __iter__(self) -> Iterator:
        epoch = self.first_epoch
        while True:
            yield from self.batches.epoch(epoch)
            epoch += 1


def find_lr(
    model: nn.Module,
    make_optimizer: Callable[[list], torch.optim.Optimizer],
    train_batches,
    device: torch.device,
    *,
    start_lr: float = 1e-5,
    end_lr: float = 10.0,
    num_iter: int = 200,
    rule: str = "min_loss",
    smooth_f: float = 0.05,
    diverge_th: float = 5.0,
) -> LRFindResult:
    """Run torch-lr-finder's exponential range test and pick max_lr/min_lr by ``rule``.

    Args:
        model: the freshly initialised network; its weights are restored afterwards.
        make_optimizer: builds the training optimizer for a parameter list (the LR is overridden).
        train_batches: a :class:`~resnet_cli.augment.TrainBatches` (augmented training data).
        device: where to run.
        start_lr, end_lr: LR range (end_lr exclusive upper bound of the exponential sweep).
        num_iter: number of batches in the sweep (fewer if the loss diverges first).

    Returns:
        The curve and the chosen LRs.
    """
    optimizer = make_optimizer(model.parameters())
    finder = LRFinder(model, optimizer, nn.CrossEntropyLoss(), device=device)
    stream = TrainDataLoaderIter(_Cycle(train_batches))
    try:
        finder.range_test(stream, start_lr=start_lr, end_lr=end_lr, num_iter=num_iter,
                          step_mode="exp", smooth_f=smooth_f, diverge_th=diverge_th)
    finally:
        finder.reset()
    lrs = [float(v) for v in finder.history["lr"]]
    losses = [float(v) for v in finder.history["loss"]]
    max_lr, min_lr = pick_lrs(np.array(lrs), np.array(losses), rule, start_lr)
    log.info("lr range test: %d steps, rule %s -> max_lr %.4g, min_lr %.4g", len(lrs), rule, max_lr, min_lr)
    return LRFindResult(lrs=lrs, losses=losses, max_lr=max_lr, min_lr=min_lr, rule=rule)


def one_cycle(
    optimizer: torch.optim.Optimizer,
    *,
    max_lr: float,
    min_lr: float,
    epochs: int,
    steps_per_epoch: int,
    max_epoch: int,
    anneal_strategy: str = "linear",
    annihilation: bool = False,
    cycle_momentum: bool = True,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
) -> torch.optim.lr_scheduler.OneCycleLR:
    """``torch.optim.lr_scheduler.OneCycleLR`` stepped once per batch (Smith & Topin 2019,
    "Super-Convergence", arXiv:1708.07120).

    The LR starts at ``min_lr`` (``div_factor = max_lr / min_lr``), reaches ``max_lr`` on the
    last batch of epoch ``max_epoch`` (``pct_start = max_epoch / epochs``) and returns to
    ``min_lr`` on the last batch (``final_div_factor = 1``), or to ``min_lr / 1e4`` with
    ``annihilation``. LRs are in the optimizer's units (per mean-reduced loss).

    Raises:
        ValueError: ``min_lr`` not in (0, ``max_lr``] (the cycle would run upside down).
    """
    if not 0 < min_lr <= max_lr:
        raise ValueError(f"One Cycle needs 0 < min_lr <= max_lr, got min_lr={min_lr:.4g}, max_lr={max_lr:.4g}")
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=max_lr,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        pct_start=max_epoch / epochs,
        anneal_strategy=anneal_strategy,
        div_factor=max_lr / min_lr,
        final_div_factor=1e4 if annihilation else 1.0,
        cycle_momentum=cycle_momentum,
        base_momentum=base_momentum,
        max_momentum=max_momentum,
        three_phase=False,
    )
