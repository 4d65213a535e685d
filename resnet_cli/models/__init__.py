"""Networks for 32x32 image classification: float (N, 3, H, W) normalised images -> logits
(N, num_classes) in the input's dtype.

* :class:`CustomResNet` - the recipe's "custom ResNet", David Page's DAWNBench ResNet-9
  (https://myrtle.ai/learn/how-to-train-your-resnet-4/).
* :class:`ResNet18` - the CIFAR variant of ResNet-18 (He et al. 2016, 3x3 stride-1 stem, no stem
  max-pool, as in kuangliu/pytorch-cifar).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["CustomResNet", "ResNet18", "ResBlock", "count_parameters"]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (elements of tensors with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class ClassifierMixin:
    """Probability and label helpers shared by the networks (logits -> softmax)."""

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax class probabilities, float32 (N, num_classes), rows sum to 1."""
        return F.softmax(self(x).float(), dim=1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted class indices, int64 (N,)."""
        return self(x).argmax(dim=1)


def _conv_bn(cin: int, cout: int, pool: bool = False) -> nn.Sequential:
    """Conv3x3(stride 1, pad 1, no bias) [-> MaxPool2] -> BN -> ReLU, as in the recipe."""
    conv = nn.Conv2d(cin, cout, 3, stride=1, padding=1, bias=False)
    return nn.Sequential(conv, *([nn.MaxPool2d(2)] if pool else []), nn.BatchNorm2d(cout), nn.ReLU())


class ResBlock(nn.Sequential):
    """R = (Conv-BN-ReLU-Conv-BN-ReLU)(X); shape-preserving, (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = _conv_bn(channels, channels)
        self.conv2 = _conv_bn(channels, channels)


class ResLayer(nn.Module):
    """X = Conv3x3-MaxPool2-BN-ReLU(x); out = X + ResBlock(X). Halves H and W."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = _conv_bn(cin, cout, pool=True)
        self.res = ResBlock(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x + self.res(x)


class CustomResNet(ClassifierMixin, nn.Module):
    """The recipe's custom ResNet (ResNet-9); output shapes for a (N, 3, 32, 32) input:

    * ``prep``:   Conv3x3-BN-ReLU, 64            -> (N, 64, 32, 32)
    * ``layer1``: X = Conv-MaxPool2-BN-ReLU 128, out X + ResBlock(X) -> (N, 128, 16, 16)
    * ``layer2``: Conv-MaxPool2-BN-ReLU, 256     -> (N, 256, 8, 8)
    * ``layer3``: like layer1 with 512           -> (N, 512, 4, 4)
    * ``pool``:   MaxPool(4)                      -> (N, 512, 1, 1)
    * ``fc``:     Linear(512 -> num_classes)      -> (N, num_classes) logits

    ``num_classes`` 10: 6,573,130 parameters. ``logit_scale`` multiplies the logits: 1.0 is the
    recipe's spec, Page's ResNet-9 uses 0.125 (README, "Measured results").
    """

    def __init__(self, num_classes: int = 10, logit_scale: float = 1.0):
        super().__init__()
        self.logit_scale = float(logit_scale)
        self.prep = _conv_bn(3, 64)
        self.layer1 = ResLayer(64, 128)
        self.layer2 = _conv_bn(128, 256, pool=True)
        self.layer3 = ResLayer(256, 512)
        self.pool = nn.MaxPool2d(4)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.prep(x))))
        logits = self.fc(torch.flatten(self.pool(x), 1))
        return logits * self.logit_scale if self.logit_scale != 1.0 else logits


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs) with a 1x1 projection shortcut when shapes change."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(ClassifierMixin, nn.Module):
    """ResNet-18, CIFAR variant: 3x3 stem, stages ``layer1``..``layer4`` of 64/128/256/512
    channels (strides 1/2/2/2), global average pool, ``fc``. Input (N, 3, 32, 32) gives
    ``layer4`` output (N, 512, 4, 4) and logits (N, num_classes); 11,173,962 parameters for 10.
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._stage(64, 64, 1)
        self.layer2 = self._stage(64, 128, 2)
        self.layer3 = self._stage(128, 256, 2)
        self.layer4 = self._stage(256, 512, 2)
        self.fc = nn.Linear(512, num_classes)

    @staticmethod
    def _stage(cin: int, cout: int, stride: int) -> nn.Sequential:
        return nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
