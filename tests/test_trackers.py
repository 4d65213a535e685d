"""Experiment trackers as config, several at once (``logger=[tensorboard,csv,mlflow,wandb]``):
each is read back with its own reader (MlflowClient, the csv module, TensorBoard's event
reader, W&B's protobuf records), a sweep's jobs share a group, and a missing package or a bad
option is one line before any data loads."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import call_cli, needs_data, one_line_error
from resnet_cli.errors import ConfigError
from resnet_cli.cli.build import logger_factories
from resnet_cli.tracking import LoggerGroup, NullLogger, build_logger, check_logger
from tinynets import tiny, tiny_env

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed: pip install -e '.[test]'")
wandb = pytest.importorskip("wandb", reason="the wandb extra is not installed: pip install -e '.[test]'")
from mlflow import MlflowClient  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from wandb_files import read_run  # noqa: E402

ROWS = [{"epoch": 1, "lr": 0.02, "train_loss": 2.1, "train_acc": 0.2, "test_loss": None, "test_acc": None,
         "seconds": 3.0, "images_per_s": 300.0},
        {"epoch": 2, "lr": 0.01, "train_loss": 1.6, "train_acc": 0.4, "test_loss": 1.7, "test_acc": 0.38,
         "seconds": 2.5, "images_per_s": 360.0}]
HPARAMS = {"max_lr": 0.05, "min_lr": 0.005, "lr_rule": "given", "batch_size": 50, "seed": 3, "model": "TinyNet"}


def _cfg(tmp_path: Path, *names: str) -> dict:
    """cfg.logger as conf/logger/*.yaml compose it, with stores under tmp_path."""
    import resnet_cli
    from omegaconf import OmegaConf

    cfg = resnet_cli.compose([f"logger=[{','.join(names)}]", "data=image_folder", f"data.root={tmp_path}",
                              *(_mlflow_store(tmp_path) if "mlflow" in names else [])], validate=False)
    return OmegaConf.to_container(cfg.logger, resolve=True)


def _store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _mlflow_store(tmp_path: Path) -> list[str]:
    """Overrides putting the MLflow store and its artifacts under tmp_path."""
    return [f"logger.mlflow.tracking_uri={_store(tmp_path)}",
            f"logger.mlflow.artifact_location={(tmp_path / 'mlartifacts').as_uri()}"]


def _drive(logger, plots: Path) -> None:
    """What a run does with its loggers: 4 steps, 2 epochs (the first not evaluated), plots, end."""
    logger.start(HPARAMS)
    for step in range(1, 5):
        logger.log_step(step, 0.01 * step, 0.95 - 0.01 * step)
        if step % 2 == 0:
            logger.log_epoch(ROWS[step // 2 - 1])
    logger.log_images(plots, 2)
    logger.finish({"test_acc": 0.38, "test_loss": 1.7, "train_acc": 0.4, "train_loss": 1.6, "status": "completed"})
    logger.close()


def _plots(run_dir: Path) -> Path:
    plots = run_dir / "plots"
    (plots / "gradcam").mkdir(parents=True)
    for name in ("curves.png", "gradcam/grid.png"):
        Image.fromarray(np.full((8, 12, 3), 100, np.uint8)).save(plots / name)
    return plots


def test_four_trackers_at_once_are_read_back_by_their_own_readers(tmp_path):
    run_dir = tmp_path / "run"
    logger = build_logger(logger_factories(_cfg(tmp_path, "tensorboard", "csv", "mlflow", "wandb")), run_dir,
                          group="sweep-A")
    assert isinstance(logger, LoggerGroup) and list(logger.loggers) == ["tensorboard", "csv", "mlflow", "wandb"]
    _drive(logger, _plots(run_dir))

    # MLflow, with its own client: params, per-step and per-epoch metrics, plots as artifacts, the group tag
    client = MlflowClient(tracking_uri=_store(tmp_path))
    (run,) = client.search_runs([client.get_experiment_by_name("resnet-cli").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["sweep"] == "sweep-A"
    assert run.data.params["max_lr"] == "0.05" and run.data.params["seed"] == "3"
    lr = client.get_metric_history(run.info.run_id, "lr")
    assert [m.step for m in lr] == [1, 2, 3, 4] and [m.value for m in lr] == pytest.approx([0.01, 0.02, 0.03, 0.04])
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "test_acc")] == [(2, 0.38)]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "images_per_s")] == [1, 2]
    assert [m.value for m in client.get_metric_history(run.info.run_id, "epoch_lr")] == [0.02, 0.01]
    assert run.data.metrics["final_test_acc"] == 0.38
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert arts == {"plots/curves.png", "plots/gradcam"}
    assert [a.path for a in client.list_artifacts(run.info.run_id, "plots/gradcam")] == ["plots/gradcam/grid.png"]

    # CSV
    with open(run_dir / "csv" / "epochs.csv", newline="") as f:
        epochs = list(csv.DictReader(f))
    assert [r["test_acc"] for r in epochs] == ["", "0.38"] and epochs[1]["images_per_s"] == "360.0"
    with open(run_dir / "csv" / "steps.csv", newline="") as f:
        assert [float(r["lr"]) for r in csv.DictReader(f)] == pytest.approx([0.01, 0.02, 0.03, 0.04])
    meta = json.loads((run_dir / "csv" / "hparams.json").read_text())
    assert meta["group"] == "sweep-A" and meta["hparams"]["max_lr"] == 0.05 and meta["final"]["test_acc"] == 0.38

    # TensorBoard
    ea = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    ea.Reload()
    assert [e.step for e in ea.Scalars("acc/test")] == [2]  # the epoch without evaluation is skipped
    assert [e.value for e in ea.Scalars("speed/images_per_s")] == [300.0, 360.0]
    assert set(ea.Tags()["images"]) == {"plots/curves", "plots/gradcam/grid"}

    # W&B offline: its transaction log, parsed with wandb's protobuf messages
    wb = read_run(run_dir)
    assert wb["group"] == "sweep-A" and wb["config"]["max_lr"] == 0.05
    steps = [h for h in wb["history"] if "lr" in h]
    assert [h["step"] for h in steps] == [1, 2, 3, 4]
    assert [h["lr"] for h in steps] == pytest.approx([0.01, 0.02, 0.03, 0.04])
    epochs = [h for h in wb["history"] if "train_loss" in h]
    assert [h["epoch"] for h in epochs] == [1, 2] and "test_acc" not in epochs[0] and epochs[1]["test_acc"] == 0.38
    assert wb["summary"]["final_test_acc"] == 0.38
    (images,) = [h for h in wb["history"] if "plots/curves/_type" in h]
    assert images["plots/curves/_type"] == "image-file" and images["plots/gradcam/grid/_type"] == "image-file"
    assert (next((run_dir / "wandb").glob("offline-run-*")) / "files" / images["plots/curves/path"]).is_file()


def test_no_logger_and_other_ranks_get_the_null_logger(tmp_path):
    assert isinstance(build_logger(logger_factories(None), tmp_path), NullLogger)
    assert isinstance(build_logger(logger_factories({}), tmp_path), NullLogger)
    assert isinstance(build_logger(logger_factories(_cfg(tmp_path, "csv")), tmp_path, enabled=False), NullLogger)
    assert not (tmp_path / "csv").exists()


def test_a_tracker_that_is_not_installed_names_its_extra(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError, as when it is absent
    with pytest.raises(ConfigError, match=r"^logger.mlflow needs the mlflow package, which is not installed: "
                                          r"pip install 'resnet-cli\[mlflow\]'$"):
        check_logger(_cfg(tmp_path, "csv", "mlflow"))
    check_logger(_cfg(tmp_path, "csv"))  # the others are fine


def test_a_failing_tracker_closes_those_already_started(tmp_path):
    cfg = _cfg(tmp_path, "tensorboard", "wandb")
    cfg["wandb"]["project"] = object()  # anything that makes the second constructor raise
    cfg["wandb"]["_target_"] = "resnet_cli.tracking.NoSuchLogger"
    with pytest.raises(ConfigError, match="logger.wandb._target_=resnet_cli.tracking.NoSuchLogger cannot be imported"):
        build_logger(logger_factories(cfg), tmp_path)


def test_the_preset_and_the_list_compose_the_same_trackers(tmp_path):
    import resnet_cli

    many = resnet_cli.compose(["logger=many_loggers", "data=image_folder", f"data.root={tmp_path}"], validate=False)
    listed = resnet_cli.compose(["logger=[csv,tensorboard,mlflow]", "data=image_folder", f"data.root={tmp_path}"],
                                validate=False)
    assert many.logger == listed.logger and list(many.logger) == ["csv", "tensorboard", "mlflow"]


@pytest.mark.parametrize("override, needle", [
    ("logger.tensorboard.flush_secs=0", "logger.tensorboard.flush_secs=0 is not allowed"),
    ("logger.wandb.mode=cloud", "logger.wandb.mode='cloud' is not allowed: one of offline, online, disabled"),
    ("logger.mlflow.no_such_key=1", "logger.mlflow.no_such_key"),
])
def test_bad_tracker_options_are_one_line_before_any_data(tmp_path, override, needle):
    proc = call_cli("resnet-train", ["data=image_folder", f"data.root={tmp_path}", "logger=[tensorboard,mlflow,wandb]",
                                    override, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, timeout=120)
    one_line_error(proc, 2, needle)


@pytest.mark.slow
@needs_data
def test_a_sweep_with_three_trackers_groups_its_jobs(tmp_path):
    """Two real jobs (TinyNet) with csv, mlflow and wandb: every job is read back, grouped by the sweep folder."""
    store = _store(tmp_path)
    sweep = tmp_path / "sweep"
    proc = call_cli("resnet-train", ["-m", *tiny(), "model._target_=tinynets.TinyNet", "seed=0,1",
                                    "logger=[csv,mlflow,wandb]", *_mlflow_store(tmp_path),
                                    f"hydra.sweep.dir={sweep}"], cwd=tmp_path, env=tiny_env(), timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    group = str(sweep.resolve())
    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs([client.get_experiment_by_name("resnet-cli").experiment_id],
                              filter_string=f"tags.sweep = '{group}'")
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1"]
    for job in ("0", "1"):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["epochs_done"] == 2 and "error" not in metrics
        (run,) = [r for r in runs if r.data.params["seed"] == job]
        assert run.info.status == "FINISHED"
        acc = client.get_metric_history(run.info.run_id, "test_acc")
        assert [m.step for m in acc] == [h["epoch"] for h in metrics["history"]]
        assert [m.value for m in acc] == pytest.approx([h["test_acc"] for h in metrics["history"]])
        assert len(client.get_metric_history(run.info.run_id, "lr")) == 8  # 4 steps x 2 epochs
        assert "plots/curves.png" in {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        wb = read_run(sweep / job)
        assert wb["group"] == group and wb["config"]["seed"] == int(job)
        assert wb["summary"]["final_test_acc"] == pytest.approx(metrics["test_acc"])
        meta = json.loads((sweep / job / "csv" / "hparams.json").read_text())
        assert meta["group"] == group and meta["final"]["test_acc"] == pytest.approx(metrics["test_acc"])
