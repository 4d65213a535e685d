"""Dataset previews: what the network is trained on, before and after augmentation.

Every run folder gets two PNGs (written by :meth:`resnet_cli.engine.Trainer.setup` right after
the data is loaded, from the same arrays and the same training transform the run uses):

* ``plots/samples.png`` - :func:`plot_samples`: a grid of random training images (uint8, as
  decoded, no augmentation), each titled with its class name;
* ``plots/augmentations.png`` - :func:`plot_augmentations`: one training image and several
  independent draws of the training transform (:func:`resnet_cli.augment.build_train_transform`:
  pad + random crop, horizontal flip, cutout, normalise), de-normalised back to colours, so the
  crop shifts, flips and cutout squares are visible.

The choice of images and the augmentation draws are seeded from ``cfg.seed`` with private
generators; the global ``random``/NumPy/torch RNG states are left untouched, so writing the
previews does not change the training run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

SAMPLES_PNG = "samples.png"
AUGMENTATIONS_PNG = "augmentations.png"


def denormalize(x, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Undo :func:`resnet_cli.augment.normalize` for display.

    Args:
        x: normalised float image(s), channels first: (3, H, W) or (N, 3, H, W); a torch tensor
            (any device) or a NumPy array.
        mean, std: the per-channel statistics used to normalise, fractions 0-1 (3 values each).

    Returns:
        uint8 RGB, channels last: (H, W, 3) or (N, H, W, 3); ``x * std + mean`` clipped to 0-1
        and scaled to 0-255.
    """
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"expected a (3, H, W) or (N, 3, H, W) image array, got shape {x.shape}")
    m = np.asarray(mean, np.float32).reshape(3, 1, 1)
    s = np.asarray(std, np.float32).reshape(3, 1, 1)
    rgb = np.clip(x * s + m, 0.0, 1.0)
    rgb = np.moveaxis(rgb, -3, -1)
    return np.round(rgb * 255.0).astype(np.uint8)


def _grid(n: int, ncols: int, cell: float = 1.35, title_room: float = 0.3) -> tuple[Figure, list]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(cell * ncols, (cell + title_room) * nrows), layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]
    for ax in axes:
        ax.set_axis_off()
    return fig, axes


def plot_samples(images: np.ndarray, labels: np.ndarray, classes: Sequence[str], n: int = 32,
                 seed: int = 0, ncols: int = 8) -> Figure:
    """A grid of ``n`` random images titled with their class names (one axes per image).

    Args:
        images: uint8 (N, H, W, 3) RGB, as in :class:`resnet_cli.data.DataBundle`.
        labels: int (N,), indices into ``classes``.
        classes: class names in label order.
        n: images to show (at most N); drawn without replacement with
            ``numpy.random.default_rng(seed)``, shown in the order drawn.
        seed: seed of the draw (the global RNGs are not used).
        ncols: images per row.

    Returns:
        A Figure with ``min(n, N)`` axes, each holding one image.

    Raises:
        ValueError: no images, ``n < 1``, or images/labels of different lengths.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if len(images) == 0 or n < 1:
        raise ValueError(f"plot_samples needs at least one image and n >= 1 (got {len(images)} images, n={n})")
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    k = min(n, len(images))
    idx = np.random.default_rng(seed).choice(len(images), size=k, replace=False)
    fig, axes = _grid(k, ncols)
    for ax, i in zip(axes, idx):
        ax.imshow(images[i], interpolation="nearest")
        ax.set_title(str(classes[int(labels[i])]), fontsize=8)
    fig.suptitle(f"{k} random training images (seed {seed})", fontsize=10)
    return fig


def augment_draws(image: np.ndarray, transform, n: int, seed: int = 0) -> list:
    """``n`` independent outputs of an albumentations ``transform`` for one uint8 (H, W, 3)
    image; draw ``k`` reseeds the transform with ``mix_seed(seed, k)`` (reproducible, global
    RNGs untouched). Returns what the transform returns (float32 (3, H, W) tensors for the
    training transform)."""
    from .augment import mix_seed, seed_transform

    out = []
    for k in range(n):
        seed_transform(transform, mix_seed(seed, k, 0xA06))
        out.append(transform(image=image)["image"])
    return out


def plot_augmentations(image: np.ndarray, transform, mean: Sequence[float], std: Sequence[float],
                       n: int = 11, seed: int = 0, ncols: int = 6, label: str | None = None) -> Figure:
    """One image next to ``n`` draws of the training transform, de-normalised to colours.

    Args:
        image: uint8 (H, W, 3) RGB training image (before augmentation).
        transform: the training transform, e.g. from
            :func:`resnet_cli.augment.build_train_transform`; returns normalised float32
            (3, H, W).
        mean, std: the normalisation the transform applies (fractions 0-1), to undo it.
        n: number of augmented draws.
        seed: seed of the draws (see :func:`augment_draws`).
        ncols: images per row.
        label: class name for the title of the original.

    Returns:
        A Figure with ``n + 1`` axes, one image each: the original first, then the draws.

    Raises:
        ValueError: ``n < 1`` or an image that is not (H, W, 3).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or n < 1:
        raise ValueError(f"plot_augmentations needs one (H, W, 3) image and n >= 1 (got {image.shape}, n={n})")
    draws = augment_draws(image, transform, n, seed)
    fig, axes = _grid(n + 1, ncols, cell=1.6)
    axes[0].imshow(image, interpolation="nearest")
    axes[0].set_title(f"original{f' ({label})' if label else ''}", fontsize=8)
    for k, (ax, x) in enumerate(zip(axes[1:], draws), start=1):
        ax.imshow(denormalize(x, mean, std), interpolation="nearest")
        ax.set_title(f"draw {k}", fontsize=8)
    steps = [type(t).__name__ for t in getattr(transform, "transforms", [])
             if type(t).__name__ not in ("Normalize", "ToTensorV2")]
    fig.suptitle(f"{n} draws of the training transform ({', '.join(steps) or 'normalise only'}), "
                 "de-normalised", fontsize=10)
    return fig


def data_previews(data, cfg, n_samples: int = 32, n_draws: int = 11) -> tuple[Figure, Figure]:
    """The two preview figures of a run: (samples, augmentations).

    Args:
        data: a :class:`resnet_cli.data.DataBundle` (its training images, labels, classes,
            mean and std are used).
        cfg: the composed training config; ``cfg.augment`` and ``cfg.data.image_size`` build
            the training transform exactly as training does, ``cfg.seed`` seeds the choices.
        n_samples: images in the samples grid.
        n_draws: augmented draws of the one image shown.
    """
    from .augment import build_train_transform

    seed = int(cfg.seed)
    samples = plot_samples(data.train_images, data.train_labels, data.classes, n=n_samples, seed=seed)
    i = int(np.random.default_rng(seed + 1).integers(len(data.train_labels)))
    transform = build_train_transform(cfg.augment, data.mean, data.std, int(cfg.data.image_size))
    augs = plot_augmentations(data.train_images[i], transform, data.mean, data.std, n=n_draws, seed=seed,
                              label=str(data.classes[int(data.train_labels[i])]))
    return samples, augs


def write_previews(data, cfg, plots_dir: str | Path) -> dict[str, Path]:
    """Write ``samples.png`` and ``augmentations.png`` (see :func:`data_previews`) into
    ``plots_dir`` (created if needed); returns ``{"samples": path, "augmentations": path}``."""
    from .plots import save_figure

    samples, augs = data_previews(data, cfg)
    plots_dir = Path(plots_dir)
    return {
        "samples": save_figure(samples, plots_dir / SAMPLES_PNG),
        "augmentations": save_figure(augs, plots_dir / AUGMENTATIONS_PNG),
    }
