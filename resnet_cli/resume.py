"""What a resumed run takes from its checkpoint and what from the command line.

``resume=<checkpoints/last.pt>`` continues that run with the checkpoint's config
(:func:`resume_config`); only :data:`RESUME_FREE_KEYS` come from the command that resumes, and
an override of any other key that would change the run is refused before anything is written
(:func:`check_resume_overrides`). Used by :func:`resnet_cli.engine.prepare`; kept apart from
the engine because it is config logic, not a step of the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from .errors import ConfigError


def resume_config(cfg: DictConfig, ckpt: dict) -> DictConfig:
    """The checkpoint's config, so the resumed run keeps the same model, data and schedule;
    device, log interval, worker count, diagnostics and logger come from the current command line."""
    saved = OmegaConf.create(ckpt["config"])
    for key in ("trainer.device", "trainer.log_every", "data.num_workers", "explain", "logger"):
        OmegaConf.update(saved, key, OmegaConf.select(cfg, key), merge=False)
    saved.resume = cfg.resume
    return saved


RESUME_FREE_KEYS = ("trainer.device", "trainer.log_every", "data.num_workers", "explain", "logger", "resume")
"""Keys a resumed run takes from the command line (:func:`resume_config`); every other key
comes from the checkpoint, so an override of it is refused (:func:`check_resume_overrides`)."""


def command_line_overrides() -> list[str]:
    """The command's task overrides (``key=value``, ``group=option``) when Hydra runs the job,
    else ``[]`` (the Python API composes its config itself)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def _free(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in RESUME_FREE_KEYS)


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
    """Refuse a command-line override that a resume cannot apply.

    A resumed run continues the checkpoint's run with its config; only :data:`RESUME_FREE_KEYS`
    come from the command line. An override of any other key (or a config group) is accepted
    only when it gives the value the checkpoint's run had (e.g. the original command repeated
    with ``resume=`` added); otherwise the resume is refused, so nothing that was not applied
    is recorded in the new run's ``.hydra/overrides.yaml`` (the refused command leaves no run
    folder). ``cfg``: the command's composed config; ``overrides``: its task overrides.

    Raises:
        ConfigError: one line naming the first override that would change the run.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    saved = _comparable(OmegaConf.to_container(OmegaConf.create(ckpt["config"]), resolve=True))
    given = _comparable(OmegaConf.to_container(cfg, resolve=True))
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if _free(key):
            continue
        if key in given or "." in key:  # a key, or a group that is a config node (model=, data=)
            ours = OmegaConf.select(OmegaConf.create(given), key, default=None)
            theirs = OmegaConf.select(OmegaConf.create(saved), key, default=None)
            ours = OmegaConf.to_container(ours) if isinstance(ours, (DictConfig, ListConfig)) else ours
            theirs = OmegaConf.to_container(theirs) if isinstance(theirs, (DictConfig, ListConfig)) else theirs
        else:  # a preset of several keys (experiment=quick): the whole config must match
            ours, theirs = given, saved
        if ours != theirs:
            raise ConfigError(
                f"{override.input_line} cannot be applied on resume: resume={path} continues that run with "
                f"its own config (only {', '.join(k for k in RESUME_FREE_KEYS if k != 'resume')} may change); "
                "drop the override, or start a new run without resume= to use it")
