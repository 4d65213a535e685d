"""What the Hydra entry points (``resnet-train``, ``resnet-gradcam``, ``resnet-predict``,
``resnet-export``) share: ``--version``, the one question asked of Hydra's
runtime (:func:`hydra_job`) and the one failure path (the config tree:
:func:`resnet_cli.composition.config_dir`). Each entry point reads::

    @hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
    @task_wrapper
    def hydra_main(cfg: DictConfig, run_dir: Path, job: JobInfo) -> float | None:
        ...                            # the job; raises on failure

    def main() -> None:                # the console script
        run_hydra(hydra_main)

* :func:`run_hydra`: what Hydra and OmegaConf refuse before the job starts (wrong type, unknown
  key, missing option, unparsable override, unwritable output folder) becomes one line
  ``error: <message>`` and exit code 2 (:func:`resnet_cli.error_messages.composition_message`).
* :func:`task_wrapper` (lightning-hydra-template's ``task_wrapper`` plus the exit-code table of
  :mod:`resnet_cli.errors`): a :class:`~resnet_cli.errors.UserError`, Ctrl-C, CUDA out of memory
  or a full disk ends the job with one line and its exit code, recorded in ``metrics.json``; a
  bug is recorded and raised with its traceback. In a multirun sweep a failed job lets the sweep
  go on; :class:`resnet_cli.sweep.SweepSummary` reports the failures when it ends.

``HYDRA_FULL_ERROR=1`` shows Hydra's full report and the Python traceback instead.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

from .error_messages import composition_message, is_out_of_memory, out_of_memory_message
from .errors import (EXIT_BAD_INPUT, EXIT_BUG, EXIT_INTERRUPTED, OUTPUT_ERRNOS, STATUS, UserError, exit_with,
                     first_line, output_dir_message, write_failed_message)
from .job import JobInfo
from .run_dirs import discard_if_empty
from .run_status import record_status

log = logging.getLogger("resnet_cli")
failure_log = logging.getLogger("resnet_cli.failure")
"""Writes to the job's log file only (conf/hydra/job_logging/resnet_cli.yaml): the console has the
``error:`` line or Python's traceback already."""

T = TypeVar("T")


def package_version() -> str:
    """resnet-cli's installed version (``importlib.metadata``), else the source tree's
    ``resnet_cli.__version__`` (a checkout on ``PYTHONPATH`` without an install)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("resnet-cli")
    except PackageNotFoundError:
        from . import __version__

        return __version__


def print_version_if_asked(argv: list[str]) -> None:
    """``--version`` / ``-V`` anywhere before a ``--``: print ``<program> <resnet-cli version>``
    and exit 0 (Hydra's own flag would print Hydra's version)."""
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


_USER_FULL_ERROR = "RESNET_CLI_FULL_ERROR"
"""The user's own ``HYDRA_FULL_ERROR``, while :func:`run_hydra` sets that variable for Hydra."""


def full_error() -> bool:
    """True when the user asked for Hydra's full report and tracebacks (``HYDRA_FULL_ERROR=1``)."""
    return os.environ.get(_USER_FULL_ERROR, os.environ.get("HYDRA_FULL_ERROR")) == "1"


_raised_by_job: list[BaseException] = []
"""The bug a job raised (:func:`task_wrapper`): :func:`run_hydra` lets it through with its traceback."""


# -- before the job: composing the config -------------------------------------------------------

def run_hydra(entry: Callable[[], Any]) -> Any:
    """Run a ``@hydra.main``-decorated function (no arguments: Hydra reads ``sys.argv``),
    converting what fails before the job starts into one line and exit code 2.

    Converted: Hydra's :class:`~hydra.errors.HydraException` (composition, missing config
    option, override grammar) and OmegaConf errors (wrong type, unknown key, bad
    interpolation) raised while composing, an :class:`OSError` raised while Hydra creates the
    output folder or its log file, and Ctrl-C (exit 130). A bug a job raised keeps its traceback.
    With ``HYDRA_FULL_ERROR=1`` Hydra's full report and the traceback are shown.
    """
    from unittest import mock

    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    print_version_if_asked(sys.argv)
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
            if isinstance(ex, (HydraException, OmegaConfBaseException)):  # Hydra's MissingConfigException is an OSError too
                exit_with(composition_message(ex), EXIT_BAD_INPUT)
            exit_with(output_dir_message(ex), EXIT_BAD_INPUT)


# -- the job ------------------------------------------------------------------------------------

def task_wrapper(task: Callable[[Any, Path, JobInfo], T]) -> Callable[..., T | None]:
    """Decorate a Hydra task ``task(cfg, run_dir, job)`` with the entry points' failure path.

    The wrapped function takes ``(cfg, run_dir=None)``; Hydra calls it with ``cfg`` alone and
    ``run_dir`` is then the job's output folder (``hydra.runtime.output_dir``); ``job`` is
    :func:`hydra_job`. It returns what ``task`` returns, or None when the job failed and the sweep
    goes on. When ``task`` raises:

    * :class:`~resnet_cli.errors.UserError` (exit code of the error: 2 bad input, 3 diverged,
      130 interrupted), Ctrl-C/SIGTERM (130), CUDA out of memory (2, naming ``data.batch_size``),
      an :class:`OSError` of a full disk, a quota or a read-only file system (2, naming the file):
      the message goes to the job's log file and to ``metrics.json`` (``status`` ``failed`` or
      ``interrupted``, ``error``; a final status the run wrote itself is kept; a single run that
      exits 2 before writing any record leaves no run folder,
      :func:`resnet_cli.run_dirs.discard_if_empty`), then ``error: <message>`` is printed and the
      command exits with the code, no traceback. In a multirun sweep the job ends there and the
      sweep goes on (an interruption ends the sweep).
    * any other exception is a bug: ``metrics.json`` gets ``status: failed`` and
      ``error: "<Type>: <message>"`` and the exception propagates with its traceback (exit 1);
      the traceback also goes to the job's log file. In a multirun sweep the job ends there and
      the sweep goes on (traceback on the console and in the log).
    * ``HYDRA_FULL_ERROR=1``: everything propagates (the records are still written).

    Under torchrun only rank 0 (``RANK=0``) writes ``metrics.json``. There is nothing to close
    here: the engine closes its loggers (TensorBoard) and process group in its own ``finally``.
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
            exit_with(message, code)

    return wrapper


def _one_line(ex: BaseException, cfg: Any, run_dir: Path | None) -> tuple[str, int] | None:
    """The message and exit code of an ending the user can act on; None for a bug."""
    from omegaconf import OmegaConf

    if isinstance(ex, KeyboardInterrupt):
        return _interrupt_message(ex, run_dir), EXIT_INTERRUPTED
    if isinstance(ex, UserError):
        return str(ex), ex.exit_code
    if is_out_of_memory(ex):
        return out_of_memory_message(ex, OmegaConf.select(cfg, "data.batch_size")), EXIT_BAD_INPUT
    if isinstance(ex, OSError) and ex.errno in OUTPUT_ERRNOS:  # e.g. a plot written to a full disk
        return write_failed_message(ex), EXIT_BAD_INPUT
    return None


def _interrupt_message(ex: KeyboardInterrupt, run_dir: Path | None) -> str:
    signame = getattr(ex, "signame", None) or "SIGINT"
    from .checkpoint import last_checkpoint  # on interrupt only: torch stays out of the error path

    ckpt = last_checkpoint(run_dir) if run_dir is not None else None
    if ckpt is not None and ckpt.is_file():
        return (f"{signame}: stopped at once, without a new checkpoint; "
                f"continue from the last one with resnet-train resume={ckpt}")
    return f"{signame}: stopped before training started; nothing to resume, run the command again"
