"""Diagnostics (resnet_cli.diagnostics.interpretation, layers, cam, plots) on a model trained by the session's real `resnet-train` run."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from resnet_cli.diagnostics import gradcam as cam, interpretation, plots
from resnet_cli.models import summary as layers
from resnet_cli.data.batches import TestBatches as Batches, normalize
from resnet_cli.errors import ConfigError
from resnet_cli.core.checkpoint import model_from_checkpoint
from resnet_cli.data import load_test_split
from resnet_cli.models import CustomResNet, ResNet18

from conftest import DATA_ROOT, TINY, call_cli

TITLE = re.compile(r"^(?P<true>\S+) -> (?P<pred>\S+) \(p=(?P<p>[01]\.\d\d)\)$")


@pytest.fixture(scope="module")
def trained(trained_run):
    """(model, ckpt, test batches, preds, probs) of the session's trained checkpoint, on the CPU."""
    model, ckpt = model_from_checkpoint(trained_run / "checkpoints" / "last.pt")
    images, labels, classes = load_test_split(ckpt["config"]["data"], ckpt["config"]["seed"])
    assert classes == ckpt["classes"]
    batches = Batches(images, labels, ckpt["mean"], ckpt["std"], 250, "cpu")
    with torch.no_grad():
        probs = torch.softmax(model(batches.x), 1)
    return model, ckpt, batches, probs.argmax(1), probs


def test_confusion_rows_are_true_class_and_class_accuracy_fractions():
    labels = np.array([0, 0, 0, 1, 1, 2])
    preds = np.array([0, 1, 1, 1, 1, 0])
    cm = interpretation.confusion_matrix(preds, labels, 3)
    assert cm.tolist() == [[1, 2, 0], [0, 2, 0], [1, 0, 0]]
    acc = interpretation.class_accuracy(preds, labels, ["a", "b", "c"])
    assert acc == pytest.approx({"a": 1 / 3, "b": 1.0, "c": 0.0})
    # a class with no test images has no accuracy rather than a made-up one
    assert interpretation.class_accuracy(preds, labels, ["a", "b", "c", "d"])["d"] is None


def test_class_acc_weighted_by_counts_is_test_acc(trained_run):
    m = json.loads((trained_run / "metrics.json").read_text())
    cm = np.array(m["confusion"])
    classes = m["dataset"]["classes"]
    assert cm.shape == (len(classes), len(classes))
    assert cm.sum() == m["dataset"]["test_size"]
    assert list(m["class_acc"]) == classes
    weighted = sum(m["class_acc"][c] * cm[i].sum() for i, c in enumerate(classes)) / cm.sum()
    assert weighted == pytest.approx(m["test_acc"], abs=1e-12)
    assert np.trace(cm) / cm.sum() == pytest.approx(m["test_acc"], abs=1e-12)
    assert all(0.0 <= a <= 1.0 for a in m["class_acc"].values())


def test_training_run_writes_diagnostics_and_summary(trained_run):
    plots = trained_run / "plots"
    for name in ("misclassified.png", "confusion_matrix.png"):
        assert (plots / name).stat().st_size > 5000, name
    m = json.loads((trained_run / "metrics.json").read_text())
    count = OmegaConf.load(trained_run / ".hydra" / "config.yaml").explain.count  # experiment=quick: 8
    mistakes = m["dataset"]["test_size"] - int(np.trace(np.array(m["confusion"])))
    grids = sorted((plots / "gradcam").glob("grid*.png"))  # 8 images a page: grid.png or grid_page_<k>_of_<n>.png
    assert len(grids) == max(1, -(-min(count, mistakes) // 8)) and all(g.stat().st_size > 5000 for g in grids), grids
    per_image = [p for p in (plots / "gradcam").glob("*.png") if not p.name.startswith("grid")]
    assert len(per_image) == min(count, mistakes) > 0
    summary = (trained_run / "model_summary.txt").read_text()
    assert "Total params: 6,573,130" in summary and "[1, 512, 4, 4]" in summary
    assert "Total mult-adds (M): 379.27" in summary and "Units." not in summary  # 379.27 M MACs per 32x32 image
    assert "Total params: 6,573,130" in (trained_run / "train.log").read_text()


def test_cam_maps_input_size_unit_range_not_constant(trained):
    model, ckpt, batches, preds, _ = trained
    x = batches.x[:8]
    for layer in layers.default_target_layers(model):
        for cls in (preds[:8].tolist(), batches.y[:8].tolist()):
            maps = cam.gradcam_maps(model, x, [layer], cls, "gradcam")
            assert maps.shape == (8, 32, 32) and maps.dtype == np.float32
            assert maps.min() >= 0.0 and maps.max() <= 1.0
            spread = maps.reshape(8, -1).max(1) - maps.reshape(8, -1).min(1)
            assert (spread > 0.5).sum() >= 6, (layer, spread)  # real heat maps, not flat
    # the map depends on the class explained
    a = cam.gradcam_maps(model, x, ["layer3"], [0] * 8)
    b = cam.gradcam_maps(model, x, ["layer3"], [1] * 8)
    assert np.abs(a - b).max() > 0.1


@pytest.mark.parametrize("method", sorted(cam.CAM_METHODS))
def test_every_method_gives_unit_range_maps(trained, method):
    model, _, batches, preds, _ = trained
    maps = cam.gradcam_maps(model, batches.x[:2], ["prep"], preds[:2].tolist(), method)
    assert maps.shape == (2, 32, 32) and maps.dtype == np.float32
    assert 0.0 <= maps.min() and maps.max() <= 1.0 and maps.max() > 0.5


def test_misclassified_grid_images_are_misclassified(trained):
    model, ckpt, batches, preds, probs = trained
    labels = batches.y
    idx = interpretation.find_misclassified(preds, probs, labels, count=12, order="confident", seed=0)
    assert len(idx) == min(12, int((preds != labels).sum()))
    conf = probs[idx, preds[idx]].numpy()
    assert np.all(np.diff(conf) <= 0)  # most confident mistakes first
    images = plots.denormalize(batches.x[idx], ckpt["mean"], ckpt["std"])
    fig = plots.plot_misclassified(images, labels[idx], preds[idx], conf, ckpt["classes"])
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == len(idx)
    # what the grid shows, normalised again, is what the model gets wrong, as its title says
    shown = torch.from_numpy(np.stack([np.asarray(ax.images[0].get_array()) for ax in axes]))
    x = normalize((shown * 255).round().to(torch.uint8), torch.tensor(ckpt["mean"]), torch.tensor(ckpt["std"]))
    with torch.no_grad():
        again = model(x).argmax(1)
    for ax, i, p in zip(axes, idx, again.tolist()):
        title = TITLE.match(ax.get_title())
        assert title, ax.get_title()
        assert title["true"] == ckpt["classes"][int(labels[i])] != title["pred"]
        assert title["pred"] == ckpt["classes"][p]
        assert p != int(labels[i])


def test_random_order_is_seeded(trained):
    _, _, batches, preds, probs = trained
    a = interpretation.find_misclassified(preds, probs, batches.y, count=10, order="random", seed=1)
    b = interpretation.find_misclassified(preds, probs, batches.y, count=10, order="random", seed=1)
    c = interpretation.find_misclassified(preds, probs, batches.y, count=10, order="random", seed=2)
    assert a.tolist() == b.tolist() != c.tolist()
    assert np.all(preds[a].numpy() != batches.y[a].numpy())
    with pytest.raises(ConfigError, match="order='worst'"):
        interpretation.find_misclassified(preds, probs, batches.y, order="worst")


def test_default_and_bad_target_layers():
    assert layers.default_target_layers(CustomResNet()) == ["layer3", "layer2"]
    assert layers.default_target_layers(ResNet18()) == ["layer4"]
    with pytest.raises(ConfigError, match=r"'layer5' .* use one of: conv1, bn1, layer1, layer2, layer3, layer4"):
        layers.resolve_target_layers(ResNet18(), ["layer5"])
    with pytest.raises(ConfigError, match="'fc' is not a feature-map layer"):
        layers.resolve_target_layers(CustomResNet(), ["fc"])
    assert layers.resolve_target_layers(ResNet18(), ["layer4.1"])[0] == ["layer4.1"]


def test_resnet_train_rejects_unknown_layer_before_training(tmp_path):
    if not (DATA_ROOT / "train").is_dir():
        pytest.skip(f"offline CIFAR-10 copy not found at {DATA_ROOT}")
    run = tmp_path / "run"
    proc = call_cli("resnet-train", [*TINY, "data.train_subset=100", "data.test_subset=50",
                                    "scheduler.max_lr=0.05", "scheduler.min_lr=0.005",  # 2 steps: too few for a range test
                                    "explain.layers=[layer9]", f"hydra.run.dir={run}"], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: layers: 'layer9' is not a feature-map layer of CustomResNet; "
        "use one of: prep, layer1, layer2, layer3, pool (or a dotted sub-module of them)")
    assert "Traceback" not in proc.stderr
    assert not (run / "checkpoints").exists()
