"""The one failure path of the Hydra entry points (``resnet-train``, ``resnet-gradcam``).

Every entry point follows the same pattern (lightning-hydra-template's ``task_wrapper``)::

    @hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
    @task_wrapper
    def hydra_main(cfg: DictConfig, run_dir: Path) -> float | None:
        ...                            # the job; raises on failure

    def main() -> None:                # the console script
        run_hydra(hydra_main)

* :func:`run_hydra` answers ``--version`` with resnet-cli's version, and turns what Hydra and OmegaConf reject before the job starts (wrong type,
  unknown key, missing option, unparsable override, unwritable output folder) into one line
  ``error: <message>`` and exit code 2 (:func:`resnet_cli.error_messages.composition_message`).
* :func:`task_wrapper` ends a job on a :class:`~resnet_cli.errors.UserError`, Ctrl-C, CUDA out
  of memory or a bug, records the outcome in the run folder's ``metrics.json``
  (:func:`resnet_cli.run_status.record_status`) and exits with the code of
  :mod:`resnet_cli.errors`' table; in a multirun sweep a failed job lets the sweep go on, and
  :class:`resnet_cli.sweep.SweepSummary` reports the failures, read back from the jobs'
  folders, when the sweep ends.

``HYDRA_FULL_ERROR=1`` shows Hydra's full report and the Python traceback instead.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from .errors import EXIT_BAD_INPUT, EXIT_BUG, EXIT_INTERRUPTED, STATUS, UserError, exit_with  # noqa: F401 (exit_with: used by the entry points)
from .error_messages import (OUTPUT_ERRNOS, composition_message, first_line, is_out_of_memory, out_of_memory_message,
                             output_dir_message, write_failed_message)
from .run_dirs import discard_if_empty
from .run_status import record_status

log = logging.getLogger("resnet_cli")

T = TypeVar("T")


def config_dir() -> str:
    """Absolute path of the YAML config tree.

    A built wheel ships it inside the package (``resnet_cli/conf``, mapped from the top-level
    ``conf/`` by pyproject.toml); an editable install or a source checkout reads ``conf/``
    beside the package.
    """
    packaged = Path(str(resources.files("resnet_cli"))) / "conf"
    if (packaged / "train.yaml").is_file():
        return str(packaged)
    source = Path(__file__).resolve().parent.parent / "conf"
    if (source / "train.yaml").is_file():
        return str(source)
    raise RuntimeError(f"resnet-cli config tree not found in {packaged} or {source}; reinstall the package")


# -- where we are -----------------------------------------------------------------------------

def is_multirun() -> bool:
    """True inside a job of a Hydra multirun sweep (``-m``, or a sweeper such as Optuna)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def is_first_job() -> bool:
    """False only in the second and later jobs of a multirun sweep (a single run, the Python
    API and job 0 are first): what is shown once per command is shown there."""
    if not is_multirun():
        return True
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().job.get("num", 0) in (0, None)


def sweep_group() -> str | None:
    """The sweep folder (``hydra.sweep.dir``, absolute) inside a multirun job, else None: the
    group under which experiment trackers file the sweep's jobs (resnet_cli/loggers/)."""
    if not is_multirun():
        return None
    from hydra.core.hydra_config import HydraConfig

    return str(Path(HydraConfig.get().sweep.dir).resolve())


_SET_BY_CLI = "RESNET_CLI_SET_HYDRA_FULL_ERROR"
"""Marks a ``HYDRA_FULL_ERROR=1`` that :func:`run_hydra` set, not the user (see :func:`full_error`)."""


def full_error() -> bool:
    """True when the user asked for Hydra's full report and tracebacks (``HYDRA_FULL_ERROR=1``).

    :func:`run_hydra` sets ``HYDRA_FULL_ERROR=1`` itself while Hydra runs, because only then does
    Hydra raise its errors instead of printing a report and exiting 1; it marks that setting
    with ``RESNET_CLI_SET_HYDRA_FULL_ERROR=1``, which sweep jobs in a launcher's worker
    processes (joblib, submitit) inherit too.
    """
    return os.environ.get("HYDRA_FULL_ERROR") == "1" and os.environ.get(_SET_BY_CLI) != "1"


@contextmanager
def _hydra_raises() -> Iterator[bool]:
    """While Hydra runs, make it raise (``HYDRA_FULL_ERROR=1``, marked as ours); yield the
    user's :func:`full_error`; put the environment back afterwards."""
    user_full = full_error()
    saved = {k: os.environ.get(k) for k in ("HYDRA_FULL_ERROR", _SET_BY_CLI)}
    if not user_full:
        os.environ.update({"HYDRA_FULL_ERROR": "1", _SET_BY_CLI: "1"})
    try:
        yield user_full
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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


# -- before the job: composing the config -------------------------------------------------------

def run_hydra(entry: Callable[[], Any]) -> Any:
    """Run a ``@hydra.main``-decorated function (no arguments: Hydra reads ``sys.argv``),
    converting what fails before the job starts into one line and exit code 2.

    Converted: Hydra's :class:`~hydra.errors.HydraException` (composition, missing config
    option, override grammar) and OmegaConf errors (wrong type, unknown key, bad
    interpolation) raised while composing, an :class:`OSError` raised while Hydra creates the
    output folder or its log file, and Ctrl-C (exit 130). What the job raises is left to
    :func:`task_wrapper`; an exception of those types coming out of the job is a bug and keeps
    its traceback. With ``HYDRA_FULL_ERROR=1`` Hydra's full report and the traceback are shown.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    print_version_if_asked(sys.argv)
    with _hydra_raises() as user_full:
        try:
            return entry()
        except KeyboardInterrupt:
            if user_full:
                raise
            exit_with("interrupted", EXIT_INTERRUPTED)
        except (HydraException, OmegaConfBaseException, OSError) as ex:
            if user_full or _from_job(ex):
                raise
            if isinstance(ex, (HydraException, OmegaConfBaseException)):
                exit_with(composition_message(ex), EXIT_BAD_INPUT)
            exit_with(output_dir_message(ex), EXIT_BAD_INPUT)


# -- the job ------------------------------------------------------------------------------------

def task_wrapper(task: Callable[[Any, Path], T]) -> Callable[..., T | None]:
    """Decorate a Hydra task ``task(cfg, run_dir)`` with the entry points' failure path.

    The wrapped function takes ``(cfg, run_dir=None)``; Hydra calls it with ``cfg`` alone and
    ``run_dir`` is then the job's output folder (``hydra.runtime.output_dir``). It returns what
    ``task`` returns, or None when the job failed and the sweep goes on. When ``task`` raises:

    * :class:`~resnet_cli.errors.UserError` (exit code of the error: 2 bad input, 3 diverged,
      130 interrupted), Ctrl-C/SIGTERM (130), CUDA out of memory (2, naming ``data.batch_size``):
      the message goes to the job's log file and to ``metrics.json`` (``status`` ``failed`` or
      ``interrupted``, ``error``; a final status the run wrote itself is kept; a single run that
      exits 2 before writing any record leaves no run folder, :func:`resnet_cli.run_dirs.discard_if_empty`), then
      ``error: <message>`` is printed and the command exits with the code, no traceback.
      In a multirun sweep the job ends there and the sweep goes on (an interruption ends the
      sweep).
    * an :class:`OSError` of a full disk, a quota or a read-only file system: one line naming the
      file (exit 2), like a UserError.
    * any other exception is a bug: ``metrics.json`` gets ``status: failed`` and
      ``error: "<Type>: <message>"`` and the exception propagates with its traceback (exit 1);
      the traceback also goes to the job's log file. In a multirun sweep the job ends there and
      the sweep goes on (traceback on the console and in the log). (Hydra 1.3
      records a raising job as failed, but its sweeper re-raises after the batch, which would
      end the sweep before ``on_multirun_end``.)
    * ``HYDRA_FULL_ERROR=1``: everything propagates (the records are still written).

    Under torchrun only rank 0 (``RANK=0``) writes ``metrics.json``. There is nothing to close
    here: the engine closes its loggers (TensorBoard) and process group in its own ``finally``.
    """

    @functools.wraps(task)
    def wrapper(cfg: Any, run_dir: str | Path | None = None) -> T | None:
        if run_dir is None:
            from hydra.core.hydra_config import HydraConfig

            run_dir = HydraConfig.get().runtime.output_dir
        return _call_task(task, cfg, Path(run_dir))

    return wrapper


def _call_task(task: Callable[[Any, Path], T], cfg: Any, run_dir: Path) -> T | None:
    try:
        return task(cfg, run_dir)
    except BaseException as ex:  # noqa: BLE001 - sorted out in _end_job
        _end_job(ex, run_dir if os.environ.get("RANK", "0") == "0" else None, cfg)
        return None


def _from_job(ex: BaseException) -> bool:
    """True if ``ex`` came out of a job (its traceback passes through :func:`_call_task`)."""
    tb = ex.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is _call_task.__code__:
            return True
        tb = tb.tb_next
    return False


def _end_job(ex: BaseException, files: Path | None, cfg: Any) -> None:
    """Record ``ex`` in ``files/metrics.json`` and end the job as :func:`task_wrapper` says;
    returns only where a sweep goes on."""
    if isinstance(ex, KeyboardInterrupt):
        message, code = _interrupt_message(ex, files), EXIT_INTERRUPTED
    elif isinstance(ex, UserError):
        message, code = str(ex), ex.exit_code
    elif isinstance(ex, Exception) and is_out_of_memory(ex):
        message, code = out_of_memory_message(ex, _batch_size(cfg)), EXIT_BAD_INPUT
    elif isinstance(ex, OSError) and ex.errno in OUTPUT_ERRNOS:  # e.g. a plot written to a full disk
        message, code = write_failed_message(ex), EXIT_BAD_INPUT
    elif isinstance(ex, Exception):  # a bug
        record_status(files, "failed", f"{type(ex).__name__}: {first_line(ex)}", EXIT_BUG)
        if not is_multirun() or full_error():
            _log_to_files("job failed", ex)  # the console gets the traceback from Python itself
            raise ex
        log.exception("job failed: %s", f"{type(ex).__name__}: {ex}".strip())
        return
    else:  # SystemExit, GeneratorExit
        raise ex
    _log_to_files(message)
    # bad input found before any record was written: no empty run folder is left (an interrupted
    # set-up keeps its folder, with status interrupted)
    if is_multirun() or code != EXIT_BAD_INPUT or not discard_if_empty(files):
        record_status(files, STATUS[code], message, code)
    if full_error():
        raise ex
    if is_multirun() and code != EXIT_INTERRUPTED:
        print(f"error: {message}", file=sys.stderr)
        return
    exit_with(message, code)


def _batch_size(cfg: Any) -> Any:
    try:
        from omegaconf import OmegaConf

        return OmegaConf.select(cfg, "data.batch_size")
    except Exception:  # noqa: BLE001 - not a train config
        return None


def _interrupt_message(ex: KeyboardInterrupt, run_dir: Path | None) -> str:
    signame = getattr(ex, "signame", None) or "SIGINT"
    ckpt = Path(run_dir) / "checkpoints" / "last.pt" if run_dir is not None else None
    if ckpt is not None and ckpt.is_file():
        return (f"{signame}: stopped at once, without a new checkpoint; "
                f"continue from the last one with resnet-train resume={ckpt}")
    return f"{signame}: stopped before training started; nothing to resume, run the command again"


def _log_to_files(message: str, ex: BaseException | None = None) -> None:
    """Record an error (with ``ex``'s traceback) in the job's log file(s), not on the console."""
    exc_info = (type(ex), ex, ex.__traceback__) if ex is not None else None
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (message,), exc_info)
    for logger in (log, logging.getLogger()):
        for h in logger.handlers:
            if isinstance(h, logging.FileHandler) and record.levelno >= h.level:
                h.handle(record)
