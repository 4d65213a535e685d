"""data=cifar100 through torchvision on a small fake copy in torchvision's file layout
(cifar-100-python/{train,test,meta} pickles, their MD5s registered for the test), offline."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from torchvision.datasets import CIFAR100

import resnet_cli
from resnet_cli.cli.composition import config_dir
from resnet_cli.cli.checks import validate
from resnet_cli.cli.schema import register_configs
from conftest import load_data
from resnet_cli.cli.build import build_recipe
from resnet_cli.engine import build_model
from resnet_cli.errors import DataError

register_configs()
CLASSES = [f"class{i:03d}" for i in range(100)]


def fake_cifar100(root: Path, per_class=(2, 1)) -> dict[str, str]:
    """``root/cifar-100-python/{train,test,meta}`` as the official release lays them out (uint8
    rows of 3072 = 3 x 32 x 32, ``fine_labels``, ``fine_label_names``), seeded noise; returns each
    file's MD5."""
    base = root / CIFAR100.base_folder
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in zip(("train", "test"), per_class):
        labels = [c for c in range(100) for _ in range(n)]
        entry = {"data": rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8), "fine_labels": labels,
                 "coarse_labels": [c // 5 for c in labels], "filenames": [f"{i}.png" for i in range(len(labels))]}
        (base / name).write_bytes(pickle.dumps(entry))
    (base / "meta").write_bytes(pickle.dumps({"fine_label_names": CLASSES, "coarse_label_names": []}))
    return {name: hashlib.md5((base / name).read_bytes()).hexdigest() for name in ("train", "test", "meta")}


@pytest.fixture
def cifar100_root(tmp_path, monkeypatch) -> Path:
    md5 = fake_cifar100(tmp_path / "cifar100")
    monkeypatch.setattr(CIFAR100, "train_list", [["train", md5["train"]]])
    monkeypatch.setattr(CIFAR100, "test_list", [["test", md5["test"]]])
    monkeypatch.setattr(CIFAR100, "meta", {**CIFAR100.meta, "md5": md5["meta"]})
    return tmp_path / "cifar100"


def _compose(overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir(), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def _overrides(root: Path, *extra: str) -> list[str]:
    return ["data=cifar100", f"data.root={root}", "data.download=false", "data.batch_size=50", "data.num_workers=0",
            "trainer.device=cpu", "trainer.epochs=2", "scheduler.max_epoch=1", "scheduler.max_lr=0.05",
            "scheduler.min_lr=0.005", "explain.count=2", *extra]


def test_cifar100_loads_100_classes_and_sizes_the_head(cifar100_root):
    cfg = _compose(_overrides(cifar100_root))
    validate(cfg)
    data = load_data(cfg.data, cfg.seed)
    assert data.name == "cifar100" and data.classes == CLASSES
    assert data.train_images.shape == (200, 32, 32, 3) and data.train_images.dtype == np.uint8
    assert np.bincount(data.train_labels).tolist() == [2] * 100 and len(data.test_labels) == 100
    model = build_model(build_recipe(cfg), len(data.classes))  # the recipe's custom ResNet
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 100)


def test_a_run_on_cifar100_trains_a_100_class_model(cifar100_root, tmp_path):
    result = resnet_cli.train(_overrides(cifar100_root, "model._target_=tinynets.TinyNet"),
                              output_dir=tmp_path / "run", verbose=False)
    m = result.metrics
    assert m["status"] == "completed" and m["dataset"]["name"] == "cifar100" and len(m["dataset"]["classes"]) == 100
    weights = torch.load(result.checkpoint, map_location="cpu", weights_only=True)["model"]
    assert weights["fc.weight"].shape[0] == 100 and result.model(torch.zeros(1, 3, 32, 32)).shape == (1, 100)


def test_a_missing_cifar100_file_is_named(cifar100_root):
    (cifar100_root / CIFAR100.base_folder / "test").unlink()
    cfg = _compose(_overrides(cifar100_root))
    with pytest.raises(DataError, match=r"CIFAR-100 files missing in .*cifar-100-python: test; "):
        load_data(cfg.data, cfg.seed)
