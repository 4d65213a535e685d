"""The front ends' half of the typed boundary: a composed training config (a DictConfig) in, an
:class:`~resnet_cli.engine.Recipe` out: the typed :class:`~resnet_cli.core.settings.RunConfig` and
the objects the config's ``_target_``s name, built here with Hydra's ``instantiate`` (as partials: the
engine calls them when it needs the model, the optimizer, the batches, the trackers). A resumed
run's config is merged with its checkpoint's here too (:mod:`resnet_cli.cli.resume`).
"""

from __future__ import annotations

from typing import Any, Mapping

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ..core.checkpoint import RESUME_KEYS, check_keys, load_checkpoint, run_dir_of
from ..core.precision import resolve_device
from ..core.run_folder import read_metrics_json
from ..core.settings import RunConfig
from ..engine import Recipe
from ..errors import CheckpointError, ConfigError
from ..tracking import check_logger
from .checks import resolve_fused, validate
from .resume import check_not_diverged, check_resume_overrides, command_line_overrides, keep_precision, resume_config


def build_recipe(cfg: DictConfig) -> Recipe:
    """The :class:`~resnet_cli.engine.Recipe` of a composed, validated ``train`` config (with
    ``resume``: of the checkpoint's config merged with the command line, validated here).

    Raises:
        ConfigError: a bad config. CheckpointError: a bad ``resume``.
    """
    resume = None
    if cfg.resume:
        cfg, resume = resumed_config(cfg)
    device = resolve_device(cfg.trainer.device)
    plain = OmegaConf.to_container(cfg, resolve=True)
    return Recipe(
        config=RunConfig.from_dict(plain), model=instantiate(cfg.model, _partial_=True),
        optimizer=instantiate(cfg.optimizer, fused=resolve_fused(cfg.optimizer.fused, device)),
        scheduler=instantiate(cfg.scheduler), augment=instantiate(cfg.augment), device=device,
        loggers=logger_factories(plain["logger"]), resume=resume)


def logger_factories(lcfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """``cfg.logger`` (name -> tracker config, plain values) checked (:func:`~resnet_cli.tracking.check_logger`)
    and made into partials of each ``_target_`` that :func:`~resnet_cli.tracking.build_logger` calls with
    the run folder and the sweep group.

    Raises:
        ConfigError: see :func:`~resnet_cli.tracking.check_logger`."""
    check_logger(lcfg)
    return {name: instantiate({**node, "_partial_": True}) for name, node in (lcfg or {}).items()}


def resumed_config(cfg: DictConfig) -> tuple[DictConfig, dict]:
    """``(config, checkpoint)`` of ``resume=``: the checkpoint's config with what the command may
    change (:func:`~resnet_cli.cli.resume.resume_config`), its precision kept, validated.

    Raises:
        CheckpointError: not a resumable checkpoint. ConfigError: an override a resume cannot apply,
            a diverged or completed run, a bf16 run on a device without bf16.
    """
    path = cfg.resume
    ckpt = load_checkpoint(path, key="resume")
    if "optimizer" not in ckpt:
        raise CheckpointError(f"{path} holds no optimizer state and cannot be resumed")
    check_keys(ckpt, path, RESUME_KEYS)
    check_not_diverged(ckpt, path, read_metrics_json(run_dir_of(path)))
    check_resume_overrides(cfg, ckpt, path, command_line_overrides())
    cfg = resume_config(cfg, ckpt, command_line_overrides())
    keep_precision(cfg, ckpt, path)
    validate(cfg)  # the merged config (the entry point validated the command line's)
    if ckpt["epoch"] >= cfg.trainer.epochs:
        raise ConfigError(f"resume={path}: that run completed all {cfg.trainer.epochs} epochs, so "
                          "there is nothing left to do; to train longer start a new run (without resume=) "
                          "with a larger trainer.epochs")
    return cfg, ckpt


def build_train_batches(bundle: Any, cfg: DictConfig, device: Any) -> Any:
    """A run's training batches of ``bundle`` (a :class:`~resnet_cli.data.DataBundle`): ``cfg.augment``'s
    partial called with ``device``, ``cfg.data.batch_size``/``num_workers``/``image_size`` and ``cfg.seed``.

    Raises:
        ConfigError: a bad augment value or a batch larger than the data."""
    d = cfg.data
    return instantiate(cfg.augment)(bundle, device, batch_size=int(d.batch_size), seed=int(cfg.seed),
                                    num_workers=int(d.num_workers), image_size=int(d.image_size))
