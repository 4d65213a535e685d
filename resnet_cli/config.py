"""Typed configuration schema and range checks, applied before any data is loaded.

The dataclasses below are registered in Hydra's ConfigStore as ``train_schema`` and sit first
in ``conf/train.yaml``'s defaults list, so OmegaConf rejects wrong types and unknown keys
while composing. :func:`validate` then checks ranges and cross-key constraints and raises
:class:`~resnet_cli.errors.ConfigError` naming the key, the value and what is allowed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from .errors import ConfigError

LR_RULES = ("min_loss_div10", "steepest", "min_loss")


@dataclass
class TrainerConfig:
    """``trainer``: epochs, device (auto|cpu|cuda), precision (auto|bf16|fp32; bf16 on CUDA only)."""

    epochs: int = 24
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    channels_last: bool = True
    log_every: int = 20


@dataclass
class DataConfig:
    """``data``: where the images are and how they are batched (batch_size in images)."""

    name: str = "cifar10"
    root: str = "data/cifar10"
    download: bool = False
    batch_size: int = 512
    num_workers: int = 2
    train_subset: Optional[int] = None
    test_subset: Optional[int] = None
    image_size: int = 32


@dataclass
class AugmentConfig:
    """``augment``: pad + random crop back to image_size, horizontal flip, cutout (pixels; p in 0-1)."""

    name: str = "cutout"
    backend: str = "auto"
    pad: int = 4
    pad_mode: str = "reflect"
    flip_p: float = 0.5
    cutout_holes: int = 1
    cutout_size: int = 8
    cutout_p: float = 1.0


@dataclass
class SchedulerConfig:
    """``scheduler``: One Cycle (Smith & Topin 2019); max_lr/min_lr are numbers or ``find``."""

    name: str = "one_cycle"
    max_lr: Any = "find"
    min_lr: Any = "find"
    max_epoch: int = 5
    anneal_strategy: str = "linear"
    annihilation: bool = False
    cycle_momentum: bool = True
    base_momentum: float = 0.85
    max_momentum: float = 0.95


@dataclass
class OptimizerConfig:
    """``optimizer``: instantiated with ``_partial_`` and given the parameters and LR later."""

    _target_: str = "torch.optim.SGD"
    _partial_: bool = True
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4


@dataclass
class LRFinderConfig:
    """``lr_finder``: torch-lr-finder range test settings and the rule that picks max_lr."""

    start_lr: float = 1e-5
    end_lr: float = 10.0
    num_iter: int = 200
    rule: str = "min_loss_div10"
    smooth_f: float = 0.05
    diverge_th: float = 5.0


@dataclass
class TrainConfig:
    """The whole ``resnet-train`` configuration."""

    model: Dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    lr_finder: LRFinderConfig = field(default_factory=LRFinderConfig)
    seed: int = 0
    resume: Optional[str] = None


def register_configs() -> None:
    """Register :class:`TrainConfig` as ``train_schema`` in Hydra's ConfigStore."""
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)


def _need(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")


def _lr_value(cfg: DictConfig, key: str) -> float | None:
    value = cfg.scheduler[key]
    if isinstance(value, str) and value == "find":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"scheduler.{key}={value!r} is not allowed: use a positive number or 'find'")
    _need(value > 0, f"scheduler.{key}", value, "must be > 0 (or 'find')")
    return float(value)


def resolve_device(name: str) -> torch.device:
    """Map ``trainer.device`` (auto|cpu|cuda) to a torch.device; raises ConfigError."""
    _need(name in ("auto", "cpu", "cuda"), "trainer.device", name, "one of auto, cpu, cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("trainer.device='cuda' but no CUDA GPU is visible: use trainer.device=cpu or auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def validate(cfg: DictConfig) -> None:
    """Check ranges and cross-key constraints of a composed training config.

    Raises:
        ConfigError: naming the first offending key, its value and what is allowed.
    """
    t, d, a, s, f = cfg.trainer, cfg.data, cfg.augment, cfg.scheduler, cfg.lr_finder
    _need(t.epochs > 0, "trainer.epochs", t.epochs, "must be >= 1")
    device = resolve_device(t.device)
    _need(t.precision in ("auto", "bf16", "fp32"), "trainer.precision", t.precision, "one of auto, bf16, fp32")
    _need(
        not (t.precision == "bf16" and device.type != "cuda"),
        "trainer.precision", t.precision, "bf16 needs a CUDA device; use auto or fp32 on CPU",
    )
    _need(t.log_every > 0, "trainer.log_every", t.log_every, "must be >= 1")
    _need(d.name in ("cifar10", "image_folder"), "data.name", d.name, "cifar10 or image_folder (choose with data=...)")
    _need(d.batch_size > 0, "data.batch_size", d.batch_size, "must be >= 1")
    _need(d.num_workers >= 0, "data.num_workers", d.num_workers, "must be >= 0")
    _need(d.image_size > 0, "data.image_size", d.image_size, "must be >= 1")
    for key in ("train_subset", "test_subset"):
        v = d[key]
        _need(v is None or v > 0, f"data.{key}", v, "null (all images) or a positive count")
    _need(a.backend in ("auto", "albumentations", "gpu"), "augment.backend", a.backend, "auto, albumentations or gpu")
    _need(a.pad >= 0, "augment.pad", a.pad, "must be >= 0")
    _need(a.pad_mode in ("reflect", "constant"), "augment.pad_mode", a.pad_mode, "reflect or constant")
    _need(0.0 <= a.flip_p <= 1.0, "augment.flip_p", a.flip_p, "a probability in 0..1")
    _need(0.0 <= a.cutout_p <= 1.0, "augment.cutout_p", a.cutout_p, "a probability in 0..1")
    _need(a.cutout_holes >= 0, "augment.cutout_holes", a.cutout_holes, "must be >= 0")
    _need(0 <= a.cutout_size <= d.image_size, "augment.cutout_size", a.cutout_size,
          f"must be in 0..{d.image_size} (data.image_size)")
    _need(s.name == "one_cycle", "scheduler.name", s.name, "one_cycle")
    _need(0 < s.max_epoch < t.epochs, "scheduler.max_epoch", s.max_epoch,
          f"must be in 1..{t.epochs - 1} (less than trainer.epochs={t.epochs})")
    _need(s.anneal_strategy in ("linear", "cos"), "scheduler.anneal_strategy", s.anneal_strategy, "linear or cos")
    max_lr, min_lr = _lr_value(cfg, "max_lr"), _lr_value(cfg, "min_lr")
    if max_lr is not None and min_lr is not None:
        _need(min_lr <= max_lr, "scheduler.min_lr", min_lr, f"must be <= scheduler.max_lr={max_lr}")
    if max_lr is None or min_lr is None:
        _need(f.start_lr > 0, "lr_finder.start_lr", f.start_lr, "must be > 0")
        _need(f.end_lr > f.start_lr, "lr_finder.end_lr", f.end_lr, f"must be > lr_finder.start_lr={f.start_lr}")
        _need(f.num_iter >= 5, "lr_finder.num_iter", f.num_iter, "must be >= 5")
        _need(f.rule in LR_RULES, "lr_finder.rule", f.rule, "one of " + ", ".join(LR_RULES))
    _need(cfg.optimizer.weight_decay >= 0, "optimizer.weight_decay", cfg.optimizer.weight_decay, "must be >= 0")
    if cfg.resume is not None:
        _need(Path(cfg.resume).is_file(), "resume", cfg.resume, "the path of an existing checkpoints/last.pt")
    if not cfg.model.get("_target_"):
        raise ConfigError("model has no _target_: choose model=custom_resnet or model=resnet18")


def check_writable(run_dir: Path) -> None:
    """Raise ConfigError if ``run_dir`` cannot be written (checked before training starts)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise ConfigError(
            f"output folder {run_dir} is not writable ({e.strerror}); "
            "choose another with hydra.run.dir=<folder>"
        ) from None
    if not os.access(run_dir, os.W_OK):
        raise ConfigError(f"output folder {run_dir} is not writable; choose another with hydra.run.dir=<folder>")
