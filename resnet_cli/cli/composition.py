"""The training config from overrides, composed as ``resnet-train`` composes it (Hydra's compose API over
the same config tree and schema), for the Python API and :func:`resnet_cli.diagnostics.evaluation.evaluate`."""

from __future__ import annotations

import copy
from typing import Any, Sequence

from omegaconf import DictConfig, open_dict

from ..core.config_tree import config_dir  # noqa: F401 - the entry points import it from here
from ..errors import ConfigError


def _compose(overrides: Sequence[str], config_name: str) -> DictConfig:
    """Hydra compose of ``config_name`` with ``overrides``, without the hydra node."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.initialize import get_gh_backup, restore_gh_from_backup
    from omegaconf.errors import OmegaConfBaseException

    from .schema import register_configs
    from .error_messages import composition_message

    if isinstance(overrides, (str, bytes)):
        raise TypeError(f"overrides must be a list of strings such as ['trainer.epochs=2'], not {overrides!r}")
    overrides = [str(o) for o in overrides]
    register_configs()
    # set aside the global Hydra state a running app (or an earlier compose) may hold, and put it back
    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3", job_name=config_name):
            cfg = hydra_compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(composition_message(e, overrides)) from e  # the line resnet-train prints
    finally:
        restore_gh_from_backup(backup)
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


def compose(overrides: Sequence[str] = (), config_name: str = "train", *, validate: bool = True) -> DictConfig:
    """Compose the config (struct mode, without the ``hydra`` node) as ``resnet-train <overrides>`` does;
    callable any number of times, also inside a running Hydra app.

    Args:
        overrides: Hydra overrides, e.g. ``["data=image_folder", "data.root=/data/cifar10-jpeg"]``
            (https://hydra.cc/docs/advanced/override_grammar/basic/).
        config_name: the primary config (``train``).
        validate: also run :func:`resnet_cli.cli.checks.validate`; pass False to edit the config first
            (:func:`train` validates in any case).

    Raises:
        ConfigError: an unparsable override, unknown key or option, wrong type, or failed range check.
        TypeError: ``overrides`` given as one string instead of a list.
    """
    cfg = _compose(overrides, config_name)
    if validate:
        from .checks import validate as validate_config

        validate_config(cfg)
    return cfg


def as_config(cfg_or_overrides: Any) -> tuple[DictConfig, list[str] | None]:
    """(config, overrides or None) from a composed config (copied) or a list of overrides (composed, not
    validated).

    Raises:
        TypeError: neither a config nor a list of strings. ConfigError: see :func:`compose`.
    """
    if isinstance(cfg_or_overrides, DictConfig):
        return copy.deepcopy(cfg_or_overrides), None
    if cfg_or_overrides is None:
        cfg_or_overrides = []
    if isinstance(cfg_or_overrides, (str, bytes)) or not isinstance(cfg_or_overrides, Sequence):
        raise TypeError(
            "pass a config from resnet_cli.compose(...) or a list of overrides such as "
            f"['trainer.epochs=2'], not {type(cfg_or_overrides).__name__} {cfg_or_overrides!r}"
        )
    overrides = [str(o) for o in cfg_or_overrides]
    return compose(overrides, validate=False), overrides


