"""Shared plumbing for the Hydra entry points: where ``conf/`` is, and how errors end a run.

Every entry point follows the same pattern::

    @hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
    def _main(cfg: DictConfig) -> float | None:
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        with user_errors(run_dir, cfg):
            ...

    def main() -> None:                # the console script
        run_hydra(_main)

* :func:`run_hydra` turns what Hydra and OmegaConf reject while composing the config (wrong
  type, unknown key, missing option, unparsable override, unwritable output folder) into one
  line ``error: <message>`` and exit code 2, instead of Hydra's multi-line report.
* :func:`user_errors` ends a job on a :class:`~resnet_cli.errors.UserError` (exit code of the
  error: 2 bad input, 3 diverged, 130 interrupted), on Ctrl-C, or on CUDA out of memory, and
  records the outcome in the run folder's ``metrics.json``.

``HYDRA_FULL_ERROR=1`` shows Hydra's full report and the Python traceback instead.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator

from .checkpoint import write_json
from .errors import ConfigError, UserError

log = logging.getLogger("resnet_cli")

INTERRUPTED_EXIT = 130
"""Exit code after SIGINT/SIGTERM (128 + SIGINT), whatever the signal."""

_state: dict[str, Any] = {"full_error": None, "sweep_jobs": 0, "sweep_failures": []}


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


def full_error() -> bool:
    """True when the user asked for full reports and tracebacks (``HYDRA_FULL_ERROR=1``).

    :func:`run_hydra` sets the variable itself while Hydra runs (so that Hydra hands its
    errors over instead of printing them); this function reports the user's own setting.
    """
    if _state["full_error"] is not None:
        return _state["full_error"]
    # a sweep job in a launcher's worker process (joblib, submitit) inherits run_hydra's
    # HYDRA_FULL_ERROR=1; the user's own setting travels in _USER_FULL_ERROR_ENV
    if os.environ.get(_USER_FULL_ERROR_ENV) in ("0", "1"):
        return os.environ[_USER_FULL_ERROR_ENV] == "1"
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


_USER_FULL_ERROR_ENV = "RESNET_CLI_USER_FULL_ERROR"


def _is_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:  # noqa: BLE001 - outside Hydra
        return False


# -- composition errors --------------------------------------------------------------------

def _first_line(text: Any) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[0] if lines else ""


def _unknown_key_message(full_key: str, object_type: Any, value: str | None) -> str:
    from .config import unknown_key_message

    known = [f.name for f in fields(object_type)] if is_dataclass(object_type) else []
    return unknown_key_message(full_key, known, value)


def _override_value(key: str, overrides: list[str]) -> str | None:
    """The value given on the command line for ``key`` (``key=value``, ``+key=``, ``++key=``)."""
    for arg in overrides:
        name, sep, value = arg.lstrip("+~").partition("=")
        if sep and name == key:
            return value
    return None


def _bad_override(overrides: list[str]) -> str | None:
    """The first command-line override that Hydra's grammar cannot parse."""
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser
    except ImportError:  # pragma: no cover - Hydra layout changed
        return None
    parser = OverridesParser.create()
    for arg in overrides:
        if arg.startswith("-"):
            continue
        try:
            parser.parse_overrides([arg])
        except Exception:  # noqa: BLE001 - the one we are looking for
            return arg
    return None


def composition_message(ex: BaseException, overrides: list[str] | None = None) -> str:
    """One line for an error Hydra or OmegaConf raised while composing the config.

    Names the key and value and says what is allowed where the exception tells: a wrong
    type (``trainer.epochs=abc``), an unknown key (``trainer.epoch=3``, with the closest known
    key), a missing config option (``data=nope``, with the available ones), an override
    the grammar cannot parse, a value given several times without ``-m``. ``overrides`` are
    the command-line arguments (default ``sys.argv[1:]``), to quote the value as typed.
    """
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import (ConfigAttributeError, ConfigKeyError, InterpolationResolutionError,
                                  MissingMandatoryValue, OmegaConfBaseException, ValidationError)

    overrides = list(sys.argv[1:] if overrides is None else overrides)
    cause = ex.__cause__ if isinstance(ex.__cause__, OmegaConfBaseException) else None
    if isinstance(ex, OmegaConfBaseException):
        cause = ex
    text = str(ex)
    if isinstance(ex, MissingConfigException) or text.startswith(("In '", "Could not find")):
        m = re.search(r"Could not find '([^']+)/([^'/]+)'", text)
        if m:
            group, option = m.groups()
            block = text.split(f"Available options in '{group}':", 1)
            options = re.findall(r"^\t(\S+)$", block[1].split("Config search path", 1)[0], re.M) if len(block) > 1 else []
            msg = f"{group}={option} is not allowed: no such option"
            return msg + (f"; choose one of {', '.join(options)}" if options else "")
    if isinstance(ex, OverrideParseException):
        bad = _bad_override(overrides)
        where = f"cannot parse the override {bad!r}" if bad else "cannot parse an override"
        return (f"{where}: {_first_line(text)} "
                "(see https://hydra.cc/docs/advanced/override_grammar/basic/; quote values with spaces)")
    if text.startswith("Ambiguous value for argument"):
        m = re.search(r"argument '([^']+)'", text)
        arg = m.group(1) if m else "a key"
        key = arg.split("=", 1)[0]
        return (f"{arg} gives several values: add -m (--multirun) to sweep over them, "
                f"or write {key}=[...] for a list")
    if cause is not None and cause.full_key:
        key = str(cause.full_key)
        value = _override_value(key, overrides)
        if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and "not in" in str(cause.msg):
            return _unknown_key_message(key, cause.object_type, value)
        if isinstance(cause, ValidationError) or isinstance(cause, MissingMandatoryValue):
            shown = cause.value if cause.value is not None else value  # cause: the one job of a sweep
            return f"{key}={shown} is not allowed: {_first_line(cause.msg)}"
        if isinstance(cause, InterpolationResolutionError):
            return f"{key}: cannot resolve its interpolation: {_first_line(cause.msg)}"
        return f"{_first_line(text)}: {_first_line(cause.msg)}" if _first_line(text) != _first_line(cause.msg) \
            else f"{key}: {_first_line(cause.msg)}"
    line = _first_line(text)
    if cause is not None and _first_line(cause.msg) and _first_line(cause.msg) != line:
        line += f": {_first_line(cause.msg)}"
    return line or type(ex).__name__


def _output_dir_message(ex: OSError) -> str:
    where = ex.filename or "the output folder"
    return (f"cannot write the output folder: {where} ({ex.strerror or type(ex).__name__}); "
            "choose another with hydra.run.dir=<folder> (hydra.sweep.dir=<folder> with -m)")


def exit_with(message: str, code: int) -> None:
    """Print ``error: <message>`` on stderr and exit with ``code``."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


_exit = exit_with


def _raised_in_job(ex: BaseException, entry: Callable) -> bool:
    """True if ``ex`` came out of the job function itself (``entry.__wrapped__``), not Hydra."""
    job = getattr(entry, "__wrapped__", None)
    code = getattr(job, "__code__", None)
    tb = ex.__traceback__
    while tb is not None and code is not None:
        if tb.tb_frame.f_code is code:
            return True
        tb = tb.tb_next
    return False


def run_hydra(entry: Callable[[], Any]) -> Any:
    """Run a ``@hydra.main``-decorated function (no arguments: Hydra reads ``sys.argv``),
    converting what fails before the job starts into one line and exit code 2.

    Converted: Hydra's :class:`~hydra.errors.HydraException` (composition, missing config
    option, override grammar) and OmegaConf errors (wrong type, unknown key, bad
    interpolation) raised while composing, and an :class:`OSError` raised while Hydra creates
    the output folder or its log file. Errors raised inside the job are left to
    :func:`user_errors`. After a multirun sweep in which jobs failed, prints one line naming
    how many failed and exits with the largest of their exit codes.

    With ``HYDRA_FULL_ERROR=1`` Hydra's full report and the traceback are shown instead.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    user_full = os.environ.get("HYDRA_FULL_ERROR") == "1"
    _state.update(full_error=user_full, sweep_jobs=0, sweep_failures=[])
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra then raises instead of printing its report
    os.environ[_USER_FULL_ERROR_ENV] = "1" if user_full else "0"  # for jobs in worker processes
    try:
        result = entry()
    except KeyboardInterrupt:
        if user_full:
            raise
        _exit("interrupted", INTERRUPTED_EXIT)
    except (HydraException, OmegaConfBaseException, OSError) as ex:
        if user_full or getattr(ex, "_resnet_cli_in_job", False) or _raised_in_job(ex, entry):
            raise
        if isinstance(ex, (HydraException, OmegaConfBaseException)):
            _exit(composition_message(ex), ConfigError.exit_code)
        _exit(_output_dir_message(ex), ConfigError.exit_code)
    finally:
        if user_full:
            os.environ["HYDRA_FULL_ERROR"] = "1"
        else:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        os.environ.pop(_USER_FULL_ERROR_ENV, None)
        _state["full_error"] = None
    failures = _state["sweep_failures"]
    if failures:
        codes = sorted({code for _, code in failures})
        _exit(f"{len(failures)} of {_state['sweep_jobs']} sweep jobs failed (exit codes "
              f"{', '.join(map(str, codes))}): see metrics.json in {', '.join(str(d) for d, _ in failures[:3])}"
              + (" ..." if len(failures) > 3 else ""), max(codes))
    return result


# -- errors inside a job -------------------------------------------------------------------

def out_of_memory_message(ex: BaseException, batch_size: Any = None) -> str:
    """One line for a CUDA out-of-memory error, suggesting a smaller ``data.batch_size``."""
    m = re.search(r"Tried to allocate [0-9.]+ ?[KMGT]?i?B", str(ex))
    what = f" ({m.group(0)[0].lower()}{m.group(0)[1:]})" if m else ""
    if isinstance(batch_size, int) and batch_size > 1:
        hint = f"lower data.batch_size (now {batch_size}; try data.batch_size={max(1, batch_size // 2)})"
    else:
        hint = "lower data.batch_size"
    return f"CUDA out of memory{what}: {hint}, or free the GPU of other processes"


def is_out_of_memory(ex: BaseException) -> bool:
    """True for ``torch.OutOfMemoryError`` and the RuntimeErrors CUDA libraries raise when out of memory."""
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(ex, oom):
        return True
    text = str(ex)
    return isinstance(ex, RuntimeError) and ("CUDA out of memory" in text or "ALLOC_FAILED" in text)


def _log_to_files(message: str) -> None:
    """Record an error in the job's log file(s) without repeating it on the console."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (message,), None)
    for logger in (log, logging.getLogger()):
        for h in logger.handlers:
            if isinstance(h, logging.FileHandler) and record.levelno >= h.level:
                h.handle(record)


def _record(run_dir: Path | None, status: str, message: str) -> None:
    """Set ``status`` and ``error`` in ``run_dir/metrics.json``: create it, or update one whose
    status is still ``running``; a status written by the run itself (diverged, interrupted,
    completed) is kept."""
    if run_dir is None:
        return
    path = Path(run_dir) / "metrics.json"
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    if data.get("status") not in (None, "running"):
        return
    data.update(status=status, error=message)
    try:
        write_json(path, data)
    except OSError:
        pass


def _interrupt_message(ex: KeyboardInterrupt, run_dir: Path | None) -> str:
    signame = getattr(ex, "signame", None) or "SIGINT"
    ckpt = Path(run_dir) / "checkpoints" / "last.pt" if run_dir is not None else None
    if ckpt is not None and ckpt.is_file():
        return (f"{signame}: stopped at once, without a new checkpoint; "
                f"continue from the last one with resnet-train resume={ckpt}")
    return f"{signame}: stopped before training started; nothing to resume, run the command again"


@contextmanager
def user_errors(run_dir: Path | None = None, cfg: Any = None) -> Iterator[None]:
    """End a CLI job cleanly on a :class:`UserError`, Ctrl-C or CUDA out of memory.

    Single run: record the message in the log file, print ``error: <message>`` to stderr and
    exit with the error's code (2 for bad input, 3 diverged, 130 interrupted), no traceback.
    ``metrics.json`` in ``run_dir`` gets ``status`` (``failed`` or ``interrupted``) and
    ``error`` unless the run already wrote a final status. In a multirun sweep a failed job is
    recorded and the sweep goes on (:func:`run_hydra` reports the failures at the end); an
    interruption ends the sweep. Any other exception is a bug: ``metrics.json`` is marked
    ``failed`` and the traceback is shown. ``HYDRA_FULL_ERROR=1`` re-raises everything.

    Args:
        run_dir: the job's output folder (``metrics.json`` goes there).
        cfg: the job's config, used to name ``data.batch_size`` in the out-of-memory hint.
    """
    multirun = _is_multirun()
    if multirun:
        _state["sweep_jobs"] += 1
    try:
        yield
    except (UserError, KeyboardInterrupt) as e:
        if isinstance(e, KeyboardInterrupt):
            message, code, status = _interrupt_message(e, run_dir), INTERRUPTED_EXIT, "interrupted"
        else:
            message, code = str(e), e.exit_code
            status = "interrupted" if code == INTERRUPTED_EXIT else "failed"
        _end(run_dir, status, message, code, multirun, e)
    except Exception as e:  # noqa: BLE001 - out of memory, or a bug
        if is_out_of_memory(e):
            batch = None
            try:
                from omegaconf import OmegaConf

                batch = OmegaConf.select(cfg, "data.batch_size") if cfg is not None else None
            except Exception:  # noqa: BLE001
                pass
            _end(run_dir, "failed", out_of_memory_message(e, batch), ConfigError.exit_code, multirun, e)
            return
        _record(run_dir, "failed", f"{type(e).__name__}: {_first_line(e)}")
        e._resnet_cli_in_job = True  # type: ignore[attr-defined]  # run_hydra: not a composition error
        raise


def _end(run_dir: Path | None, status: str, message: str, code: int, multirun: bool, ex: BaseException) -> None:
    _log_to_files(message)
    _record(run_dir, status, message)
    if full_error():
        raise ex
    if multirun and code != INTERRUPTED_EXIT:
        print(f"error: {message}", file=sys.stderr)
        _state["sweep_failures"].append((run_dir, code))
        return
    _exit(message, code)
