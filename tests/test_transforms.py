"""The albumentations train transform: shape, dtype, exactly one 8x8 cutout, varying crop/flip."""

import numpy as np
import torch
from omegaconf import OmegaConf

from resnet_cli.data.batches.albumentations_backend import AlbumentationsBatches, build_train_transform, seed_transform

# The cutout fill is the mean as uint8 (100 here); test images never contain 100, so after
# Normalize the hole is exactly the set of zeros.
MEAN, STD = (100 / 255,) * 3, (0.25, 0.25, 0.25)
CUTOUT = OmegaConf.create({"pad": 4, "pad_mode": "reflect", "flip_p": 0.5, "cutout_holes": 1,
                           "cutout_size": 8, "cutout_p": 1.0})


def _image(seed=0):
    img = np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    return np.where(img >= 100, img + 1, img).astype(np.uint8)  # every value but 100


def _denorm(t: torch.Tensor) -> np.ndarray:
    x = t.numpy().transpose(1, 2, 0) * np.array(STD) + np.array(MEAN)
    return np.rint(x * 255.0)


def test_output_shape_dtype_and_one_cutout():
    tf = build_train_transform(CUTOUT, MEAN, STD, 32)
    img = _image()
    for seed in range(50):
        seed_transform(tf, seed)
        out = tf(image=img)["image"]
        assert out.shape == (3, 32, 32) and out.dtype == torch.float32
        hole = (out.abs() < 1e-6).all(0).numpy()
        ys, xs = np.nonzero(hole)
        assert hole.sum() == 64, hole.sum()
        assert (out[:, hole] == 0).all()
        assert ys.max() - ys.min() == 7 and xs.max() - xs.min() == 7  # one 8x8 square, inside the image


def _locate(out: np.ndarray, padded: np.ndarray, mask: np.ndarray) -> tuple[int, int, bool]:
    """Find the crop offset and flip that produced ``out`` (ignoring the cutout ``mask``)."""
    for flip in (False, True):
        src = padded[:, ::-1] if flip else padded
        for dy in range(9):
            for dx in range(9):
                ox = 8 - dx if flip else dx
                cand = src[dy:dy + 32, ox:ox + 32]
                if np.array_equal(cand[~mask], out[~mask]):
                    return dy, dx, flip
    raise AssertionError("output is not a crop of the reflect-padded image")


def test_crop_and_flip_vary_and_are_exact_crops():
    tf = build_train_transform(CUTOUT, MEAN, STD, 32)
    img = _image(1)
    padded = np.pad(img, ((4, 4), (4, 4), (0, 0)), mode="reflect").astype(float)
    seen = set()
    for seed in range(60):
        seed_transform(tf, seed)
        out_t = tf(image=img)["image"]
        mask = (out_t.abs() < 1e-6).all(0).numpy()
        seen.add(_locate(_denorm(out_t), padded, mask))
    offsets = {(dy, dx) for dy, dx, _ in seen}
    flips = {f for _, _, f in seen}
    assert len(offsets) > 20 and flips == {False, True}


def test_batches_are_reproducible_and_independent_of_workers():
    images = np.stack([_image(i) for i in range(40)])
    labels = np.arange(40) % 10
    tf = build_train_transform(CUTOUT, MEAN, STD, 32)
    a = AlbumentationsBatches(images, labels, tf, 8, seed=3, num_workers=0, device="cpu")
    b = AlbumentationsBatches(images, labels, tf, 8, seed=3, num_workers=2, device="cpu")
    assert len(a) == 5
    ea, eb = list(a.epoch(1)), list(b.epoch(1))
    for (xa, ya), (xb, yb) in zip(ea, eb):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    tail = list(a.epoch(1, start_step=3))
    assert len(tail) == 2 and torch.equal(tail[0][0], ea[3][0])
    assert not torch.equal(list(a.epoch(2))[0][0], ea[0][0])
