"""The typed, frozen config the core runs on: :class:`RunConfig`, built once by the front ends (the CLI
and the Python API) from the composed and validated YAML (:meth:`RunConfig.from_dict`), or from a
checkpoint's stored config after :func:`resnet_cli.core.config_tree.migrate_config`. Each group is a
frozen dataclass (``data``: :class:`resnet_cli.data.DataConfig`) whose fields are the YAML's keys; the defaults live in ``conf/`` only, so a missing or
unknown key is an error here, not a silent fallback. :class:`JobInfo`: where a run sits in its command.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import ConfigError

if TYPE_CHECKING:  # this module stays light: the entry points import JobInfo before any config error
    from ..data import DataConfig


@dataclass(frozen=True)
class JobInfo:
    """One job of a command; the default is a single run (what the Python API passes).

    ``multirun``: a job of a Hydra multirun (``-m`` or a sweeper). ``first``: a single run or job 0,
    where what is shown once per command is shown. ``sweep_dir``: the absolute ``hydra.sweep.dir`` in
    a multirun, else None (the trackers' group).
    """

    multirun: bool = False
    first: bool = True
    sweep_dir: str | None = None


@dataclass(frozen=True)
class Trainer:
    """``trainer.*`` (conf/train.yaml): epochs, device, precision, the loop's options."""

    epochs: int
    device: str
    precision: str
    compile: bool
    channels_last: bool
    log_every: int
    eval_every: int
    checkpoint_every: int
    label_smoothing: float
    tta_flip: bool
    ema_decay: float | None


@dataclass(frozen=True)
class Scheduler:
    """What the core reads of ``scheduler.*``: the LRs (a number or ``find``) and the peak epoch."""

    max_lr: float | str
    min_lr: float | str
    max_epoch: int


@dataclass(frozen=True)
class RangeTest:
    """``lr_finder.*`` (conf/lr_finder/): the LR range test's settings."""

    step_mode: str
    start_lr: float
    end_lr: float
    num_iter: int | None
    rule: str
    min_rule: str
    smooth_f: float | None
    diverge_th: float


@dataclass(frozen=True)
class Explain:
    """``explain.*``: the end-of-run diagnostics."""

    count: int
    order: str
    method: str
    layers: str | list[str] | None
    target: str


@dataclass(frozen=True)
class RunConfig:
    """A training run's config. ``resolved``: the whole config as plain values (what the checkpoint
    stores and what a resumed run compares), read-only by convention."""

    seed: int
    resume: str | None
    trainer: Trainer
    data: DataConfig
    scheduler: Scheduler
    lr_finder: RangeTest
    explain: Explain
    model: str
    weight_decay: float
    augment: Mapping[str, Any]
    resolved: Mapping[str, Any] = dataclasses.field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> RunConfig:
        """From a composed config as plain values (``OmegaConf.to_container(cfg, resolve=True)``).

        Raises:
            KeyError, TypeError: a key missing or unknown (the config was not validated or migrated).
        """
        from ..data import DataConfig

        s = cfg["scheduler"]
        return cls(
            seed=int(cfg["seed"]), resume=cfg["resume"], trainer=Trainer(**cfg["trainer"]),
            data=DataConfig.from_dict(cfg["data"]),
            scheduler=Scheduler(s["max_lr"], s["min_lr"], int(s["max_epoch"])),
            lr_finder=RangeTest(**cfg["lr_finder"]), explain=Explain(**cfg["explain"]),
            model=str(cfg["model"]["_target_"]), weight_decay=float(cfg["optimizer"]["weight_decay"]),
            augment={k: v for k, v in cfg["augment"].items() if not k.startswith("_")}, resolved=cfg)


MIN_WARMUP_STEPS = 2  # torch's OneCycleLR divides by the warm-up's length - 1
MIN_RANGE_TEST_STEPS = 5  # lr_finder.num_iter >= 5 (null: the warm-up's steps)


def check_steps(cfg: Any, steps_per_epoch: int, how: str | None = None) -> None:
    """Refuse a schedule too short for One Cycle's warm-up or the range test (``cfg``: a
    :class:`RunConfig` or a composed config, read by attribute). ``steps_per_epoch``:
    optimizer steps per epoch; ``how``: how that number came about, for the message.

    Raises:
        ConfigError: warm-up steps (steps_per_epoch x scheduler.max_epoch) below :data:`MIN_WARMUP_STEPS`,
            or below :data:`MIN_RANGE_TEST_STEPS` when the range test runs the warm-up's length.
    """
    from .schedule import lr_setting

    d, s, f = cfg.data, cfg.scheduler, cfg.lr_finder
    warmup = steps_per_epoch * int(s.max_epoch)
    finds = lr_setting(s.max_lr, "max_lr") is None or lr_setting(s.min_lr, "min_lr") is None
    need, what = MIN_WARMUP_STEPS, "One Cycle's warm-up needs"
    if finds and f.num_iter is None and warmup < MIN_RANGE_TEST_STEPS:
        need, what = MIN_RANGE_TEST_STEPS, "the range test (lr_finder.num_iter=null: the warm-up's length) needs"
    if warmup >= need:
        return
    how = how or f"data.batch_size={d.batch_size}"
    smaller = max(1, (steps_per_epoch * int(d.batch_size)) // -(-need // int(s.max_epoch)))
    raise ConfigError(
        f"scheduler.max_epoch={s.max_epoch} is too short: {steps_per_epoch} step(s) per epoch ({how}) x "
        f"max_epoch {s.max_epoch} = {warmup} warm-up step(s), but {what} at least {need}; "
        f"lower data.batch_size (e.g. data.batch_size={smaller}), use more images or raise scheduler.max_epoch")
