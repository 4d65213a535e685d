"""The typed schema of ``resnet-train``'s config: one dataclass per group, :class:`TrainConfig`
for the whole.

:func:`register_configs` stores :class:`TrainConfig` in Hydra's ConfigStore as ``train_schema``,
which sits first in ``conf/train.yaml``'s defaults list, so OmegaConf rejects wrong types and
unknown keys while composing (:func:`resnet_cli.cli.run_hydra` turns that into one line, exit 2).
What composing lets through is checked by :func:`resnet_cli.config.validate`. Only the
dataclasses live here (no torch, no checks), so the schema reads as one list of every key and
its default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class TrainerConfig:
    """``trainer``: epochs, device (auto|cpu|cuda), precision (auto|bf16|fp32, resnet_cli/precision.py),
    ``eval_every`` (test-set evaluation every N epochs and after the last), ``label_smoothing``
    (training loss, 0-1), ``tta_flip`` (test-time augmentation by horizontal flip), ``ema_decay``
    (an EMA of the weights, evaluated beside them; null = off)."""

    epochs: int = 24
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    channels_last: bool = True
    log_every: int = 20
    eval_every: int = 1
    label_smoothing: float = 0.0  # F.cross_entropy's label_smoothing for the training loss (0 = the spec)
    tta_flip: bool = False  # evaluate on each test image and its mirror, logits averaged
    ema_decay: Optional[float] = None  # EMA of the weights, evaluated beside them (resnet_cli/ema.py)


@dataclass
class DataConfig:
    """``data``: where the images are and how they are batched (batch_size in images)."""

    _target_: str = "resnet_cli.data.load_cifar10"  # the loader: load_cifar10 | load_image_folder
    root: str = MISSING  # mandatory: conf/data/cifar10.yaml sets it; data=image_folder needs data.root=<folder>
    download: bool = False
    batch_size: int = 512
    num_workers: int = 2
    train_subset: Optional[int] = None
    test_subset: Optional[int] = None
    image_size: int = 32
    cache: bool = True  # data=image_folder: keep decoded images (resnet_cli/cache.py)
    cache_dir: Optional[str] = None  # null = the user cache folder (platformdirs)


@dataclass
class AugmentConfig:
    """``augment``: pad + random crop back to image_size, horizontal flip, cutout (pixels; p in 0-1).
    ``_target_`` builds the training batches (a partial, given the data, device, batch size and
    seed: resnet_cli.batches.train_batches); ``backend`` auto | albumentations | gpu."""

    _target_: str = "resnet_cli.batches.train_batches"
    _partial_: bool = True
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

    _target_: str = "resnet_cli.schedule.one_cycle"
    _partial_: bool = True
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
    fused: Optional[bool] = None  # null = auto: the fused kernel on CUDA (resolve_fused)


@dataclass
class LRFinderConfig:
    """``lr_finder`` (group: ``warmup`` default, ``exponential``): torch-lr-finder range test
    settings and the rule that picks max_lr (resnet_cli/lr_finder.py). ``num_iter`` null = the
    One Cycle warm-up's length, ``scheduler.max_epoch`` x steps per epoch."""

    step_mode: str = "linear"
    start_lr: float = 1e-4
    end_lr: float = 1.0
    num_iter: Optional[int] = None
    rule: str = "min_loss"
    min_rule: str = "fall"
    smooth_f: Optional[float] = None
    diverge_th: float = 5.0


@dataclass
class ExplainConfig:
    """``explain``: end-of-run diagnostics (resnet_cli/diagnostics.py): ``count`` misclassified test
    images, ``order`` confident (most confident mistakes first) | random (seeded); Grad-CAM
    ``method`` (gradcam, gradcam++, scorecam, eigencam, layercam), target ``layers`` (module
    names; null = the model's default) and ``target`` class (predicted | true | both)."""

    count: int = 20
    order: str = "confident"
    method: str = "gradcam"
    layers: Any = None  # one module name or a list of them (resnet_cli.layers.resolve_target_layers)
    target: str = "both"


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
    explain: ExplainConfig = field(default_factory=ExplainConfig)
    seed: int = 0
    resume: Optional[str] = None
    logger: Optional[Dict[str, Any]] = None  # name -> tracker config (conf/logger/*.yaml; resnet_cli/loggers/)


def register_configs() -> None:
    """Register :class:`TrainConfig` as ``train_schema`` in Hydra's ConfigStore."""
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
