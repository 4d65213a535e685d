"""Shared fixtures: the offline CIFAR-10 copy, a CLI runner and one short real training run.

The real-data tests read ``../shared/data/cifar10-jpeg`` beside the project (override with
``RESNET_CLI_TEST_DATA``) and skip, saying why, only where that folder is absent. They read it
through a small copy made once a session (:data:`DATA_ROOT`: the first images of each class, as
many as the largest subset a test asks for), so that a run does not list 60,000 files to pick 1,000.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# the tests' own network, trusted in the stored config of the checkpoints they write (resume, gradcam)
os.environ.setdefault("RESNET_CLI_TRUSTED_TARGETS", "tinynets.TinyNet")
FULL_DATA_ROOT = Path(os.environ.get("RESNET_CLI_TEST_DATA", ROOT.parent / "shared" / "data" / "cifar10-jpeg"))
COPY_PER_CLASS = {"train": 120, "test": 60}
"""Images per class in the session's copy: above the largest subsets the tests ask for (TINY and
experiment=quick: 1,000 train / 500 test over 10 classes), so subsets are still seeded choices."""
_COPY_ENV = "RESNET_CLI_TEST_DATA_COPY"  # the session's copy, for the processes the tests start


def _session_copy(full: Path) -> Path:
    """The first :data:`COPY_PER_CLASS` images (by name) of each class of ``full``, copied once per
    test session into a temporary folder that goes when the session ends; ``full`` itself where it
    has no train/ folder (the tests that need it skip, naming it). Processes started by the tests
    (which import this module through tinynets) find the copy in the environment."""
    if os.environ.get(_COPY_ENV) and (Path(os.environ[_COPY_ENV]) / "train").is_dir():
        return Path(os.environ[_COPY_ENV])
    if not (full / "train").is_dir() or not (full / "test").is_dir():
        return full
    copy = Path(tempfile.mkdtemp(prefix="resnet-cli-test-data-")) / full.name
    atexit.register(shutil.rmtree, copy.parent, True)
    for split, n in COPY_PER_CLASS.items():
        for cls in sorted(d.name for d in os.scandir(full / split) if d.is_dir()):
            (copy / split / cls).mkdir(parents=True)
            for name in sorted(os.listdir(full / split / cls))[:n]:
                shutil.copyfile(full / split / cls / name, copy / split / cls / name)
    os.environ[_COPY_ENV] = str(copy)
    return copy


DATA_ROOT = _session_copy(FULL_DATA_ROOT)

needs_data = pytest.mark.skipif(
    not (DATA_ROOT / "train").is_dir(),
    reason=f"offline CIFAR-10 copy not found at {FULL_DATA_ROOT} (set RESNET_CLI_TEST_DATA)",
)

# A short but real run: experiment=quick (1,000 train / 500 test images, batch 50: 20 steps an epoch,
# 2 epochs, the default range test of the warm-up's 20 steps read by the steepest descent, 8 images
# explained) on the offline copy. About a minute on 2 CPU cores. The session's trained_run is this run,
# so it is also the check of the quick preset itself (test_lr_finder.py).
TINY = [
    "experiment=quick",
    "data=image_folder",
    f"data.root={DATA_ROOT}",
    "data.num_workers=0",
    "trainer.device=cpu",
]


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory) -> Path:
    """The user cache folder for the whole test session, in-process and in the CLI processes it starts:
    ``XDG_CACHE_HOME`` (which platformdirs, hence :func:`resnet_cli.data.cache.default_cache_dir`, honours) set
    to a temporary folder, so the tests never write into ``~/.cache/resnet-cli``."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CACHE_HOME", str(cache))
    yield cache
    patch.undo()


SLOW_FIXTURES = {"trained_run", "trained"}
"""Fixtures that train the custom ResNet on real images: tests using them are marked slow."""


def pytest_collection_modifyitems(config, items):
    """Mark every test that uses a real training run as ``slow`` (``-m "not slow"`` skips them);
    tests that start their own runs carry ``@pytest.mark.slow`` themselves."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def script(name: str) -> str:
    """Path of an installed console script (next to the running interpreter, else on PATH)."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"console script {name} is not installed; run pip install -e '.[test]'")
    return found


def run_cli(name: str, args: list[str], cwd: Path, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """Run an installed console script (``resnet-train``, ``resnet-gradcam``) and capture output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg", **kw.pop("env", {})}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([script(name), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, **kw)


_COMMANDS = {"resnet-train": "resnet_cli.cli.train", "resnet-gradcam": "resnet_cli.cli.gradcam",
             "resnet-predict": "resnet_cli.cli.predict", "resnet-export": "resnet_cli.cli.export"}
_START_FILTERS = list(warnings.filters)  # the interpreter's warning filters, before pytest adds its own


def call_cli(name: str, args: list[str], cwd: Path, timeout: float | None = None,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a console script's ``main()`` in this process, as :func:`run_cli` runs it in a new one:
    ``sys.argv``, the working folder and ``env`` set for the call, ``SystemExit`` read as the exit
    code, a raised exception printed with its traceback as exit 1, warnings shown on stderr with the
    interpreter's default filters; stdout and stderr captured (no interpreter start, no re-import).

    ``timeout`` is accepted for :func:`run_cli`'s signature and ignored. What needs a process of
    its own (signals, resource limits, import-time budgets, concurrent runs) keeps :func:`run_cli`.
    """
    import contextlib
    import importlib
    import io
    import logging
    import time
    import traceback
    from unittest import mock

    from hydra.core.global_hydra import GlobalHydra

    from resnet_cli.cli import run_dirs

    module = importlib.import_module(_COMMANDS[name])
    out, err = io.StringIO(), io.StringIO()
    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values()
                                      if isinstance(lg, logging.Logger))]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate, lg.disabled) for lg in loggers]
    environ = {"PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg", **(env or {})}
    argv, old_cwd = [name, *map(str, args)], os.getcwd()
    code = 0
    GlobalHydra.instance().clear()
    run_dirs._owned, run_dirs._new_parents[:] = None, []  # a new process has claimed no run folder
    if hasattr(module, "STARTED"):
        module.STARTED = time.perf_counter()  # the command's clock starts with the call
    try:
        with mock.patch.dict(os.environ, environ), mock.patch.object(sys, "argv", argv), \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.filters[:] = _START_FILTERS
            if "HYDRA_FULL_ERROR" not in (env or {}):
                os.environ.pop("HYDRA_FULL_ERROR", None)
            os.chdir(cwd)
            try:
                module.main()
            except SystemExit as ex:
                code = ex.code if isinstance(ex.code, int) else (0 if ex.code is None else 1)
                if ex.code is not None and not isinstance(ex.code, int):
                    print(ex.code, file=sys.stderr)
            except Exception:  # a bug: the interpreter would print its traceback and exit 1
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(old_cwd)
        GlobalHydra.instance().clear()
        for lg, handlers, level, propagate, disabled in saved:  # Hydra's job logging configured them
            for h in lg.handlers:
                if h not in handlers:
                    h.close()
            lg.handlers[:], lg.level, lg.propagate, lg.disabled = handlers, level, propagate, disabled
        known = {id(lg) for lg, *_ in saved}
        for lg in logging.Logger.manager.loggerDict.values():  # loggers the call created
            if isinstance(lg, logging.Logger) and id(lg) not in known:
                for h in lg.handlers:
                    h.close()
                lg.handlers[:] = []
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """Assert the exit code, exactly one short ``error:`` line holding every needle, no traceback
    and no Hydra report; return the line."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == code, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert "HYDRA_FULL_ERROR" not in out and "full_key:" not in out, out[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    line = errors[0]
    assert len(line) < 400, line
    for needle in needles:
        assert needle in line, line
    return line


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """Run folder of one real ``resnet-train`` run on the offline copy (TINY settings)."""
    if not (DATA_ROOT / "train").is_dir():
        pytest.skip(f"offline CIFAR-10 copy not found at {DATA_ROOT}")
    work = tmp_path_factory.mktemp("trained")
    run_dir = work / "run"
    proc = run_cli("resnet-train", [*TINY, f"hydra.run.dir={run_dir}"], cwd=work)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"
    return run_dir


@pytest.fixture(scope="session")
def run_checkpoint(tmp_path_factory) -> Path:
    """One complete but untrained ``checkpoints/last.pt`` (tests/checkpoints.py), written once a
    session and shared, read-only, by the resnet-predict, resnet-export and resnet-gradcam tests
    that only read a checkpoint."""
    from checkpoints import untrained_checkpoint

    return untrained_checkpoint(tmp_path_factory.mktemp("run_checkpoint") / "checkpoints" / "last.pt")


def data_config(node, **changes):
    """A :class:`resnet_cli.data.DataConfig` from a ``data`` node (a composed DictConfig or a plain dict;
    keys it lacks take conf/'s defaults, as a stored config's do), with ``changes``."""
    import dataclasses

    from omegaconf import DictConfig, OmegaConf

    from resnet_cli.core.config_tree import migrate_config
    from resnet_cli.data import DataConfig

    plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    return dataclasses.replace(DataConfig.from_dict(migrate_config({"data": plain})["data"]), **changes)


def load_data(node, seed: int):
    """:func:`resnet_cli.data.load_data` of a ``data`` node (see :func:`data_config`)."""
    from resnet_cli.data import load_data as load

    return load(data_config(node), seed)
