"""The LR range test: torch-lr-finder's ``range_test`` on the run's own training batches, read by
:func:`resnet_cli.core.schedule.pick_lrs`; weights and optimizer state are restored afterwards.

``lr_finder=warmup`` (default) ramps the LR linearly over the One Cycle warm-up's length (Smith
2018, arXiv:1803.09820, section 4.1), repeating a ramp too steep to read (:func:`zoom_end_lr`);
``lr_finder=exponential`` is Smith 2017's test (arXiv:1506.01186).
"""

from __future__ import annotations

import contextlib
import io
import itertools
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

MAX_ZOOMS = 3  # repeats of a too-steep linear ramp (zoom_end_lr), at most
PLAUSIBLE_MAX_LR = (0.02, 2.0)
"""max_lr band at :data:`REFERENCE_BATCH` (per mean loss, SGD momentum 0.9) outside which a found
max_lr is flagged; the references' LRs: see results/lr-range-test."""
REFERENCE_BATCH = 512
ZOOM_DIVERGE_TH = 1.5  # a repeated ramp stops once its smoothed loss is this many times its minimum


def plausible_band(batch_size: int | None = None) -> tuple[float, float]:
    """:data:`PLAUSIBLE_MAX_LR` scaled by ``sqrt(batch_size / REFERENCE_BATCH)`` (square-root scaling,
    Krizhevsky 2014, arXiv:1404.5997; Hoffer et al. 2017, arXiv:1705.08741); None: batch 512."""
    lo, hi = PLAUSIBLE_MAX_LR
    scale = 1.0 if batch_size is None else (batch_size / REFERENCE_BATCH) ** 0.5
    return lo * scale, hi * scale


def auto_smooth_f(num_iter: int) -> float:
    """``lr_finder.smooth_f: null``: an EMA time constant (1 / smooth_f steps) of at most a tenth of
    the test; 0.05 (torch-lr-finder's default) from 200 steps up, at most 0.5."""
    return float(min(0.5, max(0.05, 10.0 / num_iter)))


def check_found(result: LRFindResult, end_lr: float, plot: str = "plots/lr_finder.png",
                batch_size: int | None = None) -> list[str]:
    """Warnings (naming ``plot``) for a found max_lr at the last LR tested or outside
    :func:`plausible_band` for ``batch_size``."""
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


def _cycle(batches, channels_last: bool, first_epoch: int = 10_000) -> Iterator:
    """Endless stream of training batches (successive epochs), channels-last if training's are."""
    for epoch in itertools.count(first_epoch):
        for x, y in batches.epoch(epoch):
            yield (x.contiguous(memory_format=torch.channels_last) if channels_last else x), y


class _RecordingLoss(nn.Module):
    """Cross-entropy that also keeps each batch's accuracy (a device tensor: no host sync)."""

    def __init__(self):
        super().__init__()
        self.correct: list[torch.Tensor] = []

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.correct.append((logits.detach().argmax(1) == y).float().mean())
        return F.cross_entropy(logits.float(), y)


def find_lr(model: nn.Module, make_optimizer: Callable[[list], torch.optim.Optimizer], train_batches,
            device: torch.device, *, step_mode: str, start_lr: float, end_lr: float, num_iter: int, rule: str,
            smooth_f: float, min_rule: str = "fall", diverge_th: float,
            progress: Callable[[Iterable], Iterable] | None = None, precision: str = "fp32",
            channels_last: bool = False) -> LRFindResult:
    """Run torch-lr-finder's range test on ``train_batches`` and pick max_lr/min_lr by ``rule``.

    ``make_optimizer`` builds the optimizer for a parameter list; ``step_mode``: ``linear`` or
    ``exp``; ``start_lr``/``end_lr`` in optimizer units; ``num_iter`` steps at most; ``progress``
    wraps the step iterable (torch-lr-finder's tqdm bar and prints are silenced); ``precision``
    bf16 runs under training's autocast (no loss scaling). ``model``'s weights are restored. ValueError:
    fewer than 3 finite losses (raise ``lr_finder.num_iter``), an unknown rule.
    """
    optimizer = make_optimizer(model.parameters())
    criterion = _RecordingLoss()
    amp = {}
    if resolve_precision(precision, device) == "bf16":
        amp = {"amp_backend": "torch", "amp_config": {"device_type": device.type, "dtype": torch.bfloat16},
               "grad_scaler": torch.amp.GradScaler(device.type, enabled=False)}
    finder = tlf.LRFinder(model, optimizer, criterion, device=device, **amp)
    stream = tlf.TrainDataLoaderIter(_cycle(train_batches, channels_last))
    zooms, earlier = 0, []
    while True:
        criterion.correct.clear()
        try:
            # our bar and log line replace torch-lr-finder's tqdm bar and print()s
            with mock.patch.object(tlf, "tqdm", progress or (lambda it: it)), contextlib.redirect_stdout(io.StringIO()):
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

    A ramp whose smoothed-loss minimum falls in its first ``num_iter / 10`` steps was too steep;
    it is repeated up to where it stopped (diverged) or its loss first rose 50 % above the
    minimum. None also when that LR is under 10 x ``start_lr``.
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
