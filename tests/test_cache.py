"""Decode once (resnet_cli/data/cache.py): hits, misses on change, corrupt and unwritable caches."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from resnet_cli.data import cache
from conftest import load_data
from resnet_cli.data.decode import decode_images


def _folder(root, n=3, classes=("cat", "dog")):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")
    return root


class Counting:
    """decode_images that counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, paths, size):
        self.calls += 1
        return decode_images(paths, size)


def _paths(root, split="train"):
    return sorted(str(p) for p in (root / split).rglob("*.png"))


def _decode(tmp_path, root, decode, split="train"):
    paths = _paths(root, split)
    labels = np.array([0 if "/cat/" in p else 1 for p in paths])
    return cache.cached_decode(tmp_path / "cache", split, root, paths, labels, 32, ["cat", "dog"], decode)


def test_second_load_comes_from_the_cache(tmp_path):
    root, decode = _folder(tmp_path / "data"), Counting()
    first, labels = _decode(tmp_path, root, decode)
    second, labels2 = _decode(tmp_path, root, decode)
    assert decode.calls == 1
    assert isinstance(second, np.memmap) and second.dtype == np.uint8 and second.shape == (6, 32, 32, 3)
    assert np.array_equal(first, second) and np.array_equal(labels, labels2) and labels2.dtype == np.int64
    second[0, 0, 0, 0] ^= 1  # copy-on-write: writable in memory, the cached file is untouched
    assert np.array_equal(_decode(tmp_path, root, decode)[0], first)


def test_the_log_says_when_the_cache_is_built_and_when_it_is_loaded(tmp_path, caplog):
    """One line each: a cold run says it decodes and caches, a warm one that it loads."""
    root, decode = _folder(tmp_path / "data"), Counting()
    with caplog.at_level(logging.INFO, logger="resnet_cli.data.cache"):
        _decode(tmp_path, root, decode)
    cold = [r.getMessage() for r in caplog.records]
    assert len(cold) == 1 and "decoding the train split (6 images) once and caching it in" in cold[0], cold
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="resnet_cli.data.cache"):
        _decode(tmp_path, root, decode)
    warm = [r.getMessage() for r in caplog.records]
    assert len(warm) == 1 and "loaded the train split (6 images) from" in warm[0], warm
    assert decode.calls == 1


def test_a_changed_file_rebuilds(tmp_path):
    root, decode = _folder(tmp_path / "data"), Counting()
    first, _ = _decode(tmp_path, root, decode)
    target = root / "train" / "cat" / "0.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(target)
    os.utime(target, ns=(1, 1))  # another mtime (and content)
    second, _ = _decode(tmp_path, root, decode)
    assert decode.calls == 2 and not np.array_equal(first, second) and second[0].max() == 0


@pytest.mark.parametrize("damage", ["flip", "truncate", "meta"])
def test_a_corrupt_entry_is_detected_and_rebuilt(tmp_path, damage, caplog):
    root, decode = _folder(tmp_path / "data"), Counting()
    first, _ = _decode(tmp_path, root, decode)
    (entry,) = (tmp_path / "cache").iterdir()
    images = entry / "images.npy"
    data = bytearray(images.read_bytes())
    if damage == "flip":
        data[-10] ^= 0xFF
        images.write_bytes(bytes(data))
    elif damage == "truncate":
        images.write_bytes(bytes(data[: len(data) // 2]))
    else:
        (entry / "meta.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="resnet_cli.data.cache"):
        again, _ = _decode(tmp_path, root, decode)
    assert decode.calls == 2 and np.array_equal(first, again)
    assert "unusable" in caplog.text and "rebuilding" in caplog.text
    assert np.array_equal(_decode(tmp_path, root, decode)[0], first) and decode.calls == 2  # rebuilt entry is good


def test_an_unwritable_cache_warns_and_the_run_goes_on(tmp_path, caplog):
    root, decode = _folder(tmp_path / "data"), Counting()
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    paths = _paths(root)
    with caplog.at_level(logging.WARNING, logger="resnet_cli.data.cache"):
        images, _ = cache.cached_decode(blocker / "cache", "train", root, paths, np.zeros(6, np.int64), 32,
                                        ["cat", "dog"], decode)
    assert images.shape == (6, 32, 32, 3) and decode.calls == 1
    assert "data cache not written" in caplog.text and "data.cache_dir" in caplog.text


def test_a_sibling_job_that_wrote_first_wins(tmp_path):
    entry = tmp_path / "cache" / "train-abc"
    a, b = np.zeros((2, 4, 4, 3), np.uint8), np.ones((2, 4, 4, 3), np.uint8)
    cache._write(entry, a, np.zeros(2, np.int64))
    cache._write(entry, b, np.zeros(2, np.int64))  # the entry exists: no error, theirs is kept
    images, _ = cache._read(entry)
    assert np.array_equal(images, a)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["train-abc"]  # no temporary folder left


def test_load_data_uses_the_cache_and_cache_false_does_not(tmp_path, monkeypatch):
    root = _folder(tmp_path / "data")
    base = {"_target_": "resnet_cli.data.load_image_folder", "root": str(root), "train_subset": None, "test_subset": None,
            "image_size": 32, "cache_dir": str(tmp_path / "c")}
    a = load_data(OmegaConf.create({**base, "cache": True}), 0)
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "c").iterdir()) == ["test", "train"]
    monkeypatch.setattr("resnet_cli.data.decode_images", lambda *a: pytest.fail("decoded despite the cache"))
    b = load_data(OmegaConf.create({**base, "cache": True}), 0)
    assert np.array_equal(a.train_images, b.train_images) and a.mean == b.mean and a.classes == b.classes
    with pytest.raises(BaseException, match="decoded despite the cache"):
        load_data(OmegaConf.create({**base, "cache": False}), 0)
