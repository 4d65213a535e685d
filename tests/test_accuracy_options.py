"""Accuracy options beyond the spec (issue 23, item 5), off by default: label smoothing of the
training loss and flip test-time augmentation at evaluation."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from resnet_cli.errors import ConfigError
from resnet_cli.evaluation import evaluate_batches as evaluate


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
    with pytest.raises(ConfigError, match=r"trainer.label_smoothing=1.0 is not allowed: a fraction in \[0, 1\)"):
        resnet_cli.compose([*base, "trainer.label_smoothing=1.0"])
