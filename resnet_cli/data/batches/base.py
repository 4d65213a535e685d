"""What both augmentation backends share: the batch type, normalisation, seeded shuffling, the
augment value checks, :class:`EpochBatches` and :class:`TestBatches`."""

from __future__ import annotations

import itertools
from typing import Iterator, Protocol, Sequence

import numpy as np
import torch

from ...errors import ConfigError

Batch = tuple[torch.Tensor, torch.Tensor]
"""(x float32 (B, 3, H, W) normalised, y int64 (B,)), on the training device."""

BACKENDS = ("auto", "albumentations", "batched")
"""Values of ``augment.backend``."""
DEPRECATED_BACKENDS = {"gpu": "batched"}
"""Old ``augment.backend`` values still accepted, with a warning (:func:`resnet_cli.cli.checks.migrate_deprecated`)."""

TRAIN_BATCHES_ARGS = ("bundle", "device", "batch_size", "seed", "num_workers", "image_size")
"""Arguments :func:`build_train_batches` passes to the ``augment._target_`` (the rest come from YAML)."""


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
    """The dataset mean (fractions 0-1) as the nearest uint8 RGB value: the cutout and constant-pad fill."""
    return tuple(int(round(float(m) * 255.0)) for m in mean)


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) or (N, 3, H, W) -> float32 (N, 3, H, W): (x / 255 - mean) / std, with
    ``mean``/``std`` float tensors (3,) of fractions 0-1 on the images' device."""
    if images.shape[-1] == 3 and images.shape[1] != 3:
        images = images.permute(0, 3, 1, 2)
    x = images.float().div_(255.0)
    return x.sub_(mean.view(1, 3, 1, 1)).div_(std.view(1, 3, 1, 1))


def check_augment(*, backend: str, pad: int, pad_mode: str, flip_p: float, cutout_holes: int, cutout_size: int,
                  cutout_p: float, image_size: int) -> None:
    """The ``augment.*`` value checks (sizes in pixels, ``image_size`` bounding the cutout; probabilities
    0-1): ConfigError ``augment.<key>=<value> is not allowed: <what is>`` for the first bad key."""
    rules = (
        ("backend", backend, backend in BACKENDS or backend in DEPRECATED_BACKENDS, "auto, albumentations or batched"),
        ("pad", pad, pad >= 0, "must be >= 0"),
        ("pad_mode", pad_mode, pad_mode in ("reflect", "constant"), "reflect or constant"),
        ("flip_p", flip_p, 0.0 <= flip_p <= 1.0, "a probability in 0..1"),
        ("cutout_p", cutout_p, 0.0 <= cutout_p <= 1.0, "a probability in 0..1"),
        ("cutout_holes", cutout_holes, cutout_holes >= 0, "must be >= 0"),
        ("cutout_size", cutout_size, 0 <= cutout_size <= image_size, f"must be in 0..{image_size} (data.image_size)"),
    )
    for key, value, ok, allowed in rules:
        if not ok:
            raise ConfigError(f"augment.{key}={value!r} is not allowed: {allowed}")


def resolve_backend(backend: str, device) -> str:
    """``augment.backend`` -> the backend used on ``device`` (auto: ``batched`` on CUDA, else
    ``albumentations``; the deprecated ``gpu`` is ``batched``); ConfigError for an unknown name."""
    backend = DEPRECATED_BACKENDS.get(backend, backend)
    if backend not in BACKENDS:
        raise ConfigError(f"augment.backend={backend!r} is not allowed: auto, albumentations or batched")
    if backend == "auto":
        return "batched" if torch.device(device).type == "cuda" else "albumentations"
    return backend


class TrainBatches(Protocol):
    """Shuffled, augmented training batches (drop_last) of :data:`Batch`; ``len()`` = steps per epoch."""

    def __len__(self) -> int: ...

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[Batch]: ...

    def draws(self, index: int, n: int) -> tuple[list[int], torch.Tensor]: ...


class EpochBatches:
    """``n`` images in :func:`epoch_permutation` order, cut into ``n // batch_size`` steps (drop_last;
    ConfigError if ``batch_size > n``); subclasses implement ``epoch`` and :meth:`row`."""

    def __init__(self, n: int, batch_size: int, seed: int):
        if batch_size > n:
            raise ConfigError(f"data.batch_size={batch_size} is larger than the {n} training images: lower it")
        self.n, self.batch_size, self.seed = int(n), int(batch_size), int(seed)

    def __len__(self) -> int:
        return self.n // self.batch_size

    def row(self, epoch: int, step: int, row: int) -> torch.Tensor:
        """Row ``row`` of batch ``step`` of ``epoch`` exactly as :meth:`epoch` yields it: float32 (3, H, W)."""
        raise NotImplementedError

    def draws(self, index: int, n: int) -> tuple[list[int], torch.Tensor]:
        """Training image ``index`` as the network sees it in the first ``n`` (0-based) epochs that use it
        (not in their drop_last tail): (epochs, x float32 (n, 3, H, W) normalised). No global state is used.
        IndexError: ``index`` outside 0..N-1; ValueError: ``n < 1``.
        """
        if not 0 <= index < self.n:
            raise IndexError(f"image {index} is outside 0..{self.n - 1}")
        if n < 1:
            raise ValueError(f"draws needs n >= 1, got {n}")
        epochs, rows = [], []
        for epoch in itertools.count():
            pos = int((epoch_permutation(self.n, self.seed, epoch) == index).nonzero()[0, 0])
            if pos < len(self) * self.batch_size:
                epochs.append(epoch)
                rows.append(self.row(epoch, *divmod(pos, self.batch_size)))
            if len(rows) == n:
                return epochs, torch.stack(rows)


class TestBatches:
    """The test split (images uint8 (N, H, W, 3), labels int64 (N,)) normalised once with ``mean``/``std``
    (fractions 0-1) into ``x`` float32 (N, 3, H, W), ``y`` on ``device``; iterates in ``batch_size`` chunks."""

    __test__ = False  # not a pytest test class despite its name

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean, std, batch_size: int, device):
        device = torch.device(device)
        m, s = (torch.tensor(v, dtype=torch.float32, device=device) for v in (mean, std))
        self.x = normalize(torch.from_numpy(images).to(device), m, s)
        self.y = torch.from_numpy(labels).to(device)
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        for i in range(0, len(self.y), self.batch_size):
            yield self.x[i:i + self.batch_size], self.y[i:i + self.batch_size]
