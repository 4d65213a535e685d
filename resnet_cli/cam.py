"""Where the model looks: class activation maps with pytorch-grad-cam, per target layer and
explained class.

Heat maps come from pytorch-grad-cam (Gildenblat et al., https://github.com/jacobgil/pytorch-grad-cam):
Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391), Grad-CAM++ (Chattopadhay et al. 2018,
arXiv:1710.11063), Score-CAM (Wang et al. 2020, arXiv:1910.01279), Eigen-CAM (Muhammad & Yeasin
2020, arXiv:2008.00299) and LayerCAM (Jiang et al. 2021), each for one target layer at a time,
with :class:`~pytorch_grad_cam.utils.model_targets.ClassifierOutputTarget` for the class
explained. Its whole API is ``Method(model, target_layers)`` and ``cam(input_tensor, targets)``;
:func:`gradcam_maps` is that call in batches, :func:`layer_maps` the one loop over target layers
x explained classes that the run's diagnostics, :meth:`resnet_cli.diagnostics.Predictions.gradcam`
and ``resnet-gradcam`` share. :func:`check_options` checks the diagnostics options
(``explain.*``) once, for :func:`resnet_cli.config.validate` and ``resnet-gradcam``.
"""

from __future__ import annotations

import types
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .errors import ConfigError
from .layers import TargetLayers, resolve_target_layers, unwrap
from .interpretation import ORDERS, to_numpy

CAM_METHODS = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "scorecam": "ScoreCAM",
    "eigencam": "EigenCAM",
    "layercam": "LayerCAM",
}
"""``method`` names (pytorch-grad-cam's own) -> names of its CAM classes (see :func:`cam_class`).
Names, not classes, so that checking a config does not import pytorch-grad-cam (and torchvision)."""

TARGETS = ("predicted", "true", "both")
"""Which class a heat map explains: the predicted one, the true one, or both side by side."""


def cam_class(method: str) -> type:
    """The pytorch-grad-cam class for ``method`` (a key of :data:`CAM_METHODS`), imported on use.

    Raises:
        ConfigError: an unknown ``method``.
    """
    if method not in CAM_METHODS:
        raise ConfigError(f"method={method!r} is not allowed: one of {', '.join(CAM_METHODS)}")
    import pytorch_grad_cam

    return getattr(pytorch_grad_cam, CAM_METHODS[method])


def check_options(count: Any, order: Any, method: Any, target: Any, prefix: str = "explain.") -> None:
    """Check the diagnostics options (the ``explain`` node, resnet-gradcam's keys) without importing
    pytorch-grad-cam or matplotlib; ``prefix`` is prepended to key names in messages.

    Raises:
        ConfigError: naming the first bad key, its value and what is allowed.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"{prefix}count={count!r} is not allowed: a number of images >= 1")
    for key, value, allowed in (("order", order, ORDERS), ("method", method, CAM_METHODS), ("target", target, TARGETS)):
        if value not in allowed:
            raise ConfigError(f"{prefix}{key}={value!r} is not allowed: one of {', '.join(allowed)}")


def explained_classes(target: str, preds: Any, labels: Any = None) -> dict[str, np.ndarray]:
    """The classes explained for ``target``: ``{"predicted": preds}``, ``{"true": labels}`` or
    both, in that order; ``preds``/``labels`` are int (N,) class indices (tensor or array).

    Raises:
        ConfigError: ``target`` not one of :data:`TARGETS`.
    """
    if target not in TARGETS:
        raise ConfigError(f"target={target!r} is not allowed: one of {', '.join(TARGETS)}")
    kinds = ("predicted", "true") if target == "both" else (target,)
    return {k: to_numpy(preds if k == "predicted" else labels).astype(np.int64) for k in kinds}


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
        target_layers: module names (see :func:`resnet_cli.layers.resolve_target_layers`) or
            modules. With more than one the library averages the per-layer maps; pass one for a
            per-layer map.
        targets: class index explained for each image (N ints); None = the predicted class.
        method: one of :data:`CAM_METHODS` (gradcam, gradcam++, scorecam, eigencam, layercam).
        batch_size: images per CAM call (bounds memory; Score-CAM runs C forward passes each).

    Returns:
        float32 (N, H, W), the input's spatial size, each map min-max scaled to [0, 1] by
        pytorch-grad-cam (a map with no positive evidence is all zeros).

    The model is put in eval mode; gradients are enabled inside even under ``torch.no_grad``.

    Raises:
        ConfigError: unknown ``method`` or layer name.
        ValueError: ``targets`` and ``x`` of different lengths.
    """
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam_cls = cam_class(method)
    model = unwrap(model)
    if any(isinstance(layer, str) for layer in target_layers):
        modules = resolve_target_layers(model, [str(n) for n in target_layers], x.shape[-1]).modules
    else:
        modules = list(target_layers)
    if targets is not None and len(targets) != len(x):
        raise ValueError(f"{len(targets)} targets for {len(x)} images")
    device = next(model.parameters()).device
    out = np.zeros((len(x), x.shape[-2], x.shape[-1]), np.float32)
    quiet = _quiet_scorecam() if method == "scorecam" else nullcontext()
    with torch.inference_mode(False), torch.enable_grad(), quiet, cam_cls(model=model, target_layers=modules) as cam:
        if method == "scorecam":
            cam.batch_size = 128
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].detach().to(device=device, dtype=torch.float32)
            xb = xb.clone() if xb.is_inference() else xb
            tb = None if targets is None else [ClassifierOutputTarget(int(c)) for c in targets[i:i + batch_size]]
            out[i:i + len(xb)] = cam(input_tensor=xb, targets=tb)
    return out


def layer_maps(model: nn.Module, x: torch.Tensor, target_layers: TargetLayers,
               classes: Mapping[str, Sequence[int]], method: str = "gradcam") -> dict[str, np.ndarray]:
    """One map per target layer (outer) and explained class (inner), for images ``x`` float
    (N, 3, H, W).

    Args:
        target_layers: resolved layers (:func:`resnet_cli.layers.resolve_target_layers`).
        classes: ``{kind: class index per image (N,)}``, e.g. from :func:`explained_classes`.
        method: one of :data:`CAM_METHODS`.

    Returns:
        ``{"<layer> | <kind>": float32 (N, H, W) in [0, 1]}``, e.g. ``"layer3 | predicted"``.
    """
    return {f"{name} | {kind}": gradcam_maps(model, x, [module], [int(c) for c in cls], method)
            for name, module in zip(target_layers.names, target_layers.modules)
            for kind, cls in classes.items()}
