"""The typed boundary: the core's frozen RunConfig, built from a composed config, strict about its keys;
a stored config from before a key existed gains conf/'s default when it loads (the one migration)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import resnet_cli
from checkpoints import untrained_checkpoint
from resnet_cli.core.checkpoint import load_checkpoint, save_checkpoint
from resnet_cli.core.settings import RunConfig


def _plain(*overrides: str) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(resnet_cli.compose(list(overrides), validate=False), resolve=True)


def test_run_config_is_the_composed_config_typed_and_frozen():
    cfg = RunConfig.from_dict(_plain("trainer.epochs=3", "data.batch_size=64", "scheduler.max_lr=0.4"))
    assert (cfg.trainer.epochs, cfg.data.batch_size, cfg.scheduler.max_lr, cfg.scheduler.min_lr) == (3, 64, 0.4, "find")
    assert cfg.data.loader == "resnet_cli.data.load_cifar10" and cfg.model == "resnet_cli.models.CustomResNet"
    assert cfg.trainer.checkpoint_every == 1 and cfg.trainer.ema_decay is None  # conf/'s defaults, not Python's
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.trainer.epochs = 5


@pytest.mark.parametrize("group, key", [("trainer", "checkpoint_every"), ("data", "cache"), ("lr_finder", "min_rule")])
def test_a_missing_or_unknown_key_is_an_error_not_a_fallback(group, key):
    plain = _plain()
    del plain[group][key]
    with pytest.raises(TypeError, match=key):
        RunConfig.from_dict(plain)
    plain = _plain()
    plain[group]["colour"] = "red"
    with pytest.raises(TypeError, match="colour"):
        RunConfig.from_dict(plain)


def test_a_stored_config_from_before_a_key_existed_loads_with_the_keys_default(tmp_path):
    """A checkpoint written before trainer.checkpoint_every, label_smoothing, tta_flip, ema_decay, the
    data cache keys and optimizer.fused existed: the loaded config has conf/'s values for them (the
    behaviour such a run had), so it builds a RunConfig."""
    path = untrained_checkpoint(tmp_path / "new" / "last.pt")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    old = payload["config"]
    for group, key in [("trainer", "checkpoint_every"), ("trainer", "label_smoothing"), ("trainer", "tta_flip"),
                       ("trainer", "ema_decay"), ("data", "cache"), ("data", "cache_dir"), ("optimizer", "fused")]:
        del old[group][key]
    old["trainer"]["epochs"] = 7  # a value the run chose is kept
    save_checkpoint(tmp_path / "old" / "last.pt", payload)
    config = load_checkpoint(tmp_path / "old" / "last.pt")["config"]
    cfg = RunConfig.from_dict(config)
    assert cfg.trainer.checkpoint_every == 1 and cfg.trainer.label_smoothing == 0.0 and cfg.trainer.tta_flip is False
    assert cfg.trainer.ema_decay is None and cfg.trainer.epochs == 7
    assert cfg.data.cache is True and cfg.data.cache_dir is None  # image_folder's defaults (its _target_)
    assert config["optimizer"]["fused"] is None
