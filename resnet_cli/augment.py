"""Training transforms and batch iterators.

The reference path is albumentations (2.x API), per image, on the CPU:
PadIfNeeded(H+2*pad, reflect) -> RandomCrop(H) -> HorizontalFlip(p) -> CoarseDropout(one
``cutout_size`` square hole filled with the dataset mean) -> Normalize(mean, std) -> ToTensorV2.
This is the train transform of the One Cycle CIFAR-10 recipe (Page, "How to train your ResNet",
2018; cutout: DeVries & Taylor 2017, arXiv:1708.04552). Test images are only normalised.

Randomness is a pure function of (seed, epoch, step): every batch reseeds the transforms, so the
augmentations do not depend on the number of DataLoader workers, and a run resumed at any step
sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

from typing import Iterator, Protocol, Sequence

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

Batch = tuple[torch.Tensor, torch.Tensor]


def mix_seed(*parts: int) -> int:
    """A 32-bit seed derived from integers (e.g. seed, epoch, step) by a SplitMix-style hash."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h ^= (int(p) + 0x9E3779B97F4A7C15 + (h << 6) + (h >> 2)) & 0xFFFFFFFFFFFFFFFF
        h = (h * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0xFFFFFFFF


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of ``n`` training items for ``epoch``, int64 (n,), on the CPU."""
    g = torch.Generator().manual_seed(mix_seed(seed, epoch, 0x5EED))
    return torch.randperm(n, generator=g)


def mean_fill(mean: Sequence[float]) -> tuple[int, int, int]:
    """The dataset mean (fractions 0-1) as the nearest uint8 RGB value, used to fill cutout holes."""
    return tuple(int(round(float(m) * 255.0)) for m in mean)


def build_train_transform(acfg: DictConfig, mean: Sequence[float], std: Sequence[float], size: int) -> A.Compose:
    """The albumentations train pipeline for uint8 HWC images of ``size`` x ``size``.

    ``mean``/``std`` are fractions 0-1; cutout (and constant padding) fill with the mean as the
    nearest uint8 values (:func:`mean_fill`). The output of the Compose is a float32 tensor
    (3, size, size), normalised.
    """
    fill = mean_fill(mean)
    t: list = []
    if acfg.pad > 0:
        border = cv2.BORDER_REFLECT_101 if acfg.pad_mode == "reflect" else cv2.BORDER_CONSTANT
        t += [
            A.PadIfNeeded(min_height=size + 2 * acfg.pad, min_width=size + 2 * acfg.pad, border_mode=border, fill=fill),
            A.RandomCrop(height=size, width=size),
        ]
    if acfg.flip_p > 0:
        t.append(A.HorizontalFlip(p=acfg.flip_p))
    if acfg.cutout_holes > 0 and acfg.cutout_size > 0 and acfg.cutout_p > 0:
        n, s = acfg.cutout_holes, acfg.cutout_size
        t.append(A.CoarseDropout(num_holes_range=(n, n), hole_height_range=(s, s), hole_width_range=(s, s),
                                 fill=fill, p=acfg.cutout_p))
    t += [A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0), ToTensorV2()]
    return A.Compose(t)


def seed_transform(transform: A.Compose, seed: int) -> None:
    """Give each child transform of ``transform`` its own stream derived from ``seed``."""
    transform.set_random_seed(seed)
    for k, child in enumerate(transform.transforms):
        child.set_random_seed(mix_seed(seed, k))


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) or (N, 3, H, W) -> float32 (N, 3, H, W): (x / 255 - mean) / std.

    ``mean`` and ``std`` are float tensors (3,) of fractions 0-1, on the images' device.
    """
    if images.shape[-1] == 3 and images.shape[1] != 3:
        images = images.permute(0, 3, 1, 2)
    x = images.float().div_(255.0)
    return x.sub_(mean.view(1, 3, 1, 1)).div_(std.view(1, 3, 1, 1))


class TrainBatches(Protocol):
    """One epoch of shuffled, augmented training batches (drop_last): x float32 (B, 3, H, W)
    normalised, y int64 (B,); ``len()`` is the number of steps per epoch."""

    def __len__(self) -> int: ...

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[Batch]: ...


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


class AlbumentationsBatches:
    """CPU reference path: albumentations per image in DataLoader workers, batches of
    ``batch_size`` (drop_last), moved to ``device``.

    Args:
        images: uint8 (N, H, W, 3); labels: int64 (N,).
        transform: from :func:`build_train_transform`.
        batch_size: images per step (global batch).
        seed: run seed; shuffling and augmentation derive from (seed, epoch, step).
        num_workers: DataLoader worker processes (0 = in the main process).
        device: where batches are delivered.
    """

    def __init__(self, images, labels, transform, batch_size: int, seed: int, num_workers: int, device):
        if batch_size > len(labels):
            from .errors import ConfigError

            raise ConfigError(
                f"data.batch_size={batch_size} is larger than the {len(labels)} training images: lower it"
            )
        self.set = _AlbumentationsBatchSet(images, labels, transform, seed)
        self.n, self.batch_size, self.seed = len(labels), batch_size, seed
        self.num_workers, self.device = num_workers, torch.device(device)

    def __len__(self) -> int:
        return self.n // self.batch_size

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[Batch]:
        perm = epoch_permutation(self.n, self.seed, epoch).tolist()
        keys = [(epoch, s, perm[s * self.batch_size:(s + 1) * self.batch_size]) for s in range(start_step, len(self))]
        loader = DataLoader(
            self.set, batch_size=None, sampler=keys, num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
            worker_init_fn=ignore_stop_signals if self.num_workers > 0 else None,
        )
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: workers ignore SIGINT/SIGTERM, which Ctrl-C (or a job
    scheduler) sends to the whole process group; the main process decides, finishes its step,
    checkpoints and shuts the workers down (see :func:`resnet_cli.engine.stop_signals`)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class TestBatches:
    """The test split normalised once and kept on ``device``; iterates in order in chunks.

    Attributes:
        x: float32 (N, 3, H, W) normalised; y: int64 (N,).
    """

    __test__ = False  # not a pytest test class despite its name

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean, std, batch_size: int, device):
        device = torch.device(device)
        m = torch.tensor(mean, dtype=torch.float32, device=device)
        s = torch.tensor(std, dtype=torch.float32, device=device)
        self.x = normalize(torch.from_numpy(images).to(device), m, s)
        self.y = torch.from_numpy(labels).to(device)
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        for i in range(0, len(self.y), self.batch_size):
            yield self.x[i:i + self.batch_size], self.y[i:i + self.batch_size]


def resolve_backend(backend: str, device) -> str:
    """``augment.backend`` (auto|albumentations|gpu) -> the backend used on ``device``:
    auto is ``gpu`` on CUDA, else ``albumentations``.

    Raises:
        ConfigError: an unknown backend name.
    """
    if backend not in ("auto", "albumentations", "gpu"):
        from .errors import ConfigError

        raise ConfigError(f"augment.backend={backend!r} is not allowed: auto, albumentations or gpu")
    if backend == "auto":
        return "gpu" if torch.device(device).type == "cuda" else "albumentations"
    return backend


def build_train_batches(bundle, cfg: DictConfig, device: torch.device) -> TrainBatches:
    """The training batch iterator for ``cfg.augment.backend`` on ``device``.

    ``albumentations``: :class:`AlbumentationsBatches` (CPU workers, the reference path);
    ``gpu``: :class:`resnet_cli.gpu_augment.GpuBatches` (whole dataset on ``device``, batched
    tensor ops; also runs on the CPU); ``auto``: gpu when ``device`` is CUDA, else albumentations.
    """
    if resolve_backend(cfg.augment.backend, device) == "gpu":
        from .gpu_augment import build_gpu_batches

        return build_gpu_batches(bundle, cfg, device)
    transform = build_train_transform(cfg.augment, bundle.mean, bundle.std, cfg.data.image_size)
    return AlbumentationsBatches(
        bundle.train_images, bundle.train_labels, transform, cfg.data.batch_size, cfg.seed,
        cfg.data.num_workers, device,
    )
