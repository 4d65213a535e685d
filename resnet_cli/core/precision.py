"""The device (:func:`resolve_device`) and ``trainer.precision``: ``auto`` = bf16 autocast where the
device computes bf16 natively (CUDA, CPUs with AVX512-BF16 or AMX), fp32 elsewhere (Apple's ``mps``
included); ``bf16`` insists; ``fp32`` never autocasts. Weights, optimizer state, loss and metrics
stay fp32 (PyTorch AMP docs). What ran is recorded (:func:`runtime_record`); a checkpoint is evaluated
in its recorded precision (:func:`checkpoint_precision`).
"""

from __future__ import annotations

import logging
import platform
from contextlib import AbstractContextManager, nullcontext, suppress
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import ConfigError, check_choice

log = logging.getLogger("resnet_cli")

PRECISIONS = ("auto", "bf16", "fp32")  # trainer.precision
DEVICES = ("auto", "cpu", "cuda", "mps")  # trainer.device


def resolve_device(name: str) -> torch.device:
    """Map ``trainer.device`` (auto|cpu|cuda|mps) to a torch.device; ``auto`` picks cuda, then mps
    (an Apple GPU), then cpu. ConfigError for an unknown name, or ``cuda``/``mps`` where torch sees no
    such device."""
    check_choice("trainer.device", name, DEVICES)
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()  # mps: Apple's Metal GPU backend
    if name == "cuda" and not cuda:
        raise ConfigError("trainer.device='cuda' but no CUDA GPU is visible: use trainer.device=cpu or auto")
    if name == "mps" and not mps:
        raise ConfigError("trainer.device='mps' but torch sees no Apple GPU (the mps backend needs Apple silicon "
                          "and macOS 12.3+): use trainer.device=cpu or auto")
    return torch.device(("cuda" if cuda else "mps" if mps else "cpu") if name == "auto" else name)


@lru_cache(maxsize=None)
def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: a CUDA GPU torch says supports it, or a CPU with
    AVX512-BF16 or AMX (``torch.cpu._is_avx512_bf16_supported`` / ``_is_amx_tile_supported``).
    ``mps`` counts as not native (bf16 autocast there is partial), so ``auto`` is fp32 on it."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
        return any(bool(check()) for check in checks if check is not None)
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    """``trainer.precision`` (auto | bf16 | fp32) on ``device`` -> ``"bf16"`` or ``"fp32"``; ConfigError for
    an unknown value, or ``bf16`` on a device without native bf16."""
    check_choice("trainer.precision", name, PRECISIONS)
    if name == "fp32":
        return "fp32"
    if native_bf16(device):
        return "bf16"
    if name == "bf16":
        what = "this CPU has neither AVX512-BF16 nor AMX" if device.type == "cpu" else f"{device} has no native bf16"
        raise ConfigError(f"trainer.precision='bf16' is not allowed: {what}; use trainer.precision=auto or fp32")
    return "fp32"


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """``torch.autocast(device.type, dtype=torch.bfloat16)`` if ``precision`` resolves to bf16, else a no-op;
    ConfigError as :func:`resolve_precision`."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


@lru_cache(maxsize=None)
def device_name(device: torch.device) -> str:
    """The hardware behind ``device``: the GPU's name (``torch.cuda.get_device_name``), ``Apple GPU
    (mps) on <machine>`` or the CPU's model (``model name`` in /proc/cpuinfo, else
    ``platform.processor()``); ``unknown`` when none is reported."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple GPU (mps) on {platform.machine() or 'unknown'}"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def runtime_record(device: torch.device, precision: str, channels_last: bool) -> dict[str, Any]:
    """What ran, for metrics.json and the checkpoint (key ``runtime``): ``precision`` resolved on
    ``device`` (``bf16`` or ``fp32``, never ``auto``), ``channels_last``, ``device`` (cpu, cuda, mps),
    ``device_name`` (:func:`device_name`) and the ``torch`` and ``torchvision`` versions. ConfigError as
    :func:`resolve_precision`.
    """
    import torchvision

    return {"precision": resolve_precision(precision, device), "channels_last": bool(channels_last),
            "device": device.type, "device_name": device_name(device), "torch": str(torch.__version__),
            "torchvision": str(torchvision.__version__)}


def checkpoint_precision(ckpt: Mapping[str, Any], device: torch.device) -> str:
    """The precision to evaluate a checkpoint in on ``device``, ``bf16`` or ``fp32``: the one its run
    recorded (``runtime.precision``), or for a checkpoint written before that record, its
    ``trainer.precision`` resolved here. A bf16 run on a device without native bf16 is evaluated
    in fp32, and a warning line says so (its accuracy may then differ slightly from the run's)."""
    recorded = (ckpt.get("runtime") or {}).get("precision")
    if recorded is None:
        recorded = str(((ckpt.get("config") or {}).get("trainer") or {}).get("precision", "auto"))
        if recorded == "auto":  # what auto chose on the run's machine is unknown: choose it here
            return "bf16" if native_bf16(device) else "fp32"
    if recorded == "bf16" and not native_bf16(device):
        log.warning("the checkpoint's run computed in bf16, but %s (%s) has no native bf16: evaluating in fp32, "
                    "so accuracy and loss may differ slightly from the run's", device.type, device_name(device))
        return "fp32"
    return "fp32" if recorded == "fp32" else "bf16"
