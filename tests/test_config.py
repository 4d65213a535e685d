"""The typed config: what Hydra/OmegaConf refuse while composing and what :func:`validate`
refuses before any data is loaded, each as one line naming the key (issue 6).

In-process tests compose with Hydra's compose API or call ``resnet-train``'s entry point; two tests run it in a
subprocess and check the user's view: exit code 2, one ``error:`` line, no traceback and none
of Hydra's multi-line report.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from resnet_cli.cli.composition import config_dir
from resnet_cli.cli.checks import check_structure, unknown_key_message, validate
from resnet_cli.cli.schema import register_configs
from resnet_cli.errors import ConfigError

from conftest import call_cli, one_line_error, script

register_configs()
CONF = Path(config_dir())


def _compose(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides)


def _folder_cfg(tmp_path: Path, *overrides: str):
    """A valid small image_folder config plus ``overrides`` (later ones win)."""
    return _compose(["data=image_folder", f"data.root={tmp_path}", "trainer.device=cpu", "trainer.epochs=3",
                     "scheduler.max_epoch=1", *overrides])


# -- composing: wrong types and unknown keys -------------------------------------------------

BAD_VALUES = [
    # (overrides, the key=value the line names): wrong types, unknown keys, values out of range,
    # each refused before any data is read (data.root is a folder holding an undecodable image)
    (["trainer.epochs=abc"], "trainer.epochs=abc"),
    (["trainer.epochs=2.5"], "trainer.epochs=2.5"),
    (["data.batch_size=big"], "data.batch_size=big"),
    (["trainer.compile=maybe"], "trainer.compile=maybe"),
    (["seed=null"], "seed=null"),
    (["data=nope"], "data=nope"),
    (["model=nope"], "model=nope"),
    (["trainer.epoch=3"], "unknown key trainer.epoch=3"),
    (["data.bach_size=8"], "unknown key data.bach_size=8"),
    (["+foo=1"], "unknown key foo=1"),
    (["+trainer.foo=1"], "unknown key trainer.foo=1"),
    (["++data.colour=red"], "unknown key data.colour=red"),
    (["+model.width=64"], "unknown key model.width=64"),
    (["+optimizer.betas=2"], "unknown key optimizer.betas=2"),
    (["trainer.epochs=["], "trainer.epochs=["),
    (["seed=0,1"], "seed=0,1"),
    (["data.batch_size=0"], "data.batch_size=0"),
    (["data.batch_size=-4"], "data.batch_size=-4"),
    (["trainer.epochs=0"], "trainer.epochs=0"),
    (["trainer.epochs=-1"], "trainer.epochs=-1"),
    (["scheduler.max_epoch=4"], "scheduler.max_epoch=4"),  # > trainer.epochs
    (["scheduler.max_epoch=0"], "scheduler.max_epoch=0"),
    (["scheduler.max_lr=0"], "scheduler.max_lr=0"),
    (["scheduler.max_lr=-0.5"], "scheduler.max_lr=-0.5"),
    (["scheduler.max_lr=fast"], "scheduler.max_lr='fast'"),
    (["scheduler.max_lr=inf"], "scheduler.max_lr=inf"),
    (["scheduler.max_lr=-inf"], "scheduler.max_lr=-inf"),
    (["scheduler.max_lr=nan"], "scheduler.max_lr=nan"),
    (["scheduler.min_lr=inf"], "scheduler.min_lr=inf"),
    (["scheduler.min_lr=0.5"], "scheduler.min_lr=0.5"),  # > max_lr 0.05
    (["augment.cutout_size=33"], "augment.cutout_size=33"),  # hole larger than the 32 px image
    (["data.image_size=16", "augment.cutout_size=20"], "augment.cutout_size=20"),
    (["augment.flip_p=1.5"], "augment.flip_p=1.5"),
    (["trainer.device=tpu"], "trainer.device='tpu'"),
    (["trainer.precision=fp8"], "trainer.precision='fp8'"),
    (["data.train_subset=0"], "data.train_subset=0"),
    (["data.train_subset=3"], "data.batch_size=4"),  # a batch larger than the subset
    (["lr_finder.num_iter=2", "scheduler.max_lr=find"], "lr_finder.num_iter=2"),
    (["lr_finder.step_mode=cos", "scheduler.max_lr=find"], "lr_finder.step_mode='cos'"),
    (["lr_finder.smooth_f=1.5", "scheduler.max_lr=find"], "lr_finder.smooth_f=1.5"),
    (["lr_finder.end_lr=inf", "scheduler.max_lr=find"], "lr_finder.end_lr=inf"),
    (["optimizer.weight_decay=-1"], "optimizer.weight_decay=-1"),
    (["explain.method=nope"], "explain.method='nope'"),
]


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory) -> Path:
    """A two-class image folder holding an undecodable image: reading the data would fail on it."""
    from PIL import Image

    root = tmp_path_factory.mktemp("poisoned")
    for split in ("train", "test"):
        for c in ("cat", "dog"):
            (root / split / c).mkdir(parents=True)
            for i in range(8):
                Image.new("RGB", (32, 32), (30 * i, 10, 200)).save(root / split / c / f"{i}.png")
    (root / "train" / "cat" / "zz_broken.png").write_bytes(b"not an image at all")
    return root


@pytest.mark.parametrize("overrides, shown", BAD_VALUES, ids=[" ".join(o) for o, _ in BAD_VALUES])
def test_bad_value_is_one_line_naming_key_and_value_exit_2(overrides, shown, poisoned, tmp_path):
    """The one table of bad values, through ``resnet-train``'s entry point: exit 2, one ``error:``
    line holding the key and the value, no traceback, nothing read and no run folder left."""
    run_dir = tmp_path / "run"
    proc = call_cli("resnet-train", ["data=image_folder", f"data.root={poisoned}", "data.batch_size=4",
                                     "data.num_workers=0", "trainer.device=cpu", "trainer.epochs=2",
                                     "scheduler.max_epoch=1", "scheduler.max_lr=0.05", "scheduler.min_lr=0.005",
                                     *overrides, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    line = one_line_error(proc, 2, shown)
    assert "zz_broken" not in line  # refused before the data was read
    assert not run_dir.exists() and not (tmp_path / "outputs").exists()


def test_allowed_values_are_named(tmp_path):
    """Beyond key and value, a refusal says what to write instead."""
    cases = [(["trainer.epoch=3"], "did you mean trainer.epochs?"), (["+foo=1"], "at the top level"),
             (["data=nope"], "cifar10, cifar100, image_folder"), (["trainer.epochs=abc"], "Integer"),
             (["seed=0,1"], "-m"), (["scheduler.max_lr=inf"], "finite")]
    for overrides, allowed in cases:
        line = one_line_error(call_cli("resnet-train", [*overrides, f"hydra.run.dir={tmp_path / 'run'}",
                                                        "trainer.device=cpu"], cwd=tmp_path), 2)
        assert allowed in line, line


def test_model_arguments_the_network_takes_are_accepted(tmp_path):
    cfg = _folder_cfg(tmp_path, "model=resnet18")
    validate(cfg)
    with pytest.raises(ConfigError, match=r"model\._target_=no\.such\.Net cannot be imported"):
        validate(_folder_cfg(tmp_path, "model._target_=no.such.Net"))


def test_unknown_key_message_suggests_or_lists():
    assert unknown_key_message("trainer.epoch", ["epochs", "device"], 3) == (
        "unknown key trainer.epoch=3: no such key in trainer; did you mean trainer.epochs?")
    assert unknown_key_message("zzz", ["seed", "resume"]) == (
        "unknown key zzz: no such key at the top level; known keys: seed, resume")


def test_mandatory_data_root_of_image_folder():
    cfg = _compose(["data=image_folder"])
    assert OmegaConf.is_missing(cfg.data, "root")  # the schema keeps image_folder.yaml's ???
    with pytest.raises(ConfigError, match=r"^data\.root is not set: data=image_folder needs data\.root="):
        check_structure(cfg)
    assert _compose(["data=cifar10"]).data.root == "data/cifar10"


def test_interpolation_that_does_not_resolve(tmp_path):
    cfg = _folder_cfg(tmp_path, "data.root=${nowhere}")
    with pytest.raises(ConfigError, match=r"^data\.root: cannot resolve its value \(Interpolation key 'nowhere'"):
        validate(cfg)


# -- ranges, checked before any data is loaded -----------------------------------------------

def test_range_errors_show_a_range_that_exists(tmp_path):
    """A one-epoch run with the default peak at epoch 5: the allowed range is 1..1, never 1..0."""
    cfg = _folder_cfg(tmp_path, "trainer.epochs=1", "scheduler.max_epoch=5")
    with pytest.raises(ConfigError, match=r"^scheduler\.max_epoch=5 is not allowed: must be in 1\.\.1 "):
        validate(cfg)
    validate(_folder_cfg(tmp_path, "trainer.epochs=1", "scheduler.max_epoch=1"))  # warm-up only: allowed


def test_cli_range_error_comes_before_the_heavy_imports(tmp_path):
    """A typo costs seconds: resnet-train validates before it imports the engine (albumentations,
    pytorch-grad-cam, torch-lr-finder, torchvision), so only hydra and torch load first."""
    code = (
        "import sys\n"
        "from resnet_cli.cli.train import main\n"
        "sys.argv = ['resnet-train', 'trainer.epochs=0', 'hydra.run.dir=" + str(tmp_path / "run") + "']\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    heavy = ('albumentations', 'pytorch_grad_cam', 'torch_lr_finder', 'torchvision', 'resnet_cli.engine')\n"
        "    print('loaded:', [m for m in heavy if m in sys.modules])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"})
    one_line_error(proc, 2, "trainer.epochs=0")
    assert "loaded: []" in proc.stdout, proc.stdout


def test_cifar10_subset_larger_than_the_split_is_refused_before_loading():
    cfg = _compose(["data=cifar10", "data.root=/nonexistent", "trainer.device=cpu", "data.test_subset=10001"])
    with pytest.raises(ConfigError, match=r"data\.test_subset=10001 .*at most 10000"):
        validate(cfg)  # /nonexistent is never read


def _image_folder(root: Path) -> Path:
    for split in ("train", "test"):
        for c in ("cat", "dog"):
            (root / split / c).mkdir(parents=True)
    return root


def test_an_image_folder_given_to_data_cifar10_says_add_data_image_folder(tmp_path):
    """data.root=<train/<class>/ + test/<class>/> without data=image_folder: one line, exit 2,
    before anything is read, and no CIFAR-10 download into the folder (issue 21)."""
    root = _image_folder(tmp_path / "jpeg")
    cfg = _compose(["data.root=" + str(root), "trainer.device=cpu"])  # data=cifar10 (the default), download=true
    with pytest.raises(ConfigError, match=r"^data\.root=.*jpeg holds an image folder .*add data=image_folder$"):
        validate(cfg)
    proc = call_cli("resnet-train", [f"data.root={root}", "trainer.device=cpu", f"hydra.run.dir={tmp_path / 'run'}"],
                    cwd=tmp_path)
    one_line_error(proc, 2, "holds an image folder", "add data=image_folder")
    assert sorted(p.name for p in root.iterdir()) == ["test", "train"]  # nothing downloaded into it
    validate(_compose(["data=image_folder", "data.root=" + str(root), "trainer.device=cpu"]))  # the fix passes


def test_no_cifar10_download_into_a_folder_holding_other_files(tmp_path):
    """The loader itself (the Python API's path too) refuses to download into a folder that holds
    other files and no CIFAR-10; a new or empty folder is where downloads go."""
    from conftest import data_config
    from resnet_cli.data import load_cifar10
    from resnet_cli.errors import DataError

    root = tmp_path / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("my files\n")
    cfg = data_config({"_target_": "resnet_cli.data.load_cifar10", "root": str(root), "download": True})
    with pytest.raises(DataError, match=r"already holds other files and no CIFAR-10: not downloading into it"):
        load_cifar10(cfg, 0)
    assert [p.name for p in root.iterdir()] == ["notes.txt"]
    cfg = data_config({"_target_": "resnet_cli.data.load_cifar10", "root": str(_image_folder(tmp_path / "jpeg")),
                       "download": True})
    with pytest.raises(ConfigError, match="add data=image_folder"):
        load_cifar10(cfg, 0)


def test_cuda_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible; the no-GPU message cannot be produced")
    with pytest.raises(ConfigError, match=r"^trainer\.device='cuda' but no CUDA GPU is visible"):
        validate(_folder_cfg(tmp_path, "trainer.device=cuda"))


def test_valid_configs_pass(tmp_path):
    validate(_folder_cfg(tmp_path))
    validate(_folder_cfg(tmp_path, "scheduler.max_lr=0.1", "scheduler.min_lr=0.1", "augment=none"))
    validate(_compose(["trainer.device=cpu", "data.train_subset=50000", "data.test_subset=10000"]))


# -- the user's view: resnet-train in a subprocess -------------------------------------------

def test_data_image_folder_without_data_root_is_one_line(tmp_path):
    proc = call_cli("resnet-train", ["data=image_folder", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    one_line_error(proc, 2, "data.root is not set", "data=image_folder needs data.root=")
    assert not (tmp_path / "run").exists()


def test_hydra_full_error_keeps_the_full_report(tmp_path):
    env = {**os.environ, "HYDRA_FULL_ERROR": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([script("resnet-train"), "trainer.epochs=abc", f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "ConfigCompositionException" in proc.stderr
    assert "full_key: trainer.epochs" in proc.stderr  # OmegaConf's own report


def test_multirun_jobs_failing_validation_stop_the_sweep_before_any_job(tmp_path):
    """Every job's config is checked before the first one starts (issue 15): one line, exit 2."""
    sweep = tmp_path / "sweep"
    proc = call_cli("resnet-train", ["-m", "data=image_folder", f"data.root={tmp_path}", "trainer.device=cpu",
                                    "trainer.epochs=0,-1", f"hydra.sweep.dir={sweep}"], cwd=tmp_path, timeout=300)
    one_line_error(proc, 2, "error: sweep job 0 (trainer.epochs=0): trainer.epochs=0 is not allowed: must be >= 1",
                   "no job was started")
    assert not sweep.exists()


def test_multirun_composition_error_is_one_line(tmp_path):
    proc = call_cli("resnet-train", ["-m", "trainer.epochs=abc,2", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                    cwd=tmp_path)
    one_line_error(proc, 2, "trainer.epochs=abc is not allowed")
