"""Multirun sweeps: the summary callback, failing jobs, launchers, the Optuna search config,
and composition of every new config (logger, hparams_search, hydra/launcher)."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from PIL import Image

from conftest import call_cli, needs_data, one_line_error
from resnet_cli.cli import entry, sweep, sweep_report, sweep_results
from resnet_cli.cli.composition import config_dir
from resnet_cli.cli.schema import register_configs
from resnet_cli.cli.job import JobInfo
from tinynets import tiny, tiny_env


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# -- composition -------------------------------------------------------------------------------

@pytest.fixture
def composer():
    register_configs()

    def _compose(*overrides: str):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir(), version_base="1.3"):
            return compose("train", overrides=list(overrides), return_hydra_config=True)

    return _compose


def test_defaults_have_no_logger_no_search_and_the_summary_callback(composer):
    cfg = composer()
    assert cfg.logger is None
    assert cfg.hydra.sweeper._target_.endswith("BasicSweeper")
    assert cfg.hydra.launcher._target_.endswith("BasicLauncher")
    assert isinstance(instantiate(cfg.hydra.callbacks.sweep_summary), sweep.SweepSummary)


def test_logger_tensorboard_composes_and_is_checked(composer, tmp_path):
    import resnet_cli
    from resnet_cli.errors import ConfigError

    cfg = composer("logger=tensorboard", "logger.tensorboard.flush_secs=5")
    t = cfg.logger.tensorboard
    assert (t._target_, t.log_dir, t.flush_secs, t.images) == ("resnet_cli.tracking.TensorBoardLogger", "tensorboard", 5, True)
    base = ["data=image_folder", f"data.root={tmp_path}", "logger=tensorboard"]
    with pytest.raises(ConfigError, match="logger.tensorboard.flush_secs='often'"):
        resnet_cli.compose([*base, "logger.tensorboard.flush_secs=often"])  # an integer option
    with pytest.raises(ConfigError, match="logger.tensorboard.no_such_key"):
        resnet_cli.compose([*base, "+logger.tensorboard.no_such_key=1"])  # not an argument of the class


def test_optuna_search_composes(composer):
    cfg = composer("hparams_search=max_lr_optuna")
    s = cfg.hydra.sweeper
    assert s._target_ == "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert str(s.direction) == "maximize" and str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert s.sampler._target_ == "optuna.samplers.TPESampler"
    assert s.params["scheduler.max_lr"].startswith("tag(log, interval(")
    assert s.params["optimizer.weight_decay"].startswith("tag(log, interval(")
    # every trial is valid: min_lr is fixed at or below the lower end of the max_lr range
    low = float(s.params["scheduler.max_lr"].split("interval(")[1].split(",")[0])
    assert float(cfg.scheduler.min_lr) <= low


@pytest.mark.parametrize("launcher, target, checks", [
    ("joblib", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", {}),
    ("local_parallel", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", {"n_jobs": 2}),
    ("submitit_local", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher", {}),
    ("submitit_slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher", {}),
    ("slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
     {"gpus_per_node": 1, "tasks_per_node": 1, "timeout_min": 120}),
])
def test_launcher_configs_compose(composer, launcher, target, checks):
    cfg = composer(f"hydra/launcher={launcher}")
    assert cfg.hydra.launcher._target_ == target
    for key, value in checks.items():
        assert cfg.hydra.launcher[key] == value


# -- the summary, from job folders -------------------------------------------------------------

def _job(sweep_dir: Path, num: int, overrides: list[str], metrics: dict | None) -> None:
    d = sweep_dir / str(num)
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if metrics is not None:
        (d / "metrics.json").write_text(json.dumps(metrics))


def _done(acc: float, max_lr: float) -> dict:
    return {"status": "completed", "test_acc": acc, "train_acc": acc + 0.1, "test_loss": 1.0, "max_lr": max_lr,
            "min_lr": 0.005, "epochs_done": 2, "train_seconds": 3.5}


def test_summary_rows_groups_and_files(tmp_path, capsys):
    s = tmp_path / "sweep"
    common = ["data.root=/data"]
    accs = {(0.02, 0): 0.50, (0.02, 1): 0.54, (0.1, 0): 0.60, (0.1, 1): 0.64}
    n = 0
    for (lr, seed), acc in accs.items():
        _job(s, n, [*common, f"scheduler.max_lr={lr}", f"seed={seed}"], _done(acc, lr))
        n += 1
    _job(s, n, [*common, "scheduler.max_lr=0.5", "seed=0"],
         {"status": "diverged", "epochs_done": 1, "diverged_at": {"epoch": 1, "step": 3}})
    _job(s, n + 1, [*common, "scheduler.max_lr=0.5", "seed=1"],
         {"status": "failed", "error": "RuntimeError: boom", "exit_code": 1, "epochs_done": 1})
    _job(s, n + 2, [*common, "scheduler.max_lr=1.0", "seed=0"], None)  # killed before writing anything
    _job(s, n + 3, [*common, "scheduler.max_lr=1.0", "seed=1"], {"status": "running", "epochs_done": 1})

    result = sweep_report.summarize(s)
    assert result.swept == ["scheduler.max_lr", "seed"]  # data.root is the same everywhere
    rows = read_csv(s / "sweep_summary.csv")
    assert [r["job"] for r in rows] == [str(i) for i in range(8)]
    assert list(rows[0]) == ["job", "overrides", "scheduler.max_lr", "seed", *sweep_results.COLUMNS]
    assert rows[0]["overrides"] == "scheduler.max_lr=0.02 seed=0"
    assert [float(r["test_acc"]) for r in rows[:4]] == list(accs.values())
    assert [r["status"] for r in rows] == ["completed"] * 4 + ["diverged", "failed", "failed", "failed"]
    assert rows[4]["error"] == "loss became non-finite at epoch 1 step 3"
    assert rows[5]["error"] == "RuntimeError: boom"
    assert rows[6]["error"].startswith("no metrics.json") and rows[6]["test_acc"] == ""
    assert "no final status (killed?)" in rows[7]["error"]

    groups = {g["setting"]: g for g in sweep_results.group_over_seeds(result.rows, result.swept)}
    g = groups["scheduler.max_lr=0.1"]
    assert (g["jobs"], g["completed"]) == (2, 2)
    assert g["mean"] == pytest.approx(0.62) and g["std"] == pytest.approx(statistics.stdev([0.60, 0.64]))
    assert groups["scheduler.max_lr=1.0"]["completed"] == 0 and groups["scheduler.max_lr=1.0"]["mean"] is None

    md = (s / "sweep_summary.md").read_text()
    assert "| 2 | scheduler.max_lr=0.1 seed=0 |" in md
    assert "| scheduler.max_lr=0.1 | 2 | 2 | 62.00% | 2.83% | 60.00% | 64.00% |" in md
    with Image.open(s / "sweep_summary.png") as im:
        assert im.size[0] > 300 and im.size[1] > 200
    out = capsys.readouterr().out
    assert "4/8 jobs completed" in out and "RuntimeError: boom" in out


def test_summary_plot_keys():
    rows = [{"job": str(i), "status": "completed", "test_acc": 0.5, "a": a, "seed": s, "m": "x"}
            for i, (a, s) in enumerate([(1, 0), (2, 1)])]
    assert sweep_results.numeric_keys(rows, ["m", "seed", "a"]) == ["a", "seed"]
    fig = sweep_report.plot_summary(rows, ["a", "seed", "m"])
    assert [ax.get_xlabel() for ax in fig.axes] == ["a"]
    fig = sweep_report.plot_summary(rows, ["seed"])  # seed alone is plotted
    assert [ax.get_xlabel() for ax in fig.axes] == ["seed"]
    lr_rows = [{**r, "scheduler.max_lr": lr} for r, lr in zip(rows, (0.05, 0.2))]  # a 4x span, still log
    fig = sweep_report.plot_summary(lr_rows, ["scheduler.max_lr"])
    assert fig.axes[0].get_xscale() == "log"


def test_summary_cli(tmp_path):
    s = tmp_path / "sweep"
    _job(s, 0, ["seed=0"], _done(0.5, 0.1))
    assert sweep.main([str(s), "--no-plot"]) == 0
    assert (s / "sweep_summary.csv").is_file() and not (s / "sweep_summary.png").exists()
    assert sweep.main([str(tmp_path / "missing")]) == 2


# -- failures inside a job ---------------------------------------------------------------------

def test_a_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr(entry, "hydra_job", lambda: JobInfo(multirun=True))
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "running", "epochs_done": 1, "test_acc": 0.3}))

    @entry.task_wrapper
    def job(cfg, run_dir, job_info):
        raise cfg  # here cfg is the exception the job raises

    assert job(ValueError("bad thing"), tmp_path) is None  # recorded, and the sweep goes on
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["status"] == "failed" and m["error"] == "ValueError: bad thing" and m["epochs_done"] == 1

    monkeypatch.setattr(entry, "hydra_job", lambda: JobInfo())  # a single run: the exception propagates
    with pytest.raises(ValueError):
        job(ValueError("again"), tmp_path)
    monkeypatch.setattr(entry, "hydra_job", lambda: JobInfo(multirun=True))
    with pytest.raises(SystemExit) as info:  # an interruption is never swallowed: it ends the sweep
        job(KeyboardInterrupt(), tmp_path)
    assert info.value.code == 130


def test_the_sweep_exit_code_is_read_back_from_the_jobs(tmp_path, capsys):
    s = tmp_path / "sweep"
    _job(s, 0, ["seed=0"], _done(0.5, 0.1))
    sweep.exit_on_failed_jobs(s)  # every job completed: no exit
    _job(s, 1, ["seed=1"], {"status": "failed", "error": "data.root=/x: no such folder", "exit_code": 2,
                                 "epochs_done": 0})
    _job(s, 2, ["seed=2"], {"status": "failed", "error": "RuntimeError: boom", "exit_code": 1, "epochs_done": 1})
    _job(s, 3, ["seed=3"], {"status": "diverged", "epochs_done": 1})
    _job(s, 4, ["seed=4"], None)  # killed
    with pytest.raises(SystemExit) as info:
        sweep.exit_on_failed_jobs(s)
    assert info.value.code == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: 4 of 5 sweep jobs failed (exit codes 1, 2, 3): see metrics.json in ")
    assert err[0].endswith(" ...") and str((s / "1").resolve()) in err[0]


# -- real sweeps -------------------------------------------------------------------------------

def _check_summary(sweep_dir: Path, n: int) -> list[dict[str, str]]:
    for ext in ("csv", "md", "png"):
        assert (sweep_dir / f"sweep_summary.{ext}").is_file(), f"sweep_summary.{ext} missing in {sweep_dir}"
    rows = read_csv(sweep_dir / "sweep_summary.csv")
    assert len(rows) == n
    for r in rows:
        m = json.loads((sweep_dir / r["job"] / "metrics.json").read_text())
        if r["status"] == "completed":
            assert float(r["test_acc"]) == pytest.approx(m["test_acc"])
            assert float(r["train_acc"]) == pytest.approx(m["train_acc"])
            assert float(r["max_lr"]) == pytest.approx(m["max_lr"])
            assert float(r["train_seconds"]) == pytest.approx(m["train_seconds"])
    return rows


def test_sweep_jobs_are_listed_as_hydra_runs_them():
    jobs = sweep.sweep_job_overrides(["-m", "seed=0,1", "model=custom_resnet", "scheduler.max_lr=0.1,0.2"])
    assert jobs == [["seed=0", "model=custom_resnet", "scheduler.max_lr=0.1"],
                    ["seed=0", "model=custom_resnet", "scheduler.max_lr=0.2"],
                    ["seed=1", "model=custom_resnet", "scheduler.max_lr=0.1"],
                    ["seed=1", "model=custom_resnet", "scheduler.max_lr=0.2"]]
    assert sweep.sweep_job_overrides(["scheduler.max_lr=interval(0.01,1)"]) is None  # a sweeper's range
    assert sweep.sweep_job_overrides(["hparams_search=max_lr_optuna"]) is None


def test_a_bad_job_fails_the_sweep_before_any_job_trains(tmp_path):
    s = tmp_path / "sweep"
    proc = call_cli("resnet-train", ["-m", "scheduler.max_lr=0.005,-1", "scheduler.min_lr=0.0001", "trainer.device=cpu",
                                    f"hydra.sweep.dir={s}"], cwd=tmp_path, timeout=300)
    one_line_error(proc, 2, "sweep job 1 (scheduler.max_lr=-1)", "must be a finite number > 0", "no job was started")
    assert not s.exists()  # nothing ran, not even job 0


@pytest.mark.slow
@needs_data
def test_joblib_sweep_writes_the_summary(tmp_path):
    """Two real jobs in parallel (hydra-joblib-launcher, loky processes); TinyNet, as the other sweeps:
    what is checked is the launcher and the summary, not the network."""
    s = tmp_path / "sweep"
    proc = call_cli("resnet-train", ["-m", *tiny(lrs=False), "model._target_=tinynets.TinyNet",
                                    "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                                    "scheduler.max_lr=0.02,0.05", "scheduler.min_lr=0.005", f"hydra.sweep.dir={s}"],
                   cwd=tmp_path, env=tiny_env(), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = _check_summary(s, 2)
    assert [r["scheduler.max_lr"] for r in rows] == ["0.02", "0.05"]
    assert [r["status"] for r in rows] == ["completed", "completed"]
    assert [float(r["max_lr"]) for r in rows] == [0.02, 0.05]
    assert "2/2 jobs completed" in proc.stdout
    assert "Joblib.Parallel" in proc.stdout + proc.stderr


@pytest.mark.slow
@needs_data
@pytest.mark.parametrize("launcher", ["basic", "submitit_local"])
def test_a_failing_job_does_not_stop_the_sweep(tmp_path, launcher):
    """Job 0 raises an unexpected RuntimeError in epoch 2; job 1 still runs; both are rows."""
    s = tmp_path / "sweep"
    extra = [] if launcher == "basic" else ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"]
    proc = call_cli("resnet-train", ["-m", *tiny(), "model._target_=tinynets.TinyNet", *extra,
                                    "+model.crash_after=5,null", f"hydra.sweep.dir={s}"],
                   cwd=tmp_path, env=tiny_env(), timeout=900)
    assert (s / "sweep_summary.csv").is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 1, proc.stderr[-3000:]  # the sweep ran to the end, then reports the failure
    rows = _check_summary(s, 2)
    assert [r["model.crash_after"] for r in rows] == ["5", ""]
    assert rows[0]["status"] == "failed"
    assert rows[0]["error"].startswith("RuntimeError: simulated crash in training step 6"), rows[0]
    assert rows[0]["epochs_done"] == "1"  # what the job recorded before it failed is kept
    assert rows[1]["status"] == "completed" and 0 <= float(rows[1]["test_acc"]) <= 1
    # a finished job's own record says completed, with no error, and keeps its checkpoint
    # (was test_robustness.py's test_every_finished_run_of_a_sweep_is_completed)
    m = json.loads((s / "1" / "metrics.json").read_text())
    assert m["status"] == "completed" and m["epochs_done"] == 2 and "error" not in m, m
    assert (s / "1" / "checkpoints" / "last.pt").is_file()
    assert "1/2 jobs completed" in proc.stdout
    assert "simulated crash" in (s / "0" / "train.log").read_text()  # the traceback is in the job's log


@pytest.mark.slow
@needs_data
def test_optuna_search_runs_trials_and_records_the_best(tmp_path):
    s = tmp_path / "sweep"
    proc = call_cli("resnet-train", ["hparams_search=max_lr_optuna", "hydra.sweeper.n_trials=2", *tiny(lrs=False),
                                    "model._target_=tinynets.TinyNet", f"hydra.sweep.dir={s}"],
                   cwd=tmp_path, env=tiny_env(), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = _check_summary(s, 2)
    assert all(r["status"] == "completed" for r in rows)
    for r in rows:  # each trial trained with the LR and weight decay Optuna chose for it
        assert 0.04 <= float(r["scheduler.max_lr"]) <= 1.0 and float(r["max_lr"]) == float(r["scheduler.max_lr"])
        assert 5e-5 <= float(r["optimizer.weight_decay"]) <= 5e-3
    best = yaml.safe_load((s / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"scheduler.max_lr", "optimizer.weight_decay"}
    assert best["best_value"] == pytest.approx(max(float(r["test_acc"]) for r in rows))
    assert "## Optuna" in (s / "sweep_summary.md").read_text()


def test_a_completed_job_that_did_not_learn_says_so_everywhere(tmp_path, capsys):
    """Issue 21: the run's health check (exploded test loss, chance accuracy) reaches the csv
    (health column, warnings in error), the md and console status and the png."""
    s = tmp_path / "sweep"
    classes = [f"c{i}" for i in range(10)]
    good = {**_done(0.33, 0.004), "dataset": {"classes": classes},
            "history": [{"epoch": 1, "test_loss": 2.1, "test_acc": 0.25}, {"epoch": 2, "test_loss": 1.9, "test_acc": 0.33}]}
    bad = {**_done(0.10, 0.02), "dataset": {"classes": classes},
           "history": [{"epoch": 1, "test_loss": 242.0, "test_acc": 0.10}, {"epoch": 2, "test_loss": 30.0, "test_acc": 0.10}]}
    _job(s, 0, ["scheduler.max_lr=0.004"], good)
    _job(s, 1, ["scheduler.max_lr=0.02"], bad)
    result = sweep_report.summarize(s)
    rows = read_csv(s / "sweep_summary.csv")
    assert [(r["status"], r["health"]) for r in rows] == [("completed", "learned"), ("completed", "did not learn")]
    assert rows[0]["error"] == ""
    assert "test loss reached 242 at epoch 1" in rows[1]["error"] and "at chance" in rows[1]["error"]
    assert [r["job"] for r in result.not_learned] == ["1"] and not result.failed
    md = (s / "sweep_summary.md").read_text()
    assert "2 completed (1 did not learn)" in md
    assert "| completed (did not learn) | test loss reached 242" in md
    assert "| completed | - |" in md  # the job that learned: plain status, no error
    out = capsys.readouterr().out
    assert "completed (did not learn)" in out and "2/2 jobs completed (1 did not learn)" in out
    fig = sweep_report.plot_summary(result.rows, result.swept)
    labels = [t.get_text() for ax in fig.axes for t in (ax.get_legend().get_texts() if ax.get_legend() else [])]
    assert "did not learn (1)" in labels
    sweep.exit_on_failed_jobs(s)  # it completed: the sweep still exits 0 (the summary says it did not learn)


def test_a_launcher_that_is_not_installed_names_the_sweep_extra():
    """Without hydra-joblib-launcher, Hydra cannot find hydra/launcher/joblib: the line says which extra has it."""
    from hydra.errors import MissingConfigException

    from resnet_cli.cli.error_messages import composition_message

    ex = MissingConfigException("Could not find 'hydra/launcher/joblib'", missing_cfg_file="hydra/launcher/joblib",
                                options=["basic", "local_parallel"])
    assert composition_message(ex, []) == (
        'hydra/launcher=joblib is not allowed: no such option; choose one of basic, local_parallel; '
        "joblib comes with the sweep extra: pip install 'resnet-cli[sweep]'")
    data = MissingConfigException("Could not find 'data/foo'", missing_cfg_file="data/foo", options=["cifar10"])
    assert composition_message(data, []) == "data=foo is not allowed: no such option; choose one of cifar10"
