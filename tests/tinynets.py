"""A tiny network and short-run settings for end-to-end tests of sweeps, DDP, resume and
TensorBoard through the real CLI.

:class:`TinyNet` is used as ``model._target_=tinynets.TinyNet`` with this folder on
``PYTHONPATH`` (:func:`tiny_env`). It trains in milliseconds per step on the CPU, so the tests
exercise the engine and the launchers rather than the custom ResNet's arithmetic. Test-only
options, given as ``+model.<name>=...``:

* ``bn``: add BatchNorm (running statistics: buffers that resume and DDP must handle).
* ``crash_after``: raise ``RuntimeError`` in the training forward pass after that many training
  steps (an unexpected exception, not a UserError).
* ``delay_s``: sleep this many seconds in each training forward (wall time only, no CPU and no
  effect on the numbers), so a test can signal the process in the middle of an epoch.
* ``logit_scale``: the logits are multiplied by it, as in :class:`resnet_cli.models.CustomResNet`
  (conf/model/custom_resnet.yaml sets it, so swapping ``model._target_`` keeps the key).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from torch import nn

from conftest import DATA_ROOT

TESTS = Path(__file__).resolve().parent


def tiny(train: int = 200, test: int = 100, epochs: int = 2, lrs: bool = True) -> list[str]:
    """Overrides for a short real run on the offline copy: batch 50 on the CPU, 4 misclassified
    images explained, fixed LRs (no range test) unless ``lrs=False`` (the caller sets them)."""
    return ["data=image_folder", f"data.root={DATA_ROOT}", f"data.train_subset={train}", f"data.test_subset={test}",
            "data.batch_size=50", "data.num_workers=0", f"trainer.epochs={epochs}", "trainer.device=cpu",
            "scheduler.max_epoch=1", "explain.count=4",
            *(["scheduler.max_lr=0.05", "scheduler.min_lr=0.005"] if lrs else [])]


def tiny_env() -> dict[str, str]:
    """Environment for the CLI processes: tests/ on PYTHONPATH (for TinyNet), one thread per
    process (deterministic and fair to a shared CPU), no display."""
    return {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


class TinyNet(nn.Module):
    """Conv3x3(3->8) [-> BN] -> ReLU -> MaxPool4 -> Linear(8*8*8 -> num_classes) for (N, 3, 32, 32)
    float input; returns logits (N, num_classes)."""

    def __init__(self, num_classes: int = 10, bn: bool = False, crash_after: int | None = None,
                 delay_s: float = 0.0, logit_scale: float = 1.0):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=not bn)
        self.bn = nn.BatchNorm2d(8) if bn else nn.Identity()
        self.pool = nn.MaxPool2d(4)
        self.fc = nn.Linear(8 * 8 * 8, num_classes)
        self.crash_after, self.delay_s, self.training_calls = crash_after, delay_s, 0
        self.logit_scale = float(logit_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled():
            self.training_calls += 1
            if self.crash_after is not None and self.training_calls > self.crash_after:
                raise RuntimeError(f"simulated crash in training step {self.training_calls}")
            if self.delay_s:
                time.sleep(self.delay_s)
        x = self.pool(torch.relu(self.bn(self.conv(x))))
        return self.fc(x.flatten(1)) * self.logit_scale
