"""Keys renamed to the field's terms keep their old names as deprecated aliases: the old key still
works, gives the same run, and logs one warning line naming the new key."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.optim.lr_scheduler import OneCycleLR

import resnet_cli
from resnet_cli.cli.build import build_train_batches
from resnet_cli.data.batches.batched import GpuBatches
from resnet_cli.cli.checks import validate
from resnet_cli.data import DataBundle, channel_stats
from resnet_cli.errors import ConfigError

BASE = ["trainer.device=cpu", "trainer.epochs=4", "scheduler.max_epoch=1", "data.num_workers=0",
        "scheduler.max_lr=0.4", "scheduler.min_lr=0.004"]


@pytest.fixture(scope="module")
def tiny_bundle() -> DataBundle:
    """16 random 32x32 training images, 8 test images, 10 classes."""
    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 256, (16, 32, 32, 3), np.uint8), rng.integers(0, 256, (8, 32, 32, 3), np.uint8)
    mean, std = channel_stats(train)
    return DataBundle(name="synthetic", root="/nowhere", classes=[str(c) for c in range(10)], train_images=train,
                      train_labels=np.arange(16, dtype=np.int64) % 10, test_images=test,
                      test_labels=np.arange(8, dtype=np.int64) % 10, mean=mean, std=std)


def _lrs_of(cfg, steps_per_epoch: int = 5) -> list[float]:
    """The LR of every step of the One Cycle that ``cfg.scheduler`` builds (as the engine builds it)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.4, momentum=0.9, nesterov=True)
    sched = instantiate(cfg.scheduler)(opt, max_lr=0.4, min_lr=0.004, epochs=cfg.trainer.epochs,
                                       steps_per_epoch=steps_per_epoch)
    out = []
    for _ in range(cfg.trainer.epochs * steps_per_epoch):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def _torch_one_cycle(final_div_factor: float, epochs: int = 4, spe: int = 5) -> list[float]:
    """The schedule the code built before the rename (annihilation true: 1e4, false: 1), with torch alone."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.4, momentum=0.9, nesterov=True)
    sched = OneCycleLR(opt, max_lr=0.4, total_steps=epochs * spe, pct_start=1 / epochs, anneal_strategy="linear",
                       div_factor=0.4 / 0.004, final_div_factor=final_div_factor, cycle_momentum=True,
                       base_momentum=0.85, max_momentum=0.95, three_phase=False)
    out = []
    for _ in range(epochs * spe):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_the_default_schedule_is_unchanged_by_the_rename():
    """The default (final_div_factor 1e4) is the old default (annihilation true) step for step, bit for bit."""
    cfg = resnet_cli.compose(BASE)
    assert cfg.scheduler.final_div_factor == 1e4 and cfg.scheduler.annihilation is None
    assert _lrs_of(cfg) == _torch_one_cycle(1e4)


@pytest.mark.parametrize("old, factor", [("true", 1e4), ("false", 1.0)])
def test_annihilation_is_a_deprecated_alias(old, factor, caplog):
    with caplog.at_level(logging.WARNING, logger="resnet_cli.cli.checks"):
        cfg = resnet_cli.compose([*BASE, f"scheduler.annihilation={old}"])
    warnings = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "scheduler.annihilation" in warnings[0] and f"scheduler.final_div_factor={factor:g}" in warnings[0]
    assert cfg.scheduler.final_div_factor == factor and cfg.scheduler.annihilation is None
    assert _lrs_of(cfg) == _lrs_of(resnet_cli.compose([*BASE, f"scheduler.final_div_factor={factor}"]))
    assert _lrs_of(cfg) == _torch_one_cycle(factor)


def test_a_checkpoint_config_from_before_the_rename_is_migrated(caplog):
    """A resumed run's config comes from its checkpoint: plain keys, annihilation and no final_div_factor."""
    saved = OmegaConf.to_container(resnet_cli.compose(BASE), resolve=True)
    del saved["scheduler"]["final_div_factor"], saved["scheduler"]["annihilation"]
    saved["scheduler"]["annihilation"] = False
    saved["augment"]["backend"] = "gpu"
    cfg = OmegaConf.create(saved)
    with caplog.at_level(logging.WARNING, logger="resnet_cli.cli.checks"):
        validate(cfg)
    assert cfg.scheduler.final_div_factor == 1.0 and cfg.scheduler.annihilation is None
    assert cfg.augment.backend == "batched"
    assert sum("deprecated" in r.getMessage() for r in caplog.records) == 2


def test_final_div_factor_must_be_positive():
    with pytest.raises(ConfigError, match=r"scheduler.final_div_factor=0"):
        resnet_cli.compose([*BASE, "scheduler.final_div_factor=0"])


def test_backend_gpu_is_a_deprecated_alias_of_batched(caplog, tiny_bundle):
    with caplog.at_level(logging.WARNING, logger="resnet_cli.cli.checks"):
        cfg = resnet_cli.compose([*BASE, "augment.backend=gpu", "data.batch_size=4"])
    assert cfg.augment.backend == "batched"
    warnings = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert warnings == ["augment.backend=gpu is deprecated: use augment.backend=batched (the same batches)"]
    assert isinstance(build_train_batches(tiny_bundle, cfg, torch.device("cpu")), GpuBatches)
    with pytest.raises(ConfigError, match="augment.backend='dali'.*auto, albumentations or batched"):
        resnet_cli.compose([*BASE, "augment.backend=dali"])
