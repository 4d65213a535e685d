"""Experiment trackers chosen in config, several at once (off by default: ``logger: null``).

``cfg.logger`` maps a name to one tracker's config, a YAML under ``conf/logger/`` with a
``_target_`` (lightning-hydra-template's ``configs/logger/``)::

    resnet-train logger=tensorboard                   # one tracker
    resnet-train logger=[tensorboard,csv,mlflow]      # several (Hydra's multi-select of a group)
    resnet-train logger=many_loggers                  # the preset listing csv, tensorboard, mlflow

Each YAML holds one key (its name) so that selecting several merges them into one dict; the
engine instantiates every entry with ``run_dir`` and ``group`` (:func:`build_logger`) and talks
to them through :class:`LoggerGroup`. Adding a tracker is a class with the :class:`RunLogger`
methods and a YAML; no other Python changes.

=================  =====================================  =============================================
tracker            client                                 where
=================  =====================================  =============================================
``tensorboard``    ``torch.utils.tensorboard``            ``<run>/tensorboard/`` (``tensorboard --logdir``)
``csv``            the ``csv`` module                     ``<run>/csv/{epochs,steps}.csv``, ``hparams.json``
``mlflow``         ``mlflow.MlflowClient`` (extra         ``logger.mlflow.tracking_uri`` (null: MLflow's
                   ``mlflow``)                            default / ``$MLFLOW_TRACKING_URI``)
``wandb``          ``wandb`` (extra ``wandb``)            ``<run>/wandb/`` (``mode: offline``; sync later
                                                          with ``wandb sync``)
=================  =====================================  =============================================

What each gets: the hyper-parameters (:func:`resnet_cli.engine.hparams`), the LR and momentum
of every optimizer step, every per-epoch row of the history (keys of
:data:`resnet_cli.run_folder.HISTORY_KEYS`; values that are None, e.g. ``test_loss`` of an
epoch that ``trainer.eval_every`` skips, are left out), the final metrics, and every
``plots/*.png`` at the end of the run. In a multirun sweep every job gets ``group``, the
sweep folder: MLflow tags its run ``sweep=<folder>``, W&B sets ``group``, CSV records it in
``hparams.json``, TensorBoard groups by folder already.

A tracker whose package is not installed stops the run before any data loads with one line
naming the extra to install (:func:`check_logger`, exit 2). Only rank 0 of a distributed run
logs (the other ranks get :class:`NullLogger`).

The package: this module holds what the engine calls (:class:`RunLogger`, :class:`NullLogger`,
:class:`LoggerGroup`, :func:`check_logger`, :func:`build_logger`) and re-exports every tracker,
so ``_target_: resnet_cli.loggers.<Class>`` names each one; one module per tracker
(``tensorboard_logger`` with its tags, ``csv_logger``, ``mlflow_logger``, ``wandb_logger``, named
so as not to stand in for the packages they drive) and ``common`` for what they share.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any, Mapping, Protocol

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


class NullLogger:
    """``logger: null`` (and ranks other than 0): does nothing."""

    def start(self, hparams: Mapping[str, Any]) -> None:
        pass

    def log_step(self, step: int, lr: float, momentum: float | None = None) -> None:
        pass

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        pass

    def log_images(self, plots_dir: Path, step: int) -> int:
        return 0

    def finish(self, metrics: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class LoggerGroup:
    """Several trackers behind one :class:`RunLogger`: every call goes to each in turn.

    ``close`` closes them all even when one fails (the first error is raised afterwards).
    ``log_images`` returns the largest count any of them logged.
    """

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


def check_logger(lcfg: Mapping[str, Any] | None) -> None:
    """Check ``cfg.logger`` (:func:`resnet_cli.config.validate`, before any data loads): a dict
    of name -> tracker config, each with a ``_target_`` whose package is installed and whose
    options its class's ``check`` accepts.

    Raises:
        ConfigError: not a dict of tracker configs; a missing ``_target_``; a tracker whose
            package is missing (naming the extra: ``pip install 'resnet-cli[mlflow]'``); a bad option.
    """
    from hydra.utils import get_object

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
            cls = get_object(str(target))
        except Exception as e:  # noqa: BLE001 - import error, no such name
            raise ConfigError(f"logger.{name}._target_={target} cannot be imported ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from None
        requires = getattr(cls, "requires", None)
        if requires and importlib.util.find_spec(requires[0]) is None:
            raise ConfigError(f"logger.{name} needs the {requires[0]} package, which is not installed: "
                              f"pip install 'resnet-cli[{requires[1]}]'")
        check = getattr(cls, "check", None)
        if check is not None:
            opts = {k: v for k, v in node.items() if not str(k).startswith("_")}
            check(opts, key=f"logger.{name}")


def build_logger(lcfg: Mapping[str, Any] | None, run_dir: Path, enabled: bool = True,
                 group: str | None = None) -> RunLogger:
    """The trackers ``cfg.logger`` lists, each instantiated from its ``_target_`` with
    ``run_dir`` and ``group`` (the sweep folder in a multirun, else None), behind one
    :class:`LoggerGroup`; None (no logger) or ``enabled=False`` (ranks other than 0) give a
    :class:`NullLogger`. A tracker that fails to start closes those already started.

    Raises:
        ConfigError: see :func:`check_logger`.
    """
    if not lcfg or not enabled:
        return NullLogger()
    from hydra.utils import instantiate
    from omegaconf import DictConfig, OmegaConf

    if isinstance(lcfg, DictConfig):
        lcfg = OmegaConf.to_container(lcfg, resolve=True)
    check_logger(lcfg)
    started: dict[str, RunLogger] = {}
    try:
        for name, node in lcfg.items():
            node = {**node, "_partial_": True}
            started[name] = instantiate(node)(run_dir=Path(run_dir), group=group)
    except BaseException:
        LoggerGroup(started).close()
        raise
    return LoggerGroup(started)
