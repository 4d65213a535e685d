"""The fault probe of issue 20: bad input and faults a careful user meets, each with the exit
code, the one-line message and what must be kept (docs/faults.md is the table these check).
The commands run in this process (conftest's call_cli) unless a case needs a process of its own.

Rows of the issue: 1 concurrent runs, 2 full disk, 3 too few warm-up steps, 4 weights that do not
fit, 5 resume with overrides, 6 infinite LRs, 7 one class, 8 a signal during the diagnostics,
9 a failed command into a finished run's folder, 10 random bytes as a checkpoint, 11 a cache entry
replaced by a file, 12 an unreadable class folder, 13 one Grad-CAM layer name, 14 resnet-gradcam's
data advice, 15 timings of a resumed run.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from resnet_cli.data import cache
from resnet_cli.core import checkpoint
from resnet_cli.cli import run_dirs
from resnet_cli.core.checkpoint import load_checkpoint, load_weights, model_from_checkpoint, save_checkpoint, write_json
from resnet_cli.errors import CheckpointError, ConfigError, DataError, OutputError

from conftest import DATA_ROOT, call_cli, needs_data, one_line_error, script
from tinynets import TinyNet, tiny, tiny_env


def env(**extra: str) -> dict[str, str]:
    e = {**os.environ, **tiny_env(), "PYTHONUNBUFFERED": "1", **extra}
    e.pop("HYDRA_FULL_ERROR", None)
    return e


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (to prove nothing changed)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def noise_images(root: Path, classes=("cat", "dog"), n: int = 8) -> Path:
    rng = np.random.default_rng(0)
    from PIL import Image

    for split in ("train", "test"):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root


QUICK = ["data=image_folder", "data.root=/nonexistent-resnet-cli-data", "trainer.device=cpu"]
"""A config that is valid up to the data (which is missing): every refusal below comes first."""


# -- rows 3, 6 (and the config errors that must stay one line, exit 2, no run folder) ---------------

WARMUP_TOO_SHORT = [
    # one warm-up step (fixed LRs), and a range test shorter than its minimum (the other bad values:
    # test_config.py's BAD_VALUES)
    (["data.train_subset=200", "data.batch_size=200", "scheduler.max_lr=0.05", "scheduler.min_lr=0.005",
      "trainer.epochs=2", "scheduler.max_epoch=1"],
     ["1 step(s) per epoch", "data.train_subset=200 // data.batch_size=200", "= 1 warm-up step(s)", "at least 2",
      "data.batch_size=100"]),
    (["data.train_subset=200", "data.batch_size=50", "trainer.epochs=2", "scheduler.max_epoch=1"],
     ["4 step(s) per epoch", "= 4 warm-up step(s)", "range test", "at least 5"]),
]


@pytest.mark.parametrize("overrides,needles", WARMUP_TOO_SHORT, ids=["fixed-lrs", "range-test"])
def test_warmup_too_short_is_one_line_exit_2_and_leaves_no_run_folder(overrides, needles, tmp_path):
    proc = call_cli("resnet-train", [*QUICK, *overrides], cwd=tmp_path)
    one_line_error(proc, 2, *needles)
    assert not (tmp_path / "outputs").exists(), sorted(p for p in (tmp_path / "outputs").rglob("*"))


def test_warmup_too_short_is_found_after_loading_when_the_subset_is_not_given(tmp_path):
    """data.train_subset=null: the step count is known only once the images are listed."""
    root = noise_images(tmp_path / "data", n=4)  # 8 training images, batch 8: one step an epoch
    proc = call_cli("resnet-train", ["data=image_folder", f"data.root={root}", "data.batch_size=8", "trainer.device=cpu",
                                    "data.num_workers=0", "trainer.epochs=2", "scheduler.max_epoch=1",
                                    "scheduler.max_lr=0.05", "scheduler.min_lr=0.005",
                                    f"data.cache_dir={tmp_path / 'cache'}"], cwd=tmp_path)
    one_line_error(proc, 2, "8 training images // data.batch_size=8", "1 warm-up step(s)", "at least 2")
    assert not (tmp_path / "outputs").exists()


def test_missing_data_root_leaves_no_run_folder_and_the_default_folder_is_unique(tmp_path):
    proc = call_cli("resnet-train", QUICK, cwd=tmp_path)
    one_line_error(proc, 2, "data folder not found", "/nonexistent-resnet-cli-data")
    assert not (tmp_path / "outputs").exists()


# -- rows 1 and 9: the run folder's lifecycle ---------------------------------------------------------

def test_claim_gives_every_run_of_the_same_second_its_own_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(run_dirs, "_owned", None)
    base = tmp_path / "outputs" / "2026-01-01" / "12-00-00"
    first = run_dirs.claim(base, default_name=True)
    second = run_dirs.claim(base, default_name=True)
    assert first == base and second == base.with_name("12-00-00-2") and second.is_dir()
    assert run_dirs.owned_run_dir() == second


def test_failed_command_into_a_finished_runs_folder_changes_nothing(tmp_path):
    """Row 9: the failed re-run no longer overwrites .hydra/; the folder is refused before Hydra writes."""
    done = tmp_path / "done"
    (done / ".hydra").mkdir(parents=True)
    (done / ".hydra" / "config.yaml").write_text("seed: 7\n")
    write_json(done / "metrics.json", {"status": "completed", "test_acc": 0.5})
    (done / "train.log").write_text("the finished run's log\n")
    before = tree(done)
    proc = call_cli("resnet-train", [*QUICK, f"hydra.run.dir={done}"], cwd=tmp_path)
    one_line_error(proc, 2, f"hydra.run.dir={done}", "already holds a run")
    assert tree(done) == before


def test_resnet_gradcam_error_leaves_no_run_folder(tmp_path):
    proc = call_cli("resnet-gradcam", ["ckpt=missing.pt"], cwd=tmp_path)
    one_line_error(proc, 2, "ckpt=missing.pt", "checkpoint not found")
    assert not (tmp_path / "outputs").exists()


@needs_data
@pytest.mark.slow
def test_two_runs_started_together_keep_their_own_folders(tmp_path):
    """Row 1: both runs name their folder after the same clock value; the second gets ``-2``."""
    base = "runs/${now:%Y-%m-%d}"  # the same name for both, as two runs started in one second get
    procs = [subprocess.Popen([script("resnet-train"), *tiny(train=100, test=50), "model._target_=tinynets.TinyNet",
                               f"seed={seed}", f"hydra.run.dir={base}"], cwd=tmp_path, env=env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for seed in (1, 2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    folders = sorted(p for p in (tmp_path / "runs").iterdir() if p.is_dir())
    assert len(folders) == 2 and folders[1].name == folders[0].name + "-2", folders
    seeds = set()
    for folder in folders:
        m = json.loads((folder / "metrics.json").read_text())
        assert m["status"] == "completed" and m["epochs_done"] == 2
        seeds.add(m["seed"])
        assert torch.load(folder / "checkpoints" / "last.pt", weights_only=True)["config"]["seed"] == m["seed"]
        assert OmegaConf.load(folder / ".hydra" / "config.yaml").seed == m["seed"]
        log = (folder / "train.log").read_text()
        assert log.count("] - run folder ") == 1 and f"run folder {folder}" in log  # one run per log (its start line)
    assert seeds == {1, 2}
    for out in outs:  # the folder is named at the start, before the first epoch
        lines = out.splitlines()
        start = next(i for i, ln in enumerate(lines) if "run folder " in ln)
        assert start < next(i for i, ln in enumerate(lines) if "epoch  1/2" in ln)


# -- a finished tiny run for the resume and checkpoint cases -------------------------------------------

@pytest.fixture(scope="module")
def done_run(tmp_path_factory) -> Path:
    """A completed 2-epoch TinyNet run (100 images): its folder."""
    if not (DATA_ROOT / "train").is_dir():
        pytest.skip(f"offline CIFAR-10 copy not found at {DATA_ROOT}")
    work = tmp_path_factory.mktemp("done")
    run_dir = work / "run"
    proc = call_cli("resnet-train", [*tiny(train=100, test=50), "model._target_=tinynets.TinyNet",
                                    f"hydra.run.dir={run_dir}"], cwd=work, env=env(), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return run_dir


# -- row 5 (and 15's source): resume with overrides, resume of a completed run ------------------------

RESUME_REFUSED = [
    ("model=resnet18", "model=resnet18"),
    ("trainer.epochs=3", "trainer.epochs=3"),
    ("scheduler.max_lr=0.1", "scheduler.max_lr=0.1"),
    ("seed=5", "seed=5"),
    ("data.batch_size=25", "data.batch_size=25"),
]


@pytest.mark.parametrize("override,needle", RESUME_REFUSED)
def test_resume_refuses_an_override_it_cannot_apply(done_run, override, needle, tmp_path):
    ckpt = done_run / "checkpoints" / "last.pt"
    before = tree(done_run)
    proc = call_cli("resnet-train", [f"resume={ckpt}", "trainer.device=cpu", override], cwd=tmp_path, env=env())
    one_line_error(proc, 2, needle, "cannot be applied on resume", "without resume=")
    assert not (tmp_path / "outputs").exists()  # nothing recorded: no .hydra/overrides.yaml of a refused command
    assert tree(done_run) == before


def test_resume_of_a_completed_run_says_there_is_nothing_left(done_run, tmp_path):
    """The original overrides repeated (same values) are accepted; the completed run is called so."""
    ckpt = done_run / "checkpoints" / "last.pt"
    proc = call_cli("resnet-train", [f"resume={ckpt}", *tiny(train=100, test=50), "model._target_=tinynets.TinyNet",
                                    "trainer.log_every=5"], cwd=tmp_path, env=env())
    one_line_error(proc, 2, f"resume={ckpt}", "completed all 2 epochs", "nothing left to do")
    assert "interrupted" not in proc.stdout + proc.stderr
    assert not (tmp_path / "outputs").exists()


# -- row 4: weights that do not fit ------------------------------------------------------------------

def test_resume_with_weights_that_do_not_fit_names_the_first_key(done_run, tmp_path):
    ckpt = torch.load(done_run / "checkpoints" / "last.pt", weights_only=True)
    ckpt["model"]["fc.weight"] = torch.zeros(3, 7)
    ckpt["epoch"] = 1  # a run with an epoch left (a completed one is refused before its weights are read)
    bad = save_checkpoint(tmp_path / "bad.pt", ckpt)
    proc = call_cli("resnet-train", [f"resume={bad}", "trainer.device=cpu"], cwd=tmp_path, env=env())
    one_line_error(proc, 2, f"resume={bad}", "do not fit TinyNet", "fc.weight", "(3, 7)")
    assert not (tmp_path / "outputs").exists()


def _custom_resnet_checkpoint(path: Path, state: dict) -> Path:
    return save_checkpoint(path, {
        "model": state, "classes": ["a", "b"], "mean": [0.5] * 3, "std": [0.25] * 3, "image_size": 32,
        "config": {"model": {"_target_": "resnet_cli.models.CustomResNet"},
                   "data": {"_target_": "resnet_cli.data.load_image_folder", "root": "/nonexistent", "test_subset": None,
                            "image_size": 32, "cache": False}, "seed": 0}})


def test_resnet_gradcam_names_the_first_mismatching_key(tmp_path):
    from resnet_cli.models import CustomResNet

    state = CustomResNet(num_classes=2).state_dict()
    state.pop(next(iter(state)))
    path = _custom_resnet_checkpoint(tmp_path / "bad.pt", state)
    with pytest.raises(CheckpointError, match=r"do not fit CustomResNet \(key \S+ is missing from the file\)"):
        model_from_checkpoint(path)
    proc = call_cli("resnet-gradcam", [f"ckpt={path}", "device=cpu"], cwd=tmp_path)
    one_line_error(proc, 2, f"ckpt={path}", "do not fit CustomResNet", "is missing from the file")


def test_load_weights_names_an_unexpected_key():
    model = TinyNet(num_classes=2)
    state = {**model.state_dict(), "extra.bias": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="unexpected key extra.bias"):
        load_weights(model, state, "x.pt")


# -- row 10: not a checkpoint --------------------------------------------------------------------------

@pytest.mark.parametrize("head", [b"\x80\x48", b"\x80\x02", b"PK\x03\x04", b"\x00\x01"],
                         ids=["pickle-protocol-72", "pickle-protocol-2", "zip-magic", "zeros"])
def test_random_bytes_are_not_a_checkpoint(head, tmp_path):
    path = tmp_path / "random.pt"
    path.write_bytes(head + np.random.default_rng(0).bytes(2_000_000))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, key="resume")
    assert "not a checkpoint" in str(info.value) or "truncated" in str(info.value)
    assert "Python objects" not in str(info.value)


def test_random_bytes_through_both_commands(tmp_path):
    path = tmp_path / "random.pt"
    path.write_bytes(b"\x80\x48" + np.random.default_rng(0).bytes(20_000_000))
    for name, key in (("resnet-train", "resume"), ("resnet-gradcam", "ckpt")):
        proc = call_cli(name, [f"{key}={path}", "trainer.device=cpu" if key == "resume" else "device=cpu"],
                       cwd=tmp_path)
        one_line_error(proc, 2, f"{key}={path}", "is not a checkpoint")
        assert "UserWarning" not in proc.stderr and "Traceback" not in proc.stderr  # torch's unpickling noise stays out


def test_a_legacy_torch_file_is_still_read(tmp_path):
    path = tmp_path / "legacy.pt"
    torch.save({"format": checkpoint.FORMAT, "x": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    assert torch.equal(load_checkpoint(path)["x"], torch.ones(2))


# -- row 2: a full disk ---------------------------------------------------------------------------------

def _no_space(f, data):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_keeps_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "checkpoints" / "last.pt", {"epoch": 1, "w": torch.ones(1000)})
    good = path.read_bytes()
    monkeypatch.setattr(checkpoint, "_write_bytes", _no_space)
    with pytest.raises(OutputError, match=r"cannot write .*last\.pt: No space left on device \([0-9.]+ MB needed"):
        save_checkpoint(path, {"epoch": 2, "w": torch.ones(1000)})
    assert path.read_bytes() == good and load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]  # no temporary file left


def test_full_disk_keeps_the_previous_metrics(tmp_path, monkeypatch):
    path = write_json(tmp_path / "metrics.json", {"status": "running", "epochs_done": 1})
    monkeypatch.setattr(checkpoint, "_write_bytes", _no_space)
    with pytest.raises(OutputError, match="metrics.json"):
        write_json(path, {"status": "running", "epochs_done": 2})
    assert json.loads(path.read_text())["epochs_done"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


@needs_data
@pytest.mark.slow
def test_checkpoint_too_large_for_the_disk_exits_2_keeping_the_epochs_records(tmp_path):
    """Row 2 through the CLI: a 20 MB file-size limit (RLIMIT_FSIZE: the write fails with EFBIG,
    as a full disk fails with ENOSPC) lets every record through but the 52 MB checkpoint."""
    run_dir = tmp_path / "run"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20 * 2**20, 20 * 2**20))

    proc = subprocess.run([script("resnet-train"), *tiny(train=100, test=50, epochs=2), "explain.count=2",
                           f"data.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run_dir}"], cwd=tmp_path,
                          env=env(), capture_output=True, text=True, timeout=600, preexec_fn=limit)
    line = one_line_error(proc, 2, f"cannot write {run_dir / 'checkpoints' / 'last.pt'}", "MB needed",
                          "records of finished epochs are kept")
    assert "inline_container" not in proc.stderr, line
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["status"] == "failed" and m["exit_code"] == 2 and len(m["history"]) == 1
    assert (run_dir / "history.csv").read_text().count("\n") == 2  # header + epoch 1
    assert not (run_dir / "checkpoints" / "last.pt").exists()
    assert not [p for p in run_dir.rglob("*.tmp")]


# -- row 7: one class ------------------------------------------------------------------------------------

def test_one_class_is_refused(tmp_path):
    root = noise_images(tmp_path / "data", classes=("cat",))
    proc = call_cli("resnet-train", ["data=image_folder", f"data.root={root}", "data.batch_size=4", "trainer.device=cpu",
                                    "data.num_workers=0", "trainer.epochs=2", "scheduler.max_epoch=1",
                                    "scheduler.max_lr=0.05", "scheduler.min_lr=0.005",
                                    f"data.cache_dir={tmp_path / 'cache'}"], cwd=tmp_path)
    one_line_error(proc, 2, str(root), "1 class (cat)", "at least 2 class folders")
    assert not (tmp_path / "outputs").exists()


# -- row 8: a signal during the end-of-run diagnostics -----------------------------------------------

@needs_data
def test_sigint_during_the_diagnostics_stops_at_once(tmp_path, monkeypatch):
    from resnet_cli import api, engine
    from resnet_cli.errors import Interrupted

    def slow_diagnostics(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)  # the signal must end this at once
        return {}

    monkeypatch.setattr(engine, "write_diagnostics", slow_diagnostics)
    run_dir = tmp_path / "run"
    t0 = time.monotonic()
    with pytest.raises(Interrupted, match="during the end-of-run diagnostics; training completed all 1 epochs"):
        api.train([*tiny(train=100, test=50, epochs=1), "model._target_=tinynets.TinyNet"], run_dir, verbose=False)
    assert time.monotonic() - t0 < 30
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["status"] == "interrupted" and m["interrupted_at"]["phase"] == "diagnostics" and m["epochs_done"] == 1
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] == 1


# -- row 11: a cache entry replaced by a file -------------------------------------------------------------

def test_cache_entry_replaced_by_a_file_is_repaired(tmp_path, caplog):
    root = noise_images(tmp_path / "data", n=2)
    paths = sorted(str(p) for p in (root / "train").rglob("*.png"))
    labels = np.array([0, 0, 1, 1])
    decoded = []

    def decode(ps, size):
        decoded.append(len(ps))
        return np.zeros((len(ps), size, size, 3), np.uint8)

    cache_dir = tmp_path / "cache"
    cache.cached_decode(cache_dir, "train", root, paths, labels, 32, ["cat", "dog"], decode)
    entry = next(cache_dir.iterdir())
    import shutil

    shutil.rmtree(entry)
    entry.write_text("not a folder")
    cache.cached_decode(cache_dir, "train", root, paths, labels, 32, ["cat", "dog"], decode)
    assert "is not a folder: rebuilding it" in caplog.text
    assert entry.is_dir() and (entry / "meta.json").is_file()
    cache.cached_decode(cache_dir, "train", root, paths, labels, 32, ["cat", "dog"], decode)
    assert decoded == [4, 4]  # the third call read the repaired entry


# -- row 12: an unreadable class folder ------------------------------------------------------------------

def test_unreadable_class_folder_is_named(tmp_path, monkeypatch):
    from resnet_cli.data import decode

    root = noise_images(tmp_path / "data", n=2)
    real = os.scandir
    blocked = root / "train" / "dog"

    def scandir(path):
        if Path(path) == blocked:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real(path)

    monkeypatch.setattr(decode.os, "scandir", scandir)
    with pytest.raises(DataError) as info:
        decode.scan_split(root / "train")
    assert str(info.value).startswith(f"cannot read the folder {blocked} (Permission denied): chmod -R u+rX {blocked}")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder: permissions cannot be tested as root")
def test_unreadable_class_folder_through_the_cli(tmp_path):
    root = noise_images(tmp_path / "data", n=2)
    (root / "train" / "dog").chmod(0)
    try:
        proc = call_cli("resnet-train", ["data=image_folder", f"data.root={root}", "trainer.device=cpu",
                                        f"data.cache_dir={tmp_path / 'cache'}"], cwd=tmp_path)
    finally:
        (root / "train" / "dog").chmod(0o755)
    one_line_error(proc, 2, str(root / "train" / "dog"), "Permission denied")


# -- rows 13, 14: resnet-gradcam's keys --------------------------------------------------------------------

def test_gradcam_accepts_one_layer_name_without_brackets(tmp_path):
    from resnet_cli.models.summary import resolve_target_layers
    from resnet_cli.models import CustomResNet

    model = CustomResNet(num_classes=2)
    assert resolve_target_layers(model, "layer3").names == ["layer3"]
    with pytest.raises(ConfigError, match="'layer9' is not a feature-map layer"):
        resolve_target_layers(model, "layer9")
    with pytest.raises(ConfigError, match=r"layers=3 is not allowed: write one module name"):
        resolve_target_layers(model, 3)
    proc = call_cli("resnet-gradcam", ["ckpt=missing.pt", "layers=layer9"], cwd=tmp_path)
    one_line_error(proc, 2, "ckpt=missing.pt")  # composed fine: the checkpoint is the problem
    assert "ListConfig" not in proc.stderr


def test_gradcam_layer9_on_a_real_checkpoint(tmp_path):
    from resnet_cli.models import CustomResNet

    path = _custom_resnet_checkpoint(tmp_path / "ok.pt", CustomResNet(num_classes=2).state_dict())
    proc = call_cli("resnet-gradcam", [f"ckpt={path}", "layers=layer9", "device=cpu"], cwd=tmp_path)
    one_line_error(proc, 2, "'layer9' is not a feature-map layer of CustomResNet")
    assert not (tmp_path / "outputs").exists()


def test_gradcam_without_data_gives_its_own_keys(tmp_path):
    from resnet_cli.models import CustomResNet

    path = _custom_resnet_checkpoint(tmp_path / "ok.pt", CustomResNet(num_classes=2).state_dict())
    proc = call_cli("resnet-gradcam", [f"ckpt={path}", "device=cpu"], cwd=tmp_path)
    line = one_line_error(proc, 2, "test split cannot be read: data folder not found: /nonexistent", "data_root=")
    assert "data.root" not in line and "data.download" not in line
    assert not (tmp_path / "outputs").exists()


# -- row 15: a resumed run's timings -------------------------------------------------------------------------

def test_resumed_run_times_only_this_command(tmp_path):
    from rich.console import Console

    from resnet_cli.core.distributed import World
    from resnet_cli.engine import restore
    from resnet_cli.core.run_folder import Records, Timings

    from types import SimpleNamespace

    cfg = SimpleNamespace(resume="x.pt", trainer=SimpleNamespace(epochs=2), seed=0)  # what restore reads
    model = TinyNet(num_classes=2)
    started = time.perf_counter() - 5.0  # the command began 5 s ago, the engine 4 s ago
    timings = Timings(started=started, created=started + 1.0)
    records = Records(tmp_path, World(rank=0, world_size=1, local_rank=0), cfg, None, torch.device("cpu"), timings,
                      Console())
    r = restore({"model": model.state_dict(), "lr": {"max_lr": 0.1, "min_lr": 0.01, "rule": "given", "lrs": [], "losses": []}, "history": [],
                 "step_lrs": [], "epoch": 1, "step": 0, "partial": {"loss_sum": 0.0, "correct": 0, "count": 0,
                                                                      "seconds": 0.0}, "train_seconds": 44.9}, model, records)
    assert timings.seconds["train"] == 0.0  # this command has not trained yet (it used to start at 44.9)
    timings.seconds["train"] += 0.2
    t = timings.as_dict()
    assert t["train"] == 0.2 and t["train"] <= t["total"]
    assert abs(sum(v for k, v in t.items() if k != "total") - t["total"]) < 0.01
    assert records.train_seconds(r) == pytest.approx(45.1)
