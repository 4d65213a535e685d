"""What the model gets wrong and where it looks, as figures: a model's test predictions
(:class:`Predictions`, :class:`Evaluation`) and the run folder's diagnostics (:func:`write_diagnostics`).
Numbers from :mod:`resnet_cli.diagnostics.interpretation`, heat maps from :mod:`resnet_cli.diagnostics.gradcam`, figures from
:mod:`resnet_cli.diagnostics.plots`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from rich.console import Console
from torch import nn

from .gradcam import check_options, explained_classes, layer_maps
from .interpretation import (
    class_accuracy,
    class_accuracy_table,
    confusion_matrix,
    find_misclassified,
    interpretation,
    to_numpy,
)
from ..models.summary import TargetLayers, resolve_target_layers
from .plots import (
    denormalize,
    mistake_title,
    plot_confusion_matrix,
    plot_gradcam_grid,
    plot_interpretation,
    plot_misclassified,
    save_figure,
)

log = logging.getLogger("resnet_cli")


@dataclass
class Predictions:
    """A model's predictions on test images, and the figures that explain them.

    Attributes:
        preds, labels: int64 (N,) predicted and true class indices (CPU).
        probs: float32 (N, C) softmax probabilities (CPU).
        x: float32 (N, 3, H, W) normalised test images, on the model's device.
        classes: class names in label order; mean, std: per-channel normalisation, fractions 0-1.
        model: the evaluated network (eval mode); seed: of the random misclassified selection.
    """

    preds: torch.Tensor = field(repr=False)
    probs: torch.Tensor = field(repr=False)
    labels: torch.Tensor = field(repr=False)
    x: torch.Tensor = field(repr=False)
    classes: list[str] = field(repr=False)
    mean: list[float] = field(repr=False)
    std: list[float] = field(repr=False)
    model: nn.Module = field(repr=False)
    seed: int = field(default=0, repr=False)

    def images(self, idx: Any = None) -> np.ndarray:
        """True-colour test images, float32 (k, H, W, 3) in [0, 1] (all, or indices ``idx``)."""
        x = self.x if idx is None else self.x[torch.as_tensor(idx, dtype=torch.long, device=self.x.device)]
        return denormalize(x, self.mean, self.std)

    def class_accuracy(self) -> dict[str, float | None]:
        """``{class name: accuracy fraction 0-1}`` (None for a class without test images)."""
        return class_accuracy(self.preds, self.labels, self.classes)

    def confusion_matrix(self) -> np.ndarray:
        """int64 (C, C) counts, rows = true class, columns = predicted class."""
        return confusion_matrix(self.preds, self.labels, len(self.classes))

    def misclassified(self, count: int = 20, order: str = "confident") -> np.ndarray:
        """Indices int64 (k,) of misclassified test images (:func:`resnet_cli.diagnostics.interpretation.find_misclassified`)."""
        return find_misclassified(self.preds, self.probs, self.labels, count=count, order=order, seed=self.seed)

    def titles(self, idx: Any) -> list[str]:
        """``"true -> predicted (p=0.83)"`` for the test images ``idx``."""
        p, t, pr = self.preds.numpy(), self.labels.numpy(), self.probs.numpy()
        return [mistake_title(self.classes, t[i], p[i], pr[i, p[i]]) for i in np.asarray(idx, dtype=np.int64)]

    def plot_misclassified(self, count: int = 20, order: str = "confident", ncols: int = 5) -> Figure:
        """Grid of misclassified images titled ``true -> predicted (p=...)``."""
        idx = self.misclassified(count, order)
        p = self.preds.numpy()
        conf = self.probs.numpy()[idx, p[idx]]
        return plot_misclassified(self.images(idx), self.labels.numpy()[idx], p[idx], conf, self.classes, ncols=ncols)

    def plot_confusion_matrix(self) -> Figure:
        """The confusion matrix figure (colours: row fractions; cells: counts)."""
        return plot_confusion_matrix(self.confusion_matrix(), self.classes)

    def gradcam(self, idx: Any, layers: Sequence[str] | TargetLayers | None = None, target: str = "both",
                method: str = "gradcam") -> dict[str, np.ndarray]:
        """Heat maps of test images ``idx``: ``{"<layer> | <predicted|true>": float32 (k, H, W) in [0, 1]}``
        per target layer (None = the model's defaults) and explained class (``target``: predicted, true, both).
        Raises ConfigError for an unknown layer, ``method`` or ``target``."""
        idx = np.asarray(idx, dtype=np.int64)
        classes = explained_classes(target, self.preds.numpy()[idx], self.labels.numpy()[idx])
        target_layers = resolve_target_layers(self.model, layers, self.x.shape[-1])
        xs = self.x[torch.as_tensor(idx, device=self.x.device)]
        return layer_maps(self.model, xs, target_layers, classes, method)

    def plot_gradcam(self, count: int = 8, idx: Any = None, layers: Sequence[str] | None = None,
                     target: str = "both", method: str = "gradcam", order: str = "confident") -> Figure:
        """Grad-CAM grid: a row per image (``idx``, default the first ``count`` misclassified), the original
        then an overlay per (layer, explained class) from :meth:`gradcam`."""
        idx = self.misclassified(count, order) if idx is None else np.asarray(idx, dtype=np.int64)
        return plot_gradcam_grid(self.images(idx), self.gradcam(idx, layers, target, method), self.titles(idx),
                                 self.explained(idx))

    def explained(self, idx: Any) -> dict[str, list[str]]:
        """``{"predicted": [class name per image], "true": [...]}`` for test images ``idx`` (panel titles)."""
        idx = np.asarray(idx, dtype=np.int64)
        return {"predicted": [self.classes[int(c)] for c in self.preds.numpy()[idx]],
                "true": [self.classes[int(c)] for c in self.labels.numpy()[idx]]}


@dataclass
class Evaluation(Predictions):
    """:class:`Predictions` on a test set (from :func:`resnet_cli.evaluate`) with ``loss`` (mean
    cross-entropy, nats per image), ``acc`` (fraction 0-1) and ``n`` (test images)."""

    loss: float = field(kw_only=True)
    acc: float = field(kw_only=True)
    n: int = field(kw_only=True)


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in s)


GRID_PAGE = 8
"""Images (rows) per Grad-CAM grid page: more rows shrink each panel below legibility."""


def grid_pages(n: int, per_page: int = GRID_PAGE) -> list[tuple[str, range]]:
    """``[(file name, image rows)]`` of the Grad-CAM grid of ``n`` images: ``grid.png`` when they fit on
    one page of ``per_page``, else ``grid_page_1_of_3.png``, ``grid_page_2_of_3.png``..."""
    starts = range(0, max(n, 1), per_page)
    if len(starts) == 1:
        return [("grid.png", range(n))]
    return [(f"grid_page_{k}_of_{len(starts)}.png", range(a, min(a + per_page, n))) for k, a in enumerate(starts, 1)]


def save_gradcam(images: np.ndarray, cams: Mapping[str, np.ndarray], titles: Sequence[str],
                 files: Sequence[str], cam_dir: str | Path,
                 explained: Mapping[str, Sequence[str]] | None = None) -> list[Path]:
    """Write a Grad-CAM figure per image (``cam_dir/files[r]``) and the grid, :data:`GRID_PAGE` images a page
    (:func:`grid_pages`), after removing the PNGs in ``cam_dir``; returns the grid pages' paths. ``images`` RGB
    float (N, H, W, 3) in [0, 1], ``cams`` {layer: float32 (N, H, W)}; the rest as
    :func:`resnet_cli.diagnostics.plots.plot_gradcam_grid` (``titles``: one per image)."""
    cam_dir = Path(cam_dir)
    cam_dir.mkdir(parents=True, exist_ok=True)
    for old in cam_dir.glob("*.png"):
        old.unlink()

    def rows(sel):
        return ({k: v[sel] for k, v in cams.items()},
                {k: list(v)[sel] for k, v in explained.items()} if explained else None)

    for r, name in enumerate(files):
        one, row = rows(slice(r, r + 1))
        save_figure(plot_gradcam_grid(images[r:r + 1], one, titles[r:r + 1], row), cam_dir / name)
    pages = grid_pages(len(images))
    written = []
    for k, (name, page) in enumerate(pages, 1):
        sel = slice(page.start, page.stop)
        title = f"page {k} of {len(pages)}: images {page.start + 1}-{page.stop} of {len(images)}" if len(pages) > 1 else None
        page_cams, page_explained = rows(sel)
        written.append(save_figure(plot_gradcam_grid(images[sel], page_cams, list(titles)[sel], page_explained,
                                                     title=title), cam_dir / name, dpi=100))
        if title:
            log.info("Grad-CAM grid %s: %s", title, cam_dir / name)
    return written


def write_diagnostics(model: nn.Module, x: torch.Tensor, labels: Any, preds: Any, probs: Any,
                      classes: Sequence[str], mean: Sequence[float], std: Sequence[float],
                      run_dir: str | Path, *, count: int = 20, order: str = "confident",
                      method: str = "gradcam", layers: Sequence[str] | TargetLayers | None = None,
                      target: str = "both", seed: int = 0, console: Console | None = None,
                      paths: Sequence[str] | None = None, show_table: bool = True) -> dict[str, Any]:
    """Write ``plots/misclassified.png``, ``confusion_matrix.png``, ``interpretation.png`` and ``gradcam/*.png``
    (one per image plus the grid, :func:`grid_pages`) into ``run_dir`` and, with ``show_table`` (off for a sweep's
    jobs), print the class-wise accuracy table to ``console`` (default stderr); the log line ``class_acc: ...``
    and the returned ``class_acc`` always hold it.

    Args:
        x: normalised float32 (N, 3, H, W) test images (any device); labels, preds: int (N,); probs: float (N, C).
        mean, std: per-channel fractions 0-1; count, order, seed: the misclassified selection.
        method, layers, target: Grad-CAM method, target layers (names, None = the model's default, or
            :class:`~resnet_cli.models.summary.TargetLayers`), explained class (predicted|true|both).
        paths: the test images' file paths, named in ``top_losses``; None = indices only.

    Returns ``{"class_acc": {class: fraction 0-1}, "confusion": C x C counts (rows = true class),
    "interpretation": ...}`` for metrics.json; raises ConfigError for a bad option or layer name.
    """
    check_options(count, order, method, target, prefix="")
    ev = Predictions(preds=torch.as_tensor(to_numpy(preds), dtype=torch.int64),
                     probs=torch.as_tensor(to_numpy(probs), dtype=torch.float32),
                     labels=torch.as_tensor(to_numpy(labels), dtype=torch.int64), x=x, classes=list(classes),
                     mean=list(mean), std=list(std), model=model, seed=seed)
    plots_dir = Path(run_dir) / "plots"
    cm, class_acc = ev.confusion_matrix(), ev.class_accuracy()
    save_figure(ev.plot_misclassified(count, order), plots_dir / "misclassified.png")
    save_figure(plot_confusion_matrix(cm, classes), plots_dir / "confusion_matrix.png")
    interp = interpretation(ev.labels, ev.preds, ev.probs, list(classes), names=paths)
    save_figure(plot_interpretation(interp, list(classes)), plots_dir / "interpretation.png")

    target_layers = resolve_target_layers(model, layers, x.shape[-1])
    idx = ev.misclassified(count, order)
    p, t = ev.preds.numpy(), ev.labels.numpy()
    files = [f"{r + 1:02d}_{int(i)}_{_slug(classes[t[i]])}_as_{_slug(classes[p[i]])}.png" for r, i in enumerate(idx)]
    save_gradcam(ev.images(idx), ev.gradcam(idx, target_layers, target, method), ev.titles(idx), files,
                 plots_dir / "gradcam", ev.explained(idx))

    if show_table:
        (console or Console(stderr=True)).print(class_accuracy_table(class_acc, cm))
    log.info("class_acc: %s", ", ".join(f"{c} {100 * a:.1f}%" for c, a in class_acc.items() if a is not None))
    log.info("diagnostics: %d misclassified shown (%s), %s on %s, in %s", len(idx), order, method,
             ", ".join(target_layers.names), plots_dir)
    if interp["most_confused"]:
        top = interp["most_confused"][0]
        log.info("most confused: %s -> %s (%d images); macro F1 %.3f", top["true"], top["predicted"], top["count"],
                 interp["macro_f1"])
    return {"class_acc": class_acc, "confusion": cm.tolist(), "interpretation": interp}
