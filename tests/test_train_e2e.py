"""resnet-train end to end on the real offline copy: every file of the run folder, and learning."""

import csv
import json

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from resnet_cli.data.batches import TestBatches
from resnet_cli.core.checkpoint import load_checkpoint
from conftest import load_data
from resnet_cli.core.fit import evaluate_batches as evaluate
from resnet_cli.core.run_folder import health_warnings
from resnet_cli.models import CustomResNet

from conftest import needs_data

HISTORY = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds", "images_per_s"]


@needs_data
def test_run_folder_is_complete(trained_run):
    for rel in (".hydra/config.yaml", ".hydra/overrides.yaml", "train.log", "metrics.json", "history.csv",
                "checkpoints/last.pt", "plots/lr_finder.png", "plots/lr_schedule.png", "plots/curves.png"):
        assert (trained_run / rel).is_file(), rel
    for png in (trained_run / "plots").glob("*.png"):
        with Image.open(png) as im:
            assert im.size[0] > 300 and im.size[1] > 200
    assert not list(trained_run.rglob("*.tmp"))


@needs_data
def test_metrics_json(trained_run):
    m = json.loads((trained_run / "metrics.json").read_text())
    assert m["status"] == "completed" and m["epochs"] == 2 and m["device"] == "cpu"
    assert m["params"] == 6_573_130
    assert m["lr_rule"] == "steepest" and 0 < m["min_lr"] <= m["max_lr"] / 10
    assert [h["epoch"] for h in m["history"]] == [1, 2]
    assert all(set(HISTORY) <= set(h) for h in m["history"])
    for key in ("test_acc", "train_acc"):
        assert 0.0 <= m[key] <= 1.0 and m[key] == m["history"][-1][key]
    assert m["train_seconds"] > 0
    d = m["dataset"]
    assert d["name"] == "image_folder" and d["train_size"] == 1000 and d["test_size"] == 500
    assert d["classes"][:3] == ["airplane", "automobile", "bird"] and len(d["classes"]) == 10
    assert all(0.3 < v < 0.6 for v in d["mean"]) and all(0.15 < v < 0.35 for v in d["std"])
    # 500 test images: chance is 10 % +- 1.3 %; 2 epochs on 1,000 images must clearly beat it.
    assert m["test_acc"] >= 0.18, m["test_acc"]
    log = (trained_run / "train.log").read_text()
    assert "epoch  2/2" in log and "lr range test" in log
    t = m["timings"]  # where the command's time went (issue 14)
    assert set(t) == {"startup", "data", "batches", "lr_finder", "train", "eval", "diagnostics", "other", "total"}
    assert all(v >= 0 for v in t.values()) and t["startup"] > 0 and t["lr_finder"] > 0 and t["diagnostics"] > 0
    assert t["total"] == pytest.approx(sum(v for k, v in t.items() if k != "total"), abs=0.01)
    assert t["train"] == pytest.approx(m["train_seconds"], abs=0.01)
    assert "time: " in log and " = startup " in log
    assert isinstance(m["warnings"], list)


def test_health_warnings_name_the_cause_and_the_plots():
    ok = [{"epoch": 1, "test_loss": 1.2, "test_acc": 0.6}]
    assert health_warnings(ok, 10, 0.4) == []
    exploded = [{"epoch": 1, "test_loss": 2.6e7, "test_acc": 0.1}, {"epoch": 2, "test_loss": 2.4, "test_acc": 0.1}]
    loss, chance = health_warnings(exploded, 10, 0.2)
    assert "test loss reached 2.6e+07 at epoch 1" in loss and "max_lr 0.2" in loss and "plots/curves.png" in loss
    assert "at chance" in chance and "plots/lr_finder.png" in chance


@needs_data
def test_history_csv_matches_metrics(trained_run):
    m = json.loads((trained_run / "metrics.json").read_text())
    rows = list(csv.DictReader(open(trained_run / "history.csv")))
    assert list(rows[0]) == HISTORY and len(rows) == 2
    for row, h in zip(rows, m["history"]):
        assert float(row["test_acc"]) == h["test_acc"] and int(row["epoch"]) == h["epoch"]


@needs_data
def test_checkpoint_rebuilds_the_model_alone(trained_run):
    ck = load_checkpoint(trained_run / "checkpoints" / "last.pt")
    for key in ("model", "optimizer", "scheduler", "epoch", "config", "classes", "mean", "std"):
        assert key in ck, key
    assert ck["epoch"] == 2 and len(ck["classes"]) == 10
    cfg = OmegaConf.create(ck["config"])
    assert cfg.model._target_.endswith("CustomResNet") and cfg.trainer.epochs == 2
    model = CustomResNet(num_classes=10, logit_scale=cfg.model.logit_scale)  # the run's model node
    model.load_state_dict(ck["model"])
    if cfg.trainer.channels_last:  # evaluated as the run did: its layout, precision and batch size
        model = model.to(memory_format=torch.channels_last)
    data = load_data(cfg.data, cfg.seed)
    assert [round(v, 6) for v in data.mean] == [round(v, 6) for v in ck["mean"]]
    ev = evaluate(model, TestBatches(data.test_images, data.test_labels, ck["mean"], ck["std"], cfg.data.batch_size,
                                     "cpu"), torch.device("cpu"), cfg.trainer.precision)
    m = json.loads((trained_run / "metrics.json").read_text())
    assert abs(ev["acc"] - m["test_acc"]) < 1e-9 and abs(ev["loss"] - m["test_loss"]) < 1e-4
