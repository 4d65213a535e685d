"""The types of every command's config, one dataclass per group; each value's default and comment live
in its one home, the YAML under ``conf/`` (``tests/test_config_home.py``), so every field is ``MISSING``
here except ``logger``. :func:`register_configs` stores the schemas in Hydra's ConfigStore and each
YAML lists its schema first in ``defaults``: OmegaConf then rejects wrong types and unknown keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class TrainerConfig:
    epochs: int = MISSING
    device: str = MISSING
    precision: str = MISSING
    compile: bool = MISSING
    channels_last: bool = MISSING
    log_every: int = MISSING
    eval_every: int = MISSING
    checkpoint_every: int = MISSING
    label_smoothing: float = MISSING
    tta_flip: bool = MISSING
    ema_decay: Optional[float] = MISSING


@dataclass
class DataConfig:
    _target_: str = MISSING  # the loader: resnet_cli.data.load_cifar10 | load_cifar100 | load_image_folder
    root: str = MISSING
    download: bool = MISSING
    batch_size: int = MISSING
    num_workers: int = MISSING
    train_subset: Optional[int] = MISSING
    test_subset: Optional[int] = MISSING
    image_size: int = MISSING
    cache: bool = MISSING
    cache_dir: Optional[str] = MISSING


@dataclass
class AugmentConfig:
    _target_: str = MISSING  # resnet_cli.data.batches.train_batches (a partial)
    _partial_: bool = MISSING
    backend: str = MISSING
    pad: int = MISSING
    pad_mode: str = MISSING
    flip_p: float = MISSING
    cutout_holes: int = MISSING
    cutout_size: int = MISSING
    cutout_p: float = MISSING


@dataclass
class SchedulerConfig:
    _target_: str = MISSING  # resnet_cli.core.schedule.one_cycle (a partial)
    _partial_: bool = MISSING
    max_lr: Any = MISSING  # a number or "find"
    min_lr: Any = MISSING
    max_epoch: int = MISSING
    anneal_strategy: str = MISSING
    final_div_factor: float = MISSING
    annihilation: Optional[bool] = MISSING  # deprecated alias of final_div_factor (null unless given)
    cycle_momentum: bool = MISSING
    base_momentum: float = MISSING
    max_momentum: float = MISSING


@dataclass
class OptimizerConfig:
    _target_: str = MISSING  # torch.optim.SGD (a partial: given the parameters and LR later)
    _partial_: bool = MISSING
    momentum: float = MISSING
    nesterov: bool = MISSING
    weight_decay: float = MISSING
    fused: Optional[bool] = MISSING


@dataclass
class LRFinderConfig:
    step_mode: str = MISSING
    start_lr: float = MISSING
    end_lr: float = MISSING
    num_iter: Optional[int] = MISSING
    rule: str = MISSING
    min_rule: str = MISSING
    smooth_f: Optional[float] = MISSING
    diverge_th: float = MISSING


@dataclass
class ExplainConfig:
    count: int = MISSING
    order: str = MISSING
    method: str = MISSING
    layers: Any = MISSING  # null, a module name or a list of them
    target: str = MISSING


@dataclass
class TrainConfig:
    """``resnet-train`` (conf/train.yaml)."""

    model: Dict[str, Any] = MISSING  # the model's _target_ and its arguments
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    lr_finder: LRFinderConfig = field(default_factory=LRFinderConfig)
    explain: ExplainConfig = field(default_factory=ExplainConfig)
    seed: int = MISSING
    resume: Optional[str] = MISSING
    logger: Optional[Dict[str, Any]] = None  # name -> tracker config, added by logger=... (conf/logger/)


@dataclass
class GradcamConfig:
    """``resnet-gradcam`` (conf/gradcam.yaml)."""

    ckpt: Optional[str] = MISSING
    method: str = MISSING
    layers: Any = MISSING
    count: int = MISSING
    order: str = MISSING
    target: str = MISSING
    images: List[str] = MISSING
    seed: Optional[int] = MISSING
    data_root: Optional[str] = MISSING
    test_subset: Any = MISSING  # null, "all" or a count
    batch_size: int = MISSING
    device: str = MISSING


@dataclass
class PredictConfig:
    """``resnet-predict`` (conf/predict.yaml)."""

    ckpt: Optional[str] = MISSING
    images: List[str] = MISSING
    topk: int = MISSING
    batch_size: int = MISSING
    device: str = MISSING


@dataclass
class ExportConfig:
    """``resnet-export`` (conf/export.yaml)."""

    ckpt: Optional[str] = MISSING
    format: str = MISSING
    output: Optional[str] = MISSING
    batch_size: int = MISSING
    tolerance: float = MISSING
    opset: int = MISSING
    data_root: Optional[str] = MISSING


SCHEMAS = {"train_schema": TrainConfig, "gradcam_schema": GradcamConfig, "predict_schema": PredictConfig,
           "export_schema": ExportConfig}  # ConfigStore name (first in the YAML's defaults) -> schema


def register_configs() -> None:
    """Store :data:`SCHEMAS` in Hydra's ConfigStore (idempotent)."""
    for name, node in SCHEMAS.items():
        ConfigStore.instance().store(name=name, node=node)
