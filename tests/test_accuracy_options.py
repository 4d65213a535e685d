"""Accuracy options beyond the spec (issue 23, item 5), off by default: label smoothing of the
training loss, an EMA of the weights evaluated beside them, and flip test-time augmentation."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from conftest import needs_data
from resnet_cli.data.batches import TestBatches
from resnet_cli.core.ema import build_ema
from resnet_cli.errors import ConfigError
from resnet_cli.core.fit import evaluate_batches as evaluate


class Asymmetric(nn.Module):
    """Logits that depend on the left/right layout of the image, so a mirror changes them."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_flip_tta_averages_the_logits_of_each_image_and_its_mirror():
    torch.manual_seed(0)
    model = Asymmetric().eval()
    x, y = torch.randn(6, 3, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    batches = [(x[:4], y[:4]), (x[4:], y[4:])]
    plain = evaluate(model, batches, torch.device("cpu"), return_outputs=True)
    tta = evaluate(model, batches, torch.device("cpu"), return_outputs=True, tta_flip=True)
    with torch.no_grad():
        logits = 0.5 * (model(x) + model(x.flip(-1)))
    assert tta["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert torch.allclose(tta["probs"], F.softmax(logits, 1), atol=1e-6)
    assert tta["acc"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    with torch.no_grad():
        assert plain["loss"] == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-6)
    assert plain["loss"] != pytest.approx(tta["loss"])  # the option changes the result


def test_defaults_are_the_spec_and_bad_values_are_refused(tmp_path):
    import resnet_cli

    base = ["data=image_folder", f"data.root={tmp_path}"]
    cfg = resnet_cli.compose(base)
    assert (cfg.trainer.label_smoothing, cfg.trainer.tta_flip) == (0.0, False)
    cfg = resnet_cli.compose([*base, "trainer.label_smoothing=0.2", "trainer.tta_flip=true"])
    assert (cfg.trainer.label_smoothing, cfg.trainer.tta_flip) == (0.2, True)
    assert cfg.trainer.ema_decay is None
    with pytest.raises(ConfigError, match=r"trainer.label_smoothing=1.0 is not allowed: a fraction in \[0, 1\)"):
        resnet_cli.compose([*base, "trainer.label_smoothing=1.0"])
    with pytest.raises(ConfigError, match=r"trainer.ema_decay=1.0 is not allowed: null \(no EMA, the spec\) or a fraction"):
        resnet_cli.compose([*base, "trainer.ema_decay=1.0"])


def test_ema_is_decay_times_the_average_plus_the_rest_times_the_new_weights():
    model = nn.Linear(2, 1)
    ema = build_ema(model, 0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
        ema.update_parameters(model)  # the first update copies
        model.weight.fill_(3.0)
        ema.update_parameters(model)
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 0.9 * 1.0 + 0.1 * 3.0))
    assert ema.n_averaged.device.type == "cpu"  # tested on the host each update: no GPU sync
    assert build_ema(model, None) is None


@needs_data
def test_a_run_trains_with_smoothed_loss_and_evaluates_its_ema(tmp_path, monkeypatch):
    """trainer.label_smoothing reaches the training loss only (the test loss stays plain);
    trainer.ema_decay keeps an EMA that is checkpointed and evaluated each epoch."""
    import resnet_cli
    from tinynets import TinyNet, tiny

    smoothing, cross_entropy = [], F.cross_entropy

    def spy(*args, **kw):
        smoothing.append((kw.get("label_smoothing", 0.0), kw.get("reduction", "mean")))
        return cross_entropy(*args, **kw)

    monkeypatch.setattr(F, "cross_entropy", spy)
    run = resnet_cli.train([*tiny(train=200, test=100, epochs=2), "model._target_=tinynets.TinyNet", "+model.bn=true",
                            "trainer.label_smoothing=0.2", "trainer.ema_decay=0.9"], tmp_path / "run", verbose=False)
    assert (0.2, "mean") in smoothing and (0.0, "sum") in smoothing  # training steps and test passes
    assert {r for r in smoothing if r[1] == "mean"} == {(0.2, "mean")}  # no plain training step
    assert {r for r in smoothing if r[1] == "sum"} == {(0.0, "sum")}  # no smoothed test loss
    m = json.loads((run.run_dir / "metrics.json").read_text())
    assert m["ema_test_acc"] == m["history"][-1]["ema_test_acc"] and m["ema_test_loss"] is not None
    with open(run.run_dir / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[-1]["ema_test_loss"]) == pytest.approx(m["ema_test_loss"])
    ckpt = torch.load(run.checkpoint, map_location="cpu", weights_only=True)
    assert int(ckpt["ema"]["n_averaged"]) == 2 * 4  # every optimizer step: 200 images / 50, 2 epochs
    ema_model = TinyNet(bn=True, logit_scale=ckpt["config"]["model"]["logit_scale"])
    ema_model.load_state_dict({k.removeprefix("module."): v for k, v in ckpt["ema"].items() if k != "n_averaged"})
    assert not torch.equal(ema_model.fc.weight, ckpt["model"]["fc.weight"])
    d, cpu = run.data, torch.device("cpu")
    batches = TestBatches(d.test_images, d.test_labels, d.mean, d.std, 50, cpu)
    ev = evaluate(ema_model, batches, cpu, "auto")  # the run's precision
    assert ev["loss"] == pytest.approx(m["ema_test_loss"], rel=1e-3)  # ema_test_* are the EMA's own
    # the API's evaluate passes tta_flip through; weights=ema is for checkpoint paths only
    flipped = evaluate(ema_model, batches, cpu, "auto", tta_flip=True)
    assert resnet_cli.evaluate(ema_model, d, device="cpu", tta_flip=True).loss == pytest.approx(flipped["loss"], rel=1e-3)
    with pytest.raises(ConfigError, match="weights='ema' is not allowed: model, or ema for a checkpoint path"):
        resnet_cli.evaluate(ema_model, d, weights="ema")
