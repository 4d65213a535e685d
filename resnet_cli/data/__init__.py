"""Loading CIFAR-10 or CIFAR-100 (official files) or an image-folder tree into memory as uint8 (N, H, W, 3) arrays,
which batching and augmentation work on (:mod:`resnet_cli.data.batches`). Mean and std are computed from
the training images actually used, never hard-coded.
"""

from __future__ import annotations

import dataclasses
import logging
import pkgutil
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .cache import cached_decode, default_cache_dir
from .decode import decode_images, scan_split
from ..errors import ConfigError, DataError

SPLITS = ("train", "test")


@dataclass(frozen=True)
class DataConfig:
    """``data.*`` (conf/data/) as the loaders take it; ``loader`` is the node's ``_target_``, called
    ``loader(config, seed, splits)``. Subsets: None = all, N = a seeded class-stratified subset."""

    loader: str
    root: str | None
    download: bool
    batch_size: int
    num_workers: int
    train_subset: int | None
    test_subset: int | None
    image_size: int
    cache: bool
    cache_dir: str | None

    @classmethod
    def from_dict(cls, node: Mapping[str, Any]) -> DataConfig:
        """From a ``data`` node as plain values (``_target_`` becomes ``loader``).

        Raises:
            TypeError: a key missing or unknown."""
        return cls(loader=str(node["_target_"]), **{k: v for k, v in node.items() if k != "_target_"})

log = logging.getLogger(__name__)


def _empty(size: int) -> tuple[np.ndarray, np.ndarray]:
    """A split not read: uint8 (0, size, size, 3) images and int64 (0,) labels."""
    return np.zeros((0, size, size, 3), np.uint8), np.zeros(0, np.int64)


@dataclass
class DataBundle:
    """Train and test images in memory: ``*_images`` uint8 (N, H, W, 3) RGB, ``*_labels`` int64 (N,)
    indices into ``classes`` (names in label order); ``mean``/``std`` per channel of ``train_images``,
    fractions 0-1; ``*_paths``: each image's file (image folders; None where the images come from no
    file, e.g. the official CIFAR-10 batches)."""

    name: str
    root: str
    classes: list[str]
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    mean: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))
    std: tuple[float, float, float] = field(default=(1.0, 1.0, 1.0))
    train_paths: list[str] | None = None
    test_paths: list[str] | None = None

    def describe(self) -> dict:
        """The ``dataset`` record of metrics.json."""
        return {"name": self.name, "root": self.root, "train_size": int(len(self.train_labels)),
                "test_size": int(len(self.test_labels)), "mean": [round(float(m), 6) for m in self.mean],
                "std": [round(float(s), 6) for s in self.std], "classes": list(self.classes)}


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images (N, H, W, C), as fractions 0-1,
    computed exactly from a 256-bin histogram per channel (no float copy of the data)."""
    values = np.arange(256, dtype=np.float64) / 255.0
    pixels = images.reshape(-1, images.shape[-1])
    hist = np.zeros((pixels.shape[1], 256), np.int64)
    for start in range(0, len(pixels), 1 << 20):  # chunks of 1 M pixels stay in cache
        block = pixels[start:start + (1 << 20)]
        for c in range(pixels.shape[1]):
            hist[c] += np.bincount(block[:, c], minlength=256)
    counts = hist.astype(np.float64)
    means = tuple(float(row @ values / row.sum()) for row in counts)
    return means, tuple(float(row @ (values - m) ** 2 / row.sum()) ** 0.5 for row, m in zip(counts, means))


def stratified_subset(labels: np.ndarray, size: int | None, seed: int, key: str) -> np.ndarray:
    """Sorted indices of a seeded, class-stratified subset of ``size`` items (all if None): ``size //
    num_classes`` per class, the remainder one each to the first classes. Raises ConfigError (naming
    ``key``) if ``size`` exceeds the data or a class has too few items."""
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


def load_image_folder(cfg: DataConfig, seed: int, splits: Sequence[str] = SPLITS) -> DataBundle:
    """Read ``cfg.root/{train,test}/<class>/*`` (torchvision ImageFolder layout; a split not in
    ``splits`` is empty); ``conf/data/image_folder.yaml``'s ``_target_``. Subsets are chosen before
    decoding; decoded splits are cached (:mod:`resnet_cli.data.cache`).

    Raises:
        DataError: a missing or unreadable folder, differing class folders, an undecodable image.
        ConfigError: a subset larger than the data.
    """
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DataError(
            f"data folder not found: {root.resolve()} (set data.root=<folder with train/ and test/>, "
            "or use data=cifar10 data.download=true to fetch the official files)",
            problem=f"data folder not found: {root.resolve()}")
    scanned = {split: scan_split(root / split) for split in splits}
    classes = scanned[splits[0]][0]
    if len(scanned) == 2 and scanned["train"][0] != scanned["test"][0]:
        train, test = set(scanned["train"][0]), set(scanned["test"][0])
        raise DataError(f"class folders differ between {root / 'train'} and {root / 'test'}: "
                        f"only in train {sorted(train - test)}, only in test {sorted(test - train)}")
    out = {split: _empty(cfg.image_size) for split in SPLITS}
    paths: dict[str, list[str]] = {split: [] for split in SPLITS}
    cache_dir = None
    if cfg.cache:
        cache_dir = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
    for split, (_, samples) in scanned.items():
        labels = np.array([s[1] for s in samples], dtype=np.int64)
        idx = stratified_subset(labels, getattr(cfg, f"{split}_subset"), seed, f"data.{split}_subset")
        paths[split] = [str(samples[i][0]) for i in idx]
        out[split] = cached_decode(cache_dir, split, root, paths[split], labels[idx], cfg.image_size, classes,
                                   decode_images)
    return DataBundle(name="image_folder", root=str(root), classes=classes, train_images=out["train"][0],
                      train_labels=out["train"][1], test_images=out["test"][0], test_labels=out["test"][1],
                      train_paths=paths["train"], test_paths=paths["test"])


def _check_cifar10_files(root: Path, dataset_cls, name: str = "CIFAR-10") -> None:
    """DataError if ``root/<dataset_cls.base_folder>`` (e.g. cifar-10-batches-py) exists but a file of
    data set ``name`` is missing or fails its MD5."""
    from torchvision.datasets.utils import check_integrity

    base = root / dataset_cls.base_folder
    if not base.is_dir():
        return  # nothing there at all: torchvision's "not found" below says so
    files = [*dataset_cls.train_list, *dataset_cls.test_list, (dataset_cls.meta["filename"], dataset_cls.meta["md5"])]
    missing = [name for name, _ in files if not (base / name).is_file()]
    if missing:
        raise DataError(f"{name} files missing in {base.resolve()}: {', '.join(missing)}; restore them, "
                        "run with data.download=true, or use data=image_folder data.root=<folder>",
                        problem=f"{name} files missing in {base.resolve()}: {', '.join(missing)}")
    bad = [name for name, md5 in files if not check_integrity(str(base / name), md5)]
    if bad:
        raise DataError(f"{name} files corrupted in {base.resolve()} (MD5 mismatch): {', '.join(bad)}; "
                        "delete them and run with data.download=true")


def check_subsets(cfg: DataConfig) -> None:
    """Before anything is read, raise ConfigError for a subset larger than the loader's ``split_sizes``
    or a root its ``check_root`` refuses (``data=cifar10`` given an image folder)."""
    try:
        loader = pkgutil.resolve_name(cfg.loader)
    except Exception as e:  # noqa: BLE001 - import error, not a function...
        raise ConfigError(f"data._target_={cfg.loader} cannot be imported ({type(e).__name__}); "
                          "choose data=cifar10, data=cifar100 or data=image_folder") from None
    for key, n in getattr(loader, "split_sizes", {}).items():
        if getattr(cfg, key) is not None and getattr(cfg, key) > n:
            raise ConfigError(f"data.{key}={getattr(cfg, key)!r} is not allowed: this data set has {n} images in "
                              f"that split: use at most {n} or null")
    getattr(loader, "check_root", lambda cfg: None)(cfg)


def is_image_folder(root: str | Path) -> bool:
    """True if ``root`` holds ``train/<class>/`` and ``test/<class>/`` (``data=image_folder``'s layout)."""
    root = Path(root).expanduser()
    return all((root / split).is_dir() and any(e.is_dir() for e in (root / split).iterdir()) for split in SPLITS)


def _check_cifar10_root(cfg: DataConfig) -> None:
    """ConfigError if ``cfg.root`` is an image folder (never look for or download CIFAR files there)."""
    if cfg.root and is_image_folder(cfg.root):
        raise ConfigError(f"data.root={cfg.root} holds an image folder (train/<class>/, test/<class>/), not the "
                          "official CIFAR files: add data=image_folder")


def load_cifar10(cfg: DataConfig, seed: int, splits: Sequence[str] = SPLITS) -> DataBundle:
    """Official CIFAR-10 python release through ``torchvision.datasets.CIFAR10`` (a split not in
    ``splits`` is empty); ``conf/data/cifar10.yaml``'s ``_target_``. Downloads into ``cfg.root`` when
    missing and ``cfg.download``, never into a folder holding other files.

    Raises:
        ConfigError: ``cfg.root`` is an image folder (add ``data=image_folder``).
        DataError: files missing or corrupted, the download failed, or ``cfg.root`` holds other files.
    """
    from torchvision.datasets import CIFAR10

    return _load_cifar(cfg, seed, splits, CIFAR10, "cifar10", "CIFAR-10")


def load_cifar100(cfg: DataConfig, seed: int, splits: Sequence[str] = SPLITS) -> DataBundle:
    """Official CIFAR-100 python release (``cifar-100-python/{train,test,meta}``) through
    ``torchvision.datasets.CIFAR100``: 100 fine classes, 500 training and 100 test images each;
    otherwise as :func:`load_cifar10`. ``conf/data/cifar100.yaml``'s ``_target_``.

    Raises:
        ConfigError: ``cfg.root`` is an image folder (add ``data=image_folder``).
        DataError: files missing or corrupted, the download failed, or ``cfg.root`` holds other files.
    """
    from torchvision.datasets import CIFAR100

    return _load_cifar(cfg, seed, splits, CIFAR100, "cifar100", "CIFAR-100")


def _load_cifar(cfg: DataConfig, seed: int, splits: Sequence[str], dataset_cls, key: str, name: str) -> DataBundle:
    """:func:`load_cifar10` for the torchvision CIFAR class ``dataset_cls``; ``key``: the bundle's
    name (``data=<key>``), ``name``: the data set's in messages."""
    root = Path(cfg.root).expanduser()
    _check_cifar10_root(cfg)  # never look for, or download, the official files inside an image folder
    if not cfg.download:
        _check_cifar10_files(root, dataset_cls, name)
    elif root.is_dir() and any(root.iterdir()) and not any(
            (root / f).exists() for f in (dataset_cls.base_folder, dataset_cls.filename)):
        raise DataError(f"{root.resolve()} already holds other files and no {name}: not downloading into it; "
                        "set data.root=<a new folder> for the download, or data=image_folder if it is an image folder")
    out = {split: (*_empty(32), None) for split in SPLITS}
    created = not root.exists()  # a failed download removes the folder it made (no empty data/cifar10/)
    for split in splits:
        try:
            ds = dataset_cls(str(root), train=split == "train", download=bool(cfg.download))
        except (RuntimeError, OSError) as e:
            if created:
                shutil.rmtree(root, ignore_errors=True)
            if isinstance(e, OSError):  # download impossible (offline) or unwritable root
                raise DataError(
                    f"cannot download {name} into {root.resolve()} ({e}): fetch it on a networked machine "
                    "and set data.root, or use data=image_folder data.root=<folder>") from None
            raise DataError(  # torchvision: "Dataset not found or corrupted..."
                f"{name} not found in {root.resolve()} ({str(e).splitlines()[0].rstrip('.')}): "
                "run with data.download=true, or point data=image_folder data.root=<folder> at a local copy",
                problem=f"{name} not found in {root.resolve()}") from None
        labels = np.asarray(ds.targets, dtype=np.int64)
        idx = stratified_subset(labels, getattr(cfg, f"{split}_subset"), seed, f"data.{split}_subset")
        out[split] = (np.ascontiguousarray(ds.data[idx]), labels[idx], list(ds.classes))
    return DataBundle(name=key, root=str(root), classes=out[splits[0]][2], train_images=out["train"][0],
                      train_labels=out["train"][1], test_images=out["test"][0], test_labels=out["test"][1])


load_cifar10.split_sizes = {"train_subset": 50_000, "test_subset": 10_000}  # the official splits (check_subsets)
load_cifar10.check_root = _check_cifar10_root  # an image folder given to data=cifar10 (check_subsets)
load_cifar100.split_sizes = {"train_subset": 50_000, "test_subset": 10_000}
load_cifar100.check_root = _check_cifar10_root


def load_data(cfg: DataConfig, seed: int) -> DataBundle:
    """Load the dataset with the loader ``cfg.loader`` names (:func:`load_cifar10`,
    :func:`load_image_folder`, or any ``loader(cfg, seed, splits=("train", "test")) -> DataBundle``)
    and compute the training images' mean/std.

    Raises:
        DataError: missing or unreadable data, or fewer than 2 classes (names the path and the fix).
        ConfigError: a subset larger than the data.
    """
    bundle = pkgutil.resolve_name(cfg.loader)(cfg, seed)
    bundle.root = str(Path(bundle.root).resolve())
    if len(bundle.train_labels) == 0 or len(bundle.test_labels) == 0:
        raise DataError(f"no images found under {bundle.root}: check data.root")
    if len(bundle.classes) < 2:
        raise DataError(f"{bundle.root} holds {len(bundle.classes)} class ({', '.join(map(str, bundle.classes))}): "
                        "a classifier needs at least 2 class folders in train/ and test/; check data.root")
    bundle.mean, bundle.std = channel_stats(bundle.train_images)
    flat = [c for c, s in zip("RGB", bundle.std) if s < 1e-6]  # constant channel (float rounding: not exactly 0)
    if flat:
        raise DataError(f"the training images under {bundle.root} do not vary in channel {', '.join(flat)} "
                        "(std 0), so they cannot be normalised: check the images")
    log.info("data: %s at %s, %d train / %d test images, %d classes, mean %s std %s",
             bundle.name, bundle.root, len(bundle.train_labels), len(bundle.test_labels),
             len(bundle.classes), [round(m, 4) for m in bundle.mean], [round(s, 4) for s in bundle.std])
    return bundle


def load_test_split(data_cfg: Mapping[str, Any], seed: int, test_subset: Any = None,
                    root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A run's test split, read by its own loader (``data_cfg``: a checkpoint's ``config["data"]``) with
    ``splits=("test",)``: images uint8 (N, S, S, 3) RGB, labels int64 (N,), class names in label order.
    ``test_subset``: None = the run's, ``"all"``, or N (seeded by ``seed``); ``root`` overrides the run's.

    Raises:
        DataError: the data folder is missing or unreadable, or an image cannot be decoded.
        ConfigError: a bad ``test_subset``.
    """
    cfg = DataConfig.from_dict(data_cfg)
    if test_subset is not None and test_subset != "all":
        if not (isinstance(test_subset, int) and not isinstance(test_subset, bool) and test_subset > 0):
            raise ConfigError(f"test_subset={test_subset!r} is not allowed: null (as in the run), all, "
                              "or a positive count")
    subset = cfg.test_subset if test_subset is None else None if test_subset == "all" else test_subset
    cfg = dataclasses.replace(cfg, test_subset=subset, root=str(root or cfg.root), download=False)
    try:
        bundle = pkgutil.resolve_name(cfg.loader)(cfg, seed, splits=("test",))
    except DataError as e:  # the loader's advice names resnet-train's keys: only its fact is kept
        raise DataError(f"the checkpoint's test split cannot be read: {e.problem}; set data_root=<folder holding "
                        "the test images> (resnet-gradcam; resnet_cli.evaluate: data=[...])") from None
    return bundle.test_images, bundle.test_labels, list(bundle.classes)
