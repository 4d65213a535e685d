"""Figures for a run: curves, LR plots and the diagnostics (misclassified images, confusion matrix,
Grad-CAM overlays with pytorch-grad-cam's ``show_cam_on_image``, https://github.com/jacobgil/pytorch-grad-cam).
Each function returns a matplotlib Figure (no pyplot state); :func:`save_figure` writes a PNG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..core.schedule import rule_picks, smooth


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


RULE_STYLES = {"min_loss": ("tab:red", "v"), "max_acc": ("tab:orange", "^"), "min_loss_div10": ("tab:purple", "s"),
               "valley": ("tab:brown", "D"), "steepest": ("tab:pink", "P")}
"""Colour and marker of each max_lr rule's pick on the range-test plot."""


def plot_lr_finder(lrs: Sequence[float], losses: Sequence[float], max_lr: float, min_lr: float, rule: str,
                   accs: Sequence[float] = (), step_mode: str = "exp", smooth_f: float = 0.05,
                   earlier: Sequence[Mapping[str, Sequence[float]]] = ()) -> Figure:
    """The range test in two panels, legend below. Left: every ramp's smoothed loss (``earlier``: ramps a
    zoomed linear test repeated lower, each ``{"lrs", "losses"}``, grey; the deciding ``lrs``/``losses``
    blue) on a log loss axis. Right: the deciding ramp zoomed on the picks (a log LR axis from below
    ``min_lr`` to above the highest pick, clipped to the ramp; the loss axis fitted to that span) with
    ``max_lr`` (``rule``), ``min_lr`` and every other rule's pick (:func:`resnet_cli.core.schedule.rule_picks`)
    marked, and the batch accuracy ``accs`` (fractions 0-1, smoothed with ``smooth_f``) in percent on a
    right axis.
    """
    fig = Figure(figsize=(12.0, 4.8), layout="constrained")
    whole, near = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    ramps = [*earlier, {"lrs": lrs, "losses": losses}]
    zoomed = len(ramps) > 1
    for k, ramp in enumerate(ramps, 1):
        last = k == len(ramps)
        end = max(ramp["lrs"], default=float("nan"))
        label = (f"ramp {k} of {len(ramps)}, to {end:.3g}: " + ("decided" if last else "too steep, repeated lower")
                 if zoomed else "smoothed training loss")
        whole.plot(ramp["lrs"], ramp["losses"], color="tab:blue" if last else str(0.35 + 0.4 * k / len(ramps)),
                   lw=1.8 if last else 1.0, marker="." if not last else None, label=label)
    whole.axvline(max_lr, color="tab:red", ls="--")
    whole.set_xscale("log" if step_mode == "exp" or zoomed else "linear")
    whole.set_yscale("log")
    whole.set(xlabel="learning rate", ylabel="smoothed loss (log)", title="the whole test" + (
        f" ({len(ramps)} ramps: the first were too steep)" if zoomed else ""))

    near.plot(lrs, losses, color="tab:blue", lw=1.8, label="_")
    for lr, name, style in ((max_lr, f"max_lr = {max_lr:.3g} ({rule}, used)", dict(color="tab:red", ls="--")),
                            (min_lr, f"min_lr = {min_lr:.3g}", dict(color="tab:green", ls="-."))):
        near.axvline(lr, lw=1.8, label=name, **style)
        near.annotate(name.split(" = ")[0], (lr, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -3),
                      textcoords="offset points", ha="left", va="top", fontsize=8, color=style["color"])
    lr_arr, loss_arr = np.asarray(lrs, float), np.asarray(losses, float)
    picks = rule_picks(lrs, losses, accs, smooth_f)
    positive = lr_arr[lr_arr > 0]
    span = (min([min_lr, *picks.values()]) / 1.6, max([max_lr, *picks.values()]) * 1.6)
    if len(positive):  # the window around the picks, within the ramp
        span = (max(span[0], float(positive.min())), min(span[1], float(positive.max())))
    finite = loss_arr[(lr_arr >= span[0]) & (lr_arr <= span[1]) & np.isfinite(loss_arr)]  # the window's losses
    for other, lr in picks.items():
        color, marker = RULE_STYLES.get(other, ("black", "o"))
        at = float(np.interp(lr, lr_arr, np.where(np.isfinite(loss_arr), loss_arr, np.nan)))  # picks: 3+ points
        near.plot([lr], [at], marker=marker, ms=8, ls="none", color=color, markeredgecolor="black",
                  label=f"{other}: {lr:.3g}" + (" (used)" if other == rule else ""), zorder=4)
    if len(finite):
        lo, start = float(finite.min()), float(finite[0])
        top = max(min(float(finite.max()), 1.5 * max(start, lo)), start)  # the window's first loss always in view
        pad = 0.06 * max(top - lo, 1e-6)
        near.set_ylim(lo - pad, top + pad)
    near.set_xscale("log")  # min_lr sits tens of times below max_lr: a linear axis puts it on the y axis
    if span[0] < span[1]:
        near.set_xlim(span[0] / 1.15, span[1] * 1.15)
    linear = " (log scale; linear ramp, the One Cycle warm-up's length)" if step_mode == "linear" else " (log scale)"
    near.set(xlabel="learning rate" + linear, ylabel="smoothed loss", title="zoomed on the picks (the deciding ramp)")
    if len(accs):
        acc_ax = near.twinx()
        acc = 100 * smooth(accs, smooth_f)
        acc_ax.plot(lrs[: len(accs)], acc, color="tab:orange", lw=0.9, alpha=0.6, label="smoothed batch accuracy (%)")
        acc_ax.set_ylim(0, min(100.0, max(10.0, 2.0 * float(np.nanmax(acc)))))  # the lower half at most
        acc_ax.set_ylabel("batch accuracy (%)", color="tab:orange")
        acc_ax.tick_params(axis="y", colors="tab:orange")
    legend = {label: h for ax in fig.axes for h, label in zip(*ax.get_legend_handles_labels())}  # "_..." left out
    fig.legend(list(legend.values()), list(legend), loc="outside lower center", ncols=min(4, len(legend)),
               fontsize="small")
    fig.suptitle("LR range test")
    return fig


def plot_lr_schedule(lrs: Sequence[float], steps_per_epoch: int, max_epoch: int) -> Figure:
    """The LR applied at every optimizer step, x axis in epochs, with the end of ``max_epoch`` marked."""
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([(i + 1) / steps_per_epoch for i in range(len(lrs))], lrs, color="tab:blue")
    ax.axvline(max_epoch, color="tab:red", ls="--", label=f"end of epoch {max_epoch} (peak)")
    ax.set(xlabel="epoch", ylabel="learning rate", title="One Cycle schedule (per step)")
    ax.legend()
    return fig


def plot_curves(history: Sequence[dict]) -> Figure:
    """Train/test loss (left) and accuracy in percent (right) per epoch."""
    fig = Figure(figsize=(11.0, 4.0), layout="constrained")
    ax_loss, ax_acc = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for split, style in (("train", "-o"), ("test", "-s")):  # epochs not evaluated (trainer.eval_every) left out
        rows = [h for h in history if h.get(f"{split}_acc") is not None]
        ax_loss.plot([h["epoch"] for h in rows], [h[f"{split}_loss"] for h in rows], style, label=split)
        ax_acc.plot([h["epoch"] for h in rows], [100 * h[f"{split}_acc"] for h in rows], style, label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
        ax.legend()
        ax.grid(alpha=0.3)
    return fig


# -- diagnostics ------------------------------------------------------------------------------

def denormalize(x: Any, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Undo :func:`resnet_cli.data.batches.normalize` for display: ``x * std + mean`` clipped to [0, 1].
    ``x``: normalised float (3, H, W) or (N, 3, H, W), tensor or array, else ValueError; ``mean``/``std``:
    3 fractions 0-1. Returns float32 RGB channels last, (H, W, 3) or (N, H, W, 3).
    """
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"expected a (3, H, W) or (N, 3, H, W) image array, got shape {x.shape}")
    m, s = (np.asarray(v, np.float32).reshape(3, 1, 1) for v in (mean, std))
    return np.ascontiguousarray(np.moveaxis(np.clip(x * s + m, 0.0, 1.0), -3, -1))


def mistake_title(classes: Sequence[str], true: int, pred: int, p: float) -> str:
    """``"cat -> dog (p=0.83)"``: true class, predicted class and its probability (0-1)."""
    return f"{classes[int(true)]} -> {classes[int(pred)]} (p={float(p):.2f})"


def _note(fig: Figure, text: str) -> Figure:
    ax = fig.add_subplot(1, 1, 1)
    ax.text(0.5, 0.5, text, ha="center", va="center")
    ax.axis("off")
    return fig


def plot_misclassified(images: np.ndarray, labels: Sequence[int], preds: Sequence[int],
                       confidences: Sequence[float], classes: Sequence[str], ncols: int = 5) -> Figure:
    """Grid of misclassified ``images`` (RGB float (N, H, W, 3) in [0, 1], or uint8), each titled
    ``true -> predicted (p=0.83)`` from ``labels``/``preds`` (N,) and ``confidences`` (N,) fractions 0-1.
    """
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig = Figure(figsize=(2.3 * ncols, 2.5 * nrows), layout="constrained")
    if n == 0:
        return _note(fig, "no misclassified images")
    for k in range(n):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        ax.imshow(images[k], interpolation="nearest")
        ax.set_title(mistake_title(classes, labels[k], preds[k], confidences[k]), fontsize=8)
        ax.axis("off")
    fig.suptitle(f"misclassified test images ({n})")
    return fig


def plot_confusion_matrix(confusion: np.ndarray, classes: Sequence[str]) -> Figure:
    """Confusion matrix (C, C) of counts, rows = true class: colours are each row's fraction
    (0-1, i.e. recall on the diagonal), cells annotated with the counts."""
    cm = np.asarray(confusion, dtype=np.int64)
    rows = cm.sum(1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, np.float64), where=rows > 0)
    size = 1.0 + 0.6 * len(classes)
    fig = Figure(figsize=(size + 1.5, size), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    for t, p in np.ndindex(cm.shape):
        ax.text(p, t, str(cm[t, p]), ha="center", va="center", fontsize=7,
                color="white" if frac[t, p] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    acc = 100 * np.trace(cm) / max(cm.sum(), 1)
    ax.set(xlabel="predicted class", ylabel="true class",
           title=f"confusion matrix ({int(cm.sum())} test images, accuracy {acc:.2f}%)")
    return fig


BLANK_CAM = "blank map: nothing in\nthis layer raises the\nclass score"
"""Note drawn on a heat map that is zero everywhere (Grad-CAM's ReLU removed every location)."""


def plot_gradcam_grid(images: np.ndarray, cams: Mapping[str, np.ndarray],
                      row_titles: Sequence[str] | None = None,
                      explained: Mapping[str, Sequence[str]] | None = None, title: str | None = None) -> Figure:
    """Rows = ``images`` (RGB float (N, H, W, 3) in [0, 1]): the original, then one
    ``show_cam_on_image`` overlay per ``cams`` entry ``{column title: float32 (N, H, W) in [0, 1]}``,
    e.g. ``"layer3 | predicted"``. ``explained``: ``{kind: class name per row}`` titles each panel with
    its class (``layer3 | predicted: dog``). An all-zero map carries the note :data:`BLANK_CAM`. ``title``:
    a line above the grid (e.g. which page of a paged grid). Legible up to about 8 rows: page longer lists
    (:func:`resnet_cli.diagnostics.report.save_gradcam`).
    """
    from pytorch_grad_cam.utils.image import show_cam_on_image

    n, ncols = len(images), 1 + len(cams)
    # a fixed grid, not constrained layout: a 20-image grid renders in half the time
    head = 0.3 + (0.35 if title else 0.0)  # inches above the first row
    fig = Figure(figsize=(1.9 * ncols + (0.8 if cams else 0.0), 2.1 * max(n, 1) + head - 0.3))
    if n == 0:
        return _note(fig, "no images to explain")
    height = fig.get_figheight()
    fig.subplots_adjust(left=0.02, right=0.86 if cams else 0.98, bottom=0.02 / max(n, 1),
                        top=1 - head / height, wspace=0.08, hspace=0.25)
    if title:
        fig.suptitle(title, y=1 - 0.08 / height, va="top", fontsize=10)
    for r in range(n):
        img = np.clip(np.asarray(images[r], dtype=np.float32), 0.0, 1.0)
        ax = fig.add_subplot(n, ncols, r * ncols + 1)
        ax.imshow(img, interpolation="nearest")
        ax.set_title(row_titles[r] if row_titles else "image", fontsize=8)
        ax.axis("off")
        for c, (name, maps) in enumerate(cams.items()):
            ax = fig.add_subplot(n, ncols, r * ncols + c + 2)
            ax.imshow(show_cam_on_image(img, maps[r], use_rgb=True), interpolation="nearest")
            kind = name.rsplit(" | ", 1)[-1]
            ax.set_title(f"{name}: {explained[kind][r]}" if explained and kind in explained else name, fontsize=8)
            if not float(np.max(maps[r])) > 0.0:
                ax.text(0.5, 0.5, BLANK_CAM, transform=ax.transAxes, ha="center", va="center", fontsize=7,
                        bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none"})
            ax.axis("off")
    if cams:  # show_cam_on_image colours with OpenCV's JET map: 0 = no attribution, 1 = the map's maximum
        half = min(0.4, 0.9 / n)  # about two rows tall, centred
        cax = fig.add_axes((0.88, 0.5 - half, 0.015, 2 * half))
        fig.colorbar(ScalarMappable(Normalize(0, 1), "jet"), cax=cax, label="Grad-CAM (0-1 of max)")
    return fig


def plot_interpretation(interp: dict, classes: Sequence[str]) -> Figure:
    """Per-class precision/recall/F1 (fractions 0-1) beside the most-confused pairs (counts), from
    :func:`resnet_cli.diagnostics.interpretation.interpretation`."""
    per, pairs = interp["per_class"], interp["most_confused"]
    fig = Figure(figsize=(13, 4.5))
    ax, bx = fig.add_axes([0.06, 0.22, 0.47, 0.68]), fig.add_axes([0.76, 0.12, 0.22, 0.78])
    xs = np.arange(len(classes))
    for k, (key, colour) in enumerate((("precision", "tab:blue"), ("recall", "tab:orange"), ("f1", "tab:green"))):
        ax.bar(xs + (k - 1) * 0.27, [per[c][key] for c in classes], 0.27, label=key, color=colour)
    ax.set_xticks(xs, [str(c) for c in classes], rotation=45, ha="right")
    ax.set(ylim=(0, 1), ylabel="fraction",
           title=f"per-class precision / recall / F1 (macro F1 {interp['macro_f1']:.3f})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8)  # beside the bars, covering none
    labels = [f"{p['true']} -> {p['predicted']}" for p in pairs][::-1]
    bx.barh(np.arange(len(pairs)), [p["count"] for p in pairs][::-1], color="tab:red")
    bx.set_yticks(np.arange(len(pairs)), labels, fontsize=8)
    bx.set(xlabel="test images", title="most confused (true -> predicted)")
    return fig
