"""What the model gets wrong and where it looks: class-wise accuracy, confusion matrix,
misclassified images and Grad-CAM heat maps.

Everything here works on the test split as the engine holds it: normalised images ``x``
float32 (N, 3, H, W), labels int64 (N,), and the model's predictions int64 (N,) and softmax
probabilities float32 (N, C) from :func:`resnet_cli.engine.evaluate` (``return_outputs=True``).
Accuracies are fractions 0-1; the confusion matrix holds counts, rows = true class,
columns = predicted class.

Heat maps come from pytorch-grad-cam (Gildenblat et al., https://github.com/jacobgil/pytorch-grad-cam):
Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391), Grad-CAM++ (Chattopadhay et al. 2018,
arXiv:1710.11063), Score-CAM (Wang et al. 2020, arXiv:1910.01279), Eigen-CAM (Muhammad & Yeasin
2020, arXiv:2008.00299) and LayerCAM (Jiang et al. 2021), each for one target layer at a time,
with :class:`~pytorch_grad_cam.utils.model_targets.ClassifierOutputTarget` for the class
explained and :func:`~pytorch_grad_cam.utils.image.show_cam_on_image` for the overlays.

Figures are :class:`matplotlib.figure.Figure` objects (no pyplot state), written with
:func:`resnet_cli.plots.save_figure`. :func:`write_diagnostics` produces all of it for a run
folder::

    plots/misclassified.png      grid of misclassified test images, "true -> predicted (p=0.83)"
    plots/confusion_matrix.png   row-normalised confusion matrix with counts
    plots/gradcam/NN_<index>_<true>_as_<pred>.png   one per image: original + CAM per layer/target
    plots/gradcam/grid.png       all of them in one figure
"""

from __future__ import annotations

import logging
import re
import types
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table
from torch import nn

from .errors import ConfigError
from .plots import save_figure

log = logging.getLogger("resnet_cli")

__all__ = [
    "CAM_METHODS", "cam_class", "ORDERS", "TARGETS", "check_options", "class_accuracy", "confusion_matrix",
    "find_misclassified", "denormalize", "default_target_layers", "spatial_layers",
    "resolve_target_layers", "gradcam_maps", "plot_misclassified", "plot_confusion_matrix",
    "plot_gradcam_grid", "class_accuracy_table", "model_summary", "write_diagnostics",
]

CAM_METHODS = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "scorecam": "ScoreCAM",
    "eigencam": "EigenCAM",
    "layercam": "LayerCAM",
}
"""``method`` names (pytorch-grad-cam's own) -> names of its CAM classes (see :func:`cam_class`).
Names, not classes, so that checking a config does not import pytorch-grad-cam (and torchvision)."""


def cam_class(method: str) -> type:
    """The pytorch-grad-cam class for ``method`` (a key of :data:`CAM_METHODS`), imported on use.

    Raises:
        ConfigError: an unknown ``method``.
    """
    if method not in CAM_METHODS:
        raise ConfigError(f"method={method!r} is not allowed: one of {', '.join(CAM_METHODS)}")
    import pytorch_grad_cam

    return getattr(pytorch_grad_cam, CAM_METHODS[method])

ORDERS = ("confident", "random")
"""``order`` of the misclassified selection: most confident mistakes first, or a seeded random draw."""

TARGETS = ("predicted", "true", "both")
"""Which class a heat map explains: the predicted one, the true one, or both side by side."""

DEFAULT_LAYERS = {"CustomResNet": ["layer3", "layer2"], "ResNet18": ["layer4"]}


def check_options(count: Any, order: Any, method: Any, target: Any, prefix: str = "explain.") -> None:
    """Check the diagnostics options; ``prefix`` is prepended to key names in messages.

    Raises:
        ConfigError: naming the first bad key, its value and what is allowed.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"{prefix}count={count!r} is not allowed: a number of images >= 1")
    if order not in ORDERS:
        raise ConfigError(f"{prefix}order={order!r} is not allowed: one of {', '.join(ORDERS)}")
    if method not in CAM_METHODS:
        raise ConfigError(f"{prefix}method={method!r} is not allowed: one of {', '.join(CAM_METHODS)}")
    if target not in TARGETS:
        raise ConfigError(f"{prefix}target={target!r} is not allowed: one of {', '.join(TARGETS)}")


# -- metrics ---------------------------------------------------------------------------------

def _np(a: Any) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def confusion_matrix(preds: Any, labels: Any, num_classes: int) -> np.ndarray:
    """Confusion counts, int64 (C, C): entry [t, p] counts images of true class t predicted as p
    (rows = true class). ``preds`` and ``labels`` are int (N,) class indices (tensor or array).
    """
    p, t = _np(preds).astype(np.int64).ravel(), _np(labels).astype(np.int64).ravel()
    if p.shape != t.shape:
        raise ValueError(f"preds {p.shape} and labels {t.shape} differ in length")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def class_accuracy(preds: Any, labels: Any, classes: Sequence[str]) -> dict[str, float | None]:
    """Accuracy of each class as a fraction 0-1: correct / test images of that class.

    Returns ``{class name: fraction}`` in label order; None for a class with no test images.
    Weighted by the per-class counts the values average to the overall accuracy.
    """
    cm = confusion_matrix(preds, labels, len(classes))
    totals = cm.sum(1)
    return {c: (float(cm[i, i] / totals[i]) if totals[i] else None) for i, c in enumerate(classes)}


def find_misclassified(preds: Any, probs: Any, labels: Any, count: int = 20, order: str = "confident",
                       seed: int = 0) -> np.ndarray:
    """Indices (int64 (k,), k = min(count, mistakes)) of misclassified images.

    ``order="confident"``: highest predicted-class probability first (the model's most confident
    mistakes; ties by index, so the choice is deterministic). ``order="random"``: a uniform draw
    seeded with ``seed`` (NumPy PCG64), same seed -> same images. ``probs`` is float (N, C).

    Raises:
        ConfigError: unknown ``order``.
    """
    p, t, pr = _np(preds).ravel(), _np(labels).ravel(), _np(probs)
    wrong = np.flatnonzero(p != t)
    if order == "confident":
        conf = pr[wrong, p[wrong]]
        return wrong[np.argsort(-conf, kind="stable")][:count].astype(np.int64)
    if order == "random":
        rng = np.random.default_rng(seed)
        return rng.choice(wrong, size=min(count, len(wrong)), replace=False).astype(np.int64)
    raise ConfigError(f"order={order!r} is not allowed: one of {', '.join(ORDERS)}")


def denormalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Normalised float (N, 3, H, W) -> true-colour RGB float32 (N, H, W, 3) in [0, 1]:
    ``x * std + mean``, clipped. ``mean``/``std`` are per-channel fractions 0-1."""
    m = torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    img = x.detach().float().cpu() * s + m
    return img.clamp_(0.0, 1.0).permute(0, 2, 3, 1).contiguous().numpy()


def model_summary(model: nn.Module, image_size: int = 32, path: str | Path | None = None) -> str:
    """torchinfo layer table of ``model`` for one (1, 3, S, S) image: input/output shapes and
    parameter counts per layer, depth 3. Written to ``path`` when given; returns the text.

    Runs one forward pass of zeros in eval mode (torchinfo restores the model's mode), so neither
    BatchNorm statistics nor any RNG stream change.
    """
    from torchinfo import summary
    from torchinfo.enums import Units

    model = _unwrap(model)
    p = next(model.parameters())
    stats = summary(model, input_data=torch.zeros(1, 3, image_size, image_size, device=p.device, dtype=p.dtype),
                    col_names=("input_size", "output_size", "num_params"), depth=3, mode="eval",
                    verbose=0, row_settings=("var_names",))
    # torchinfo 1.8 formats its `Units(str, Enum)` with an f-string, which on Python >= 3.11 prints
    # "Total mult-adds (Units.MEGABYTES)"; show the unit's value ("M", "G") as it intends.
    text = re.sub(r"\(Units\.(\w+)\)", lambda m: f"({Units[m.group(1)].value})", str(stats))
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
    return text


# -- target layers ---------------------------------------------------------------------------

def _unwrap(model: nn.Module) -> nn.Module:
    """The module itself, or the original module behind ``torch.compile`` and/or DDP."""
    model = getattr(model, "_orig_mod", model)
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = getattr(model.module, "_orig_mod", model.module)
    return model


def default_target_layers(model: nn.Module) -> list[str]:
    """Default Grad-CAM target layers (module names) for ``model``.

    ``CustomResNet``: ``["layer3", "layer2"]`` (outputs of Layer 3 and Layer 2);
    ``ResNet18``: ``["layer4"]`` (its last stage). Any other network: its last top-level child
    whose output is a feature map (found with a 32x32 probe).
    """
    model = _unwrap(model)
    name = type(model).__name__
    if name in DEFAULT_LAYERS:
        return list(DEFAULT_LAYERS[name])
    spatial = spatial_layers(model, 32)
    if not spatial:
        raise ConfigError(f"{name} has no layer with a (N, C, H, W) output to explain: pass explain.layers")
    return [spatial[-1]]


@torch.no_grad()
def _output_ranks(model: nn.Module, image_size: int) -> dict[str, int]:
    """Number of dimensions of every named module's output for a (2, 3, S, S) zero input."""
    ranks: dict[str, int] = {}
    hooks = []
    for name, module in model.named_modules():
        if name:
            hooks.append(module.register_forward_hook(
                lambda m, i, o, name=name: ranks.__setitem__(name, o.dim() if isinstance(o, torch.Tensor) else -1)))
    was_training = model.training
    try:
        model.eval()
        p = next(model.parameters())
        model(torch.zeros(2, 3, image_size, image_size, device=p.device, dtype=p.dtype))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return ranks


def spatial_layers(model: nn.Module, image_size: int = 32) -> list[str]:
    """Names of ``model``'s top-level children whose output is a feature map (N, C, H, W): the
    layers a CAM can be computed for (e.g. prep, layer1, layer2, layer3, pool for CustomResNet)."""
    model = _unwrap(model)
    ranks = _output_ranks(model, image_size)
    return [n for n, _ in model.named_children() if ranks.get(n) == 4]


def resolve_target_layers(model: nn.Module, layers: Sequence[str] | None,
                          image_size: int = 32) -> tuple[list[str], list[nn.Module]]:
    """Module names and modules for ``layers`` (None or empty = :func:`default_target_layers`).

    A name is a dotted module path (``layer3``, ``layer3.res``, ``layer4.1``) whose output is a
    feature map (N, C, H, W).

    Raises:
        ConfigError: a name that is not such a module; the message lists the valid top-level ones.
    """
    model = _unwrap(model)
    names = list(layers) if layers else default_target_layers(model)
    modules = dict(model.named_modules())
    bad = [n for n in names if not isinstance(n, str) or n not in modules or n == ""]
    if not bad:
        ranks = _output_ranks(model, image_size)
        bad = [n for n in names if ranks.get(n) != 4]
    if bad:
        valid = ", ".join(spatial_layers(model, image_size))
        raise ConfigError(
            f"layers: {bad[0]!r} is not a feature-map layer of {type(model).__name__}; "
            f"use one of: {valid} (or a dotted sub-module of them)"
        )
    return names, [modules[n] for n in names]


# -- Grad-CAM --------------------------------------------------------------------------------

@contextmanager
def _quiet_scorecam() -> Iterator[None]:
    """Score-CAM draws a tqdm bar per image; turn those off while it runs."""
    from pytorch_grad_cam import score_cam

    saved = score_cam.tqdm
    score_cam.tqdm = types.SimpleNamespace(tqdm=lambda it, *a, **k: it)
    try:
        yield
    finally:
        score_cam.tqdm = saved


def gradcam_maps(model: nn.Module, x: torch.Tensor, target_layers: Sequence[str | nn.Module],
                 targets: Sequence[int] | None = None, method: str = "gradcam",
                 batch_size: int = 64) -> np.ndarray:
    """Class activation maps of ``model`` for normalised images ``x`` float (N, 3, H, W).

    Args:
        target_layers: module names (see :func:`resolve_target_layers`) or modules. With more
            than one the library averages the per-layer maps; pass one for a per-layer map.
        targets: class index explained for each image (N ints); None = the predicted class.
        method: one of :data:`CAM_METHODS` (gradcam, gradcam++, scorecam, eigencam, layercam).
        batch_size: images per CAM call (bounds memory; Score-CAM runs C forward passes each).

    Returns:
        float32 (N, H, W), the input's spatial size, each map min-max scaled to [0, 1] by
        pytorch-grad-cam (a map with no positive evidence is all zeros).

    The model is put in eval mode; gradients are enabled inside even under ``torch.no_grad``.

    Raises:
        ConfigError: unknown ``method`` or layer name.
    """
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam_cls = cam_class(method)
    model = _unwrap(model)
    if any(isinstance(layer, str) for layer in target_layers):
        _, modules = resolve_target_layers(model, [str(n) for n in target_layers], x.shape[-1])
    else:
        modules = list(target_layers)
    if targets is not None and len(targets) != len(x):
        raise ValueError(f"{len(targets)} targets for {len(x)} images")
    device = next(model.parameters()).device
    out = np.zeros((len(x), x.shape[-2], x.shape[-1]), np.float32)
    quiet = _quiet_scorecam() if method == "scorecam" else _null()
    with torch.inference_mode(False), torch.enable_grad(), quiet, cam_cls(model=model, target_layers=modules) as cam:
        if method == "scorecam":
            cam.batch_size = 128
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].detach().to(device=device, dtype=torch.float32)
            xb = xb.clone() if xb.is_inference() else xb
            tb = None if targets is None else [ClassifierOutputTarget(int(c)) for c in targets[i:i + batch_size]]
            out[i:i + len(xb)] = cam(input_tensor=xb, targets=tb)
    return out


@contextmanager
def _null() -> Iterator[None]:
    yield


# -- figures ---------------------------------------------------------------------------------

def _title(classes: Sequence[str], true: int, pred: int, p: float) -> str:
    return f"{classes[true]} -> {classes[pred]} (p={p:.2f})"


def _note(fig: Figure, text: str) -> Figure:
    """Fill an otherwise empty ``fig`` with a centred note (e.g. no mistakes to show)."""
    ax = fig.add_subplot(1, 1, 1)
    ax.text(0.5, 0.5, text, ha="center", va="center")
    ax.axis("off")
    return fig


def plot_misclassified(images: np.ndarray, labels: Sequence[int], preds: Sequence[int],
                       confidences: Sequence[float], classes: Sequence[str], ncols: int = 5) -> Figure:
    """Grid of misclassified images, each titled ``true -> predicted (p=0.83)``.

    Args:
        images: true-colour RGB, float (N, H, W, 3) in [0, 1] (see :func:`denormalize`) or uint8.
        labels, preds: true and predicted class indices (N,).
        confidences: predicted-class probability of each image, fraction 0-1 (N,).
        classes: class names in label order.
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
        ax.set_title(_title(classes, int(labels[k]), int(preds[k]), float(confidences[k])), fontsize=8)
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
    for t in range(cm.shape[0]):
        for p in range(cm.shape[1]):
            ax.text(p, t, str(cm[t, p]), ha="center", va="center", fontsize=7,
                    color="white" if frac[t, p] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"confusion matrix ({int(cm.sum())} test images, accuracy {100 * np.trace(cm) / max(cm.sum(), 1):.2f}%)")
    return fig


def plot_gradcam_grid(images: np.ndarray, cams: Mapping[str, np.ndarray],
                      row_titles: Sequence[str] | None = None) -> Figure:
    """Rows = images; first column the original, then one overlay per entry of ``cams``.

    Args:
        images: true-colour RGB float (N, H, W, 3) in [0, 1].
        cams: ordered ``{column title: float32 (N, H, W) map in [0, 1]}``, e.g.
            ``{"layer3 | predicted": ..., "layer3 | true": ...}``; overlays are made with
            ``show_cam_on_image(image, map, use_rgb=True)`` (JET colour map, half weight).
        row_titles: one title per row for the original (e.g. ``cat -> dog (p=0.83)``).
    """
    from pytorch_grad_cam.utils.image import show_cam_on_image

    n, ncols = len(images), 1 + len(cams)
    # a fixed grid, not constrained layout: a 20-image grid renders in half the time
    fig = Figure(figsize=(1.9 * ncols + (0.8 if cams else 0.0), 2.1 * max(n, 1)))
    if n == 0:
        return _note(fig, "no images to explain")
    fig.subplots_adjust(left=0.02, right=0.86 if cams else 0.98, bottom=0.02 / max(n, 1),
                        top=1 - 0.3 / (2.1 * max(n, 1)), wspace=0.08, hspace=0.25)
    for r in range(n):
        img = np.clip(np.asarray(images[r], dtype=np.float32), 0.0, 1.0)
        ax = fig.add_subplot(n, ncols, r * ncols + 1)
        ax.imshow(img, interpolation="nearest")
        ax.set_title(row_titles[r] if row_titles else "image", fontsize=8)
        ax.axis("off")
        for c, (name, maps) in enumerate(cams.items()):
            ax = fig.add_subplot(n, ncols, r * ncols + c + 2)
            ax.imshow(show_cam_on_image(img, maps[r], use_rgb=True), interpolation="nearest")
            ax.set_title(name, fontsize=8)
            ax.axis("off")
    if cams:  # show_cam_on_image colours with OpenCV's JET map: 0 = no attribution, 1 = the map's maximum
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        half = min(0.4, 0.9 / n)  # about two rows tall, centred
        cax = fig.add_axes((0.88, 0.5 - half, 0.015, 2 * half))
        fig.colorbar(ScalarMappable(Normalize(0, 1), "jet"), cax=cax, label="Grad-CAM (0-1 of max)")
    return fig


# -- the whole set ---------------------------------------------------------------------------

def class_accuracy_table(class_acc: Mapping[str, float | None], confusion: np.ndarray) -> Table:
    """A rich table: class, test images, correct, accuracy (percent)."""
    cm = np.asarray(confusion)
    table = Table(title="class-wise test accuracy")
    table.add_column("class")
    table.add_column("images", justify="right")
    table.add_column("correct", justify="right")
    table.add_column("accuracy", justify="right")
    for i, (name, acc) in enumerate(class_acc.items()):
        table.add_row(name, str(int(cm[i].sum())), str(int(cm[i, i])), "-" if acc is None else f"{100 * acc:.2f}%")
    total = int(cm.sum())
    table.add_row("all", str(total), str(int(np.trace(cm))), f"{100 * np.trace(cm) / max(total, 1):.2f}%", style="bold")
    return table


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in s)


def write_diagnostics(model: nn.Module, x: torch.Tensor, labels: Any, preds: Any, probs: Any,
                      classes: Sequence[str], mean: Sequence[float], std: Sequence[float],
                      run_dir: str | Path, *, count: int = 20, order: str = "confident",
                      method: str = "gradcam", layers: Sequence[str] | None = None,
                      target: str = "both", seed: int = 0, console: Console | None = None) -> dict[str, Any]:
    """Write every diagnostic figure for a model's test predictions into ``run_dir/plots``.

    Args:
        model: the trained network (put in eval mode).
        x: the test images, normalised float32 (N, 3, H, W) (any device).
        labels, preds: true and predicted class indices, int (N,).
        probs: softmax probabilities, float (N, C).
        classes: class names in label order; mean/std: per-channel fractions 0-1 used to normalise.
        count, order, seed: misclassified selection (see :func:`find_misclassified`).
        method, layers, target: Grad-CAM method, target layer names (None = model default) and
            class explained (predicted|true|both).
        console: where the class-wise accuracy table is printed (default: stderr).

    Writes ``plots/misclassified.png``, ``plots/confusion_matrix.png``, ``plots/gradcam/*.png``
    (one per image plus ``grid.png``) and returns ``{"class_acc": {class: fraction 0-1},
    "confusion": C x C list of counts (rows = true class)}`` for metrics.json.

    Raises:
        ConfigError: a bad option or layer name.
    """
    check_options(count, order, method, target, prefix="")
    run_dir = Path(run_dir)
    plots_dir, cam_dir = run_dir / "plots", run_dir / "plots" / "gradcam"
    p, t, pr = _np(preds).astype(np.int64), _np(labels).astype(np.int64), _np(probs).astype(np.float32)
    cm = confusion_matrix(p, t, len(classes))
    class_acc = class_accuracy(p, t, classes)

    idx = find_misclassified(p, pr, t, count=count, order=order, seed=seed)
    conf = pr[idx, p[idx]]
    images = denormalize(x[torch.as_tensor(idx, device=x.device)], mean, std)
    save_figure(plot_misclassified(images, t[idx], p[idx], conf, classes), plots_dir / "misclassified.png")
    save_figure(plot_confusion_matrix(cm, classes), plots_dir / "confusion_matrix.png")

    names, modules = resolve_target_layers(model, layers, x.shape[-1])
    kinds = ["predicted", "true"] if target == "both" else [target]
    cams: dict[str, np.ndarray] = {}
    xs = x[torch.as_tensor(idx, device=x.device)]
    for name, module in zip(names, modules):
        for kind in kinds:
            cls = p[idx] if kind == "predicted" else t[idx]
            cams[f"{name} | {kind}"] = gradcam_maps(model, xs, [module], cls.tolist(), method)
    titles = [_title(classes, int(t[i]), int(p[i]), float(c)) for i, c in zip(idx, conf)]
    cam_dir.mkdir(parents=True, exist_ok=True)
    for old in cam_dir.glob("*.png"):
        old.unlink()
    for r, i in enumerate(idx):
        one = {k: v[r:r + 1] for k, v in cams.items()}
        fname = f"{r + 1:02d}_{int(i)}_{_slug(classes[t[i]])}_as_{_slug(classes[p[i]])}.png"
        save_figure(plot_gradcam_grid(images[r:r + 1], one, titles[r:r + 1]), cam_dir / fname)
    save_figure(plot_gradcam_grid(images, cams, titles), cam_dir / "grid.png", dpi=100)

    (console or Console(stderr=True)).print(class_accuracy_table(class_acc, cm))
    log.info("class_acc: %s", ", ".join(f"{c} {100 * a:.1f}%" for c, a in class_acc.items() if a is not None))
    log.info("diagnostics: %d misclassified shown (%s), %s on %s, in %s", len(idx), order, method,
             ", ".join(names), plots_dir)
    return {"class_acc": class_acc, "confusion": cm.tolist()}
