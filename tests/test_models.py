"""The two networks: exact parameter counts, output shapes, probability path."""

import pytest
import torch

from resnet_cli.models import CustomResNet, ResNet18, count_parameters


@pytest.mark.parametrize("cls, params", [(CustomResNet, 6_573_130), (ResNet18, 11_173_962)])
def test_parameter_count_and_shapes(cls, params):
    model = cls(num_classes=10).eval()
    assert count_parameters(model) == params
    x = torch.randn(4, 3, 32, 32)
    logits = model(x)
    assert logits.shape == (4, 10) and logits.dtype == torch.float32
    proba = model.predict_proba(x)
    assert torch.allclose(proba.sum(1), torch.ones(4), atol=1e-5)
    assert torch.equal(model.predict(x), logits.argmax(1))


def test_custom_resnet_layer_shapes():
    model = CustomResNet().eval()
    x = torch.randn(2, 3, 32, 32)
    shapes = {}
    for name in ("prep", "layer1", "layer2", "layer3", "pool"):
        getattr(model, name).register_forward_hook(lambda m, i, o, n=name: shapes.__setitem__(n, tuple(o.shape)))
    model(x)
    assert shapes == {"prep": (2, 64, 32, 32), "layer1": (2, 128, 16, 16), "layer2": (2, 256, 8, 8),
                      "layer3": (2, 512, 4, 4), "pool": (2, 512, 1, 1)}


def test_num_classes_changes_head():
    assert CustomResNet(num_classes=3)(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    assert count_parameters(CustomResNet(num_classes=3)) == 6_573_130 - 7 * 513


def test_logit_scale_multiplies_the_logits_and_defaults_to_the_spec():
    import torch

    from resnet_cli.models import CustomResNet

    torch.manual_seed(0)
    spec = CustomResNet(10).eval()
    scaled = CustomResNet(10, logit_scale=0.125).eval()
    scaled.load_state_dict(spec.state_dict())  # no extra parameters or buffers
    x = torch.randn(2, 3, 32, 32)
    assert spec.logit_scale == 1.0
    assert torch.allclose(scaled(x), 0.125 * spec(x), atol=1e-6)


def test_a_checkpoint_rebuilds_the_runs_model_arguments_and_layout(tmp_path):
    """resnet-gradcam/predict/export rebuild the network from the checkpoint: its model node's
    arguments (logit_scale) and the run's channels-last layout, so they compute what the run did."""
    from resnet_cli.core.checkpoint import model_from_checkpoint, save_checkpoint

    trained = CustomResNet(10, logit_scale=0.125).eval()
    config = {"model": {"_target_": "resnet_cli.models.CustomResNet", "logit_scale": 0.125},
              "data": {"_target_": "resnet_cli.data.load_image_folder"}, "trainer": {"channels_last": True}}
    path = save_checkpoint(tmp_path / "last.pt", {"model": trained.state_dict(), "config": config,
                                                   "classes": [str(c) for c in range(10)], "mean": [0.5] * 3,
                                                   "std": [0.25] * 3, "image_size": 32})
    model, _ = model_from_checkpoint(path)
    assert model.logit_scale == 0.125
    assert model.prep[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), trained(x), atol=1e-5)
