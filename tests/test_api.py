"""The Python API (`import resnet_cli`) runs the CLI's code path.

* ``compose`` gives the config ``resnet-train`` composes (compared with ``resnet-train --cfg job``)
  and can be called repeatedly, also while Hydra is initialised;
* ``train`` gives the same metrics, history and weights as ``resnet-train`` for the same seed and
  overrides on the CPU, and the same run folder (both runs: TinyNet, ``SMALL``, with a range test);
* ``find_lr`` gives the range test the run did; ``evaluate`` on the checkpoint of conftest's
  ``trained_run`` (the custom ResNet) reproduces that run's final test loss and accuracy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import resnet_cli
from resnet_cli.core.checkpoint import load_checkpoint

from conftest import DATA_ROOT, call_cli, needs_data, run_cli
from tinynets import TESTS, tiny

# metrics.json keys that measure time or the machine, not the computation
TIMING_KEYS = {"train_seconds", "setup_seconds", "cuda_memory", "seconds", "images_per_s", "timings"}


def _strip_timing(value):
    if isinstance(value, dict):
        return {k: _strip_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_strip_timing(v) for v in value]
    return value


# -- package surface ---------------------------------------------------------------------------

def test_import_is_light_and_names_resolve():
    code = ("import sys, resnet_cli; "
            "print(sorted(m for m in ('torch', 'hydra', 'matplotlib', 'albumentations') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert set(resnet_cli.__all__) == set(resnet_cli._EXPORTS) | {"__version__"}
    for name in resnet_cli.__all__:
        assert getattr(resnet_cli, name) is not None, name
    from resnet_cli.models import CustomResNet

    assert resnet_cli.models.CustomResNet is CustomResNet is resnet_cli.CustomResNet
    assert resnet_cli.RunResult is resnet_cli.engine.RunResult
    assert resnet_cli.plot_misclassified is resnet_cli.diagnostics.plots.plot_misclassified
    with pytest.raises(AttributeError):
        resnet_cli.no_such_name  # noqa: B018


# -- compose -----------------------------------------------------------------------------------

def test_compose_equals_the_cli_config(tmp_path):
    overrides = ["data=image_folder", f"data.root={tmp_path}", "trainer.epochs=3", "scheduler.max_epoch=1",
                 "model=resnet18", "augment=none", "seed=7"]
    proc = call_cli("resnet-train", ["--cfg", "job", *overrides], cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cli = OmegaConf.to_container(OmegaConf.create(proc.stdout))
    api = OmegaConf.to_container(resnet_cli.compose(overrides))
    assert api == cli
    assert api["model"]["_target_"] == "resnet_cli.models.ResNet18" and api["seed"] == 7


def test_compose_repeatedly_and_inside_hydra(tmp_path):
    a = resnet_cli.compose(["trainer.epochs=3", "scheduler.max_epoch=1"])
    b = resnet_cli.compose(["trainer.epochs=4", "scheduler.max_epoch=2"])
    assert (a.trainer.epochs, b.trainer.epochs) == (3, 4) and "hydra" not in a

    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from resnet_cli.cli.composition import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir(), version_base="1.3", job_name="outer"):
        c = resnet_cli.compose(["trainer.epochs=5", "scheduler.max_epoch=1"])
        assert c.trainer.epochs == 5
        # the outer Hydra state is back and still usable
        from hydra import compose as hydra_compose

        assert GlobalHydra.instance().is_initialized()
        assert hydra_compose("train", overrides=["seed=3"]).seed == 3
    GlobalHydra.instance().clear()


@pytest.mark.parametrize("overrides, match", [
    (["trainer.epochs=x"], "trainer.epochs"),
    (["nope=1"], "nope"),
    (["data=foo"], "data=foo is not allowed: no such option; choose one of cifar10, cifar100, image_folder"),
    (["trainer.epochs=0"], "trainer.epochs=0"),
    (["scheduler.max_epoch=30"], "scheduler.max_epoch"),
])
def test_compose_errors_name_the_key(overrides, match):
    with pytest.raises(resnet_cli.ConfigError, match=match):
        resnet_cli.compose(overrides)


def test_compose_without_validation_and_bad_types():
    cfg = resnet_cli.compose(["trainer.epochs=0"], validate=False)
    assert cfg.trainer.epochs == 0
    with pytest.raises(TypeError, match="list of strings"):
        resnet_cli.compose("trainer.epochs=2")
    with pytest.raises(TypeError):
        resnet_cli.train("trainer.epochs=2")
    with pytest.raises(TypeError):
        resnet_cli.evaluate(42)
    with pytest.raises(TypeError, match="needs data"):
        resnet_cli.evaluate(resnet_cli.CustomResNet())


def test_default_output_dir_is_dated_and_unique(tmp_path):
    import datetime as dt

    now = dt.datetime(2024, 5, 1, 12, 30, 5)
    first = resnet_cli.default_output_dir(tmp_path, now)
    assert first == tmp_path.resolve() / "2024-05-01" / "12-30-05"
    first.mkdir(parents=True)
    assert resnet_cli.default_output_dir(tmp_path, now).name == "12-30-05-2"


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    """train() without output_dir claims its clock-named folder atomically: when another process creates
    that folder first (between looking and creating), this run takes the next name instead of sharing it."""
    import datetime as dt
    import os

    from resnet_cli import api

    now = dt.datetime(2024, 5, 1, 12, 30, 5)
    monkeypatch.setattr(api, "DEFAULT_OUTPUT_ROOT", str(tmp_path))
    clock_dir = api._clock_dir
    monkeypatch.setattr(api, "_clock_dir", lambda root, when=None: clock_dir(root, now))
    real_mkdir, raced = os.mkdir, []

    def racing_mkdir(path, *args, **kwargs):
        if os.path.basename(path) == "12-30-05" and not raced:
            raced.append(path)
            real_mkdir(path)  # the other process wins the race for this name
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", racing_mkdir)
    with pytest.raises(resnet_cli.DataError):
        resnet_cli.train(["data=image_folder", f"data.root={tmp_path / 'missing'}", "trainer.device=cpu"],
                         verbose=False)
    day = tmp_path.resolve() / "2024-05-01"
    assert raced and not any((day / "12-30-05").iterdir())  # the other run's folder is untouched
    assert (day / "12-30-05-2" / "metrics.json").is_file()


# -- train: failures are recorded like the CLI's -----------------------------------------------

def test_train_bad_data_fails_like_the_cli(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(resnet_cli.DataError, match="data folder not found"):
        resnet_cli.train(["data=image_folder", f"data.root={tmp_path / 'missing'}", "trainer.device=cpu"],
                         output_dir=run_dir, verbose=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "data folder not found" in metrics["error"]
    assert "data folder not found" in (run_dir / "train.log").read_text()
    assert OmegaConf.load(run_dir / ".hydra" / "config.yaml").data._target_ == "resnet_cli.data.load_image_folder"


# -- train / find_lr / evaluate against the CLI run ----------------------------------------------

# The API run and the CLI run it is compared with: TinyNet (tests/tinynets.py) on 300 training images,
# 6 steps an epoch, so the warm-up's 6 steps are the default range test (rule steepest, as conftest's
# TINY): the same code path as the custom ResNet's run in seconds instead of minutes.
SMALL = [*tiny(train=300, lrs=False), "model._target_=tinynets.TinyNet", "lr_finder.rule=steepest"]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> Path:
    """Run folder of ``resnet-train SMALL`` in a process of its own (the console script)."""
    if not (DATA_ROOT / "train").is_dir():
        pytest.skip(f"offline CIFAR-10 copy not found at {DATA_ROOT}")
    work = tmp_path_factory.mktemp("cli")
    run_dir = work / "run"
    # tests/ on PYTHONPATH for TinyNet; the thread count as in this process (the API run's)
    import os

    env = {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    proc = run_cli("resnet-train", [*SMALL, f"hydra.run.dir={run_dir}"], cwd=work, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"
    return run_dir


@pytest.fixture(scope="module")
def api_run(tmp_path_factory):
    """The API's run with the overrides of the CLI run (SMALL)."""
    if not (DATA_ROOT / "train").is_dir():
        pytest.skip(f"offline CIFAR-10 copy not found at {DATA_ROOT}")
    run_dir = tmp_path_factory.mktemp("api") / "run"
    return resnet_cli.train(list(SMALL), output_dir=run_dir, verbose=False)


@needs_data
def test_api_train_equals_cli(api_run, cli_run):
    cli = json.loads((cli_run / "metrics.json").read_text())
    api = json.loads(json.dumps(api_run.metrics, default=float))  # as written to metrics.json
    assert api == json.loads((api_run.run_dir / "metrics.json").read_text())
    assert api["status"] == cli["status"] == "completed"
    for key in ("test_acc", "test_loss", "train_acc", "train_loss", "max_lr", "min_lr"):
        assert api[key] == pytest.approx(cli[key], rel=1e-6, abs=1e-9), key
    assert len(api["history"]) == len(cli["history"]) == 2
    for a, c in zip(api["history"], cli["history"]):
        assert a.keys() == c.keys()
        for key in a:
            if key not in ("seconds", "images_per_s"):  # times
                assert a[key] == pytest.approx(c[key], rel=1e-6, abs=1e-9), (a["epoch"], key)
    # everything else that is not a time is identical (dataset, params, class_acc, confusion...)
    same = {k for k in cli if k not in TIMING_KEYS and not isinstance(cli[k], float) and k != "history"}
    assert {k: _strip_timing(api[k]) for k in same} == {k: _strip_timing(cli[k]) for k in same}

    # the trained weights are the same
    w_api = load_checkpoint(api_run.checkpoint)["model"]
    w_cli = load_checkpoint(cli_run / "checkpoints" / "last.pt")["model"]
    assert w_api.keys() == w_cli.keys()
    for k in w_api:
        assert torch.allclose(w_api[k].float(), w_cli[k].float(), rtol=1e-5, atol=1e-6), k


@needs_data
def test_api_run_folder_is_the_cli_run_folder(api_run, cli_run):
    def files(root: Path) -> set[str]:
        return {p.relative_to(root).as_posix() for p in root.rglob("*")
                if p.is_file() and not p.relative_to(root).as_posix().startswith(".hydra/")}

    assert files(api_run.run_dir) == files(cli_run)
    assert {"plots/samples.png", "plots/augmentations.png", "train.log"} <= files(api_run.run_dir)
    log = (api_run.run_dir / "train.log").read_text()
    assert "epoch  2/2" in log and "][resnet_cli][INFO] - " in log  # Hydra's job-logging format
    cli_cfg = OmegaConf.load(cli_run / ".hydra" / "config.yaml")
    assert OmegaConf.load(api_run.run_dir / ".hydra" / "config.yaml") == cli_cfg
    assert list(OmegaConf.load(api_run.run_dir / ".hydra" / "overrides.yaml")) == list(SMALL)
    assert api_run.model.training is False and api_run.checkpoint == api_run.run_dir / "checkpoints" / "last.pt"
    # the One Cycle and curve figures of the run, from Python
    ckpt = load_checkpoint(api_run.checkpoint)
    fig = resnet_cli.plot_one_cycle(api_run)
    assert list(fig.axes[0].lines[0].get_ydata()) == ckpt["step_lrs"]
    assert len(resnet_cli.plot_history(api_run).axes) == 2


@needs_data
def test_find_lr_is_the_runs_range_test(cli_run, tmp_path):
    out = resnet_cli.find_lr(list(SMALL), output_dir=tmp_path / "lr", verbose=False)
    result, fig = out  # unpacks
    ran = load_checkpoint(cli_run / "checkpoints" / "last.pt")["lr"]
    assert result.lrs == pytest.approx(ran["lrs"], rel=1e-12)
    assert result.losses == pytest.approx(ran["losses"], rel=1e-5)
    assert result.max_lr == pytest.approx(ran["max_lr"], rel=1e-9) and result.rule == ran["rule"]
    assert result.min_lr == pytest.approx(ran["min_lr"], rel=1e-9)
    # the whole test, the deciding ramp (its loss first), batch accuracy
    assert len(fig.axes) == 3 and len(fig.axes[1].lines[0].get_xdata()) == len(ran["lrs"])
    assert len(result.earlier) == result.zooms == ran["zooms"]
    assert result.accs == pytest.approx(ran["accs"]) and len(result.accs) == len(ran["lrs"])
    assert (tmp_path / "lr" / "plots" / "lr_finder.png").is_file()


@needs_data
def test_evaluate_checkpoint_reproduces_the_run(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    ev = resnet_cli.evaluate(trained_run / "checkpoints" / "last.pt", device="cpu")
    assert ev.n == metrics["dataset"]["test_size"] == 500
    assert ev.acc == pytest.approx(metrics["test_acc"], abs=1e-12)
    assert ev.loss == pytest.approx(metrics["test_loss"], rel=1e-6)
    assert ev.class_accuracy() == pytest.approx(metrics["class_acc"])
    assert ev.confusion_matrix().tolist() == metrics["confusion"]
    assert ev.classes == metrics["dataset"]["classes"] and ev.model.training is False
    # the misclassified selection is the run's (same order rule and seed)
    assert len(ev.misclassified(count=5)) == 5
    assert all(ev.preds[i] != ev.labels[i] for i in ev.misclassified(count=5))

    model, info = resnet_cli.load_model(trained_run / "checkpoints" / "last.pt", device="cpu")
    assert isinstance(model, resnet_cli.CustomResNet) and "model" not in info and "optimizer" not in info
    # the same model on other test data: a smaller subset, composed from overrides
    small = resnet_cli.evaluate(model, ["data=image_folder", f"data.root={DATA_ROOT}", "data.train_subset=100",
                                        "data.test_subset=50"], device="cpu")
    assert small.n == 50 and 0.0 <= small.acc <= 1.0


@needs_data
def test_evaluate_run_result(api_run):
    ev = resnet_cli.evaluate(api_run)
    assert ev.acc == pytest.approx(api_run.metrics["test_acc"], abs=1e-12)
    assert ev.loss == pytest.approx(api_run.metrics["test_loss"], rel=1e-6)
    assert ev.model is api_run.model


def test_evaluate_rejects_foreign_checkpoints(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"model": {}}, bad)
    with pytest.raises(resnet_cli.CheckpointError):
        resnet_cli.evaluate(bad)
    with pytest.raises(resnet_cli.CheckpointError):
        resnet_cli.evaluate(tmp_path / "missing.pt")
