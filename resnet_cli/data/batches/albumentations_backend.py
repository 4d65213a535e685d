"""The albumentations backend (``augment.backend=albumentations``): the CPU reference path.

Per image, in DataLoader workers: PadIfNeeded -> RandomCrop -> HorizontalFlip -> CoarseDropout (the
mean as fill) -> Normalize -> ToTensorV2 (albumentations 2.x), the recipe's train transform (Page, "How
to train your ResNet", 2018; cutout: DeVries & Taylor 2017, arXiv:1708.04552). Every batch reseeds
the transforms from (seed, epoch, step), so draws do not depend on the number of workers.
"""

from __future__ import annotations

import signal
from typing import Iterator, Mapping, Sequence

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from torch.utils.data import DataLoader, Dataset

from .base import Batch, EpochBatches, epoch_permutation, mean_fill, mix_seed


def build_train_transform(acfg: Mapping, mean: Sequence[float], std: Sequence[float], size: int) -> A.Compose:
    """The train pipeline: uint8 (size, size, 3) -> float32 (3, size, size) normalised. ``acfg``: the
    ``augment`` values (dict or DictConfig); ``mean``/``std`` fractions 0-1 (fill: :func:`mean_fill`)."""
    fill = mean_fill(mean)
    t: list = []
    pad = acfg["pad"]
    if pad > 0:
        border = cv2.BORDER_REFLECT_101 if acfg["pad_mode"] == "reflect" else cv2.BORDER_CONSTANT
        t += [A.PadIfNeeded(min_height=size + 2 * pad, min_width=size + 2 * pad, border_mode=border, fill=fill),
              A.RandomCrop(height=size, width=size)]
    if acfg["flip_p"] > 0:
        t.append(A.HorizontalFlip(p=acfg["flip_p"]))
    if acfg["cutout_holes"] > 0 and acfg["cutout_size"] > 0 and acfg["cutout_p"] > 0:
        n, s = acfg["cutout_holes"], acfg["cutout_size"]
        t.append(A.CoarseDropout(num_holes_range=(n, n), hole_height_range=(s, s), hole_width_range=(s, s),
                                 fill=fill, p=acfg["cutout_p"]))
    t += [A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0), ToTensorV2()]
    return A.Compose(t)


def seed_transform(transform: A.Compose, seed: int) -> None:
    """Give each child transform of ``transform`` its own stream derived from ``seed``."""
    transform.set_random_seed(seed)
    for k, child in enumerate(transform.transforms):
        child.set_random_seed(mix_seed(seed, k))


class _AlbumentationsBatchSet(Dataset):
    """Map-style dataset whose items are whole batches: index = (epoch, step, indices)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: A.Compose, seed: int):
        self.images, self.labels, self.transform, self.seed = images, labels, transform, seed

    def __len__(self) -> int:  # pragma: no cover - sampled by explicit keys only
        return len(self.labels)

    def __getitem__(self, key: tuple[int, int, list[int]]) -> Batch:
        epoch, step, idx = key
        seed_transform(self.transform, mix_seed(self.seed, epoch, step))
        x = torch.stack([self.transform(image=self.images[i])["image"] for i in idx])
        return x, torch.from_numpy(self.labels[idx])


class AlbumentationsBatches(EpochBatches):
    """:class:`~resnet_cli.data.batches.TrainBatches` of ``images`` uint8 (N, H, W, 3), ``labels`` int64 (N,)
    through ``transform`` (:func:`build_train_transform`) in ``num_workers`` DataLoader workers (0 = in
    this process), delivered to ``device``: x float32 (B, 3, H, W) normalised, y int64 (B,). ConfigError if
    ``batch_size`` is larger than N.
    """

    def __init__(self, images, labels, transform, batch_size: int, seed: int, num_workers: int, device):
        super().__init__(len(labels), batch_size, seed)
        self.set = _AlbumentationsBatchSet(images, labels, transform, self.seed)
        self.num_workers, self.device = num_workers, torch.device(device)

    def _key(self, epoch: int, step: int, perm: list[int]) -> tuple[int, int, list[int]]:
        return epoch, step, perm[step * self.batch_size:(step + 1) * self.batch_size]

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[Batch]:
        """Batches ``start_step .. len(self) - 1`` of ``epoch``."""
        perm = epoch_permutation(self.n, self.seed, epoch).tolist()
        keys = [self._key(epoch, s, perm) for s in range(start_step, len(self))]
        loader = DataLoader(self.set, batch_size=None, sampler=keys, num_workers=self.num_workers,
                            pin_memory=self.device.type == "cuda", persistent_workers=False,
                            worker_init_fn=ignore_stop_signals if self.num_workers > 0 else None)
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def row(self, epoch: int, step: int, row: int) -> torch.Tensor:
        """See :meth:`resnet_cli.data.batches.EpochBatches.row`; each draw depends on the batch's earlier
        images, so the first ``row + 1`` are rendered."""
        _, _, idx = self._key(epoch, step, epoch_permutation(self.n, self.seed, epoch).tolist())
        x, _ = self.set[(epoch, step, idx[:row + 1])]
        return x[row].to(self.device)


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: ignore SIGINT/SIGTERM (and SIGHUP) sent to the process group; the main
    process handles them (:func:`resnet_cli.core.fit.stop_signals`)."""
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):  # no SIGHUP on Windows
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
