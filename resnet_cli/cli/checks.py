"""Checks of a composed config, applied before any data is loaded.

The typed schema (:mod:`resnet_cli.cli.schema`) makes OmegaConf reject wrong types and unknown
keys while composing; :func:`validate` checks what composing lets through (:func:`check_structure`),
ranges, cross-key constraints and ``_target_`` arguments, and raises
:class:`~resnet_cli.errors.ConfigError` naming the key, the value and what is allowed.
"""

from __future__ import annotations

import inspect
import logging
import math
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..data.batches import TRAIN_BATCHES_ARGS, check_augment
from ..data.batches.base import DEPRECATED_BACKENDS
from .error_messages import unknown_key_message
from ..errors import ConfigError
from ..core.config_tree import migrate_targets
from ..core.settings import check_steps
from ..core.precision import resolve_device, resolve_precision
from ..data import DataConfig, check_subsets
from ..core.schedule import LR_RULES, MIN_LR_RULES, annihilation_factor, check_lrs, lr_setting

log = logging.getLogger(__name__)


def _need(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")


def resolve_fused(fused: Optional[bool], device: torch.device) -> Optional[bool]:
    """``optimizer.fused`` -> ``torch.optim.SGD``'s ``fused`` on ``device``: None (auto) is True on CUDA
    when torch has a fused SGD kernel there, else None (torch's default).

    Raises:
        ConfigError: ``optimizer.fused=true`` on a device without a fused SGD kernel.
    """
    if fused is False or (fused is None and device.type != "cuda"):
        return fused
    try:
        torch.optim.SGD([torch.zeros(1, device=device, requires_grad=True)], lr=0.1, fused=True)
    except (RuntimeError, TypeError) as e:
        if fused:
            raise ConfigError(f"optimizer.fused=true is not supported on {device} by torch "
                              f"{torch.__version__} ({e}); use optimizer.fused=null") from None
        return None
    return True


def _check_keys(node: DictConfig, prefix: str) -> None:
    """Refuse keys outside the schema, e.g. added with ``+trainer.foo=1`` (Hydra allows ``+``)."""
    schema = OmegaConf.get_type(node)
    if not is_dataclass(schema):
        return
    known = [f.name for f in fields(schema)]
    for key in node.keys():
        value = node[key]
        if key not in known:
            shown = None if isinstance(value, (DictConfig, ListConfig)) else value
            raise ConfigError(unknown_key_message(f"{prefix}{key}", known, shown))
        if isinstance(value, DictConfig):
            _check_keys(value, f"{prefix}{key}.")


def _check_target(node: DictConfig, key: str, given: Sequence[str]) -> None:
    """Refuse arguments that ``node._target_`` does not take (``given`` are passed by the code)."""
    target = node.get("_target_")
    if not target:
        raise ConfigError(f"{key} has no _target_: choose {key}=<option> (see conf/{key}/)")
    try:
        obj = get_object(str(target))
        params = inspect.signature(obj).parameters
    except Exception as e:  # noqa: BLE001 - import error, no signature...
        raise ConfigError(f"{key}._target_={target} cannot be imported ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [p for p in params if p not in given and p != "self"]
    for arg in node.keys():
        if str(arg).startswith("_") and str(arg).endswith("_"):
            continue  # _target_, _partial_, _recursive_, ...
        if arg not in params:
            value = node[arg]
            shown = None if isinstance(value, (DictConfig, ListConfig)) else value
            takes = f"takes {', '.join(accepted)}" if accepted else "takes no other arguments"
            raise ConfigError(f"unknown key {key}.{arg}" + (f"={shown}" if shown is not None else "")
                              + f": {target} has no argument {arg!r}; it {takes}")


def check_structure(cfg: DictConfig) -> None:
    """What composing lets through: keys added with ``+key=``, ``???`` values left unset, interpolations
    that do not resolve.

    Raises:
        ConfigError: naming the key.
    """
    try:
        missing = sorted(OmegaConf.missing_keys(cfg))
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        detail = str(e.msg or e).strip().splitlines()[0]
        raise ConfigError(f"{e.full_key or 'the config'}: cannot resolve its value ({detail})") from None
    if "data.root" in missing:
        raise ConfigError("data.root is not set: data=image_folder needs "
                          "data.root=<folder holding train/<class>/ and test/<class>/>")
    if missing:
        raise ConfigError(f"{missing[0]} is not set (it has no default): add {missing[0]}=<value>")
    _check_keys(cfg, "")


def migrate_deprecated(cfg: DictConfig) -> None:
    """Rewrite deprecated keys and values of a training config in place to their new names, logging one
    warning line each: ``scheduler.annihilation`` -> ``scheduler.final_div_factor`` (true: 1e4, false: 1;
    the same schedule) and ``augment.backend=gpu`` -> ``batched``. A checkpoint's config from before the
    renames is migrated here too (:func:`validate` runs on every config a run uses), and so are its
    ``_target_`` strings that name a moved module."""
    migrate_targets(cfg)
    s, a = cfg.get("scheduler"), cfg.get("augment")
    if s is not None and s.get("annihilation") is not None:
        old = s.annihilation
        factor = annihilation_factor(bool(old))
        log.warning("scheduler.annihilation is deprecated: use scheduler.final_div_factor=%g (the same schedule "
                    "as annihilation=%s)", factor, str(bool(old)).lower())
        OmegaConf.update(cfg, "scheduler.final_div_factor", factor, merge=False)
        OmegaConf.update(cfg, "scheduler.annihilation", None, merge=False)
    if a is not None and a.get("backend") in DEPRECATED_BACKENDS:
        new = DEPRECATED_BACKENDS[a.backend]
        log.warning("augment.backend=%s is deprecated: use augment.backend=%s (the same batches)", a.backend, new)
        OmegaConf.update(cfg, "augment.backend", new, merge=False)


def validate(cfg: DictConfig) -> None:
    """Check ranges and cross-key constraints of a composed training config, after migrating its
    deprecated keys (:func:`migrate_deprecated`, which changes ``cfg`` in place).

    Raises:
        ConfigError: naming the first offending key, its value and what is allowed.
    """
    check_structure(cfg)  # first: an interpolation that does not resolve is named as such
    migrate_deprecated(cfg)
    t, d, a, s, f = cfg.trainer, cfg.data, cfg.augment, cfg.scheduler, cfg.lr_finder
    _need(0 <= cfg.seed < 2**32, "seed", cfg.seed, "an integer in 0..4294967295 (0 <= seed < 2**32, NumPy's range)")
    _need(t.epochs > 0, "trainer.epochs", t.epochs, "must be >= 1")
    device = resolve_device(t.device)
    resolve_precision(t.precision, device)
    _need(t.log_every > 0, "trainer.log_every", t.log_every, "must be >= 1")
    ls = t.label_smoothing
    _need(0 <= ls < 1, "trainer.label_smoothing", ls,
          "a fraction in [0, 1) (0 = plain cross-entropy, the spec; airbench94 uses 0.2)")
    ema = t.ema_decay
    _need(ema is None or 0 < ema < 1, "trainer.ema_decay", ema,
          "null (no EMA, the spec) or a fraction in (0, 1), e.g. 0.99 (a horizon of about 100 steps)")
    _need(t.eval_every > 0, "trainer.eval_every", t.eval_every, "must be >= 1 (the last epoch is always evaluated)")
    every = t.checkpoint_every
    _need(every >= 1, "trainer.checkpoint_every", every,
          "must be >= 1 (epochs between checkpoints; the last epoch and an interrupt always write one)")
    _need(d.batch_size > 0, "data.batch_size", d.batch_size, "must be >= 1")
    _need(d.num_workers >= 0, "data.num_workers", d.num_workers, "must be >= 0")
    _need(d.image_size > 0, "data.image_size", d.image_size, "must be >= 1")
    for key in ("train_subset", "test_subset"):
        v = d[key]
        _need(v is None or v > 0, f"data.{key}", v, "null (all images) or a positive count")
    check_subsets(DataConfig.from_dict(OmegaConf.to_container(d, resolve=True)))
    if d.train_subset is not None:
        _need(d.batch_size <= d.train_subset, "data.batch_size", d.batch_size,
              f"must be <= data.train_subset={d.train_subset} (one step needs a full batch)")
    _need(1 <= s.max_epoch <= t.epochs, "scheduler.max_epoch", s.max_epoch,
          f"must be in 1..{t.epochs} (trainer.epochs={t.epochs}; equal to it: warm-up only, no descent)")
    max_lr, min_lr = lr_setting(s.max_lr, "max_lr"), lr_setting(s.min_lr, "min_lr")  # named before the steps
    if d.train_subset is not None:  # else known once the data is loaded (resnet_cli.engine.run)
        check_steps(cfg, d.train_subset // d.batch_size,
                    f"data.train_subset={d.train_subset} // data.batch_size={d.batch_size}")
    check_augment(backend=a.backend, pad=a.pad, pad_mode=a.pad_mode, flip_p=a.flip_p, cutout_holes=a.cutout_holes,
                  cutout_size=a.cutout_size, cutout_p=a.cutout_p, image_size=d.image_size)
    _check_target(a, "augment", given=TRAIN_BATCHES_ARGS)
    _need(s.anneal_strategy in ("linear", "cos"), "scheduler.anneal_strategy", s.anneal_strategy, "linear or cos")
    _need(s.final_div_factor > 0 and math.isfinite(s.final_div_factor), "scheduler.final_div_factor",
          s.final_div_factor, "a finite number > 0 (1: the cycle ends at min_lr; 1e4: at min_lr / 1e4)")
    if max_lr is not None and min_lr is not None:
        check_lrs(max_lr, min_lr)
    else:
        _need(f.start_lr > 0 and math.isfinite(f.start_lr), "lr_finder.start_lr", f.start_lr,
              "must be a finite number > 0")
        _need(f.end_lr > f.start_lr and math.isfinite(f.end_lr), "lr_finder.end_lr", f.end_lr,
              f"must be a finite number > lr_finder.start_lr={f.start_lr}")
        _need(f.step_mode in ("linear", "exp"), "lr_finder.step_mode", f.step_mode,
              "linear (lr_finder=warmup) or exp (lr_finder=exponential)")
        _need(f.num_iter is None or f.num_iter >= 5, "lr_finder.num_iter", f.num_iter,
              "null (the warm-up's length) or >= 5")
        _need(f.smooth_f is None or 0 < f.smooth_f < 1, "lr_finder.smooth_f", f.smooth_f,
              "null (scaled to the test's length) or a fraction in (0, 1)")
        _need(f.diverge_th > 1, "lr_finder.diverge_th", f.diverge_th, "must be > 1")
        _need(f.rule in LR_RULES, "lr_finder.rule", f.rule, "one of " + ", ".join(LR_RULES))
        _need(f.min_rule in MIN_LR_RULES, "lr_finder.min_rule", f.min_rule, "one of " + ", ".join(MIN_LR_RULES))
    if "explain" in cfg:
        from ..diagnostics.gradcam import check_options

        e = cfg.explain
        check_options(e.count, e.order, e.method, e.target, prefix="explain.")
    if cfg.get("logger") is not None:
        from ..tracking import check_logger

        check_logger(cfg.logger)
        for name, node in cfg.logger.items():
            _check_target(node, f"logger.{name}", given=("run_dir", "group"))
    _need(cfg.optimizer.weight_decay >= 0, "optimizer.weight_decay", cfg.optimizer.weight_decay, "must be >= 0")
    resolve_fused(cfg.optimizer.fused, device)
    if cfg.resume is not None:
        _need(Path(cfg.resume).is_file(), "resume", cfg.resume, "the path of an existing checkpoints/last.pt")
    if not cfg.model.get("_target_"):
        raise ConfigError("model has no _target_: choose model=custom_resnet or model=resnet18")
    _check_target(cfg.model, "model", given=("num_classes",))
    scale = cfg.model.get("logit_scale")
    _need(scale is None or (math.isfinite(scale) and scale > 0), "model.logit_scale", scale,
          "must be a finite number > 0 (it multiplies the logits; 1.0 = unscaled)")
    _check_target(cfg.optimizer, "optimizer", given=("params", "lr"))
