"""The hostile but fair user's fault table, rows 2-16 (docs/faults.md, "Hostile input"): each test
fails on the code before the fix. Entry points run in this process (patched argv, SystemExit
caught); data are tiny synthetic image folders; nothing touches the user's cache folder.
"""

from __future__ import annotations

import errno
import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import resnet_cli
from resnet_cli.errors import ConfigError


def _images(root: Path, classes=("cat", "dog"), n: int = 4, seed: int = 0) -> Path:
    """``root/{train,test}/<class>/<i>.png``: ``n`` random 32x32 RGB images per class and split."""
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")
    return root


def _checkpoint(path: Path, data_root: Path, nan: bool = False) -> Path:
    """An untrained custom ResNet checkpoint whose run config reads ``data_root`` (2 classes)."""
    from omegaconf import OmegaConf

    from resnet_cli.core.checkpoint import save_checkpoint
    from resnet_cli.models import CustomResNet

    cfg = resnet_cli.compose(["data=image_folder", f"data.root={data_root}", "data.cache=false"], validate=False)
    torch.manual_seed(0)
    model = CustomResNet(num_classes=2).eval()
    state = model.state_dict()
    if nan:
        next(v for v in state.values() if v.is_floating_point()).fill_(float("nan"))
    return save_checkpoint(path, {"model": state, "config": OmegaConf.to_container(cfg, resolve=True),
                                  "classes": ["cat", "dog"], "mean": [0.5] * 3, "std": [0.25] * 3,
                                  "image_size": 32, "epoch": 1})


def _main(module: str, argv: list[str], monkeypatch) -> int:
    """Run ``resnet-<module>``'s ``main()`` in this process through ``conftest.call_cli`` (which puts
    Hydra's logging back afterwards); its stdout/stderr are written out again for ``capsys``; returns
    the exit code."""
    from conftest import call_cli

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    proc = call_cli(f"resnet-{module}", argv, cwd=Path.cwd())
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    return proc.returncode


def _errors(capsys) -> list[str]:
    return [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error: ")]


# -- row 2: image folders with links to folders -----------------------------------------------

def test_folder_links_are_not_followed_and_each_file_counts_once(tmp_path, caplog):
    from resnet_cli.data.decode import scan_split

    root = _images(tmp_path / "data", n=3)
    (root / "train" / "cat" / "up").symlink_to("..")  # a loop: train/ again, dog's images as cat
    (root / "train" / "cat" / "dogs").symlink_to(root / "train" / "dog")  # another class
    (root / "train" / "cat" / "again.png").symlink_to(root / "train" / "cat" / "0.png")  # the same file
    with caplog.at_level(logging.WARNING):
        classes, samples = scan_split(root / "train")
    assert classes == ["cat", "dog"]
    assert [label for _, label in samples] == [0, 0, 0, 1, 1, 1]
    assert all("/up/" not in p and "/dogs/" not in p for p, _ in samples)
    text = caplog.text
    assert "not following the folder link" in text and "up -> .." in text and "dogs ->" in text
    assert "counted once" in text


# -- row 3: the cache heals -------------------------------------------------------------------

def _decode(paths, size):
    return np.stack([np.full((size, size, 3), i, np.uint8) for i, _ in enumerate(paths)])


CORRUPTIONS = {
    "empty images.npy": lambda e: (e / "images.npy").write_bytes(b""),
    "empty labels.npy": lambda e: (e / "labels.npy").write_bytes(b""),
    "truncated images.npy": lambda e: (e / "images.npy").write_bytes((e / "images.npy").read_bytes()[:100]),
    "meta.json []": lambda e: (e / "meta.json").write_text("[]"),
    "meta.json not JSON": lambda e: (e / "meta.json").write_text("{"),
    "labels of another dtype": lambda e: np.save(e / "labels.npy", np.zeros(4, np.float32)),
    "images.npy missing": lambda e: (e / "images.npy").unlink(),
    "meta.json missing": lambda e: (e / "meta.json").unlink(),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_a_corrupt_cache_entry_is_one_warning_then_rebuilt(kind, tmp_path, caplog):
    from resnet_cli.data.cache import cached_decode

    files = []
    for i in range(4):
        files.append(tmp_path / f"{i}.png")
        files[-1].write_bytes(b"x")
    paths, labels, cache = [str(f) for f in files], np.arange(4) % 2, tmp_path / "cache"
    good, _ = cached_decode(cache, "train", tmp_path, paths, labels, 8, ["a", "b"], _decode)
    (entry,) = cache.iterdir()
    CORRUPTIONS[kind](entry)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="resnet_cli.data.cache"):
        images, got = cached_decode(cache, "train", tmp_path, paths, labels, 8, ["a", "b"], _decode)
    assert [r.levelno for r in caplog.records] == [logging.WARNING], caplog.text
    assert "unusable" in caplog.text and "rebuilding" in caplog.text
    assert np.array_equal(images, good) and np.array_equal(got, labels)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="resnet_cli.data.cache"):  # the rebuilt entry is read back
        again, _ = cached_decode(cache, "train", tmp_path, paths, labels, 8, ["a", "b"], _decode)
    assert "loaded the train split" in caplog.text and np.array_equal(again, good)


def test_two_runs_building_the_same_entry_at_once_both_succeed(tmp_path):
    from resnet_cli.data.cache import cached_decode

    files = []
    for i in range(4):
        files.append(tmp_path / f"{i}.png")
        files[-1].write_bytes(b"x")
    paths, labels = [str(f) for f in files], np.arange(4) % 2
    barrier, results, errors = threading.Barrier(2), [], []

    def slow_decode(p, size):
        barrier.wait(timeout=10)  # both have missed the cache and decode together
        return _decode(p, size)

    def build():
        try:
            results.append(cached_decode(tmp_path / "cache", "train", tmp_path, paths, labels, 8, ["a", "b"],
                                         slow_decode))
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 2
    assert all(np.array_equal(r[0], _decode(paths, 8)) for r in results)
    assert [p.name.startswith(".") for p in (tmp_path / "cache").iterdir()] == [False]  # one entry, no leftovers


# -- row 4: tracker names ---------------------------------------------------------------------

@pytest.mark.parametrize("override, needle", [
    ("logger=foo", "logger=foo is not allowed: no such option; choose one of csv"),
    ("logger=tensorbord", "did you mean tensorboard?"),
    ("logger=[csv,tensorbord]", "logger=tensorbord is not allowed: no such option; did you mean tensorboard?"),
])
def test_a_misspelled_tracker_is_refused(override, needle):
    with pytest.raises(ConfigError, match=None) as info:
        resnet_cli.compose([override])
    assert needle in str(info.value)


def test_a_misspelled_tracker_exits_2_through_resnet_train(tmp_path, monkeypatch, capsys):
    code = _main("train", ["logger=[csv,tensorbord]", f"hydra.run.dir={tmp_path / 'run'}"], monkeypatch)
    assert code == 2
    assert _errors(capsys) == ["error: logger=tensorbord is not allowed: no such option; did you mean tensorboard?; "
                               "choose one of csv, many_loggers, mlflow, tensorboard, wandb"]
    assert not (tmp_path / "run").exists()


# -- row 5: predict and export claim their folders ----------------------------------------------

def test_two_predicts_in_the_same_second_get_a_folder_each(tmp_path, monkeypatch):
    root = _images(tmp_path / "data")
    ckpt = _checkpoint(tmp_path / "last.pt", root)
    image = root / "test" / "cat" / "0.png"
    clock = f"hydra.run.dir={tmp_path / 'out'}/${{now:%Y}}"  # named after the clock: the same for both
    for _ in range(2):
        assert _main("predict", [f"ckpt={ckpt}", f"images=[{image}]", "device=cpu", clock], monkeypatch) == 0
    folders = sorted(p.name for p in (tmp_path / "out").iterdir())
    year = time.strftime("%Y")
    assert folders == [year, f"{year}-2"]
    assert all((tmp_path / "out" / f / "predictions.json").is_file() for f in folders)


@pytest.mark.parametrize("module, args", [("predict", ["images=[x.png]"]), ("export", ["format=torchscript"])])
def test_a_failed_predict_or_export_leaves_no_folder(module, args, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = _main(module, [f"ckpt={tmp_path / 'missing.pt'}", *args], monkeypatch)
    assert code == 2 and len(_errors(capsys)) == 1
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*.log"))
    assert not (tmp_path / "outputs").exists()


# -- row 7: an existing folder that cannot be written -----------------------------------------

def test_an_existing_unwritable_run_dir_is_one_line(tmp_path, monkeypatch, capsys):
    import resnet_cli.cli.run_dirs as run_dirs

    run_dir = tmp_path / "ro"
    run_dir.mkdir()

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(run_dir))

    monkeypatch.setattr(run_dirs.tempfile, "TemporaryFile", refuse)  # what a read-only mount does, even to root
    code = _main("train", ["data=image_folder", f"data.root={tmp_path}", f"hydra.run.dir={run_dir}"], monkeypatch)
    assert code == 2
    (line,) = _errors(capsys)
    assert line.startswith(f"error: cannot write the output folder: {run_dir} (Permission denied") and \
        "hydra.run.dir=<folder>" in line
    assert list(run_dir.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a 0555 folder; the test above patches the write")
def test_an_existing_read_only_run_dir_is_one_line(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "ro"
    run_dir.mkdir()
    run_dir.chmod(0o555)
    try:
        code = _main("train", ["data=image_folder", f"data.root={tmp_path}", f"hydra.run.dir={run_dir}"], monkeypatch)
    finally:
        run_dir.chmod(0o755)
    assert code == 2 and "cannot write the output folder" in _errors(capsys)[0]


# -- row 10: values checked before the data -----------------------------------------------------

@pytest.mark.parametrize("override, needle", [
    ("seed=-1", "seed=-1 is not allowed: an integer in 0..4294967295"),
    (f"seed={2**64}", f"seed={2**64} is not allowed"),
    (f"seed={2**32}", f"seed={2**32} is not allowed"),
    ("model.logit_scale=0", "model.logit_scale=0 is not allowed: must be a finite number > 0"),
    ("model.logit_scale=-1", "model.logit_scale=-1 is not allowed"),
    ("model.logit_scale=nan", "model.logit_scale=nan is not allowed"),
])
def test_seed_and_logit_scale_are_checked_before_the_data(override, needle, tmp_path):
    with pytest.raises(ConfigError) as info:
        resnet_cli.compose(["data=image_folder", f"data.root={tmp_path / 'nowhere'}", override])
    assert needle in str(info.value)


def test_predict_refuses_a_checkpoint_with_nan_weights(tmp_path, monkeypatch, capsys):
    root = _images(tmp_path / "data")
    ckpt = _checkpoint(tmp_path / "last.pt", root, nan=True)
    run_dir = tmp_path / "run"
    code = _main("predict", [f"ckpt={ckpt}", f"images=[{root / 'test'}]", "device=cpu", f"hydra.run.dir={run_dir}"],
                 monkeypatch)
    assert code == 2
    (line,) = _errors(capsys)
    assert "holds non-finite weights (NaN or inf in" in line and str(ckpt) in line
    assert not run_dir.exists()  # no predictions.json with "p": NaN


# -- row 11: resnet-export's keys -------------------------------------------------------------

@pytest.mark.parametrize("opset", [0, 6, 999])
def test_export_opset_outside_torchs_range_is_refused(opset, tmp_path):
    from omegaconf import OmegaConf

    from resnet_cli.cli.export import export_checkpoint, opset_range

    cfg = OmegaConf.create({"ckpt": str(tmp_path / "x.pt"), "format": "onnx", "output": None, "batch_size": 4,
                            "tolerance": 1e-4, "opset": opset, "data_root": None})
    low, high = opset_range()
    with pytest.raises(ConfigError, match=rf"^opset={opset} is not allowed: torch .* exports ONNX opsets {low}\.\.{high}"):
        export_checkpoint(cfg, tmp_path / "run")


def test_export_into_an_existing_folder_and_a_batch_larger_than_the_test_split(tmp_path, monkeypatch, capsys):
    root = _images(tmp_path / "data", n=3)  # 6 test images
    ckpt = _checkpoint(tmp_path / "last.pt", root)
    out = tmp_path / "deploy"
    out.mkdir()
    args = [f"ckpt={ckpt}", "format=torchscript", f"output={out}", "batch_size=4"]
    assert _main("export", [*args, f"hydra.run.dir={tmp_path / 'a'}"], monkeypatch) == 0
    assert (out / "model.pt").is_file()
    assert json.loads((tmp_path / "a" / "export.json").read_text())["file"] == str((out / "model.pt").resolve())
    capsys.readouterr()
    assert _main("export", [*args[:-1], "batch_size=7", f"hydra.run.dir={tmp_path / 'b'}"], monkeypatch) == 2
    (line,) = _errors(capsys)
    assert line.startswith("error: batch_size=7 is larger than the 6 images available") and "data.test_subset" \
        not in line and "resnet-export's batch_size" in line


# -- row 6: trackers fail fast ----------------------------------------------------------------

def test_an_unreachable_mlflow_server_is_found_in_seconds_before_the_data(tmp_path):
    from resnet_cli.cli.checks import validate

    cfg = resnet_cli.compose(["data=image_folder", f"data.root={tmp_path}", "logger=mlflow",
                              "logger.mlflow.tracking_uri=http://127.0.0.1:9/"], validate=False)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"^logger\.mlflow\.tracking_uri=http://127\.0\.0\.1:9/: no MLflow server "
                                          r"answers at 127\.0\.0\.1:9 \(.*\); start it"):
        validate(cfg)
    assert time.perf_counter() - start < 10


def test_a_tracking_uri_of_no_mlflow_store_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"^logger\.mlflow\.tracking_uri=bogus://x is not allowed: MLflow has no "
                                          r"store for bogus://"):
        resnet_cli.compose(["data=image_folder", f"data.root={tmp_path}", "logger=mlflow",
                            "logger.mlflow.tracking_uri=bogus://x"])


def test_a_tracker_package_that_does_not_import_is_one_line(monkeypatch):
    from resnet_cli.tracking import check_logger

    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    with pytest.raises(ConfigError, match=r"^logger\.wandb needs the wandb package, .*pip install 'resnet-cli\[wandb\]'"):
        check_logger({"wandb": {"_target_": "resnet_cli.tracking.WandbLogger"}})


def test_mlflow_artifacts_stay_in_the_run_folder_unless_a_store_is_named(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from resnet_cli.tracking import MLflowLogger

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    plots = tmp_path / "run" / "plots"
    plots.mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(plots / "curves.png")
    logger = MLflowLogger(tmp_path / "run", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert logger.log_images(plots, 1) == 0
    logger.close()
    assert list(cwd.iterdir()) == []  # no ./mlruns where the command ran
    named = MLflowLogger(tmp_path / "run", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment_name="named",
                         artifact_location=(tmp_path / "store").as_uri())
    assert named.log_images(plots, 1) == 1
    named.close()
    assert list((tmp_path / "store").rglob("curves.png"))


# -- row 12: a read-only disk -------------------------------------------------------------------

def test_a_read_only_log_folder_says_so_not_free_space(tmp_path):
    from resnet_cli.errors import write_failed_message

    line = write_failed_message(OSError(errno.EROFS, "Read-only file system", str(tmp_path / "history.csv")))
    assert "read-only" in line and "hydra.run.dir=<a writable folder>" in line and "free some space" not in line


# -- row 8 and 9: resume -----------------------------------------------------------------------

def _resume_ckpt(root: Path) -> dict:
    from omegaconf import OmegaConf

    cfg = resnet_cli.compose(["data=image_folder", f"data.root={root}"], validate=False)
    return {"config": OmegaConf.to_container(cfg, resolve=True), "classes": ["cat", "dog"],
            "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2], "lr": {"max_lr": 0.4, "min_lr": 0.01}}


def test_resume_accepts_a_moved_data_root_holding_the_runs_images(tmp_path):
    from resnet_cli.cli.resume import check_resume_overrides, resume_config
    from resnet_cli.engine import check_moved_data

    ckpt = _resume_ckpt(tmp_path / "old")
    overrides = [f"resume={tmp_path / 'last.pt'}", f"data.root={tmp_path / 'new'}"]
    cfg = resnet_cli.compose(["data=image_folder", *overrides], validate=False)
    check_resume_overrides(cfg, ckpt, "last.pt", overrides)  # no longer "cannot be applied on resume"
    assert resume_config(cfg, ckpt, overrides).data.root == str(tmp_path / "new")
    assert resume_config(cfg, ckpt, overrides[:1]).data.root == str(tmp_path / "old")  # not given: the run's
    same = SimpleNamespace(root=str(tmp_path / "new"), classes=["cat", "dog"], mean=(0.5, 0.4, 0.3), std=(0.2,) * 3)
    check_moved_data(ckpt, same, "last.pt")
    other = SimpleNamespace(**{**vars(same), "mean": (0.5, 0.4, 0.31)})
    with pytest.raises(ConfigError, match=r"does not hold the data of resume=last\.pt: its training images' mean"):
        check_moved_data(ckpt, other, "last.pt")


def test_resume_of_a_diverged_run_is_refused_up_front_with_advice_that_works(tmp_path):
    from resnet_cli.cli.resume import check_not_diverged

    ckpt = _resume_ckpt(tmp_path)
    check_not_diverged(ckpt, "last.pt", {"status": "interrupted"})
    with pytest.raises(ConfigError) as info:
        check_not_diverged(ckpt, "last.pt", {"status": "diverged", "diverged_at": {"epoch": 2, "step": 7}})
    line = str(info.value)
    assert "diverged (at epoch 2 step 7)" in line and "new run without resume=" in line
    assert "scheduler.max_lr=0.04" in line


def test_the_divergence_message_of_a_resumed_run_names_its_epoch(tmp_path):
    from resnet_cli.errors import Diverged
    from resnet_cli.core.fit import _diverged

    records = SimpleNamespace(write=lambda *a, **k: None, checkpoint_path=tmp_path / "none.pt",
                              config=SimpleNamespace(resume="last.pt"))
    state = SimpleNamespace(status="running", lr=SimpleNamespace(max_lr=0.4))
    with pytest.raises(Diverged) as info:
        _diverged(state, records, 1, 3)
    line = str(info.value)
    assert "first epoch" not in line and "in epoch 2" in line and "new run (without resume=)" in line


# -- row 13: SIGHUP ---------------------------------------------------------------------------

def test_sighup_stops_as_sigterm_does():
    from resnet_cli.errors import StopRequest
    from resnet_cli.core.fit import stop_signals

    before = signal.getsignal(signal.SIGHUP)  # SIG_DFL, or SIG_IGN under nohup
    with stop_signals() as stop:
        assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, signal.SIG_IGN)  # else it would end pytest
        with pytest.raises(StopRequest, match="SIGHUP"):  # during set-up: at once, status interrupted
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(1)
        stop.immediate = False  # training: finish the step, checkpoint, exit 130
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.05)
        assert stop.signal == "SIGHUP"
    assert signal.getsignal(signal.SIGHUP) == before  # the handler the process had is put back


# -- row 14: sweeps ---------------------------------------------------------------------------

def test_an_interrupted_sweep_writes_the_summary_of_the_jobs_that_ran(tmp_path, monkeypatch, capsys):
    import resnet_cli.engine as engine
    from resnet_cli.errors import StopRequest

    def interrupted(*args, **kwargs):
        raise StopRequest("SIGINT")

    monkeypatch.setattr(engine, "load_data", interrupted)
    root = _images(tmp_path / "data")
    sweep = tmp_path / "sweep"
    code = _main("train", ["-m", "data=image_folder", f"data.root={root}", "data.cache=false", "data.batch_size=2",
                           "trainer.device=cpu", "seed=0,1,2", f"hydra.sweep.dir={sweep}"], monkeypatch)
    assert code == 130
    rows = (sweep / "sweep_summary.csv").read_text().splitlines()
    assert len(rows) == 2 and "interrupted" in rows[1]


def test_the_summary_rebuild_counts_every_job_folder(tmp_path):
    from resnet_cli.cli.sweep_results import find_jobs

    for job in ("0", "1", "2"):
        (tmp_path / job).mkdir()
    (tmp_path / "0" / "metrics.json").write_text(json.dumps({"status": "completed"}))
    (tmp_path / "1" / ".hydra").mkdir()
    (tmp_path / "1" / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
    (tmp_path / "2" / "train.log").write_text("killed in set-up\n")  # no record, no .hydra (output_subdir=null)
    assert [p.name for p in find_jobs(tmp_path)] == ["0", "1", "2"]


# -- row 15: modes follow the umask -------------------------------------------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_records_and_checkpoints_follow_the_umask(umask, mode, tmp_path):
    from resnet_cli.core.checkpoint import save_checkpoint, write_json

    old = os.umask(umask)
    try:
        paths = [write_json(tmp_path / "metrics.json", {"a": 1}), save_checkpoint(tmp_path / "last.pt", {"a": 1})]
    finally:
        os.umask(old)
    assert [oct(p.stat().st_mode & 0o777) for p in paths] == [oct(mode)] * 2


# -- row 16: the install ----------------------------------------------------------------------

def test_a_torch_torchvision_pair_torchvision_does_not_allow_is_one_line_before_anything(monkeypatch, capsys):
    import importlib.metadata as metadata

    import resnet_cli.cli.entry as entry

    real = metadata.requires
    monkeypatch.setattr(metadata, "requires", lambda name: ["torch (==1.0.0)"] if name == "torchvision" else real(name))
    ran = []
    with pytest.raises(SystemExit) as info:
        entry.run_hydra(lambda: ran.append(1))
    assert info.value.code == 2 and ran == []
    (line,) = _errors(capsys)
    assert f"torch {metadata.version('torch')} and torchvision {metadata.version('torchvision')} do not work " \
           "together (torchvision requires torch==1.0.0)" in line
    assert "pip install --force-reinstall torch torchvision --index-url https://download.pytorch.org/whl/cpu" in line


@pytest.mark.parametrize("error", [RuntimeError("operator torchvision::nms does not exist"),
                                   ImportError("libtorchvision.so: undefined symbol", name="torchvision._C")])
def test_a_torchvision_that_does_not_import_is_one_line_naming_both_versions(error, tmp_path, monkeypatch, capsys):
    from importlib.metadata import version

    import resnet_cli.engine as engine

    def broken(*args, **kwargs):  # where the first run imports torchvision
        raise error

    monkeypatch.setattr(engine, "load_data", broken)
    run_dir = tmp_path / "run"
    code = _main("train", ["data=image_folder", f"data.root={_images(tmp_path / 'data')}", "data.cache=false",
                           "trainer.device=cpu", f"hydra.run.dir={run_dir}"], monkeypatch)
    assert code == 2
    (line,) = _errors(capsys)
    assert line.startswith(f"error: torch {version('torch')} and torchvision {version('torchvision')} do not work "
                           f"together (import torchvision: {type(error).__name__}: ")
    assert "--index-url https://download.pytorch.org/whl/cpu" in line
    assert not run_dir.exists()
