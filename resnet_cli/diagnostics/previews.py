"""Dataset previews, written into every run's ``plots/``: ``samples.png`` (:func:`plot_samples`, random
training images with their classes) and ``augmentations.png`` (:func:`plot_augmentations`, one image as
the run's own batches render it in its first epochs, de-normalised). Private seeded generators only:
writing the previews does not change the training run.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure


def _grid(n: int, ncols: int, cell: float = 1.35, title_room: float = 0.3,
          min_width: float = 0.0) -> tuple[Figure, list]:
    """A Figure with ``n`` axis-less axes in rows of ``ncols``, at least ``min_width`` inches wide."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(max(cell * ncols, min_width), (cell + title_room) * nrows), layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]
    for ax in axes:
        ax.set_axis_off()
    return fig, axes


def plot_samples(images: np.ndarray, labels: np.ndarray, classes: Sequence[str], n: int = 32,
                 seed: int = 0, ncols: int = 8) -> Figure:
    """A Figure of ``min(n, N)`` images (uint8 (N, H, W, 3) RGB; ``labels`` int (N,) into ``classes``)
    drawn without replacement by ``numpy.random.default_rng(seed)``, titled with their classes.

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


def plot_augmentations(image: np.ndarray, draws, mean: Sequence[float], std: Sequence[float], ncols: int = 6,
                       label: str | None = None, titles: Sequence[str] | None = None, source: str = "") -> Figure:
    """A Figure of ``image`` (uint8 (H, W, 3) RGB) next to its ``draws`` (normalised float32
    (n, 3, H, W), tensor or array, e.g. ``train_batches.draws(index, n)[1]``), de-normalised with
    ``mean``/``std`` (fractions 0-1). ``label``: the original's class; ``titles``: one per draw
    (default ``draw 1``, ...); ``source``: what made the draws, a small caption below the images
    (the title stays one short line).

    Raises:
        ValueError: no draws, draws not (n, 3, H, W), or an image that is not (H, W, 3).
    """
    from .plots import denormalize

    image, shown = np.asarray(image), denormalize(draws, mean, std)
    if image.ndim != 3 or image.shape[-1] != 3 or shown.ndim != 4 or len(shown) < 1:
        raise ValueError(f"plot_augmentations needs one (H, W, 3) image and draws (n, 3, H, W) with n >= 1 "
                         f"(got {image.shape} and {tuple(np.shape(draws))})")
    n = len(shown)
    titles = list(titles) if titles is not None else [f"draw {k}" for k in range(1, n + 1)]
    fig, axes = _grid(n + 1, ncols, cell=1.6, min_width=4.8)
    axes[0].imshow(image, interpolation="nearest")
    axes[0].set_title(f"original{f' ({label})' if label else ''}", fontsize=8)
    for ax, x, title in zip(axes[1:], shown, titles):
        ax.imshow(x, interpolation="nearest")
        ax.set_title(title, fontsize=8)
    width = fig.get_figwidth()
    fig.suptitle(f"{n} augmented version{'s' if n > 1 else ''} of one training image", fontsize=9)
    if source:  # the details in a small caption below, wrapped to the figure's width (about 18 characters an inch)
        fig.supxlabel(textwrap.fill(f"de-normalised; {source}", width=int(18 * width), break_long_words=False),
                      fontsize=7, color="0.3")
    return fig


BACKEND_WORDS = {"AlbumentationsBatches": "albumentations", "GpuBatches": "batched"}  # class -> augment.backend


def previews(data, train_batches, seed: int, n_samples: int = 32, n_draws: int = 11,
             epochs: int | None = None) -> tuple[Figure, Figure]:
    """The two preview figures of a run, (samples, augmentations), from a
    :class:`~resnet_cli.data.DataBundle` and the run's training batches (before DDP sharding).
    ``seed`` chooses the images; at most ``n_draws`` draws of one image, titled with the epoch
    (1-based), only from epochs < ``epochs`` (the run's ``trainer.epochs``; None = no limit).
    """
    samples = plot_samples(data.train_images, data.train_labels, data.classes, n=n_samples, seed=seed)
    rng = np.random.default_rng(seed + 1)
    limit = n_draws if epochs is None else max(1, min(n_draws, int(epochs)))
    for _ in range(100):
        i = int(rng.integers(len(data.train_labels)))
        shown, draws = train_batches.draws(i, limit)
        keep = [k for k, e in enumerate(shown) if epochs is None or e < epochs]
        if keep:
            break
    shown, draws = [shown[k] for k in keep], draws[keep]
    backend = BACKEND_WORDS.get(type(train_batches).__name__)
    augs = plot_augmentations(data.train_images[i], draws, data.mean, data.std,
                              label=str(data.classes[int(data.train_labels[i])]),
                              titles=[f"epoch {e + 1}" for e in shown],
                              source=f"training image {i} in epoch{'s' if len(shown) > 1 else ''} "
                                     f"{', '.join(str(e + 1) for e in shown)} of the run"
                                     + (f", augment.backend={backend}" if backend else ""))
    return samples, augs


def write_previews(data, train_batches, plots_dir: str | Path, seed: int,
                   epochs: int | None = None) -> dict[str, Path]:
    """Write ``samples.png`` and ``augmentations.png`` (:func:`previews`) into ``plots_dir`` (created
    if needed); returns ``{"samples": path, "augmentations": path}``."""
    from .plots import save_figure

    samples, augs = previews(data, train_batches, seed, epochs=epochs)
    plots_dir = Path(plots_dir)
    return {"samples": save_figure(samples, plots_dir / "samples.png"),
            "augmentations": save_figure(augs, plots_dir / "augmentations.png")}
