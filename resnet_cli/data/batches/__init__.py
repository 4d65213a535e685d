"""Training and test batches: ``DataBundle`` -> :func:`build_train_batches` -> ``TrainBatches.epoch(e)``
-> ``(x, y)``, x float32 (B, 3, H, W) normalised with the training mean/std, y int64 (B,); the test
split goes through :class:`TestBatches`. ``augment.backend``: ``albumentations`` (per image on the
CPU, the reference path), ``gpu`` (whole split on the device, batched ops), ``auto`` (gpu on CUDA).
The backends import only :mod:`.base`. Randomness is a pure function of (seed, epoch[, step])
(:func:`mix_seed`), never the global RNGs, so a resumed run sees exactly the same batches.
"""

from __future__ import annotations

import numpy as np

from .base import (
    BACKENDS,
    TRAIN_BATCHES_ARGS,
    Batch,
    EpochBatches,
    TestBatches,
    TrainBatches,
    check_augment,
    epoch_permutation,
    mean_fill,
    mix_seed,
    normalize,
    resolve_backend,
)

__all__ = ["BACKENDS", "TRAIN_BATCHES_ARGS", "Batch", "EpochBatches", "TestBatches", "TrainBatches",
           "check_augment", "epoch_permutation", "mean_fill", "mix_seed", "normalize",
           "resolve_backend", "train_batches"]


def train_batches(bundle, device, *, batch_size: int, seed: int, num_workers: int, image_size: int, backend: str,
                  pad: int, pad_mode: str, flip_p: float, cutout_holes: int, cutout_size: int,
                  cutout_p: float) -> EpochBatches:
    """The training batches of ``bundle`` (a :class:`~resnet_cli.data.DataBundle`) on ``device``: the
    ``_target_`` of ``conf/augment/*.yaml``. ``num_workers``: the albumentations backend's DataLoader
    workers; ``image_size``, ``pad``, ``cutout_size`` in pixels; ``flip_p``, ``cutout_p`` probabilities 0-1.

    Raises:
        ConfigError: an unknown backend, a bad augment value (batched), or a batch larger than N.
    """
    aug = dict(pad=int(pad), pad_mode=str(pad_mode), flip_p=float(flip_p), cutout_holes=int(cutout_holes),
               cutout_size=int(cutout_size), cutout_p=float(cutout_p))
    if resolve_backend(backend, device) == "batched":
        from .batched import GpuBatches  # the backends load on demand

        return GpuBatches(np.ascontiguousarray(bundle.train_images), np.asarray(bundle.train_labels, np.int64),
                          bundle.mean, bundle.std, int(batch_size), int(seed), device, **aug)
    from .albumentations_backend import AlbumentationsBatches, build_train_transform

    transform = build_train_transform(aug, bundle.mean, bundle.std, int(image_size))
    return AlbumentationsBatches(bundle.train_images, bundle.train_labels, transform, int(batch_size), int(seed),
                                 int(num_workers), device)
