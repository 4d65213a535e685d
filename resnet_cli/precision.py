"""The device (:func:`resolve_device`) and ``trainer.precision``: ``auto`` = bf16 autocast where the
device computes bf16 natively (CUDA, CPUs with AVX512-BF16 or AMX), fp32 elsewhere; ``bf16``
insists; ``fp32`` never autocasts. Weights, optimizer state, loss and metrics stay fp32 (PyTorch
AMP docs). Speed and accuracy: see results/cpu-precision.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache

import torch

from .errors import ConfigError

PRECISIONS = ("auto", "bf16", "fp32")  # trainer.precision
DEVICES = ("auto", "cpu", "cuda")  # trainer.device


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
    """Whether ``device`` computes bf16 natively: a CUDA GPU torch says supports it, or a CPU with
    AVX512-BF16 or AMX (``torch.cpu._is_avx512_bf16_supported`` / ``_is_amx_tile_supported``)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
        return any(bool(check()) for check in checks if check is not None)
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    """``trainer.precision`` (auto | bf16 | fp32) on ``device`` -> ``"bf16"`` or ``"fp32"``.

    Raises:
        ConfigError: an unknown value, or ``bf16`` on a device without native bf16.
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
    """``torch.autocast(device.type, dtype=torch.bfloat16)`` if ``precision`` resolves to bf16, else a no-op.

    Raises:
        ConfigError: as :func:`resolve_precision`.
    """
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()
