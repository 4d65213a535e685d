"""Class activation maps with pytorch-grad-cam (Gildenblat et al., https://github.com/jacobgil/pytorch-grad-cam):
Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391), Grad-CAM++ (Chattopadhay et al. 2018, arXiv:1710.11063),
Score-CAM (Wang et al. 2020, arXiv:1910.01279), Eigen-CAM (Muhammad & Yeasin 2020, arXiv:2008.00299) and
LayerCAM (Jiang et al. 2021), with ``ClassifierOutputTarget`` for the explained class. :func:`layer_maps`
loops over target layers x explained classes for :mod:`resnet_cli.diagnostics.report` and ``resnet-gradcam``;
:func:`check_options` checks the ``explain.*`` options without importing pytorch-grad-cam.
"""

from __future__ import annotations

import types
from contextlib import nullcontext
from typing import Any, Mapping, Sequence
from unittest import mock

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..models.summary import TargetLayers, resolve_target_layers, unwrap
from .interpretation import ORDERS, check_choice, to_numpy

CAM_METHODS = {"gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "scorecam": "ScoreCAM", "eigencam": "EigenCAM",
               "layercam": "LayerCAM"}
"""``method`` -> pytorch-grad-cam class name (names, so that checking a config imports no pytorch-grad-cam)."""

TARGETS = ("predicted", "true", "both")
"""Which class a heat map explains: the predicted one, the true one, or both side by side."""


def check_options(count: Any, order: Any, method: Any, target: Any, prefix: str = "explain.") -> None:
    """Check the diagnostics options (``explain.*``, resnet-gradcam's keys); ConfigError naming the first bad
    key (``prefix`` + name), its value and what is allowed."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"{prefix}count={count!r} is not allowed: a number of images >= 1")
    for key, value, allowed in (("order", order, ORDERS), ("method", method, CAM_METHODS), ("target", target, TARGETS)):
        check_choice(prefix + key, value, allowed)


def explained_classes(target: str, preds: Any, labels: Any = None) -> dict[str, np.ndarray]:
    """``{"predicted": preds}``, ``{"true": labels}`` or both (int64 (N,) each) for ``target``; ConfigError
    for a ``target`` not in :data:`TARGETS`."""
    check_choice("target", target, TARGETS)
    kinds = ("predicted", "true") if target == "both" else (target,)
    return {k: to_numpy(preds if k == "predicted" else labels).astype(np.int64) for k in kinds}


def gradcam_maps(model: nn.Module, x: torch.Tensor, target_layers: Sequence[str | nn.Module],
                 targets: Sequence[int] | None = None, method: str = "gradcam",
                 batch_size: int = 64) -> np.ndarray:
    """Class activation maps of ``model`` (put in eval mode) for normalised images ``x`` float (N, 3, H, W).

    Args:
        target_layers: module names or modules; with several, pytorch-grad-cam averages their maps.
        targets: class index explained per image (N ints); None = the predicted class.
        method: one of :data:`CAM_METHODS`.
        batch_size: images per CAM call.

    Returns float32 (N, H, W), each map min-max scaled to [0, 1] (all zeros without positive evidence).
    Raises ConfigError (unknown ``method`` or layer name) or ValueError (``targets`` and ``x`` lengths differ).
    """
    import pytorch_grad_cam
    from pytorch_grad_cam import score_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    check_choice("method", method, CAM_METHODS)
    model = unwrap(model)
    if any(isinstance(layer, str) for layer in target_layers):
        modules = resolve_target_layers(model, [str(n) for n in target_layers], x.shape[-1]).modules
    else:
        modules = list(target_layers)
    if targets is not None and len(targets) != len(x):
        raise ValueError(f"{len(targets)} targets for {len(x)} images")
    device = next(model.parameters()).device
    out = np.zeros((len(x), x.shape[-2], x.shape[-1]), np.float32)
    quiet = nullcontext()
    if method == "scorecam":  # no tqdm bar per image
        quiet = mock.patch.object(score_cam, "tqdm", types.SimpleNamespace(tqdm=lambda it, *a, **k: it))
    cam_cls = getattr(pytorch_grad_cam, CAM_METHODS[method])
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
    """:func:`gradcam_maps` per target layer (outer) and ``classes`` entry ``{kind: class per image}``
    (inner) for ``x`` float (N, 3, H, W): ``{"<layer> | <kind>": float32 (N, H, W) in [0, 1]}``."""
    return {f"{name} | {kind}": gradcam_maps(model, x, [module], [int(c) for c in cls], method)
            for name, module in zip(target_layers.names, target_layers.modules)
            for kind, cls in classes.items()}
