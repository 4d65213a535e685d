"""The albumentations backend (``augment.backend=albumentations``): the CPU reference path.

Per image, in DataLoader workers: PadIfNeeded(H+2*pad, reflect) -> RandomCrop(H) ->
HorizontalFlip(p) -> CoarseDropout(``cutout_holes`` squares of ``cutout_size`` filled with the
dataset mean) -> Normalize(mean, std) -> ToTensorV2 (albumentations 2.x API). This is the train
transform of the One Cycle CIFAR-10 recipe (Page, "How to train your ResNet", 2018; cutout:
DeVries & Taylor 2017, arXiv:1708.04552). Built by :func:`resnet_cli.batches.train_batches`.

Randomness is a pure function of (seed, epoch, step): every batch reseeds the transforms, so the
augmentations do not depend on the number of DataLoader workers, and a run resumed at any step
sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

from typing import Iterator, Mapping, Sequence

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from torch.utils.data import DataLoader, Dataset

from .base import Batch, EpochBatches, epoch_permutation, mean_fill, mix_seed


def build_train_transform(acfg: Mapping, mean: Sequence[float], std: Sequence[float], size: int) -> A.Compose:
    """The albumentations train pipeline for uint8 HWC images of ``size`` x ``size``.

    ``acfg`` holds the ``augment`` values (pad, pad_mode, flip_p, cutout_holes, cutout_size,
    cutout_p; a dict or DictConfig). ``mean``/``std`` are fractions 0-1; cutout (and constant
    padding) fill with the mean as the nearest uint8 values
    (:func:`~resnet_cli.batches.mean_fill`). The output of the Compose is a float32 tensor
    (3, size, size), normalised.
    """
    fill = mean_fill(mean)
    t: list = []
    pad = acfg["pad"]
    if pad > 0:
        border = cv2.BORDER_REFLECT_101 if acfg["pad_mode"] == "reflect" else cv2.BORDER_CONSTANT
        t += [
            A.PadIfNeeded(min_height=size + 2 * pad, min_width=size + 2 * pad, border_mode=border, fill=fill),
            A.RandomCrop(height=size, width=size),
        ]
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
    """CPU reference path: albumentations per image in DataLoader workers, batches of
    ``batch_size`` (drop_last), moved to ``device``. A :class:`~resnet_cli.batches.TrainBatches`.

    Args:
        images: uint8 (N, H, W, 3); labels: int64 (N,).
        transform: from :func:`build_train_transform`.
        batch_size: images per step (global batch).
        seed: run seed; shuffling and augmentation derive from (seed, epoch, step).
        num_workers: DataLoader worker processes (0 = in the main process).
        device: where batches are delivered.

    Raises:
        ConfigError: ``batch_size`` larger than N.
    """

    def __init__(self, images, labels, transform, batch_size: int, seed: int, num_workers: int, device):
        super().__init__(len(labels), batch_size, seed)
        self.set = _AlbumentationsBatchSet(images, labels, transform, self.seed)
        self.num_workers, self.device = num_workers, torch.device(device)

    def _key(self, epoch: int, step: int, perm: list[int]) -> tuple[int, int, list[int]]:
        return epoch, step, perm[step * self.batch_size:(step + 1) * self.batch_size]

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[Batch]:
        """Batches ``start_step .. len(self) - 1`` of ``epoch``: x float32 (B, 3, H, W) normalised,
        y int64 (B,), on ``device``."""
        perm = epoch_permutation(self.n, self.seed, epoch).tolist()
        keys = [self._key(epoch, s, perm) for s in range(start_step, len(self))]
        loader = DataLoader(
            self.set, batch_size=None, sampler=keys, num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
            worker_init_fn=ignore_stop_signals if self.num_workers > 0 else None,
        )
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def row(self, epoch: int, step: int, row: int) -> torch.Tensor:
        """See :meth:`resnet_cli.batches.EpochBatches.row`: the batch's transform stream, reseeded
        for (epoch, step), run in this process over the batch's first ``row + 1`` images (each
        image's draw depends on the ones before it), keeping the last."""
        _, _, idx = self._key(epoch, step, epoch_permutation(self.n, self.seed, epoch).tolist())
        x, _ = self.set[(epoch, step, idx[:row + 1])]
        return x[row].to(self.device)


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: workers ignore SIGINT/SIGTERM, which Ctrl-C (or a job
    scheduler) sends to the whole process group; the main process decides, finishes its step,
    checkpoints and shuts the workers down (see :func:`resnet_cli.fit.stop_signals`)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
