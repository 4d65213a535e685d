"""An untrained but complete ``resnet-train`` checkpoint, written in a second instead of trained:
for commands that only read checkpoints (resnet-predict, resnet-export)."""

from __future__ import annotations

from pathlib import Path

import torch

from conftest import DATA_ROOT


def untrained_checkpoint(path: Path, seed: int = 0) -> Path:
    """A checkpoints/last.pt of a freshly initialised custom ResNet (seeded) with the run config of
    ``data=image_folder`` on the offline copy (100 test images), CIFAR-10's classes and a
    normalisation that differs from 0.5 so that using it matters."""
    from omegaconf import OmegaConf

    import resnet_cli
    from resnet_cli.core.checkpoint import save_checkpoint
    from resnet_cli.models import CustomResNet

    cfg = resnet_cli.compose(["data=image_folder", f"data.root={DATA_ROOT}", "data.test_subset=100"], validate=False)
    classes = sorted(p.name for p in (DATA_ROOT / "test").iterdir() if p.is_dir()) if (DATA_ROOT / "test").is_dir() \
        else [f"c{i}" for i in range(10)]
    torch.manual_seed(seed)
    model = CustomResNet(num_classes=len(classes)).eval()
    with torch.no_grad():  # BatchNorm running statistics away from (0, 1): eval-mode outputs differ per image
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    payload = {"model": model.state_dict(), "config": OmegaConf.to_container(cfg, resolve=True), "classes": classes,
               "mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26], "image_size": 32, "epoch": 1}
    return save_checkpoint(path, payload)
