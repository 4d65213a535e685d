"""The device (:func:`resolve_device`) and numeric precision: bf16 autocast where the device computes bf16 natively, fp32 elsewhere.

``trainer.precision``: ``auto`` = bf16 on CUDA (where ``torch.cuda.is_bf16_supported()``) and on
CPUs with native bf16 instructions (AVX512-BF16 or AMX, as torch reports them), fp32 elsewhere;
``bf16`` insists and is refused where the device lacks it; ``fp32`` never autocasts. Under
``torch.autocast`` convolutions and matrix products run in bf16 while weights, optimizer state,
the loss and the metrics stay fp32 (PyTorch AMP docs, "CPU Ops that can autocast to bfloat16").
Measured speed and accuracy parity: ``bench/cpu_precision.py``, ``results/cpu-precision/``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache

import torch

from .errors import ConfigError

PRECISIONS = ("auto", "bf16", "fp32")
"""Allowed values of ``trainer.precision``."""
DEVICES = ("auto", "cpu", "cuda")
"""Allowed values of ``trainer.device``."""


def resolve_device(name: str) -> torch.device:
    """Map ``trainer.device`` (auto|cpu|cuda) to a torch.device; raises ConfigError."""
    if name not in DEVICES:
        raise ConfigError(f"trainer.device={name!r} is not allowed: one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("trainer.device='cuda' but no CUDA GPU is visible: use trainer.device=cpu or auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


@lru_cache(maxsize=None)
def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: a CUDA GPU that torch says supports it, or a CPU
    with AVX512-BF16 or AMX tiles (``torch.cpu._is_avx512_bf16_supported`` /
    ``_is_amx_tile_supported``; False on a torch without them). Other devices: False."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
        return any(bool(check()) for check in checks if check is not None)
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    """``trainer.precision`` (auto | bf16 | fp32) on ``device`` -> ``"bf16"`` or ``"fp32"``.

    Raises:
        ConfigError: an unknown value, or ``bf16`` on a device without native bf16 (one line
            naming ``trainer.precision`` and what to use instead).
    """
    if name not in PRECISIONS:
        raise ConfigError(f"trainer.precision={name!r} is not allowed: one of {', '.join(PRECISIONS)}")
    if name == "fp32":
        return "fp32"
    if native_bf16(device):
        return "bf16"
    if name == "bf16":
        what = "this CPU has neither AVX512-BF16 nor AMX" if device.type == "cpu" else f"{device} has no native bf16"
        raise ConfigError(f"trainer.precision='bf16' is not allowed: {what}; use trainer.precision=auto or fp32")
    return "fp32"


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """The context that runs a forward pass in ``precision`` (any ``trainer.precision`` value,
    resolved on ``device``): ``torch.autocast(device.type, dtype=torch.bfloat16)`` or a no-op.

    Raises:
        ConfigError: as :func:`resolve_precision`.
    """
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()
