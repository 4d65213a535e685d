"""The network's layers, probed with forward passes of zeros: the torchinfo summary table, the layers
whose output is a feature map, and the Grad-CAM target layers (resolved once, in a run's set-up, so a
bad ``explain.layers`` fails before training).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
from torch import nn

from ..errors import ConfigError

DEFAULT_LAYERS = {"CustomResNet": ["layer3", "layer2"], "ResNet18": ["layer4"]}
"""Default Grad-CAM target layers per network class name."""


class TargetLayers(NamedTuple):
    """Resolved Grad-CAM target layers: dotted module names and the modules themselves."""

    names: list[str]
    modules: list[nn.Module]


def unwrap(model: nn.Module) -> nn.Module:
    """The module itself, or the original module behind ``torch.compile`` and/or DDP."""
    model = getattr(model, "_orig_mod", model)
    if isinstance(model, nn.parallel.DistributedDataParallel):
        model = getattr(model.module, "_orig_mod", model.module)
    return model


def model_summary(model: nn.Module, image_size: int = 32, path: str | Path | None = None) -> str:
    """torchinfo layer table (shapes, parameters, depth 3) of ``model`` for one (1, 3, S, S) image of
    zeros in eval mode (no BatchNorm or RNG change); written to ``path`` when given, and returned."""
    from torchinfo import summary
    from torchinfo.enums import Units

    model = unwrap(model)
    p = next(model.parameters())
    stats = summary(model, input_data=torch.zeros(1, 3, image_size, image_size, device=p.device, dtype=p.dtype),
                    col_names=("input_size", "output_size", "num_params"), depth=3, mode="eval",
                    verbose=0, row_settings=("var_names",))
    # torchinfo 1.8 on Python >= 3.11 prints "(Units.MEGABYTES)": show the unit's value ("M") as intended
    text = re.sub(r"\(Units\.(\w+)\)", lambda m: f"({Units[m.group(1)].value})", str(stats))
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
    return text


def summary_line(table: str) -> str:
    """The totals of a :func:`model_summary` table on one line (``"Total params: ...; ..."``), else its
    first line."""
    totals = [ln.strip() for ln in table.splitlines()
              if ln.startswith(("Total params", "Total mult-adds", "Estimated Total Size"))]
    return "; ".join(totals) if totals else table.strip().splitlines()[0] if table.strip() else "(empty)"


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


def _spatial(model: nn.Module, ranks: dict[str, int]) -> list[str]:
    """Top-level children whose output is (N, C, H, W)."""
    return [n for n, _ in model.named_children() if ranks.get(n) == 4]


def default_target_layers(model: nn.Module, ranks: dict[str, int] | None = None) -> list[str]:
    """Default Grad-CAM target layer names: :data:`DEFAULT_LAYERS`, else the last top-level child whose
    output is a feature map (from ``ranks`` or a 32x32 probe; ConfigError if there is none)."""
    model = unwrap(model)
    name = type(model).__name__
    if name in DEFAULT_LAYERS:
        return list(DEFAULT_LAYERS[name])
    spatial = _spatial(model, ranks if ranks is not None else _output_ranks(model, 32))
    if not spatial:
        raise ConfigError(f"{name} has no layer with a (N, C, H, W) output to explain: pass explain.layers")
    return [spatial[-1]]


def resolve_target_layers(model: nn.Module, layers: Sequence[str] | TargetLayers | None,
                          image_size: int = 32) -> TargetLayers:
    """Module names and modules for ``layers`` (a dotted name such as ``layer4.1``, a list of them, or None
    = :func:`default_target_layers`), checked to output (N, C, H, W) with one forward pass of zeros
    (2, 3, S, S), S = ``image_size``. A :class:`TargetLayers` is returned as it is. ConfigError for a name
    that is not such a module, listing the valid top-level ones.
    """
    if isinstance(layers, TargetLayers):
        return layers
    if isinstance(layers, str):  # layers=layer3 on the command line: one name
        layers = [layers]
    elif layers is not None and not isinstance(layers, Sequence):
        raise ConfigError(f"layers={layers!r} is not allowed: write one module name (layers=layer3) "
                          "or a list (layers=[layer3,layer2])")
    model = unwrap(model)
    ranks = _output_ranks(model, image_size)  # the one probe
    names = list(layers) if layers else default_target_layers(model, ranks)
    modules = dict(model.named_modules())
    bad = [n for n in names if not isinstance(n, str) or n not in modules or n == ""]
    bad = bad or [n for n in names if ranks.get(n) != 4]
    if bad:
        raise ConfigError(f"layers: {bad[0]!r} is not a feature-map layer of {type(model).__name__}; "
                          f"use one of: {', '.join(_spatial(model, ranks))} (or a dotted sub-module of them)")
    return TargetLayers(names, [modules[n] for n in names])
