"""``augment.backend=batched``: device-resident training augmentation with whole-batch tensor ops (any device).

The training split lives on the device as uint8, padded once (reflect-101, or the mean colour for
``pad_mode=constant``), as in Keller Jordan's airbench (github.com/KellerJordan/cifar10-airbench) and
Page's ResNet-9 ("How to train your ResNet", 2018). Per batch: random crop (offsets uniform over the
(2*pad+1)^2 positions, like albumentations ``PadIfNeeded`` + ``RandomCrop``) and flip in one gather;
``cutout_holes`` squares of ``cutout_size`` inside the image, with probability ``cutout_p``, filled with
the uint8 mean (albumentations 2.x ``CoarseDropout``; DeVries & Taylor 2017, arXiv:1708.04552); then
:func:`~resnet_cli.data.batches.normalize`. The order is :func:`~resnet_cli.data.batches.epoch_permutation`;
an epoch's draws come from one device ``torch.Generator`` seeded with (seed, epoch), so they differ between
CPU and CUDA. The step loop never reads a device value on the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from .base import Batch, EpochBatches, check_augment, epoch_permutation, mean_fill, mix_seed, normalize
from ...errors import ConfigError

GPU_AUGMENT_TAG = 0x6A0A
"""Last part of the seed of the per-epoch augmentation generator (shuffling uses 0x5EED)."""


@dataclass(frozen=True)
class EpochParams:
    """All random draws of one epoch, per position (M = steps * batch): ``order`` int64 (M,) dataset
    indices; crop offsets ``dy``, ``dx`` int64 (M,) in 0..2*pad; ``flip``, ``cutout`` bool (M,);
    hole top-left corners ``hole_y``, ``hole_x`` int64 (M, holes) in 0..H-size, 0..W-size pixels."""

    order: torch.Tensor
    dy: torch.Tensor
    dx: torch.Tensor
    flip: torch.Tensor
    cutout: torch.Tensor
    hole_y: torch.Tensor
    hole_x: torch.Tensor


def pad_index(size: int, pad: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Source indices of a reflect-101 padding of one axis (OpenCV ``BORDER_REFLECT_101``, numpy
    ``mode="reflect"``): int64 (size + 2 * pad,); ConfigError if ``pad >= size``."""
    if pad >= size:
        raise ConfigError(f"augment.pad={pad} is too large for reflect padding of {size}-pixel images: "
                          f"use at most {size - 1}, or augment.pad_mode=constant")
    i = torch.arange(-pad, size + pad, device=device).abs()
    return torch.where(i > size - 1, 2 * (size - 1) - i, i)


class GpuBatches(EpochBatches):
    """Device-resident :class:`~resnet_cli.data.batches.TrainBatches`: ``(x, y)`` on ``device``, x float32
    (B, 3, H, W) normalised, y int64 (B,). ``images`` uint8 (N, H, W, 3) (array or tensor), ``labels``
    int64 (N,), ``mean``/``std`` fractions 0-1; ``pad``, ``cutout_size`` in pixels, ``pad_mode`` reflect |
    constant, ``flip_p``, ``cutout_p`` probabilities 0-1. Holds N * 3 * (H + 2 pad) * (W + 2 pad) bytes on
    ``device``. ValueError: images not uint8 (N, H, W, 3) or labels not matching; ConfigError: batch_size
    larger than N, a reflect pad >= H or W, or a bad augment value.
    """

    def __init__(self, images, labels, mean: Sequence[float], std: Sequence[float], batch_size: int,
                 seed: int, device, *, pad: int = 4, pad_mode: str = "reflect", flip_p: float = 0.5,
                 cutout_holes: int = 1, cutout_size: int = 8, cutout_p: float = 1.0):
        self.device = torch.device(device)
        images, labels = torch.as_tensor(images), torch.as_tensor(labels)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {tuple(images.shape)}")
        if labels.shape != images.shape[:1]:
            raise ValueError(f"labels {tuple(labels.shape)} do not match {images.shape[0]} images")
        n, h, w = images.shape[:3]
        check_augment(backend="batched", pad=pad, pad_mode=pad_mode, flip_p=flip_p, cutout_holes=cutout_holes,
                      cutout_size=cutout_size, cutout_p=cutout_p, image_size=min(h, w))
        super().__init__(n, batch_size, seed)
        self.h, self.w = int(h), int(w)
        self.pad, self.pad_mode, self.flip_p = int(pad), pad_mode, float(flip_p)
        self.holes = int(cutout_holes) if cutout_size > 0 and cutout_p > 0 else 0
        self.cutout_size, self.cutout_p = int(cutout_size), float(cutout_p)
        dev = self.device
        self.fill = torch.tensor(mean_fill(mean), dtype=torch.uint8, device=dev).view(1, 3, 1, 1)
        self.mean, self.std = (torch.tensor([float(v) for v in vs], dtype=torch.float32, device=dev)
                               for vs in (mean, std))
        self.data = self._pad(images.to(dev).permute(0, 3, 1, 2))
        self.labels = labels.to(device=dev, dtype=torch.int64)
        self.hp, self.wp = self.h + 2 * self.pad, self.w + 2 * self.pad
        self._rows = torch.arange(self.h, device=dev)
        self._cols = torch.arange(self.w, device=dev)
        self._cols_flipped = self._cols.flip(0)
        self._chan = torch.arange(3, device=dev).view(1, 3, 1) * (self.hp * self.wp)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> uint8 (N, 3, H + 2 pad, W + 2 pad), contiguous."""
        p = self.pad
        if p == 0:
            return x.contiguous()
        if self.pad_mode == "reflect":
            rows, cols = pad_index(self.h, p, x.device), pad_index(self.w, p, x.device)
            return x.index_select(2, rows).index_select(3, cols).contiguous()
        out = self.fill.expand(x.shape[0], 3, self.h + 2 * p, self.w + 2 * p).clone()
        out[:, :, p:p + self.h, p:p + self.w] = x
        return out

    def epoch_params(self, epoch: int) -> EpochParams:
        """Every random draw of ``epoch`` at once, on the device: a pure function of (seed, epoch)."""
        m, dev = len(self) * self.batch_size, self.device
        order = epoch_permutation(self.n, self.seed, epoch)[:m]
        order = order.pin_memory().to(dev, non_blocking=True) if dev.type == "cuda" else order.to(dev)
        g = torch.Generator(device=dev).manual_seed(mix_seed(self.seed, epoch, GPU_AUGMENT_TAG))
        k, s = self.holes, self.cutout_size
        return EpochParams(
            order=order,
            dy=torch.randint(0, 2 * self.pad + 1, (m,), generator=g, device=dev),
            dx=torch.randint(0, 2 * self.pad + 1, (m,), generator=g, device=dev),
            flip=torch.rand(m, generator=g, device=dev) < self.flip_p,
            cutout=torch.rand(m, generator=g, device=dev) < self.cutout_p,
            hole_y=torch.randint(0, self.h - s + 1, (m, k), generator=g, device=dev),
            hole_x=torch.randint(0, self.w - s + 1, (m, k), generator=g, device=dev),
        )

    def render_uint8(self, p: EpochParams, start: int, stop: int) -> torch.Tensor:
        """Augmented images of positions ``start:stop`` of an epoch, uint8 (B, 3, H, W), not normalised."""
        idx = p.order[start:stop]
        b = idx.shape[0]
        rows = p.dy[start:stop, None] + self._rows                                     # (B, H)
        cols = p.dx[start:stop, None] + torch.where(p.flip[start:stop, None], self._cols_flipped, self._cols)
        pix = (rows[:, :, None] * self.wp + cols[:, None, :]).view(b, 1, self.h * self.w)
        flat = (idx * (3 * self.hp * self.wp)).view(b, 1, 1) + self._chan + pix        # (B, 3, H*W)
        x = self.data.take(flat).view(b, 3, self.h, self.w)
        if self.holes:
            s = self.cutout_size
            hy, hx = p.hole_y[start:stop, :, None], p.hole_x[start:stop, :, None]      # (B, K, 1)
            in_y = (self._rows >= hy) & (self._rows < hy + s)                         # (B, K, H)
            in_x = (self._cols >= hx) & (self._cols < hx + s)                         # (B, K, W)
            mask = (in_y[:, :, :, None] & in_x[:, :, None, :]).any(1)                 # (B, H, W)
            mask &= p.cutout[start:stop, None, None]
            x = torch.where(mask[:, None], self.fill, x)
        return x

    def batch(self, p: EpochParams, step: int) -> Batch:
        """Step ``step`` of the epoch drawn in ``p``: x float32 (B, 3, H, W) normalised, y int64 (B,)."""
        start, stop = step * self.batch_size, (step + 1) * self.batch_size
        x = normalize(self.render_uint8(p, start, stop), self.mean, self.std)
        return x, self.labels[p.order[start:stop]]

    def row(self, epoch: int, step: int, row: int) -> torch.Tensor:
        """See :meth:`resnet_cli.data.batches.EpochBatches.row`."""
        pos = step * self.batch_size + row
        return normalize(self.render_uint8(self.epoch_params(epoch), pos, pos + 1), self.mean, self.std)[0]

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[Batch]:
        """Batches ``start_step .. len(self) - 1`` of ``epoch``; ValueError if ``start_step`` is outside."""
        if not 0 <= start_step <= len(self):
            raise ValueError(f"start_step={start_step} is outside 0..{len(self)}")
        p = self.epoch_params(epoch)
        for step in range(start_step, len(self)):
            yield self.batch(p, step)
