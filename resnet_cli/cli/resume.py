"""What a resumed run takes from its checkpoint and what from the command line: ``resume=`` continues
that run with the checkpoint's config; only :data:`RESUME_FREE_KEYS` come from the command, and an
override of any other key that would change the run is refused before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from ..errors import ConfigError

RESUME_FREE_KEYS = ("trainer.device", "trainer.log_every", "data.num_workers", "explain", "logger", "resume")
"""Keys a resumed run takes from the command line; every other key comes from the checkpoint."""
_CHANGEABLE = tuple(k for k in RESUME_FREE_KEYS if k != "resume")  # what a resume command may change


MOVABLE_KEYS = ("data.root",)
"""Keys a resume command may give to point at the run's data where it lies now; accepted only when
the data found there is the run's (:func:`resnet_cli.engine.check_moved_data`)."""


def resume_config(cfg: DictConfig, ckpt: dict, overrides: list[str] = ()) -> DictConfig:
    """The checkpoint's config with :data:`RESUME_FREE_KEYS` from ``cfg`` (the command line), and a
    :data:`MOVABLE_KEYS` key where ``overrides`` (the command's) give it."""
    saved = OmegaConf.create(ckpt["config"])
    given = {o.lstrip("+~").partition("=")[0] for o in overrides}
    for key in (*_CHANGEABLE, *(k for k in MOVABLE_KEYS if k in given)):
        OmegaConf.update(saved, key, OmegaConf.select(cfg, key), merge=False)
    saved.resume = cfg.resume
    return saved


def keep_precision(cfg: DictConfig, ckpt: dict, path: Any) -> None:
    """Set ``cfg.trainer.precision`` (a resumed run's config) to the precision the checkpoint's run
    computed in (its ``runtime.precision``, bf16 or fp32), so ``auto`` cannot change it on another
    device; a checkpoint from before that record keeps its ``trainer.precision``.

    Raises:
        ConfigError: the run computed in bf16 and this device has no native bf16.
    """
    from ..core.precision import device_name, native_bf16, resolve_device

    recorded = (ckpt.get("runtime") or {}).get("precision")
    if recorded not in ("bf16", "fp32"):
        return
    device = resolve_device(cfg.trainer.device)
    if recorded == "bf16" and not native_bf16(device):
        raise ConfigError(f"resume={path}: that run computed in bf16 and a resumed run keeps its precision, but "
                          f"{device.type} ({device_name(device)}) has no native bf16; resume it on a CUDA GPU or a "
                          "CPU with AVX512-BF16/AMX, or start a new run with trainer.precision=fp32")
    OmegaConf.update(cfg, "trainer.precision", recorded, merge=False)


def command_line_overrides() -> list[str]:
    """The command's task overrides when Hydra runs the job, else ``[]`` (the Python API)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def _free(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in RESUME_FREE_KEYS)


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node) if isinstance(node, (DictConfig, ListConfig)) else node


def _comparable(node: Any) -> Any:
    """A config node as plain values, ``data.root`` absolute and free keys dropped (for comparing)."""
    def walk(value: Any, prefix: str) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, f"{prefix}{k}.") for k, v in value.items() if not _free(f"{prefix}{k}")}
        if prefix == "data.root." and isinstance(value, str):
            return str(Path(value).expanduser().resolve())
        return value
    return walk(node, "")


def check_resume_overrides(cfg: DictConfig, ckpt: dict, path: Any, overrides: list[str]) -> None:
    """Refuse a command-line ``overrides`` entry that a resume cannot apply: one of a key outside
    :data:`RESUME_FREE_KEYS` (or a group) is accepted only when it gives the checkpoint's value, so
    the new run's ``.hydra/overrides.yaml`` records nothing that was not applied.

    Raises:
        ConfigError: one line naming the first override that would change the run.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    saved = _comparable(OmegaConf.to_container(OmegaConf.create(ckpt["config"]), resolve=True))
    given = _comparable(OmegaConf.to_container(cfg, resolve=True))
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if _free(key) or key in MOVABLE_KEYS:
            continue
        if key in given or "." in key:  # a key, or a group that is a config node (model=, data=)
            ours = _plain(OmegaConf.select(OmegaConf.create(given), key, default=None))
            theirs = _plain(OmegaConf.select(OmegaConf.create(saved), key, default=None))
        else:  # a preset of several keys (experiment=quick): the whole config must match
            ours, theirs = given, saved
        if ours != theirs:
            raise ConfigError(
                f"{override.input_line} cannot be applied on resume: resume={path} continues that run with "
                f"its own config (only {', '.join(_CHANGEABLE)} may change); "
                "drop the override, or start a new run without resume= to use it")


def check_not_diverged(ckpt: dict, path: Any, source: dict | None) -> None:
    """Refuse to resume a run whose ``metrics.json`` (``source``) says it diverged: the checkpoint is
    the last good one and resuming repeats the divergence step for step.

    Raises:
        ConfigError: with the advice that works, a new run with a lower ``scheduler.max_lr``.
    """
    if not source or source.get("status") != "diverged":
        return
    at = source.get("diverged_at") or {}
    max_lr = float((ckpt.get("lr") or {}).get("max_lr") or 0)
    lower = f"scheduler.max_lr={max_lr / 10:.3g}" if max_lr > 0 else "a lower scheduler.max_lr"
    raise ConfigError(f"resume={path}: that run diverged (at epoch {at.get('epoch', '?')} step {at.get('step', '?')}), "
                      "and resuming would repeat it step for step; start a new run without resume= and with a "
                      f"lower max_lr, e.g. {lower}")
