"""``logger=tensorboard``: scalars per epoch, LR and momentum per step, the run's plots as images
and the hyper-parameters, read back with TensorBoard's own event reader."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import call_cli, needs_data
from resnet_cli.errors import ConfigError
from resnet_cli.cli.build import logger_factories
from resnet_cli.tracking import NullLogger, TensorBoardLogger, build_logger
from tinynets import tiny, tiny_env


def _events(log_dir: Path) -> EventAccumulator:
    ea = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    ea.Reload()
    return ea


TB = {"_target_": "resnet_cli.tracking.TensorBoardLogger", "_partial_": True, "log_dir": "tb", "flush_secs": 30,
      "images": True, "max_images": 64}


def test_build_logger(tmp_path):
    assert isinstance(build_logger(logger_factories(None), Path("/nonexistent")), NullLogger)
    assert isinstance(build_logger(logger_factories({"tensorboard": TB}), Path("/nonexistent"), enabled=False), NullLogger)
    group = build_logger(logger_factories({"tensorboard": TB}), tmp_path)  # the YAML's _target_, given the run folder
    logger = group.loggers["tensorboard"]
    assert isinstance(logger, TensorBoardLogger) and logger.log_dir == tmp_path / "tb"
    group.close()
    with pytest.raises(ConfigError, match="logger.tensorboard.flush_secs=0"):
        build_logger(logger_factories({"tensorboard": {**TB, "flush_secs": 0}}), tmp_path)


def test_an_unknown_logger_target_fails_validation():
    import resnet_cli

    with pytest.raises(ConfigError, match="logger.tensorboard._target_=resnet_cli.tracking.NoSuchLogger cannot be imported"):
        resnet_cli.compose(["logger=tensorboard", "logger.tensorboard._target_=resnet_cli.tracking.NoSuchLogger"])


def test_images_are_logged_up_to_max_images_and_unreadable_ones_skipped(tmp_path, caplog):
    plots = tmp_path / "plots"
    (plots / "gradcam").mkdir(parents=True)
    for name in ("a.png", "gradcam/b.png", "gradcam/c.png"):
        Image.fromarray(np.full((8, 12, 3), 200, np.uint8)).save(plots / name)
    (plots / "broken.png").write_bytes(b"not a png")
    logger = TensorBoardLogger(tmp_path, "tb", flush_secs=30, images=True, max_images=10)
    with caplog.at_level(logging.WARNING, logger="resnet_cli"):
        assert logger.log_images(plots, step=3) == 3
    assert "broken.png" in caplog.text
    logger.close()
    ea = _events(tmp_path / "tb")
    assert sorted(ea.Tags()["images"]) == ["plots/a", "plots/gradcam/b", "plots/gradcam/c"]
    im = ea.Images("plots/gradcam/b")[0]
    assert (im.step, im.width, im.height) == (3, 12, 8)

    capped = TensorBoardLogger(tmp_path, "tb2", flush_secs=30, images=True, max_images=2)
    assert capped.log_images(plots, step=1) == 1  # a.png, then broken.png (skipped) fill the 2 slots
    capped.close()


@pytest.mark.slow
@needs_data
def test_a_run_with_logger_tensorboard(tmp_path):
    run_dir = tmp_path / "run"
    proc = call_cli("resnet-train", [*tiny(), "model._target_=tinynets.TinyNet", "logger=tensorboard",
                                    f"hydra.run.dir={run_dir}"], cwd=tmp_path, env=tiny_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    ea = _events(run_dir / "tensorboard")
    scalars = ea.Tags()["scalars"]

    lr = ea.Scalars("lr/step")  # every optimizer step: 200 images / 50 = 4 steps x 2 epochs
    assert [e.step for e in lr] == list(range(1, 9))
    assert [e.value for e in lr] == pytest.approx(ckpt["step_lrs"], rel=1e-6)
    assert len(ea.Scalars("momentum/step")) == 8
    for tag, key in (("acc/test", "test_acc"), ("acc/train", "train_acc"), ("loss/test", "test_loss"),
                     ("loss/train", "train_loss"), ("time/epoch_seconds", "seconds")):
        assert tag in scalars
        events = ea.Scalars(tag)
        assert [e.step for e in events] == [1, 2]
        assert [e.value for e in events] == pytest.approx([h[key] for h in ckpt["history"]], rel=1e-6, abs=1e-6)

    pngs = {"plots/" + p.relative_to(run_dir / "plots").with_suffix("").as_posix()
            for p in (run_dir / "plots").rglob("*.png")}
    assert {"plots/curves", "plots/lr_schedule"} <= pngs
    assert set(ea.Tags()["images"]) == pngs  # whatever plots the run wrote (diagnostics included)
    assert ea.PluginTagToContent("hparams")  # HParams dashboard: experiment, session start and end


def test_bad_logger_options_fail_validation_before_any_data(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from resnet_cli.cli.composition import config_dir
    from resnet_cli.cli.checks import validate
    from resnet_cli.cli.schema import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["data=image_folder", f"data.root={tmp_path}", "logger=tensorboard",
                                          "logger.tensorboard.max_images=-1"])
    with pytest.raises(ConfigError, match=r"logger.tensorboard.max_images=-1 is not allowed"):
        validate(cfg)


def test_logger_tensorboard_without_the_extra_says_how_to_install_it(monkeypatch):
    """tensorboard is an optional extra: without it, logger=tensorboard stops before any data with
    one line naming the extra (not an ImportError when the run starts logging)."""
    import importlib.util

    from resnet_cli.tracking import check_logger

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard raises ImportError, as when absent
    lcfg = {"tensorboard": {"_target_": "resnet_cli.tracking.TensorBoardLogger", "flush_secs": 10, "max_images": 5}}
    with pytest.raises(ConfigError, match=r"logger.tensorboard needs the tensorboard package.*resnet-cli\[tensorboard\]"):
        check_logger(lcfg)
    monkeypatch.undo()
    check_logger(lcfg)  # installed here: fine
