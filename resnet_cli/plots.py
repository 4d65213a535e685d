"""Figures for a run. Each function returns a matplotlib Figure (shown inline in a notebook);
:func:`save_figure` writes one to a PNG and closes it (the CLI's path)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def _figure(ncols: int = 1, width: float = 6.0, height: float = 4.0) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def plot_lr_finder(lrs: Sequence[float], losses: Sequence[float], max_lr: float, min_lr: float, rule: str,
                   accs: Sequence[float] = (), step_mode: str = "exp", smooth_f: float = 0.05) -> Figure:
    """The range test: smoothed loss (left axis) and, when given, the batch accuracy ``accs``
    (fractions 0-1, smoothed like the loss with ``smooth_f``, right axis in percent) against LR,
    with the chosen max_lr and min_lr marked. The x axis is logarithmic for ``step_mode="exp"``,
    linear for the warm-up test; the loss axis stops a little above the starting loss, so a
    diverging tail does not flatten the region where the LRs are picked."""
    from .lr_finder import smooth

    fig, (ax,) = _figure(width=7.0)
    ax.plot(lrs, losses, color="tab:blue", label="smoothed training loss")
    ax.axvline(max_lr, color="tab:red", ls="--", label=f"max_lr = {max_lr:.3g} ({rule})")
    ax.axvline(min_lr, color="tab:green", ls=":", label=f"min_lr = {min_lr:.3g}")
    finite = [v for v in losses if math.isfinite(v)]
    if finite:
        lo, top = min(finite), max(finite[0], min(finite)) * 1.05
        ax.set_ylim(lo - 0.05 * (top - lo), top)
    ax.set_xscale("log" if step_mode == "exp" else "linear")
    ax.set_xlabel("learning rate" + (" (linear ramp, the One Cycle warm-up's length)" if step_mode == "linear" else ""))
    ax.set_ylabel("loss")
    ax.set_title("LR range test")
    handles, labels = ax.get_legend_handles_labels()
    if len(accs):
        ax2 = ax.twinx()
        (line,) = ax2.plot(lrs[: len(accs)], 100 * smooth(accs, smooth_f), color="tab:orange", alpha=0.8,
                           label="smoothed batch accuracy (%)")
        ax2.set_ylabel("batch accuracy (%)")
        handles.append(line)
        labels.append(line.get_label())
    ax.legend(handles, labels, loc="upper left", fontsize="small")
    return fig


def plot_lr_schedule(lrs: Sequence[float], steps_per_epoch: int, max_epoch: int) -> Figure:
    """The LR applied at every optimizer step, x axis in epochs, with the end of ``max_epoch`` marked."""
    fig, (ax,) = _figure()
    x = [(i + 1) / steps_per_epoch for i in range(len(lrs))]
    ax.plot(x, lrs, color="tab:blue")
    ax.axvline(max_epoch, color="tab:red", ls="--", label=f"end of epoch {max_epoch} (peak)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title("One Cycle schedule (per step)")
    ax.legend()
    return fig


def plot_curves(history: Sequence[dict]) -> Figure:
    """Train/test loss (left) and accuracy in percent (right) per epoch."""
    fig, (ax_loss, ax_acc) = _figure(ncols=2, width=5.5)
    ep = [h["epoch"] for h in history]
    for split, style in (("train", "-o"), ("test", "-s")):
        ax_loss.plot(ep, [h[f"{split}_loss"] for h in history], style, label=split)
        ax_acc.plot(ep, [100 * h[f"{split}_acc"] for h in history], style, label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
        ax.legend()
        ax.grid(alpha=0.3)
    return fig
