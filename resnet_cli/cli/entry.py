"""What the Hydra entry points (``resnet-train``, ``resnet-gradcam``, ``resnet-predict``,
``resnet-export``) share: ``--version``, :func:`hydra_job` (the one question asked of Hydra's
runtime) and the failure path. Each entry point reads::

    @hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
    @task_wrapper
    def hydra_main(cfg: DictConfig, run_dir: Path, job: JobInfo) -> float | None:
        ...                            # the job; raises on failure

    def main() -> None:                # the console script
        run_hydra(hydra_main)

:func:`task_wrapper` is lightning-hydra-template's ``task_wrapper`` plus the exit-code table of
:mod:`resnet_cli.errors`. ``HYDRA_FULL_ERROR=1`` shows Hydra's full report and tracebacks instead.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

from .error_messages import composition_message, is_out_of_memory, out_of_memory_message
from ..errors import (EXIT_BAD_INPUT, EXIT_BUG, EXIT_INTERRUPTED, OUTPUT_ERRNOS, STATUS, UserError, exit_with,
                      first_line, output_dir_message, write_failed_message)
from .job import JobInfo
from .run_dirs import discard_if_empty
from .run_status import record_status

log = logging.getLogger("resnet_cli")
failure_log = logging.getLogger("resnet_cli.failure")  # the job's log file only (conf/hydra/job_logging/)

T = TypeVar("T")


def _installed(package: str) -> str | None:
    """The installed version of ``package``, or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def package_version() -> str:
    """resnet-cli's installed version, else the source tree's ``resnet_cli.__version__``."""
    from .. import __version__

    return _installed("resnet-cli") or __version__


def print_version_if_asked(argv: list[str]) -> None:
    """``--version``/``-V`` before any ``--``: print ``<program> (resnet-cli) <version>``, exit 0
    (Hydra's own flag would print Hydra's version)."""
    args = argv[1:argv.index("--")] if "--" in argv else argv[1:]
    if "--version" in args or "-V" in args:
        print(f"{Path(argv[0]).name} (resnet-cli) {package_version()}")
        sys.exit(0)


def hydra_job() -> JobInfo:
    """This job's place in its command, from Hydra's runtime (a single run outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return JobInfo()
    hydra = HydraConfig.get()
    return JobInfo(multirun=True, first=hydra.job.get("num", 0) in (0, None),
                   sweep_dir=str(Path(hydra.sweep.dir).resolve()))


def torch_install_message(reason: str) -> str:
    """One line for a torch and torchvision pair that does not work together: both installed versions,
    ``reason`` and the fix."""
    torch, torchvision = (_installed(p) or "(not installed)" for p in ("torch", "torchvision"))
    return (f"torch {torch} and torchvision {torchvision} do not work together ({reason}); "
            "install a matching pair from one index: pip install --force-reinstall torch torchvision "
            "--index-url https://download.pytorch.org/whl/cpu (or .../whl/cu126 for CUDA)")


def is_torchvision_import_error(ex: BaseException) -> bool:
    """True for the error a mismatched torchvision raises on import (``operator torchvision::nms does
    not exist``, an ImportError of torchvision or its C extension)."""
    if isinstance(ex, ImportError) and (ex.name or "").split(".")[0] == "torchvision":
        return True
    return isinstance(ex, (ImportError, RuntimeError, OSError)) and "torchvision::" in str(ex)


def check_torch_install() -> None:
    """Before anything else, and without importing either: torchvision's declared torch requirement
    (its package metadata) against the torch installed; a pair it does not allow exits 2 with
    :func:`torch_install_message`. A pair that passes this but fails to import is caught where
    torchvision is first imported (:func:`is_torchvision_import_error`, in :func:`task_wrapper`)."""
    from importlib.metadata import PackageNotFoundError, requires, version

    try:
        from packaging.requirements import Requirement
        from packaging.version import Version

        torch_version = Version(version("torch")).base_version  # a local build tag (+cpu, +cu126) aside
        wanted = [Requirement(line) for line in requires("torchvision") or []]
    except (PackageNotFoundError, ImportError, ValueError):  # not installed as packages, or no packaging
        return  # the import decides
    for req in wanted:
        if req.name == "torch" and req.marker is None and not req.specifier.contains(torch_version, prereleases=True):
            exit_with(torch_install_message(f"torchvision requires torch{req.specifier}"), EXIT_BAD_INPUT)


_USER_FULL_ERROR = "RESNET_CLI_FULL_ERROR"  # the user's HYDRA_FULL_ERROR, while run_hydra sets that for Hydra


def full_error() -> bool:
    """True when the user asked for Hydra's full report and tracebacks (``HYDRA_FULL_ERROR=1``)."""
    return os.environ.get(_USER_FULL_ERROR, os.environ.get("HYDRA_FULL_ERROR")) == "1"


_raised_by_job: list[BaseException] = []  # the bug a job raised: run_hydra lets it through with its traceback


def run_hydra(entry: Callable[[], Any]) -> Any:
    """Run a ``@hydra.main`` function (Hydra reads ``sys.argv``); what fails before the job starts
    becomes ``error: <message>``: Hydra's and OmegaConf's composition errors and an OSError creating
    the output folder (exit 2), Ctrl-C (exit 130). A bug a job raised keeps its traceback."""
    from unittest import mock

    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    print_version_if_asked(sys.argv)
    check_torch_install()
    user_full = full_error()
    # Hydra 1.3 raises what it refuses, instead of printing its report and exiting 1, only under
    # HYDRA_FULL_ERROR=1; the user's own choice goes to the jobs (worker processes inherit both).
    with mock.patch.dict(os.environ, {"HYDRA_FULL_ERROR": "1", _USER_FULL_ERROR: "1" if user_full else "0"}):
        try:
            return entry()
        except KeyboardInterrupt:
            if user_full:
                raise
            exit_with("interrupted", EXIT_INTERRUPTED)
        except (HydraException, OmegaConfBaseException, OSError) as ex:
            if user_full or ex in _raised_by_job:
                raise
            composing = isinstance(ex, (HydraException, OmegaConfBaseException))  # MissingConfigException: an OSError
            exit_with(composition_message(ex) if composing else output_dir_message(ex), EXIT_BAD_INPUT)


def task_wrapper(task: Callable[[Any, Path, JobInfo], T]) -> Callable[..., T | None]:
    """Decorate a Hydra task ``task(cfg, run_dir, job)``; the result takes ``(cfg, run_dir=None)``
    (default: ``hydra.runtime.output_dir``) and returns what ``task`` returns, or None for a failed
    job of a sweep (the sweep goes on; an interruption ends it).

    * UserError, Ctrl-C/SIGTERM, CUDA out of memory, an OSError of a full or read-only disk:
      ``error: <message>`` and the exit code, no traceback; ``metrics.json`` gets ``status`` and
      ``error`` (rank 0 only; a single run refused with exit 2 before any record leaves no folder).
    * anything else is a bug: recorded as ``"<Type>: <message>"``, raised with its traceback (exit 1).
    * ``HYDRA_FULL_ERROR=1``: everything propagates (the records are still written).
    """

    @functools.wraps(task)
    def wrapper(cfg: Any, run_dir: str | Path | None = None) -> T | None:
        from hydra.core.hydra_config import HydraConfig

        job = hydra_job()
        run_dir = Path(run_dir if run_dir is not None else HydraConfig.get().runtime.output_dir)
        records = run_dir if os.environ.get("RANK", "0") == "0" else None
        try:
            return task(cfg, run_dir, job)
        except (Exception, KeyboardInterrupt) as ex:
            ending = _one_line(ex, cfg, records)
            if ending is None:  # a bug
                record_status(records, "failed", f"{type(ex).__name__}: {first_line(ex)}", EXIT_BUG)
                if job.multirun and not full_error():  # Hydra would re-raise it after the batch, ending the sweep
                    log.exception("job failed: %s", f"{type(ex).__name__}: {ex}".strip())
                    return None
                failure_log.error("job failed", exc_info=ex)
                _raised_by_job[:] = [ex]
                raise
            message, code = ending
            failure_log.error("%s", message)
            # bad input found before any record was written leaves no run folder (an interrupted
            # set-up keeps its folder, with status interrupted)
            if job.multirun or code != EXIT_BAD_INPUT or not discard_if_empty(records):
                record_status(records, STATUS[code], message, code)
            if full_error():
                raise
            if job.multirun and code != EXIT_INTERRUPTED:
                print(f"error: {message}", file=sys.stderr)
                return None
            if job.multirun:  # Hydra skips on_multirun_end when a job ends the sweep: summarize what ran
                _summarize_stopped_sweep(job.sweep_dir)
            exit_with(message, code)

    return wrapper


def _summarize_stopped_sweep(sweep_dir: str | None) -> None:
    """The sweep summary of the jobs that ran, when the sweep's callbacks (``hydra.callbacks.sweep_summary``)
    ask for one; a failure to write it only warns."""
    from hydra.core.hydra_config import HydraConfig

    node = HydraConfig.get().callbacks.get("sweep_summary") if HydraConfig.initialized() else None
    if not sweep_dir or node is None:
        return
    from .sweep_report import summarize

    try:
        summarize(sweep_dir, str(node.get("name", "sweep_summary")), bool(node.get("plot", True)))
    except Exception as e:  # noqa: BLE001 - the interruption is what the user must hear about
        log.warning("could not write the sweep summary (%s); retry with: python -m resnet_cli.cli.sweep %s",
                    e, sweep_dir)


def _one_line(ex: BaseException, cfg: Any, run_dir: Path | None) -> tuple[str, int] | None:
    """The message and exit code of an ending the user can act on; None for a bug."""
    from omegaconf import OmegaConf

    if isinstance(ex, KeyboardInterrupt):
        from ..core.checkpoint import last_checkpoint  # on interrupt only: torch stays out of the error path

        signame = getattr(ex, "signame", None) or "SIGINT"
        ckpt = last_checkpoint(run_dir) if run_dir is not None else None
        if ckpt is not None and ckpt.is_file():
            return (f"{signame}: stopped at once, without a new checkpoint; "
                    f"continue from the last one with resnet-train resume={ckpt}"), EXIT_INTERRUPTED
        return (f"{signame}: stopped before training started; nothing to resume, run the command again",
                EXIT_INTERRUPTED)
    if isinstance(ex, UserError):
        return str(ex), ex.exit_code
    if is_torchvision_import_error(ex):
        return torch_install_message(f"import torchvision: {type(ex).__name__}: {first_line(ex)}"), EXIT_BAD_INPUT
    if is_out_of_memory(ex):
        return out_of_memory_message(ex, OmegaConf.select(cfg, "data.batch_size")), EXIT_BAD_INPUT
    if isinstance(ex, OSError) and ex.errno in OUTPUT_ERRNOS:  # e.g. a plot written to a full disk
        return write_failed_message(ex), EXIT_BAD_INPUT
    return None
