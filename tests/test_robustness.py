"""Faults a user meets, each through ``resnet-train``'s entry point (issue 6): bad data,
divergence, interruption, bad checkpoints, CUDA out of memory, an unwritable output folder (the
bad values: test_config.py's table). The commands run in this process (conftest's call_cli);
signals, a bug's traceback and one divergence run in a process of their own (the exit-code contract).

Every test asserts the exit code, the one-line message (naming the key or file and the fix),
that no traceback is shown, and that nothing written before the fault is lost. Exit codes: 2 bad
input, 3 diverged, 130 interrupted.
"""

from __future__ import annotations

import csv
import json
import math
import os
import pickle
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_cli.core.checkpoint import RESUME_KEYS, load_checkpoint, save_checkpoint
from resnet_cli.errors import CheckpointError, ConfigError, DataError

from conftest import DATA_ROOT, call_cli, needs_data, one_line_error, run_cli, script
from tinynets import tiny, tiny_env


# -- helpers -----------------------------------------------------------------------------------



def noise_images(root: Path, classes=("cat", "dog"), n_train: int = 8, n_test: int = 4, size: int = 32,
                 test_classes=None, seed: int = 0) -> Path:
    """``root/{train,test}/<class>/<i>.png``: random RGB noise images (non-zero variance)."""
    rng = np.random.default_rng(seed)
    for split, n, names in (("train", n_train, classes), ("test", n_test, test_classes or classes)):
        for c in names:
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root


def folder_args(root: Path, run_dir: Path, *extra: str) -> list[str]:
    """A short valid run on an image folder (fixed LRs, CPU), then ``extra`` overrides."""
    return ["data=image_folder", f"data.root={root}", "data.batch_size=4", "data.num_workers=0",
            "trainer.device=cpu", "trainer.epochs=2", "scheduler.max_epoch=1", "scheduler.max_lr=0.05",
            "scheduler.min_lr=0.005", f"hydra.run.dir={run_dir}", *extra]


def metrics(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None


def env(**extra: str) -> dict[str, str]:
    e = {**os.environ, **tiny_env(), "PYTHONUNBUFFERED": "1", **extra}
    e.pop("HYDRA_FULL_ERROR", None)
    return e


def wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"the run ended before {what}:\n{proc.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.02)


def finite_weights(ckpt: dict) -> bool:
    return all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """A valid two-class image folder: 16 train / 8 test noise images."""
    return noise_images(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory) -> Path:
    """An image folder with an undecodable file: a config error must be reported before it is read."""
    root = noise_images(tmp_path_factory.mktemp("poisoned"))
    (root / "train" / "cat" / "zz_broken.png").write_bytes(b"not an image at all")
    return root


# -- 1. range checks, before any data is loaded --------------------------------------------------

def test_cuda_requested_without_a_gpu_exits_2(poisoned, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible here; the no-GPU error cannot happen")
    proc = call_cli("resnet-train", folder_args(poisoned, tmp_path / "run", "trainer.device=cuda"),
                   cwd=tmp_path, timeout=300)
    one_line_error(proc, 2, "trainer.device='cuda' but no CUDA GPU is visible", "trainer.device=cpu")


def test_train_subset_larger_than_the_data_exits_2(images, tmp_path):
    proc = call_cli("resnet-train", folder_args(images, tmp_path / "run", "data.train_subset=100"),
                   cwd=tmp_path, timeout=300)
    one_line_error(proc, 2, "data.train_subset=100 is larger than the 16 images available", "at most 16")


def test_min_lr_above_the_max_lr_the_range_test_finds_exits_2(images, tmp_path):
    """validate() can only compare the two LRs when both are numbers; with max_lr=find the
    range test decides, and a fixed min_lr above it would run the One Cycle upside down."""
    run_dir = tmp_path / "run"
    proc = call_cli("resnet-train", folder_args(images, run_dir, "scheduler.max_lr=find", "scheduler.min_lr=0.5",
                                               "lr_finder.num_iter=5", "lr_finder.end_lr=0.1",
                                               "model._target_=tinynets.TinyNet"),
                   cwd=tmp_path, timeout=300)
    one_line_error(proc, 2, "scheduler.min_lr=0.5 is not allowed", "range test found")
    assert metrics(run_dir)["status"] == "failed"
    assert (run_dir / "plots" / "lr_finder.png").stat().st_size > 0  # the range test's work is kept
    assert not (run_dir / "checkpoints" / "last.pt").exists()


# -- 2. data faults ---------------------------------------------------------------------------

def _data_fault(root: Path, tmp_path: Path, *needles: str, extra=()) -> str:
    proc = call_cli("resnet-train", folder_args(root, tmp_path / "run", *extra), cwd=tmp_path, timeout=300)
    line = one_line_error(proc, 2, *needles)
    assert not (tmp_path / "run").exists()  # failed before any record: no run folder is left
    return line


def test_missing_data_root(tmp_path):
    _data_fault(tmp_path / "nowhere", tmp_path, f"data folder not found: {tmp_path / 'nowhere'}", "data.root=")


def test_image_folder_without_class_folders(tmp_path):
    root = tmp_path / "flat"
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(root / split / "loose.png")  # images but no <class>/ level
    _data_fault(root, tmp_path, f"no class folders in {root / 'train'}", "<class>/<image>")


def test_train_and_test_class_sets_differ(tmp_path):
    root = noise_images(tmp_path / "d", classes=("cat", "dog"), test_classes=("cat", "eel"))
    _data_fault(root, tmp_path, "class folders differ", "only in train ['dog']", "only in test ['eel']")


def test_undecodable_image_is_named(tmp_path):
    root = noise_images(tmp_path / "d")
    bad = root / "test" / "dog" / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    _data_fault(root, tmp_path, f"cannot decode image {bad}", "remove or replace the file")


def test_truncated_image_is_named(tmp_path):
    root = noise_images(tmp_path / "d")
    bad = root / "train" / "cat" / "half.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(bad, quality=95)
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    _data_fault(root, tmp_path, f"cannot decode image {bad}")


@pytest.mark.parametrize("name, make, why", [
    ("deep.png", lambda: Image.fromarray(np.full((32, 32), 40000, np.uint16)), "more than 8 bits"),
    ("see_through.png", lambda: Image.new("RGBA", (32, 32), (200, 10, 10, 0)), "transparent pixels"),
    ("print.jpg", lambda: Image.new("CMYK", (32, 32), (0, 200, 200, 0)), "CMYK"),
])
def test_non_rgb_image_that_cannot_be_converted_exactly_is_named(name, make, why, tmp_path):
    root = noise_images(tmp_path / "d")
    bad = root / "train" / "dog" / name
    make().save(bad)
    _data_fault(root, tmp_path, f"image {bad} is not RGB", why, "8-bit RGB")


def test_non_rgb_images_with_an_exact_conversion_are_accepted(tmp_path):
    """Grey (L), bilevel (1), palette (P) and fully opaque RGBA convert to RGB exactly."""
    from resnet_cli.data.decode import decode_images

    grey = Image.fromarray(np.arange(32 * 32, dtype=np.uint8).reshape(32, 32) % 251)
    paths = []
    for name, im in (("grey.png", grey), ("bw.png", grey.convert("1")), ("pal.png", grey.convert("RGB").quantize(16)),
                     ("opaque.png", grey.convert("RGBA"))):
        im.save(tmp_path / name)
        paths.append(str(tmp_path / name))
    out = decode_images(paths, 32)
    assert out.shape == (4, 32, 32, 3) and out.dtype == np.uint8
    assert (out[0, ..., 0] == np.asarray(grey)).all() and (out[0, ..., 0] == out[0, ..., 2]).all()
    assert (out[3] == out[0]).all()  # opaque alpha dropped, nothing else changes


def test_images_without_variance_cannot_be_normalised(tmp_path):
    from omegaconf import OmegaConf

    from conftest import load_data

    root = tmp_path / "flat"
    for split in ("train", "test"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            Image.new("RGB", (32, 32), (10, 20, 30)).save(root / split / c / "0.png")
    cfg = OmegaConf.create({"_target_": "resnet_cli.data.load_image_folder", "root": str(root), "train_subset": None, "test_subset": None,
                            "image_size": 32})
    with pytest.raises(DataError, match=r"do not vary in channel R, G, B \(std 0\)"):
        load_data(cfg, 0)


def _official_layout(root: Path) -> Path:
    from torchvision.datasets import CIFAR10

    base = root / CIFAR10.base_folder
    base.mkdir(parents=True)
    for name, _ in [*CIFAR10.train_list, *CIFAR10.test_list, (CIFAR10.meta["filename"], None)]:
        (base / name).write_bytes(b"placeholder")
    return base


def test_official_format_with_missing_batches_names_them(tmp_path):
    base = _official_layout(tmp_path / "cifar")
    (base / "data_batch_3").unlink()
    (base / "test_batch").unlink()
    proc = call_cli("resnet-train", ["data=cifar10", f"data.root={tmp_path / 'cifar'}", "data.download=false",
                                    "trainer.device=cpu", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, timeout=300)
    one_line_error(proc, 2, f"CIFAR-10 files missing in {base}: data_batch_3, test_batch", "data.download=true")


def test_official_format_with_corrupted_batches_names_them(tmp_path):
    from omegaconf import OmegaConf

    from conftest import load_data

    _official_layout(tmp_path / "cifar")
    cfg = OmegaConf.create({"_target_": "resnet_cli.data.load_cifar10", "root": str(tmp_path / "cifar"), "download": False,
                            "train_subset": None, "test_subset": None, "image_size": 32})
    with pytest.raises(DataError, match=r"CIFAR-10 files corrupted in .* \(MD5 mismatch\): data_batch_1, "):
        load_data(cfg, 0)


def test_failed_download_leaves_no_empty_data_folder(tmp_path, monkeypatch):
    """Offline: torchvision's download raises URLError (an OSError); the folder it made goes."""
    import urllib.error

    from omegaconf import OmegaConf

    from conftest import load_data

    def offline(url, root, *args, **kwargs):
        Path(root).mkdir(parents=True, exist_ok=True)
        (Path(root) / "cifar-10-python.tar.gz").write_bytes(b"partial")
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", offline)
    root = tmp_path / "data" / "cifar10"
    cfg = OmegaConf.create({"_target_": "resnet_cli.data.load_cifar10", "root": str(root), "download": True,
                            "train_subset": None, "test_subset": None, "image_size": 32})
    with pytest.raises(DataError, match=r"cannot download CIFAR-10 into .*no network.*data=image_folder"):
        load_data(cfg, 0)
    assert not root.exists()


# -- 3. divergence ----------------------------------------------------------------------------

@pytest.mark.slow
@needs_data
def test_divergence_stops_at_once_and_keeps_the_last_good_checkpoint(tmp_path):
    """max_lr=1e4: the One Cycle warm-up pushes the loss to inf/nan in epoch 2 or later (TinyNet)."""
    run_dir = tmp_path / "run"
    args = [*tiny(epochs=6, lrs=False), "model._target_=tinynets.TinyNet", "scheduler.max_epoch=5",
            "scheduler.max_lr=1e4", "scheduler.min_lr=1e-3", f"hydra.run.dir={run_dir}"]
    proc = run_cli("resnet-train", args, cwd=tmp_path, env=tiny_env(), timeout=600)
    line = one_line_error(proc, 3, "became non-finite at epoch", "(max_lr=1e+04)", "lower scheduler.max_lr")
    m = metrics(run_dir)
    at = m["diverged_at"]
    assert m["status"] == "diverged" and at["step"] >= 1, m
    assert at["epoch"] >= 2, f"diverged in epoch 1, so no checkpoint to keep: {line}"
    assert m["epochs_done"] == at["epoch"] - 1 and len(m["history"]) == at["epoch"] - 1
    assert all(math.isfinite(h["train_loss"]) and math.isfinite(h["test_loss"]) for h in m["history"])
    with open(run_dir / "history.csv") as f:
        assert len(list(csv.DictReader(f))) == at["epoch"] - 1
    # the checkpoint of the last finite epoch is intact, loadable and resumable
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt", require=RESUME_KEYS)
    assert (ckpt["epoch"], ckpt["step"]) == (at["epoch"] - 1, 0)
    assert finite_weights(ckpt)
    assert f"the last good checkpoint (end of epoch {at['epoch'] - 1}) is kept: {run_dir / 'checkpoints' / 'last.pt'}" in line
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))  # no half-written file left


@pytest.mark.slow
@needs_data
def test_divergence_of_the_custom_resnet_in_epoch_1(tmp_path):
    """The real network with max_lr=1e6: non-finite in the first epoch, so there is no checkpoint."""
    run_dir = tmp_path / "run"
    args = ["data=image_folder", f"data.root={DATA_ROOT}", "data.train_subset=40", "data.test_subset=20",
            "data.batch_size=20", "data.num_workers=0", "trainer.device=cpu", "trainer.epochs=2",
            "scheduler.max_epoch=1", "scheduler.max_lr=1e6", "scheduler.min_lr=1e5", "explain.count=2",
            f"hydra.run.dir={run_dir}"]
    proc = call_cli("resnet-train", args, cwd=tmp_path, env={"OMP_NUM_THREADS": "1"}, timeout=600)
    one_line_error(proc, 3, "became non-finite at epoch 1", "no checkpoint was written", "lower scheduler.max_lr")
    m = metrics(run_dir)
    assert m["status"] == "diverged" and m["diverged_at"]["epoch"] == 1 and m["epochs_done"] == 0
    assert not (run_dir / "checkpoints" / "last.pt").exists()


# -- 4. interruption --------------------------------------------------------------------------

@pytest.mark.slow
@needs_data
def test_ctrl_c_mid_epoch_with_dataloader_workers_then_resume_completes(tmp_path):
    """SIGINT to the whole process group (what Ctrl-C in a terminal does: the DataLoader workers
    get it too) while epoch 2 trains; then ``resume=`` finishes the run. TinyNet with a 0.3 s sleep
    in each training step stands in for a slow network (the signal path does not depend on it)."""
    run_dir = tmp_path / "run"
    args = ["data=image_folder", f"data.root={DATA_ROOT}", "data.train_subset=200", "data.test_subset=40",
            "data.batch_size=20", "data.num_workers=2", "trainer.device=cpu", "trainer.epochs=2",
            "scheduler.max_epoch=1", "scheduler.max_lr=0.05", "scheduler.min_lr=0.005", "explain.count=2",
            "model._target_=tinynets.TinyNet", "+model.delay_s=0.3", f"hydra.run.dir={run_dir}"]
    p = subprocess.Popen([script("resnet-train"), *args], cwd=tmp_path, env=env(OMP_NUM_THREADS="1"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(lambda: (metrics(run_dir) or {}).get("epochs_done", 0) >= 1, p, "the end of epoch 1")
        epoch1 = dict(metrics(run_dir)["history"][0])
        time.sleep(1.0)  # into epoch 2 (10 steps of 0.3 s each)
        os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=600)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    proc = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    line = one_line_error(proc, 130, "SIGINT: stopped at epoch 2 step", f"resume={ckpt_path}")
    assert "DataLoader worker" not in out + err
    # only the main process handles the signal: the workers ignore it (augment.ignore_stop_signals)
    assert (run_dir / "train.log").read_text().count("SIGINT received") == 1
    m = metrics(run_dir)
    assert m["status"] == "interrupted" and m["interrupted_at"]["signal"] == "SIGINT", m
    assert m["interrupted_at"]["epoch"] == 2 and 1 <= m["interrupted_at"]["step"] < 10, m
    assert m["history"] == [epoch1]  # epoch 1's record is kept as it was
    ckpt = load_checkpoint(ckpt_path, require=RESUME_KEYS)
    assert (ckpt["epoch"], ckpt["step"]) == (1, m["interrupted_at"]["step"]), line

    resumed = tmp_path / "resumed"
    proc = call_cli("resnet-train", [f"resume={ckpt_path}", "trainer.device=cpu", "data.num_workers=0",
                                    f"hydra.run.dir={resumed}"], cwd=tmp_path, env=tiny_env(), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = metrics(resumed)
    assert r["status"] == "completed" and r["epochs_done"] == 2, r
    assert r["history"][0] == epoch1
    done = load_checkpoint(resumed / "checkpoints" / "last.pt", require=RESUME_KEYS)
    assert (done["epoch"], done["step"]) == (2, 0) and len(done["step_lrs"]) == 20


@pytest.mark.slow
@needs_data
def test_sigterm_during_the_lr_range_test_stops_at_once(tmp_path):
    """Before training there is nothing to checkpoint: SIGTERM ends the run at once, exit 130."""
    run_dir = tmp_path / "run"
    args = [*tiny(lrs=False), "model._target_=tinynets.TinyNet", "+model.delay_s=0.2", "lr_finder.num_iter=100",
            f"hydra.run.dir={run_dir}"]  # a 20 s range test
    p = subprocess.Popen([script("resnet-train"), *args], cwd=tmp_path, env=env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    log_file = run_dir / "train.log"
    try:
        wait_for(lambda: log_file.is_file() and "model summary" in log_file.read_text(), p, "the model summary")
        time.sleep(1.0)  # inside the range test
        sent = time.monotonic()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=300)
        took = time.monotonic() - sent
    finally:
        if p.poll() is None:
            p.kill()
    one_line_error(subprocess.CompletedProcess(p.args, p.returncode, out, err), 130,
                   "SIGTERM: stopped before training started; nothing to resume")
    assert took < 10, f"took {took:.1f} s to stop"
    assert "lr range test:" not in log_file.read_text()  # the range test did not run to its end
    m = metrics(run_dir)
    assert m["status"] == "interrupted" and "SIGTERM" in m["error"]
    assert not (run_dir / "checkpoints" / "last.pt").exists()


@pytest.mark.slow
@needs_data
def test_second_ctrl_c_stops_at_once_keeping_the_epoch_checkpoint(tmp_path):
    """A second SIGINT inside a (slow) step does not wait for the step: exit 130 at once, the
    end-of-epoch-1 checkpoint is kept and named for resume=."""
    run_dir = tmp_path / "run"
    args = [*tiny(train=100, epochs=3), "model._target_=tinynets.TinyNet", "+model.delay_s=1.5",
            f"hydra.run.dir={run_dir}"]  # 2 steps of 1.5 s an epoch
    p = subprocess.Popen([script("resnet-train"), *args], cwd=tmp_path, env=env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (metrics(run_dir) or {}).get("epochs_done", 0) >= 1, p, "the end of epoch 1")
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    one_line_error(subprocess.CompletedProcess(p.args, p.returncode, out, err), 130,
                   "SIGINT: stopped at once, without a new checkpoint", f"resume={ckpt_path}")
    m = metrics(run_dir)
    assert m["status"] == "interrupted" and m["epochs_done"] == 1
    ckpt = load_checkpoint(ckpt_path, require=RESUME_KEYS)
    assert (ckpt["epoch"], ckpt["step"]) == (1, 0)


# -- 5. checkpoints given to resume= ------------------------------------------------------------

class _Hostile:
    """Unpickling this would create ``marker`` (stands in for running arbitrary code)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _good_payload() -> dict:
    return {"model": {"w": torch.randn(256, 256)}, "config": {}, "epoch": 1}


@pytest.mark.parametrize("kind, needles", [
    ("truncated", ["is truncated (an incomplete zip archive", "use a complete checkpoints/last.pt"]),
    ("tensor", ["is not a resnet-cli checkpoint (no format='resnet-cli/1' marker)"]),
    ("hostile", ["is not a resnet-cli checkpoint", "refused unread for safety"]),
    ("text", ["is not a checkpoint but a text file", "pass a checkpoints/last.pt written by resnet-train"]),
    ("empty", ["is not a checkpoint but an empty file"]),
    ("no_state", ["holds no optimizer state and cannot be resumed"]),
    ("incomplete", ["lacks history, step_lrs", "cannot be used here"]),
    ("folder", ["is a folder, not a checkpoint file", "did you mean resume="]),
    ("missing", ["checkpoint not found", "resume=<run folder>/checkpoints/last.pt"]),
])
def test_bad_checkpoint_given_to_resume_is_named(kind, needles, tmp_path):
    path = tmp_path / f"{kind}.pt"
    marker = tmp_path / "code_ran"
    if kind == "truncated":
        save_checkpoint(path, _good_payload())
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "tensor":
        torch.save(torch.zeros(3), path)
    elif kind == "hostile":
        torch.save({"model": _Hostile(marker)}, path)
    elif kind == "text":
        path.write_text("epoch: 3\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "no_state":
        save_checkpoint(path, _good_payload())
    elif kind == "incomplete":  # training state, but not all of it
        keys = ("optimizer", "scheduler", "step", "partial", "classes", "mean", "std", "lr", "train_seconds", "torch_rng")
        save_checkpoint(path, {**_good_payload(), **{k: 0 for k in keys}})
    elif kind == "folder":
        path = tmp_path / "old_run"
        save_checkpoint(path / "checkpoints" / "last.pt", _good_payload())
    proc = call_cli("resnet-train", [f"resume={path}", "trainer.device=cpu", f"hydra.run.dir={tmp_path / 'run'}"],
                   cwd=tmp_path, timeout=300)
    one_line_error(proc, 2, str(path), *needles)
    assert not marker.exists(), "unpickling the checkpoint ran code"
    assert not (tmp_path / "run").exists()  # refused before any record: no run folder is left


def test_hostile_checkpoint_is_refused_in_process(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": _Hostile(marker)}, f, protocol=2)  # a plain pickle, not even a torch zip
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(path)
    assert not marker.exists()


# -- 6. CUDA out of memory ----------------------------------------------------------------------

def _oom() -> BaseException:
    return torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity "
                                  "of 79.10 GiB of which 1.06 GiB is free. Including non-PyTorch memory ...")


def test_out_of_memory_message():
    from resnet_cli.cli.error_messages import is_out_of_memory, out_of_memory_message

    assert is_out_of_memory(_oom())
    assert is_out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert out_of_memory_message(_oom(), 512) == (
        "CUDA out of memory (tried to allocate 2.00 GiB): lower data.batch_size (now 512; try "
        "data.batch_size=256), or free the GPU of other processes")


def test_out_of_memory_in_a_job_keeps_its_records(tmp_path, capsys):
    from omegaconf import OmegaConf

    from resnet_cli.cli.entry import task_wrapper

    @task_wrapper
    def job(cfg, run_dir, job_info):
        raise _oom()

    (tmp_path / "metrics.json").write_text(json.dumps({"status": "running", "epochs_done": 3}))
    with pytest.raises(SystemExit) as info:
        job(OmegaConf.create({"data": {"batch_size": 768}}), tmp_path)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: CUDA out of memory (tried to allocate 2.00 GiB): lower data.batch_size (now 768; "
                   "try data.batch_size=384), or free the GPU of other processes"]
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["status"] == "failed" and m["epochs_done"] == 3 and m["error"].startswith("CUDA out of memory")


def test_out_of_memory_through_the_resnet_train_entry_point(images, tmp_path, monkeypatch):
    """``resnet-train``'s own main(), in this process, with the data loading mocked to run out of GPU memory."""
    import resnet_cli.engine as engine

    def boom(*args, **kwargs):
        raise _oom()

    monkeypatch.setattr(engine, "load_data", boom)
    run_dir = tmp_path / "run"
    proc = call_cli("resnet-train", folder_args(images, run_dir, "data.batch_size=8"), cwd=tmp_path)
    line = one_line_error(proc, 2)
    assert line == ("error: CUDA out of memory (tried to allocate 2.00 GiB): lower data.batch_size (now 8; try "
                    "data.batch_size=4), or free the GPU of other processes")
    assert not run_dir.exists()  # out of memory while loading, before any record: no run folder


# -- 7. unwritable output folder ------------------------------------------------------------------

def test_output_folder_that_cannot_be_created_exits_2_before_reading_data(poisoned, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    proc = call_cli("resnet-train", folder_args(poisoned, blocker / "run"), cwd=tmp_path, timeout=300)
    line = one_line_error(proc, 2, "cannot write the output folder", str(blocker), "hydra.run.dir=<folder>")
    assert "zz_broken" not in line


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="running as root: permission bits do not stop root from writing (the "
                           "file-in-the-way test above covers the same path)")
def test_read_only_output_folder_exits_2(poisoned, tmp_path):
    parent = tmp_path / "read_only"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        proc = call_cli("resnet-train", folder_args(poisoned, parent / "run"), cwd=tmp_path, timeout=300)
    finally:
        parent.chmod(0o755)
    one_line_error(proc, 2, "cannot write the output folder", "Permission denied", "hydra.run.dir=<folder>")


def test_check_writable_names_the_folder(tmp_path):
    from resnet_cli.core.run_folder import check_writable

    (tmp_path / "f").write_text("")
    with pytest.raises(ConfigError, match=r"output folder .*/f/run is not writable .*hydra\.run\.dir=<folder>"):
        check_writable(tmp_path / "f" / "run")
    check_writable(tmp_path / "ok" / "run")
    assert (tmp_path / "ok" / "run").is_dir() and not list((tmp_path / "ok" / "run").iterdir())


# -- 8. finished runs ---------------------------------------------------------------------------

# every finished job of a sweep ends with status completed (no error): test_sweep.py's
# test_a_failing_job_does_not_stop_the_sweep (both launchers) and test_trackers.py's sweep check it


@pytest.mark.slow
@needs_data
def test_a_bug_keeps_its_traceback_and_the_records_of_finished_epochs(tmp_path):
    """An unexpected exception is not dressed up as a user error: traceback, exit 1, and
    metrics.json keeps epoch 1 with status failed."""
    run_dir = tmp_path / "run"
    proc = run_cli("resnet-train", [*tiny(), "model._target_=tinynets.TinyNet", "+model.crash_after=5",
                                    f"hydra.run.dir={run_dir}"], cwd=tmp_path, env=tiny_env(), timeout=600)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" in proc.stderr and "RuntimeError: simulated crash in training step 6" in proc.stderr
    assert not [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    m = metrics(run_dir)
    assert m["status"] == "failed" and m["error"] == "RuntimeError: simulated crash in training step 6"
    assert m["epochs_done"] == 1 and len(m["history"]) == 1
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt", require=RESUME_KEYS)["epoch"] == 1
