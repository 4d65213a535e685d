"""plots/augmentations.png shows what the network trains on: the image's rows of the training
batches the run uses, for either backend, and drawing it changes nothing in training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import resnet_cli
from resnet_cli.data.batches.albumentations_backend import AlbumentationsBatches
from resnet_cli.cli.build import build_train_batches
from resnet_cli.data.batches import epoch_permutation
from resnet_cli.data import DataBundle, channel_stats
from resnet_cli.data.batches.batched import GpuBatches
from resnet_cli.diagnostics.plots import denormalize

N, BATCH = 40, 12  # 3 steps an epoch, 4 images dropped (drop_last): some epochs skip the image


@pytest.fixture(scope="module")
def bundle() -> DataBundle:
    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 256, (N, 32, 32, 3), dtype=np.uint8), rng.integers(0, 256, (8, 32, 32, 3), np.uint8)
    mean, std = channel_stats(train)
    return DataBundle(name="synthetic", root="/nowhere", classes=[str(c) for c in range(10)], train_images=train,
                      train_labels=np.arange(N, dtype=np.int64) % 10, test_images=test,
                      test_labels=np.arange(8, dtype=np.int64) % 10, mean=mean, std=std)


@pytest.mark.parametrize("backend, cls", [("albumentations", AlbumentationsBatches), ("batched", GpuBatches)])
def test_preview_draws_are_the_training_batches_rows(bundle, backend, cls):
    cfg = resnet_cli.compose(["trainer.device=cpu", "trainer.epochs=40", "scheduler.max_epoch=1", "seed=3",
                              f"data.batch_size={BATCH}", "data.num_workers=0", f"augment.backend={backend}"])
    batches = build_train_batches(bundle, cfg, torch.device("cpu"))
    assert isinstance(batches, cls)
    before = list(batches.epoch(0))
    _, fig = resnet_cli.data_previews(bundle, cfg, n_draws=8, train_batches=batches)
    after = list(batches.epoch(0))  # drawing the previews leaves training as it was
    assert len(after) == len(before) == 3
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(before, after))

    original = fig.axes[0].images[0].get_array()
    (i,) = [k for k in range(N) if np.array_equal(bundle.train_images[k], original)]
    kept = len(batches) * BATCH
    positions = {e: int((epoch_permutation(N, 3, e) == i).nonzero()[0, 0]) for e in range(40)}
    want_epochs = [e for e in range(40) if positions[e] < kept][:8]
    shown_epochs = [int(ax.get_title().removeprefix("epoch ")) - 1 for ax in fig.axes[1:]]
    assert shown_epochs == want_epochs  # the image's first 8 epochs, those that drop it skipped
    epochs, draws = batches.draws(i, 8)
    assert epochs == want_epochs
    for k, (ax, e) in enumerate(zip(fig.axes[1:], shown_epochs)):
        step, row = divmod(positions[e], BATCH)
        x, y = list(batches.epoch(e))[step]
        assert int(y[row]) == bundle.train_labels[i]
        assert torch.equal(draws[k], x[row]), (backend, e)  # what the network got, bit for bit
        np.testing.assert_array_equal(ax.images[0].get_array(), denormalize(x[row], bundle.mean, bundle.std))
    assert len({d.numpy().tobytes() for d in draws}) == 8  # crop/flip/cutout differ between epochs


@pytest.mark.parametrize("backend", ["albumentations", "batched"])
def test_a_short_run_previews_only_its_epochs_in_user_words(bundle, backend):
    """Issue 21: a 2-epoch run shows epochs 1-2 only (not 1...11), and the title names the
    augment.backend value, not an internal class."""
    cfg = resnet_cli.compose(["trainer.device=cpu", "trainer.epochs=2", "scheduler.max_epoch=1", "seed=3",
                              f"data.batch_size={BATCH}", "data.num_workers=0", f"augment.backend={backend}"])
    _, fig = resnet_cli.data_previews(bundle, cfg)
    shown = [int(ax.get_title().removeprefix("epoch ")) for ax in fig.axes[1:]]
    assert 1 <= len(shown) <= 2 and set(shown) <= {1, 2}, shown
    title = " ".join(f"{fig.get_suptitle()} {fig.get_supxlabel()}".split())  # the title and its caption, wrapped
    assert "Batches" not in title and f"augment.backend={backend}" in title, title
    assert "epoch" in title and "of the run" in title, title
