"""LR range test (torch-lr-finder) and the rules that turn its curve into max_lr and min_lr.

Two tests, chosen by the ``lr_finder`` config group; both run torch-lr-finder's ``range_test`` on
the training batches (same data, augmentation, batch size and optimizer as the run), record the
exponentially smoothed training loss (``smooth_f``) and the batch accuracy of every step, stop
early when the smoothed loss exceeds ``diverge_th`` times its best value, and then restore the
initial weights and optimizer state (``LRFinder.reset``), so training starts from scratch.

``lr_finder=warmup`` (default): **a range test shaped like the One Cycle warm-up.** The LR rises
*linearly* (``step_mode: linear``) from ``start_lr`` to ``end_lr`` over ``num_iter`` steps, and
``num_iter: null`` means the warm-up's own length, ``scheduler.max_epoch`` x steps per epoch
(485 at batch 512 on CIFAR-10); ``smooth_f: null`` scales the loss smoothing to that length
(:func:`auto_smooth_f`), so a short warm-up on a small data set is read as finely as a long one.
So the test asks the question the run will face: how high can the
LR climb, at this slope and after this much training, before the loss stops improving? This is
Smith 2018 ("A disciplined approach to neural network hyper-parameters: Part 1", arXiv:1803.09820,
section 4.1: a linear range test run over several epochs, max_lr where the curve stops improving).
At any LR it reaches, the test's slope (``end_lr / num_iter`` per step) is steeper than a warm-up
towards that LR; measured on 10,000 CIFAR-10 images at batch 128 (390 steps), it picked 0.609 at
the edge of a cliff in the loss, the largest LR the ramp survived (results/lr-range-test/README.md). When the ramp is so steep that the loss
turns within its first tenth (a short warm-up: on 1,000 images at batch 50 the warm-up has 20
steps, and a ramp to 1.0 diverges on its third step), the test is repeated, weights restored,
up to the LR where it turned (:func:`zoom_end_lr`, at most :data:`MAX_ZOOMS` times), so a small
data set gets an LR its short warm-up can take rather than ``start_lr``. A repeated ramp stops as
soon as its loss has risen :data:`ZOOM_DIVERGE_TH` times above its minimum, so on a short warm-up
the whole test costs less than training (on ``experiment=quick``'s 20-step warm-up the last ramp
ran all 20 steps after its minimum at step 3 before this stop). Every ramp is kept
(``LRFindResult.earlier``) and plotted.

``lr_finder=exponential`` (the old default, kept): Smith 2017 ("Cyclical Learning Rates for
Training Neural Networks", arXiv:1506.01186, section 3.3) as torch-lr-finder runs it, the LR rising
exponentially from 1e-5 to 10 in 200 steps. On the custom ResNet the LR grows 7 % a step and the
network has no time to adapt: on the full CIFAR-10 (JPEG q75 copy) it picks max_lr of about 0.005
and the 24-epoch job ends underfit at 85 % (results/lr-range-test/README.md).

Rules for max_lr (``lr_finder.rule``):

* ``min_loss`` (default): the LR at the smoothed-loss minimum, where the loss stops improving
  (Smith 2017's upper bound; Smith 2018's reading of the linear test).
* ``max_acc``: the LR at the maximum of the smoothed batch accuracy (Smith 2017, section 3.3,
  reads the bounds off an accuracy curve).
* ``min_loss_div10``: the minimum divided by 10 (fastai's "minimum / 10"), a cautious choice.
* ``valley``: fastai's suggestion, halfway down the longest descent of the smoothed loss
  (:func:`valley_index`): below the cliff that ``min_loss`` sits at the edge of.
* ``steepest``: the LR where the smoothed loss falls fastest (most negative d loss / d log lr),
  torch-lr-finder's suggestion. On this network (no logit scaling, initial loss about 4.5) it
  picks the initial logit-calibration drop and so a very low LR.

min_lr (``lr_finder.min_rule``): Smith 2017's lower bound, the LR where the loss starts to fall,
taken as the first LR at which the smoothed loss is 2 % below its starting value (``fall``), or
where it first moves 2 % either way (``change``: when the loss rises first, the LR at which
training starts to react); capped at max_lr / 10 and floored at ``start_lr``. It is where the One
Cycle starts and, without annihilation, where it ends.

A found max_lr outside :func:`plausible_band` (the references' band, scaled to the run's batch
size), or at the last step of the test (the loss was still improving: raise ``lr_finder.end_lr``),
is logged as a warning naming plots/lr_finder.png.
"""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Callable, Iterable, Iterator, Sequence
from unittest import mock

import numpy as np
import torch
import torch_lr_finder.lr_finder as tlf
from torch import nn
from torch.nn import functional as F

from .config import LR_RULES, MIN_LR_RULES
from .precision import resolve_precision
from .schedule import LRFindResult, cap_min_lr

log = logging.getLogger(__name__)

MIN_LR_FALL = 0.02
"""Fraction below the starting smoothed loss that marks "the loss starts to fall" (min_lr)."""

MAX_ZOOMS = 3
"""At most this many repeats of a linear test whose ramp was too steep (:func:`zoom_end_lr`)."""

PLAUSIBLE_MAX_LR = (0.02, 2.0)
"""max_lr band at :data:`REFERENCE_BATCH` (per mean-reduced loss, SGD with momentum 0.9 on a
BatchNorm CNN) outside which the range test's answer is flagged: the references train this
network at 0.4-0.5 at batch 512 (Page's ResNet-9 peaks at 0.4; a published torch-lr-finder run of
this spec found 0.507). Other batch sizes scale it (:func:`plausible_band`)."""

REFERENCE_BATCH = 512
"""The batch size the references' LRs (and :data:`PLAUSIBLE_MAX_LR`) belong to."""

ZOOM_DIVERGE_TH = 1.5
"""A repeated (zoomed) ramp stops once its smoothed loss is this many times its minimum: the
minimum it was repeated to resolve is then behind it (the rise :func:`zoom_end_lr` reads)."""


def plausible_band(batch_size: int | None = None) -> tuple[float, float]:
    """:data:`PLAUSIBLE_MAX_LR` scaled by ``sqrt(batch_size / REFERENCE_BATCH)`` (the square-root
    scaling rule, Krizhevsky 2014, arXiv:1404.5997; Hoffer et al. 2017, arXiv:1705.08741); None =
    the band at batch 512. Batch 128 (``experiment=cpu_twin``): 0.01-1; batch 50: 0.00625-0.625."""
    lo, hi = PLAUSIBLE_MAX_LR
    scale = 1.0 if batch_size is None else (batch_size / REFERENCE_BATCH) ** 0.5
    return lo * scale, hi * scale



def auto_smooth_f(num_iter: int) -> float:
    """``lr_finder.smooth_f: null``: an EMA whose time constant (1 / smooth_f steps) is at most a
    tenth of the test, so a short test (a small data set's short warm-up) still resolves where its
    loss turns; 0.05 (torch-lr-finder's default, 20 steps) from 200 steps up, at most 0.5."""
    return float(min(0.5, max(0.05, 10.0 / num_iter)))


def smooth(values: Iterable[float], smooth_f: float) -> np.ndarray:
    """Exponential moving average as torch-lr-finder smooths the loss:
    ``s[0] = v[0]``, ``s[i] = smooth_f * v[i] + (1 - smooth_f) * s[i - 1]``; float64 (N,)."""
    v = np.asarray(list(values), float)
    out = np.empty_like(v)
    for i, x in enumerate(v):
        out[i] = x if i == 0 else smooth_f * x + (1.0 - smooth_f) * out[i - 1]
    return out


def pick_lrs(lrs: np.ndarray, losses: np.ndarray, rule: str, start_lr: float,
             accs: np.ndarray | None = None, min_rule: str = "fall") -> tuple[float, float]:
    """Apply ``rule`` (see module doc) to a range-test curve; returns (max_lr, min_lr).

    ``lrs`` and smoothed ``losses`` are float arrays of equal length >= 3; ``accs`` (smoothed
    batch accuracy, fractions 0-1) is needed by ``max_acc``. Non-finite losses are ignored.
    ``min_rule`` (``lr_finder.min_rule``): ``fall``, min_lr where the smoothed loss is first 2 %
    below its start; ``change``, where it first moves 2 % from its start either way (a loss that
    rises first, as on this network without logit scaling, marks where the LR starts to act).

    Raises:
        ValueError: too few finite points, an unknown rule, or ``max_acc`` without ``accs``.
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
    falling = np.flatnonzero(moved)
    fall_lr = lrs[falling[0]] if len(falling) else lrs[0]
    min_lr = cap_min_lr(max(fall_lr, start_lr), max_lr)
    return float(max_lr), min_lr


def valley_index(losses: np.ndarray) -> int:
    """fastai's ``valley`` suggestion (``fastai.callback.schedule.valley``, fastai 2.5+): the step
    ``start + int(n / 3) + int(n / 6)``, about halfway down the longest valley, which is the longest
    strictly decreasing subsequence of ``losses`` (float (N,), smoothed, finite) spanning ``n``
    steps from ``start``; a point on the descent, below where the loss turns up."""
    losses = np.asarray(losses, float)
    n = len(losses)
    lds = np.ones(n, dtype=int)  # longest decreasing subsequence ending at each step
    max_start = max_end = 0
    for i in range(1, n):
        lower = losses[:i] > losses[i]
        if lower.any():
            lds[i] = max(lds[i], int(lds[:i][lower].max()) + 1)
        if lds[max_end] < lds[i]:
            max_end, max_start = i, i - int(lds[i])
    sections = (max_end - max_start) / 3
    return int(min(n - 1, max(0, max_start + int(sections) + int(sections / 2))))


def check_found(result: LRFindResult, end_lr: float, plot: str = "plots/lr_finder.png",
                batch_size: int | None = None) -> list[str]:
    """Warnings for a found max_lr that should be looked at: at the last LR tested (the loss was
    still improving) or outside :func:`plausible_band` for ``batch_size`` (None: batch 512).
    Each names ``plot``; returns them."""
    out = []
    lo, hi = plausible_band(batch_size)
    if result.lrs and result.max_lr >= 0.98 * max(result.lrs) and max(result.lrs) >= 0.98 * end_lr:
        out.append(f"the range test's loss was still improving at its last LR ({result.max_lr:.3g}); "
                   f"see {plot} and raise lr_finder.end_lr (now {end_lr:g})")
    elif not lo <= result.max_lr <= hi:
        at = f" at batch {batch_size}" if batch_size is not None else ""
        out.append(f"max_lr {result.max_lr:.3g} found by the range test is outside the usual {lo:.3g}-{hi:.3g} "
                   f"for this recipe{at}; see {plot}, or set scheduler.max_lr")
    return out


class _Cycle:
    """Endless stream of training batches (successive epochs) for the range test, channels-last
    when the training loop makes them so (``trainer.channels_last``)."""

    def __init__(self, batches, first_epoch: int = 10_000, channels_last: bool = False):
        self.batches, self.first_epoch, self.channels_last = batches, first_epoch, channels_last

    def __iter__(self) -> Iterator:
        epoch = self.first_epoch
        while True:
            for x, y in self.batches.epoch(epoch):
                yield (x.contiguous(memory_format=torch.channels_last) if self.channels_last else x), y
            epoch += 1


class _RecordingLoss(nn.Module):
    """Cross-entropy that also keeps each batch's accuracy (a device tensor: no host sync)."""

    def __init__(self):
        super().__init__()
        self.correct: list[torch.Tensor] = []

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.correct.append((logits.detach().argmax(1) == y).float().mean())
        return F.cross_entropy(logits.float(), y)


def find_lr(
    model: nn.Module,
    make_optimizer: Callable[[list], torch.optim.Optimizer],
    train_batches,
    device: torch.device,
    *,
    step_mode: str,
    start_lr: float,
    end_lr: float,
    num_iter: int,
    rule: str,
    smooth_f: float,
    min_rule: str = "fall",
    diverge_th: float,
    progress: Callable[[Iterable], Iterable] | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
) -> LRFindResult:
    """Run torch-lr-finder's range test and pick max_lr/min_lr by ``rule`` (module doc).

    Args:
        model: the freshly initialised network; its weights and the optimizer are restored afterwards.
        make_optimizer: builds the training optimizer for a parameter list (the LR is overridden).
        train_batches: a :class:`~resnet_cli.batches.TrainBatches` (augmented training data).
        device: where to run.
        step_mode: ``linear`` (the warm-up-shaped test) or ``exp`` (Smith 2017).
        start_lr, end_lr: LR range, in the optimizer's units (per mean-reduced loss).
        num_iter: number of batches in the sweep (fewer if the loss diverges first).
        progress: wraps the step iterable to show progress (``resnet_cli.engine``'s rich bar);
            torch-lr-finder's own tqdm bar and its printed messages are silenced.
        precision: ``trainer.precision``; bf16 runs the test under the same autocast as training
            (torch-lr-finder's ``amp_backend="torch"``, with a disabled gradient scaler: bf16
            needs no loss scaling).
        channels_last: feed the batches channels-last, as the training loop does.

    Returns:
        The curve (smoothed loss and batch accuracy per step) and the chosen LRs, with warnings.

    Raises:
        ValueError: fewer than 3 finite losses (raise ``lr_finder.num_iter``), an unknown rule.
    """
    optimizer = make_optimizer(model.parameters())
    criterion = _RecordingLoss()
    amp = {}
    if resolve_precision(precision, device) == "bf16":
        amp = {"amp_backend": "torch", "amp_config": {"device_type": device.type, "dtype": torch.bfloat16},
               "grad_scaler": torch.amp.GradScaler(device.type, enabled=False)}
    finder = tlf.LRFinder(model, optimizer, criterion, device=device, **amp)
    stream = tlf.TrainDataLoaderIter(_Cycle(train_batches, channels_last=channels_last))
    bar = progress or (lambda it: it)
    zooms, earlier = 0, []
    while True:
        criterion.correct.clear()
        try:
            # torch-lr-finder draws a tqdm bar and print()s "Stopping early..." and a hint with an
            # unfilled placeholder; our progress bar and log line say the same once
            with mock.patch.object(tlf, "tqdm", bar), contextlib.redirect_stdout(io.StringIO()):
                finder.range_test(stream, start_lr=start_lr, end_lr=end_lr, num_iter=num_iter,
                                  step_mode=step_mode, smooth_f=smooth_f,
                                  diverge_th=min(diverge_th, ZOOM_DIVERGE_TH) if zooms else diverge_th)
        finally:
            finder.reset()  # initial weights, BatchNorm statistics and optimizer state
        lrs = [float(v) for v in finder.history["lr"]]
        losses = [float(v) for v in finder.history["loss"]]
        zoom_to = zoom_end_lr(lrs, losses, num_iter, start_lr) if step_mode == "linear" else None
        if zoom_to is None or zooms == MAX_ZOOMS:
            break
        log.info("lr range test: the loss turned within the first tenth of the ramp to %.3g (%d steps); "
                 "repeating it up to %.3g", end_lr, len(lrs), zoom_to)
        earlier.append({"lrs": lrs, "losses": losses})
        end_lr, zooms = zoom_to, zooms + 1
    accs = torch.stack(criterion.correct).cpu().tolist()[: len(lrs)] if criterion.correct else []
    max_lr, min_lr = pick_lrs(np.array(lrs), np.array(losses), rule, start_lr, smooth(accs, smooth_f), min_rule)
    result = LRFindResult(lrs=lrs, losses=losses, max_lr=max_lr, min_lr=min_lr, rule=rule, accs=accs,
                          step_mode=step_mode, smooth_f=smooth_f, end_lr=end_lr, zooms=zooms, earlier=earlier)
    stopped = ""
    if len(lrs) < num_iter:
        stopped = " (stopped: the loss rose past its minimum)" if zooms else " (stopped: the loss diverged)"
    spent = len(lrs) + sum(len(e["lrs"]) for e in earlier)
    log.info("lr range test (%s to %.3g, %d of %d steps%s; %d steps in all): rule %s -> max_lr %.4g, "
             "min_rule %s -> min_lr %.4g", step_mode, end_lr, len(lrs), num_iter, stopped, spent, rule, max_lr,
             min_rule, min_lr)
    result.warnings = check_found(result, end_lr, batch_size=getattr(train_batches, "batch_size", None))
    for w in result.warnings:
        log.warning(w)
    return result


def zoom_end_lr(lrs: Sequence[float], losses: Sequence[float], num_iter: int, start_lr: float) -> float | None:
    """The end LR of a repeated linear test, or None when this one resolved its minimum.

    A linear ramp whose smoothed-loss minimum falls within its first tenth (``num_iter / 10``
    steps) was too steep for the network to adapt to, typically a short warm-up on a small data
    set; the test is then repeated up to the LR at which this one stopped (diverged) or, if it
    ran to the end, where its smoothed loss first rose 50 % above the minimum. None also when
    that LR is under 10 x ``start_lr`` (nothing left to resolve).
    """
    losses = np.asarray(losses, float)
    finite = np.isfinite(losses)
    if finite.sum() < 2:
        return float(lrs[-1]) if len(lrs) and lrs[-1] > 10 * start_lr else None
    i_min = int(np.nanargmin(np.where(finite, losses, np.nan)))
    if i_min >= num_iter / 10:
        return None
    if len(lrs) < num_iter:  # stopped early: diverged
        end = float(lrs[-1])
    else:
        rose = np.flatnonzero(np.where(finite, losses, np.inf)[i_min:] > 1.5 * losses[i_min])
        if not len(rose):
            return None
        end = float(lrs[i_min + rose[0]])
    return end if end > 10 * start_lr else None
