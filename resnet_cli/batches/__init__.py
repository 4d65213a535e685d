"""Training and test batches: the batch type, normalisation, seeded shuffling, the augmentation
checks and the choice of augmentation backend.

One step of the recipe: ``DataBundle`` (uint8 (N, H, W, 3) images) -> :func:`build_train_batches`
-> ``TrainBatches.epoch(e)`` -> ``(x, y)``: x float32 (B, 3, H, W) normalised with the training
mean/std, y int64 (B,). The test split goes through :class:`TestBatches` (normalised only).

``conf/augment/*.yaml`` name :func:`train_batches` as their ``_target_`` (``_partial_: true``);
:func:`build_train_batches` gives it the data, device, batch size and seed. It builds one of the
two backends in this package, which import only :mod:`resnet_cli.batches.base` (never each
other, nor this module):

* ``albumentations`` - :class:`resnet_cli.batches.albumentations_backend.AlbumentationsBatches`, per image on the CPU
  in DataLoader workers (the reference path);
* ``gpu`` - :class:`resnet_cli.batches.gpu_augment.GpuBatches`, the whole split on the device and
  batched tensor ops;
* ``auto`` - gpu on CUDA, else albumentations.

Randomness is a pure function of (seed, epoch[, step]) through :func:`mix_seed`; the global
``random``/NumPy/torch RNGs are never used, so a run resumed mid-epoch sees exactly the batches an
uninterrupted run would, and rendering previews (:meth:`EpochBatches.draws`) changes nothing.
"""

from __future__ import annotations

import numpy as np

from .base import (BACKENDS, TRAIN_BATCHES_ARGS, Batch, EpochBatches, TestBatches, TrainBatches, check_augment,
                   epoch_permutation, mean_fill, mix_seed, normalize, resolve_backend)

__all__ = ["BACKENDS", "TRAIN_BATCHES_ARGS", "Batch", "EpochBatches", "TestBatches", "TrainBatches", "build_train_batches",
           "check_augment", "epoch_permutation", "mean_fill", "mix_seed", "normalize", "resolve_backend", "train_batches"]


def train_batches(bundle, device, *, batch_size: int, seed: int, num_workers: int, image_size: int, backend: str,
                  pad: int, pad_mode: str, flip_p: float, cutout_holes: int, cutout_size: int,
                  cutout_p: float) -> EpochBatches:
    """The training batches of ``bundle`` on ``device``: the ``_target_`` of ``conf/augment/*.yaml``.

    Args:
        bundle: a :class:`~resnet_cli.data.DataBundle` (train images uint8 (N, H, W, 3), labels,
            mean/std fractions 0-1).
        device: where batches are delivered.
        batch_size: images per step; seed: the run seed (shuffling and augmentation);
        num_workers: DataLoader workers of the albumentations backend; image_size: crop side
            in pixels (``data.image_size``).
        backend: auto | albumentations | gpu (see the module doc).
        pad, pad_mode, flip_p, cutout_holes, cutout_size, cutout_p: ``augment.*`` (pixels,
            probabilities 0-1).

    Raises:
        ConfigError: an unknown backend, a bad augment value (gpu), or a batch larger than N.
    """
    aug = dict(pad=int(pad), pad_mode=str(pad_mode), flip_p=float(flip_p), cutout_holes=int(cutout_holes),
               cutout_size=int(cutout_size), cutout_p=float(cutout_p))
    if resolve_backend(backend, device) == "gpu":
        from .gpu_augment import GpuBatches  # the backends load on demand (albumentations: ~1 s)

        return GpuBatches(np.ascontiguousarray(bundle.train_images), np.asarray(bundle.train_labels, np.int64),
                          bundle.mean, bundle.std, int(batch_size), int(seed), device, **aug)
    from .albumentations_backend import AlbumentationsBatches, build_train_transform

    transform = build_train_transform(aug, bundle.mean, bundle.std, int(image_size))
    return AlbumentationsBatches(bundle.train_images, bundle.train_labels, transform, int(batch_size), int(seed),
                                 int(num_workers), device)


def build_train_batches(bundle, cfg, device) -> TrainBatches:
    """The training batches of a run: ``cfg.augment`` instantiated (a partial of its ``_target_``,
    :func:`train_batches` for the shipped options) and called with ``bundle``, ``device`` and
    ``cfg.data.batch_size``/``num_workers``/``image_size``, ``cfg.seed``."""
    from hydra.utils import instantiate

    make = instantiate(cfg.augment)
    d = cfg.data
    return make(bundle, device, batch_size=int(d.batch_size), seed=int(cfg.seed), num_workers=int(d.num_workers),
                image_size=int(d.image_size))
