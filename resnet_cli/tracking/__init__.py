"""Experiment trackers chosen in config, several at once (``logger=[tensorboard,csv,mlflow]``; off by
default). ``cfg.logger`` maps a name to a YAML of ``conf/logger/`` with a ``_target_``
(lightning-hydra-template's ``configs/logger/``); the front ends make a factory of each, the engine
starts them with :func:`build_logger` and
talks to them through :class:`LoggerGroup`. A tracker is a class with the :class:`RunLogger` methods
(one module each) and a YAML; the README's "Experiment trackers" lists what each writes. A missing
package stops the run before any data loads (:func:`check_logger`); ranks other than 0 get :class:`NullLogger`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import pkgutil
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from .common import FINAL_KEYS
from .csv_logger import CSVLogger
from .mlflow_logger import MLflowLogger
from .tensorboard_logger import EPOCH_SCALARS, TensorBoardLogger
from .wandb_logger import WandbLogger

__all__ = ["EPOCH_SCALARS", "FINAL_KEYS", "CSVLogger", "LoggerGroup", "MLflowLogger", "NullLogger", "RunLogger",
           "TensorBoardLogger", "WandbLogger", "build_logger", "check_logger"]

log = logging.getLogger("resnet_cli")


class RunLogger(Protocol):
    """What the trainer calls; every method is cheap and never synchronises a GPU."""

    def start(self, hparams: Mapping[str, Any]) -> None: ...

    def log_step(self, step: int, lr: float, momentum: float | None = None) -> None: ...

    def log_epoch(self, row: Mapping[str, Any]) -> None: ...

    def log_images(self, plots_dir: Path, step: int) -> int: ...

    def finish(self, metrics: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class LoggerGroup:
    """Several trackers behind one :class:`RunLogger`: every call goes to each in turn; ``close`` closes
    them all, then raises the first error; ``log_images`` returns the largest count any of them logged."""

    def __init__(self, loggers: Mapping[str, RunLogger]):
        self.loggers = dict(loggers)

    def start(self, hparams: Mapping[str, Any]) -> None:
        for lg in self.loggers.values():
            lg.start(hparams)

    def log_step(self, step: int, lr: float, momentum: float | None = None) -> None:
        for lg in self.loggers.values():
            lg.log_step(step, lr, momentum)

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        for lg in self.loggers.values():
            lg.log_epoch(row)

    def log_images(self, plots_dir: Path, step: int) -> int:
        return max([lg.log_images(plots_dir, step) for lg in self.loggers.values()], default=0)

    def finish(self, metrics: Mapping[str, Any]) -> None:
        for lg in self.loggers.values():
            lg.finish(metrics)

    def close(self) -> None:
        error = None
        for name, lg in self.loggers.items():
            try:
                lg.close()
            except Exception as e:  # noqa: BLE001 - close the others first
                log.warning("logger %s: close failed (%s)", name, e)
                error = error or e
        if error is not None:
            raise error


class NullLogger(LoggerGroup):
    """``logger: null`` (and ranks other than 0): a group of none, does nothing."""

    def __init__(self) -> None:
        super().__init__({})


def check_logger(lcfg: Mapping[str, Any] | None) -> None:
    """Check ``cfg.logger``: name -> tracker config, each with an importable ``_target_`` whose package
    is installed and whose options its class's ``check`` accepts.

    Raises:
        ConfigError: not such a dict, no ``_target_``, a missing package (naming the extra), a bad option.
    """
    from ..errors import ConfigError

    if lcfg is None:
        return
    if not isinstance(lcfg, Mapping) or any(not isinstance(v, Mapping) for v in lcfg.values()):
        raise ConfigError("logger must map names to tracker configs: choose logger=<name> or "
                          "logger=[tensorboard,csv,...] (see conf/logger/)")
    for name, node in lcfg.items():
        target = node.get("_target_")
        if not target:
            raise ConfigError(f"logger.{name} has no _target_: see conf/logger/{name}.yaml")
        try:
            cls = pkgutil.resolve_name(str(target))
        except Exception as e:  # noqa: BLE001 - import error, no such name
            raise ConfigError(f"logger.{name}._target_={target} cannot be imported ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from None
        requires = getattr(cls, "requires", None)
        if requires:
            try:  # imported, not only found: a broken install fails here, before any data
                importlib.import_module(requires[0])
            except Exception as e:  # noqa: BLE001 - ImportError, or whatever a broken package raises
                why = "which is not installed" if importlib.util.find_spec(requires[0]) is None else (
                    f"which does not import ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
                raise ConfigError(f"logger.{name} needs the {requires[0]} package, {why}: "
                                  f"pip install 'resnet-cli[{requires[1]}]'") from None
        check = getattr(cls, "check", None)
        if check is not None:
            opts = {k: v for k, v in node.items() if not str(k).startswith("_")}
            check(opts, key=f"logger.{name}")


def build_logger(factories: Mapping[str, Callable[..., RunLogger]], run_dir: Path, enabled: bool = True,
                 group: str | None = None) -> RunLogger:
    """The trackers ``factories`` make (name -> ``factory(run_dir=, group=)``, the front ends' partials of
    ``cfg.logger``'s ``_target_``s), called with ``run_dir`` and ``group`` (the sweep folder in a
    multirun), in one :class:`LoggerGroup` (a failing one closes those started); none, or
    ``enabled=False`` (ranks other than 0): a :class:`NullLogger`."""
    if not factories or not enabled:
        return NullLogger()
    started: dict[str, RunLogger] = {}
    try:
        for name, factory in factories.items():
            started[name] = factory(run_dir=Path(run_dir), group=group)
    except BaseException:
        LoggerGroup(started).close()
        raise
    return LoggerGroup(started)
