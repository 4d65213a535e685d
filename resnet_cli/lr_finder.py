"""The LR range test: torch-lr-finder's ``range_test`` on the run's own training batches, read
by the rules in :mod:`resnet_cli.schedule` (:func:`~resnet_cli.schedule.pick_lrs`).

``lr_finder=warmup`` (default) ramps the LR linearly over the One Cycle warm-up's own length
(Smith 2018, arXiv:1803.09820, section 4.1), so it asks how high the LR can climb at the
warm-up's slope; a ramp too steep to read (the loss turns in its first tenth) is repeated lower
(:func:`zoom_end_lr`). ``lr_finder=exponential`` is Smith 2017's test (arXiv:1506.01186), 1e-5
to 10 in 200 steps. Why the warm-up test, with its measurements: README ("How the LR range test
picks the LRs") and results/lr-range-test/README.md. The initial weights and optimizer state
are restored afterwards (``LRFinder.reset``), so training starts from scratch.
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

from .precision import resolve_precision
from .schedule import LRFindResult, pick_lrs, smooth

log = logging.getLogger(__name__)

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
