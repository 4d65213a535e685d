"""One line for each error Hydra, OmegaConf or CUDA raise at a user: the key or file, the value as typed
and what is allowed, read from the exceptions' attributes (two texts with none are matched, commented)."""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import fields, is_dataclass
from typing import Any, Sequence

from ..errors import first_line

SWEEP_PLUGINS = ("joblib", "submitit_local", "submitit_slurm", "optuna")  # the [sweep] extra's Hydra plugins


def _override_value(key: str, overrides: list[str]) -> str | None:
    """The value given on the command line for ``key`` (``key=value``, ``+key=``, ``++key=``)."""
    for arg in overrides:
        name, sep, value = arg.lstrip("+~").partition("=")
        if sep and name == key:
            return value
    return None


def _group_options(group: str) -> list[str]:
    """The options of config group ``group`` in the package's conf/ (sorted names, no ``.yaml``)."""
    from pathlib import Path

    from .composition import config_dir

    return sorted(p.stem for p in (Path(config_dir()) / group).glob("*.yaml"))


def composition_message(ex: BaseException, overrides: list[str] | None = None) -> str:
    """One line for an error Hydra or OmegaConf raised while composing: wrong type, unknown key (with
    the closest known one), missing option (with the available ones), unparsable override, several
    values without ``-m``. ``overrides``: to quote the value as typed (default ``sys.argv[1:]``)."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import (ConfigAttributeError, ConfigKeyError, InterpolationResolutionError,
                                  MissingMandatoryValue, OmegaConfBaseException, ValidationError)

    overrides = list(sys.argv[1:] if overrides is None else overrides)
    text, line = str(ex), first_line(ex)
    if isinstance(ex, MissingConfigException) and ex.missing_cfg_file and "/" in ex.missing_cfg_file:
        group, option = ex.missing_cfg_file.rsplit("/", 1)
        plugin = group in ("hydra/launcher", "hydra/sweeper") and option in SWEEP_PLUGINS
        extra = f"; {option} comes with the sweep extra: pip install 'resnet-cli[sweep]'" if plugin else ""
        options = list(ex.options or _group_options(group))  # Hydra lists none for a list's item
        near = difflib.get_close_matches(option, options, n=1)
        return f"{group}={option} is not allowed: no such option" + (f"; did you mean {near[0]}?" if near else "") + (
            f"; choose one of {', '.join(options)}" if options else "") + extra
    if isinstance(ex, OverrideParseException):
        return (f"cannot parse the override {ex.override!r}: {first_line(ex.message)} "
                "(see https://hydra.cc/docs/advanced/override_grammar/basic/; quote values with spaces)")
    if text.startswith("Ambiguous value for argument"):
        m = re.search(r"argument '([^']+)'", text)  # the only place Hydra names the argument
        arg = m.group(1) if m else "a key"
        return (f"{arg} gives several values: add -m (--multirun) to sweep over them, "
                f"or write {arg.split('=', 1)[0]}=[...] for a list")
    cause = ex if isinstance(ex, OmegaConfBaseException) else ex.__cause__
    if not isinstance(cause, OmegaConfBaseException):
        return line or type(ex).__name__
    reason = first_line(cause.msg)
    if cause.full_key:
        key = str(cause.full_key)
        value = _override_value(key, overrides)
        if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and "not in" in str(cause.msg):
            known = [f.name for f in fields(cause.object_type)] if is_dataclass(cause.object_type) else []
            return unknown_key_message(key, known, value)
        if isinstance(cause, (ValidationError, MissingMandatoryValue)):
            shown = cause.value if cause.value is not None else value  # cause: the one job of a sweep
            return f"{key}={shown} is not allowed: {reason}"
        if isinstance(cause, InterpolationResolutionError):
            return f"{key}: cannot resolve its interpolation: {reason}"
        return f"{line}: {reason}" if line != reason else f"{key}: {reason}"
    return (f"{line}: {reason}" if reason and reason != line else line) or type(ex).__name__


def is_out_of_memory(ex: BaseException) -> bool:
    """True for ``torch.OutOfMemoryError`` and the RuntimeErrors CUDA libraries raise when out of memory."""
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(ex, oom):
        return True
    text = str(ex)
    return isinstance(ex, RuntimeError) and ("CUDA out of memory" in text or "ALLOC_FAILED" in text)


def out_of_memory_message(ex: BaseException, batch_size: Any = None) -> str:
    """One line for a CUDA out-of-memory error, suggesting a smaller ``data.batch_size``."""
    m = re.search(r"Tried to allocate ([0-9.]+ ?[KMGT]?i?B)", str(ex))  # torch names the size only here
    what = f" (tried to allocate {m.group(1)})" if m else ""
    hint = "lower data.batch_size"
    if isinstance(batch_size, int) and batch_size > 1:
        hint += f" (now {batch_size}; try data.batch_size={batch_size // 2})"
    return f"CUDA out of memory{what}: {hint}, or free the GPU of other processes"


def unknown_key_message(full_key: str, known: Sequence[str], value: Any = None) -> str:
    """``unknown key trainer.epoch=3: no such key in trainer; did you mean trainer.epochs?``"""
    parent, _, name = full_key.rpartition(".")
    where = f"in {parent}" if parent else "at the top level"
    msg = f"unknown key {full_key}" + (f"={value}" if value is not None else "") + f": no such key {where}"
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return msg + f"; did you mean {parent + '.' if parent else ''}{close[0]}?"
    return msg + (f"; known keys: {', '.join(known)}" if known else "")
