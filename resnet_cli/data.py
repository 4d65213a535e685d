"""Loading CIFAR-10 (official files or an image-folder tree) into memory as uint8 arrays.

The whole split is decoded once into a uint8 array of shape (N, H, W, 3) (CIFAR-10: 150 MB
for train, 30 MB for test); batching and augmentation work on that array (see
:mod:`resnet_cli.augment`). Mean and std are computed from the training images actually used
and recorded, never hard-coded.
"""

from __future__ import annotations

import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from PIL import Image, UnidentifiedImageError

from .cache import cached_decode, default_cache_dir
from .errors import ConfigError, DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class DataBundle:
    """Train and test images in memory.

    Attributes:
        train_images, test_images: uint8 arrays (N, H, W, 3), RGB.
        train_labels, test_labels: int64 arrays (N,), indices into ``classes``.
        classes: class names in label order.
        mean, std: per-channel statistics of ``train_images`` as fractions of 255 (0-1).
    """

    name: str
    root: str
    classes: list[str]
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    mean: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))
    std: tuple[float, float, float] = field(default=(1.0, 1.0, 1.0))

    def describe(self) -> dict:
        """The ``dataset`` record of metrics.json."""
        return {
            "name": self.name,
            "root": self.root,
            "train_size": int(len(self.train_labels)),
            "test_size": int(len(self.test_labels)),
            "mean": [round(float(m), 6) for m in self.mean],
            "std": [round(float(s), 6) for s in self.std],
            "classes": list(self.classes),
        }


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images (N, H, W, C), as fractions 0-1.

    Computed exactly from a 256-bin histogram per channel (``np.bincount``), one pass over the
    data with no float copy of it: a second or so for the 50,000 CIFAR-10 training images.
    """
    values = np.arange(256, dtype=np.float64) / 255.0
    pixels = images.reshape(-1, images.shape[-1])
    hist = np.zeros((pixels.shape[1], 256), np.int64)
    for start in range(0, len(pixels), 1 << 20):  # chunks of 1 M pixels stay in cache
        block = pixels[start:start + (1 << 20)]
        for c in range(pixels.shape[1]):
            hist[c] += np.bincount(block[:, c], minlength=256)
    means, stds = [], []
    for c in range(pixels.shape[1]):
        counts = hist[c].astype(np.float64)
        n = counts.sum()
        mean = float(counts @ values / n)
        var = float(counts @ (values - mean) ** 2 / n)
        means.append(mean)
        stds.append(var ** 0.5)
    return tuple(means), tuple(stds)


def stratified_subset(labels: np.ndarray, size: int | None, seed: int, key: str) -> np.ndarray:
    """Indices of a seeded, class-stratified subset of ``size`` items (all, in order, if None).

    Each class gets ``size // num_classes`` items, the remainder going one each to the first
    classes; the result is sorted. Raises ConfigError (naming ``key``) if ``size`` exceeds the
    data or a class has too few items.
    """
    n = len(labels)
    if size is None:
        return np.arange(n)
    if size > n:
        raise ConfigError(f"{key}={size} is larger than the {n} images available: use at most {n} or null")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per, extra = divmod(size, len(classes))
    picked = []
    for i, c in enumerate(classes):
        members = np.flatnonzero(labels == c)
        want = per + (1 if i < extra else 0)
        if want > len(members):
            raise ConfigError(f"{key}={size} needs {want} images of class {c} but only {len(members)} exist")
        picked.append(rng.choice(members, size=want, replace=False))
    return np.sort(np.concatenate(picked))


EXACT_MODES = ("RGB", "L", "1", "P", "YCbCr")
"""Image modes accepted as they are: their conversion to 8-bit RGB is exact (grey levels
repeated in the three channels, palette looked up, JPEG's YCbCr decoded). RGBA, LA and PA are
accepted when fully opaque. Refused, naming the file: transparency (which background?),
16/32-bit and float images (I;16, I, F: clipping to 0-255 loses levels), CMYK (colours would be
guessed without the file's ICC profile) and any other mode."""


def _rgb_problem(im: Image.Image) -> str | None:
    """Why ``im`` cannot be converted to RGB exactly (None when it can)."""
    mode = im.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        alpha = im.convert("RGBA").getchannel("A")
        return None if alpha.getextrema()[0] == 255 else f"mode {mode} with transparent pixels"
    if mode in EXACT_MODES:
        return None
    if mode.startswith("I") or mode == "F":
        return f"mode {mode} (more than 8 bits per pixel)"
    if mode == "CMYK":
        return "mode CMYK (colours need the ICC profile)"
    return f"mode {mode}"


def _decode(path: str, size: int) -> np.ndarray:
    """One image file -> uint8 (size, size, 3) RGB; raises DataError naming the file."""
    try:
        with Image.open(path) as im:
            im.load()
            problem = _rgb_problem(im)
            if problem:
                raise DataError(f"image {path} is not RGB: {problem} cannot be converted to RGB exactly; "
                                "save it as 8-bit RGB (JPEG/PNG) or remove it")
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise DataError(f"cannot decode image {path} ({reason}); remove or replace the file") from None


def decode_images(paths: list[str], size: int, workers: int = 4) -> np.ndarray:
    """Decode image files to a uint8 array (N, size, size, 3), resizing where needed.

    Raises:
        DataError: naming the first file that cannot be decoded.
    """
    if not paths:
        return np.zeros((0, size, size, 3), np.uint8)
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        return np.stack(list(pool.map(lambda p: _decode(p, size), paths)))
    finally:  # on a bad file or Ctrl-C, drop the images not decoded yet instead of waiting for them
        pool.shutdown(wait=True, cancel_futures=True)


def _scan_split(split_dir: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """ImageFolder-style scan: class folders in sorted order and (path, label) samples."""
    from torchvision.datasets.folder import make_dataset

    if not split_dir.is_dir():
        raise DataError(f"image folder split not found: {split_dir} (expected <root>/train/<class>/* and <root>/test/<class>/*)")
    classes = sorted(e.name for e in split_dir.iterdir() if e.is_dir())
    if not classes:
        raise DataError(f"no class folders in {split_dir}: expected {split_dir}/<class>/<image>")
    try:
        samples = make_dataset(str(split_dir), {c: i for i, c in enumerate(classes)}, IMAGE_SUFFIXES)
    except FileNotFoundError as e:
        raise DataError(f"{split_dir}: {str(e).splitlines()[0]}") from None
    return classes, samples


def load_image_folder(root: str | Path, cfg: DictConfig, seed: int) -> DataBundle:
    """Read ``root/train/<class>/*`` and ``root/test/<class>/*`` (torchvision ImageFolder layout).

    Subsets are chosen before decoding, so a small subset of a large tree loads quickly. Decoded
    splits are cached (``data.cache``, ``data.cache_dir``; :mod:`resnet_cli.cache`): a second run on
    the same files loads them memory-mapped instead of decoding again.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(
            f"data folder not found: {root.resolve()} (set data.root=<folder with train/ and test/>, "
            "or use data=cifar10 data.download=true to fetch the official files)"
        )
    train_classes, train_samples = _scan_split(root / "train")
    test_classes, test_samples = _scan_split(root / "test")
    if train_classes != test_classes:
        only_train = sorted(set(train_classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(train_classes))
        raise DataError(
            f"class folders differ between {root / 'train'} and {root / 'test'}: "
            f"only in train {only_train}, only in test {only_test}"
        )
    out = {}
    cache_dir = None
    if cfg.get("cache", True):
        cache_dir = Path(cfg.cache_dir).expanduser() if cfg.get("cache_dir") else default_cache_dir()
    for split, samples in (("train", train_samples), ("test", test_samples)):
        labels = np.array([s[1] for s in samples], dtype=np.int64)
        idx = stratified_subset(labels, cfg[f"{split}_subset"], seed, f"data.{split}_subset")
        out[split] = cached_decode(cache_dir, split, root, [samples[i][0] for i in idx], labels[idx],
                                   cfg.image_size, train_classes, decode_images)
    return DataBundle(
        name="image_folder", root=str(root), classes=train_classes,
        train_images=out["train"][0], train_labels=out["train"][1],
        test_images=out["test"][0], test_labels=out["test"][1],
    )


def _check_cifar10_files(root: Path, dataset_cls) -> None:
    """Name the missing or corrupted batch files of an official-format folder that exists.

    Raises:
        DataError: ``root/cifar-10-batches-py`` exists but a batch is missing or fails its MD5.
    """
    from torchvision.datasets.utils import check_integrity

    base = root / dataset_cls.base_folder
    if not base.is_dir():
        return  # nothing there at all: torchvision's "not found" below says so
    files = [*dataset_cls.train_list, *dataset_cls.test_list, (dataset_cls.meta["filename"], dataset_cls.meta["md5"])]
    missing = [name for name, _ in files if not (base / name).is_file()]
    if missing:
        raise DataError(f"CIFAR-10 files missing in {base.resolve()}: {', '.join(missing)}; restore them, "
                        "run with data.download=true, or use data=image_folder data.root=<folder>")
    bad = [name for name, md5 in files if not check_integrity(str(base / name), md5)]
    if bad:
        raise DataError(f"CIFAR-10 files corrupted in {base.resolve()} (MD5 mismatch): {', '.join(bad)}; "
                        "delete them and run with data.download=true")


def load_cifar10(root: str | Path, cfg: DictConfig, seed: int) -> DataBundle:
    """Official CIFAR-10 python release through ``torchvision.datasets.CIFAR10``.

    Downloads into ``root`` when missing and ``data.download=true``.
    """
    from torchvision.datasets import CIFAR10

    root = Path(root).expanduser()
    if not cfg.download:
        _check_cifar10_files(root, CIFAR10)
    splits = {}
    created = not root.exists()  # a failed download removes the folder it made (no empty data/cifar10/)
    for split in ("train", "test"):
        try:
            try:
                ds = CIFAR10(str(root), train=split == "train", download=bool(cfg.download))
            except (RuntimeError, OSError):
                if created:
                    shutil.rmtree(root, ignore_errors=True)
                raise
        except RuntimeError as e:  # torchvision: "Dataset not found or corrupted..."
            raise DataError(
                f"CIFAR-10 not found in {root.resolve()} ({str(e).splitlines()[0].rstrip('.')}): "
                "run with data.download=true, or point data=image_folder data.root=<folder> at a local copy"
            ) from None
        except OSError as e:  # download impossible (offline) or unwritable root
            raise DataError(
                f"cannot download CIFAR-10 into {root.resolve()} ({e}): fetch it on a networked machine "
                "and set data.root, or use data=image_folder data.root=<folder>"
            ) from None
        labels = np.asarray(ds.targets, dtype=np.int64)
        idx = stratified_subset(labels, cfg[f"{split}_subset"], seed, f"data.{split}_subset")
        splits[split] = (np.ascontiguousarray(ds.data[idx]), labels[idx], ds.classes)
    return DataBundle(
        name="cifar10", root=str(root), classes=list(splits["train"][2]),
        train_images=splits["train"][0], train_labels=splits["train"][1],
        test_images=splits["test"][0], test_labels=splits["test"][1],
    )


LOADERS = {"cifar10": load_cifar10, "image_folder": load_image_folder}


def load_data(cfg: DictConfig, seed: int) -> DataBundle:
    """Load the dataset named by ``cfg.name`` (``data`` config node) and compute mean/std.

    Raises:
        DataError: missing or unreadable data (names the path and the fix).
        ConfigError: a subset larger than the data.
    """
    bundle = LOADERS[cfg.name](cfg.root, cfg, seed)
    bundle.root = str(Path(bundle.root).resolve())
    if len(bundle.train_labels) == 0 or len(bundle.test_labels) == 0:
        raise DataError(f"no images found under {bundle.root}: check data.root")
    bundle.mean, bundle.std = channel_stats(bundle.train_images)
    flat = [c for c, s in zip("RGB", bundle.std) if s < 1e-6]  # constant channel (float rounding: not exactly 0)
    if flat:
        raise DataError(f"the training images under {bundle.root} do not vary in channel {', '.join(flat)} "
                        "(std 0), so they cannot be normalised: check the images")
    log.info(
        "data: %s at %s, %d train / %d test images, %d classes, mean %s std %s",
        bundle.name, bundle.root, len(bundle.train_labels), len(bundle.test_labels),
        len(bundle.classes), [round(m, 4) for m in bundle.mean], [round(s, 4) for s in bundle.std],
    )
    return bundle
