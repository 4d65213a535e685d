"""Figures for a run. Each function returns a matplotlib Figure (shown inline in a notebook);
:func:`save_figure` writes one to a PNG and closes it (the CLI's path)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure


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


def plot_lr_finder(lrs: Sequence[float], losses: Sequence[float], max_lr: float, min_lr: float, rule: str) -> Figure:
    """Smoothed range-test loss against LR (log x axis) with the chosen max_lr and min_lr marked."""
    fig, (ax,) = _figure()
    ax.plot(lrs, losses, color="tab:blue", label="smoothed training loss")
    ax.axvline(max_lr, color="tab:red", ls="--", label=f"max_lr = {max_lr:.3g} ({rule})")
    ax.axvline(min_lr, color="tab:green", ls=":", label=f"min_lr = {min_lr:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.set_title("LR range test")
    ax.legend()
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
        ax.legend()
        ax.grid(alpha=0.3)
    return fig
