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

TensorBoard tags (x axis: global optimizer step 1.. for ``*/step``, epoch 1.. otherwise):
``lr/step``, ``momentum/step``, ``loss/train``, ``loss/test``, ``acc/train``, ``acc/test``
(fractions 0-1), ``time/epoch_seconds``, ``speed/images_per_s``, ``plots/<name>`` (PNG images),
and the hyper-parameters for the HParams dashboard.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol

import numpy as np

log = logging.getLogger("resnet_cli")

EPOCH_SCALARS = {"loss/train": "train_loss", "loss/test": "test_loss", "acc/train": "train_acc",
                 "acc/test": "test_acc", "time/epoch_seconds": "seconds", "speed/images_per_s": "images_per_s"}
"""TensorBoard tag -> key of a history row (see :data:`resnet_cli.run_folder.HISTORY_KEYS`)."""

FINAL_KEYS = ("test_acc", "test_loss", "train_acc", "train_loss", "train_seconds")
"""Final metrics (metrics.json) the trackers record as the run's summary."""


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


def _epoch_values(row: Mapping[str, Any]) -> dict[str, float]:
    """A history row's numbers for trackers that also get the per-step ``lr``: the epoch's
    ``lr`` becomes ``epoch_lr`` (one metric name, one x axis); ``epoch`` and None values are dropped."""
    return {("epoch_lr" if k == "lr" else k): v for k, v in _numbers(row).items() if k != "epoch"}


def _numbers(row: Mapping[str, Any], keys: Iterable[str] | None = None) -> dict[str, float]:
    """The numeric, non-None entries of ``row`` (restricted to ``keys``) as floats."""
    keys = row.keys() if keys is None else keys
    return {k: float(row[k]) for k in keys
            if k in row and isinstance(row[k], (int, float, np.floating, np.integer)) and not isinstance(row[k], bool)}


def _pngs(plots_dir: Path, limit: int, who: str) -> list[Path]:
    """The PNGs under ``plots_dir`` sorted by path, at most ``limit`` (logged when capped)."""
    plots_dir = Path(plots_dir)
    paths = sorted(plots_dir.rglob("*.png")) if plots_dir.is_dir() else []
    if len(paths) > limit:
        log.info("%s: logging %d of %d plots (max_images)", who, limit, len(paths))
        paths = paths[:limit]
    return paths


def _hparam_value(v: Any) -> Any:
    """HParams accepts int, float, str, bool (and torch scalars); anything else becomes its str()."""
    if v is None:
        return "null"
    return v if isinstance(v, (bool, int, float, str)) else str(v)


class TensorBoardLogger:
    """Writes the tags listed in the module docstring with one :class:`SummaryWriter`.

    ``conf/logger/tensorboard.yaml``'s ``_target_`` (``_partial_``: the run passes ``run_dir``).

    Args:
        run_dir: the run folder.
        log_dir: folder for the event files, relative to ``run_dir`` (created).
        flush_secs: how often (seconds) pending events are flushed to disk.
        images: log the PNGs under ``plots/`` at the end of the run.
        max_images: at most this many PNGs (sorted by path) are logged.
        group: the sweep folder in a multirun (unused: TensorBoard groups runs by folder).

    Raises:
        ConfigError: see :meth:`check`.
    """

    requires = ("tensorboard", "tensorboard")
    """(importable module, pyproject extra that installs it)."""

    def __init__(self, run_dir: str | Path, log_dir: str = "tensorboard", flush_secs: int = 30, images: bool = True,
                 max_images: int = 64, group: str | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.check({"flush_secs": flush_secs, "max_images": max_images})
        self.log_dir = Path(run_dir) / log_dir
        log.info("tensorboard: logging to %s", self.log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir), flush_secs=flush_secs)
        self.images, self.max_images = images, max_images
        self.hparams: dict[str, Any] = {}
        self._closed = False

    @staticmethod
    def check(opts: Mapping[str, Any], key: str = "logger") -> None:
        """Raises ConfigError: ``flush_secs`` < 1 or ``max_images`` < 0."""
        from .errors import ConfigError

        for name, low in (("flush_secs", 1), ("max_images", 0)):
            v = opts.get(name, low)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(f"{key}.{name}={v!r} is not allowed: must be an integer >= {low}")

    def start(self, hparams: Mapping[str, Any]) -> None:
        """Record the hyper-parameters (HParams experiment + session start)."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        self.hparams = {k: _hparam_value(v) for k, v in hparams.items()}
        metric_tags = {tag: 0.0 for tag in ("acc/test", "acc/train", "loss/test", "loss/train")}
        exp, ssi, _ = hparams_summary(self.hparams, metric_tags)
        fw = self.writer._get_file_writer()
        fw.add_summary(exp)
        fw.add_summary(ssi)

    def log_step(self, step: int, lr: float, momentum: float | None = None) -> None:
        self.writer.add_scalar("lr/step", lr, step)
        if momentum is not None:
            self.writer.add_scalar("momentum/step", momentum, step)

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        for tag, key in EPOCH_SCALARS.items():
            if row.get(key) is not None:
                self.writer.add_scalar(tag, float(row[key]), int(row["epoch"]))

    def log_images(self, plots_dir: Path, step: int) -> int:
        """Add every PNG under ``plots_dir`` as image ``plots/<relative path without .png>``;
        returns how many were logged. Unreadable files are skipped with a warning."""
        if not self.images:
            return 0
        from PIL import Image

        n = 0
        for p in _pngs(plots_dir, self.max_images, "tensorboard"):
            try:
                with Image.open(p) as im:
                    arr = np.asarray(im.convert("RGB"))
            except OSError as e:
                log.warning("tensorboard: cannot read %s (%s); not logged", p, e)
                continue
            tag = "plots/" + p.relative_to(plots_dir).with_suffix("").as_posix()
            self.writer.add_image(tag, arr, step, dataformats="HWC")
            n += 1
        return n

    def finish(self, metrics: Mapping[str, Any]) -> None:
        """Mark the HParams session as finished successfully."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        if self.hparams:
            _, _, sei = hparams_summary(self.hparams, {})
            self.writer._get_file_writer().add_summary(sei)

    def close(self) -> None:
        if not self._closed:
            self.writer.close()
            self._closed = True


class CSVLogger:
    """Plain CSV files under ``<run>/<log_dir>`` (the ``csv`` module; readable by anything):

    * ``epochs.csv``: one row per epoch, the history's keys (empty cell = not evaluated);
    * ``steps.csv``: ``step, lr, momentum`` per optimizer step;
    * ``hparams.json``: the hyper-parameters, ``group`` (the sweep folder, or null) and, at
      the end, ``final`` (the run's final metrics).

    Files are flushed after every epoch, so a crashed run keeps what it logged.
    """

    requires = None

    def __init__(self, run_dir: str | Path, log_dir: str = "csv", group: str | None = None):
        self.log_dir = Path(run_dir) / log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.group = group
        self._steps = open(self.log_dir / "steps.csv", "w", newline="")
        self._step_writer = csv.writer(self._steps)
        self._step_writer.writerow(["step", "lr", "momentum"])
        self._epochs = None
        self._epoch_writer: csv.DictWriter | None = None
        self.hparams: dict[str, Any] = {}
        log.info("csv: logging to %s", self.log_dir)

    def _write_hparams(self, **extra: Any) -> None:
        (self.log_dir / "hparams.json").write_text(
            json.dumps({"hparams": self.hparams, "group": self.group, **extra}, indent=2, default=str) + "\n")

    def start(self, hparams: Mapping[str, Any]) -> None:
        self.hparams = dict(hparams)
        self._write_hparams()

    def log_step(self, step: int, lr: float, momentum: float | None = None) -> None:
        self._step_writer.writerow([step, lr, "" if momentum is None else momentum])

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        if self._epoch_writer is None:
            self._epochs = open(self.log_dir / "epochs.csv", "w", newline="")
            self._epoch_writer = csv.DictWriter(self._epochs, fieldnames=list(row), extrasaction="ignore", restval="")
            self._epoch_writer.writeheader()
        self._epoch_writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        self._epochs.flush()
        self._steps.flush()

    def log_images(self, plots_dir: Path, step: int) -> int:
        return 0  # the PNGs are in the run folder already

    def finish(self, metrics: Mapping[str, Any]) -> None:
        self._write_hparams(final=_numbers(metrics, FINAL_KEYS))

    def close(self) -> None:
        for f in (self._steps, self._epochs):
            if f is not None and not f.closed:
                f.close()


class MLflowLogger:
    """One MLflow run per training run, through :class:`mlflow.MlflowClient` (extra ``mlflow``).

    Params: the hyper-parameters. Metrics: ``lr`` and ``momentum`` per optimizer step (sent in
    batches, once an epoch), every numeric history key per epoch (step = epoch), the final
    metrics as ``final_<key>`` (the history's per-epoch ``lr`` is ``epoch_lr``). Artifacts: ``plots/`` (every PNG). Tags: ``sweep`` = the sweep
    folder in a multirun (filter with ``tags.sweep = '...'``), ``run_dir``. The run ends
    ``FINISHED``, or ``FAILED`` when the training raised.

    Args:
        run_dir: the run folder.
        tracking_uri: e.g. ``sqlite:///mlflow.db`` or ``http://host:5000`` (MLflow 3 refuses a
            plain ``./mlruns`` file store unless ``MLFLOW_ALLOW_FILE_STORE=true``);
            null = MLflow's default (``$MLFLOW_TRACKING_URI``, else its local store).
        experiment_name: created if missing.
        artifact_location: where a new experiment keeps its artifacts (null = MLflow's default).
        run_name: null = MLflow's generated name (``job<N>`` in a sweep).
        log_steps: log the per-step LR and momentum.
        artifacts: upload ``plots/`` at the end.
        group: the sweep folder in a multirun (given by the engine).
    """

    requires = ("mlflow", "mlflow")

    def __init__(self, run_dir: str | Path, tracking_uri: str | None = None, experiment_name: str = "resnet-cli",
                 artifact_location: str | None = None, run_name: str | None = None, log_steps: bool = True,
                 artifacts: bool = True, group: str | None = None):
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        exp = self.client.get_experiment_by_name(experiment_name)
        exp_id = (exp.experiment_id if exp is not None
                  else self.client.create_experiment(experiment_name, artifact_location=artifact_location))
        tags = {"run_dir": str(Path(run_dir).resolve())}
        if group:
            tags["sweep"] = str(group)
        self.run_id = self.client.create_run(exp_id, run_name=run_name, tags=tags).info.run_id
        self.log_steps, self.artifacts = log_steps, artifacts
        self._pending: list = []
        self._status = "FAILED"  # until finish() is reached
        self._closed = False
        log.info("mlflow: run %s in experiment %r at %s", self.run_id, experiment_name, self.client.tracking_uri)

    def _flush(self) -> None:
        for i in range(0, len(self._pending), 1000):  # MLflow's log_batch limit is 1000 metrics
            self.client.log_batch(self.run_id, metrics=self._pending[i:i + 1000])
        self._pending = []

    def start(self, hparams: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in hparams.items()])

    def log_step(self, step: int, lr: float, momentum: float | None = None) -> None:
        if not self.log_steps:
            return
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        self._pending.append(Metric("lr", float(lr), ts, int(step)))
        if momentum is not None:
            self._pending.append(Metric("momentum", float(momentum), ts, int(step)))

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        import time

        from mlflow.entities import Metric

        ts, epoch = int(time.time() * 1000), int(row["epoch"])
        self._pending += [Metric(k, v, ts, epoch) for k, v in _epoch_values(row).items()]
        self._flush()

    def log_images(self, plots_dir: Path, step: int) -> int:
        if not self.artifacts or not Path(plots_dir).is_dir():
            return 0
        self.client.log_artifacts(self.run_id, str(plots_dir), artifact_path="plots")
        return len(list(Path(plots_dir).rglob("*.png")))

    def finish(self, metrics: Mapping[str, Any]) -> None:
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        self._pending += [Metric(f"final_{k}", v, ts, 0) for k, v in _numbers(metrics, FINAL_KEYS).items()]
        self._flush()
        self._status = "FINISHED"

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._flush()
            self.client.set_terminated(self.run_id, status=self._status)


class WandbLogger:
    """One Weights & Biases run per training run (extra ``wandb``), offline by default.

    ``mode: offline`` writes ``<run>/wandb/offline-run-*/`` and needs no account or network
    (upload later with ``wandb sync <folder>``); ``online`` needs ``wandb login``. Logged:
    ``config`` = the hyper-parameters; ``lr``/``momentum`` against ``step`` (optimizer step);
    every numeric history key against ``epoch``; every ``plots/*.png`` as ``plots/<name>``
    images; the final metrics in the run summary. In a multirun ``group`` is the sweep folder
    (W&B's grouping of runs).

    Args:
        run_dir: the run folder (W&B writes under ``<run_dir>/wandb``).
        project: W&B project. entity: team or user (null = the default).
        name: run name (null = W&B's generated one). mode: offline | online | disabled.
        log_steps: log the per-step LR and momentum. images: log the PNGs. max_images: at most this many.
        group: the sweep folder in a multirun (given by the engine).
    """

    requires = ("wandb", "wandb")

    def __init__(self, run_dir: str | Path, project: str = "resnet-cli", entity: str | None = None,
                 name: str | None = None, mode: str = "offline", log_steps: bool = True, images: bool = True,
                 max_images: int = 64, group: str | None = None):
        self.check({"mode": mode, "max_images": max_images})
        self.run_dir, self.group = Path(run_dir), group
        self.kw = dict(project=project, entity=entity, name=name, mode=mode)
        self.log_steps, self.images, self.max_images = log_steps, images, max_images
        self.run = None

    @staticmethod
    def check(opts: Mapping[str, Any], key: str = "logger") -> None:
        """Raises ConfigError: ``mode`` not offline/online/disabled, ``max_images`` < 0."""
        from .errors import ConfigError

        mode = opts.get("mode", "offline")
        if mode not in ("offline", "online", "disabled"):
            raise ConfigError(f"{key}.mode={mode!r} is not allowed: one of offline, online, disabled")
        v = opts.get("max_images", 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ConfigError(f"{key}.max_images={v!r} is not allowed: must be an integer >= 0")

    def start(self, hparams: Mapping[str, Any]) -> None:
        import wandb

        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(dir=str(self.run_dir), group=self.group, config=dict(hparams),
                              settings=wandb.Settings(silent=True, console="off"), **self.kw)
        self.run.define_metric("step")
        self.run.define_metric("epoch")
        for k in ("lr", "momentum"):
            self.run.define_metric(k, step_metric="step")
        log.info("wandb: %s run in %s", self.kw["mode"], self.run.dir)

    def log_step(self, step: int, lr: float, momentum: float | None = None) -> None:
        if self.run is not None and self.log_steps:
            self.run.log({"step": int(step), "lr": float(lr),
                          **({} if momentum is None else {"momentum": float(momentum)})})

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        if self.run is None:
            return
        values = _epoch_values(row)
        for k in values:
            self.run.define_metric(k, step_metric="epoch")
        self.run.log({**values, "epoch": int(row["epoch"])})

    def log_images(self, plots_dir: Path, step: int) -> int:
        if self.run is None or not self.images:
            return 0
        import wandb

        paths = _pngs(plots_dir, self.max_images, "wandb")
        images = {"plots/" + p.relative_to(plots_dir).with_suffix("").as_posix(): wandb.Image(str(p)) for p in paths}
        if images:
            self.run.log({**images, "epoch": int(step)})
        return len(images)

    def finish(self, metrics: Mapping[str, Any]) -> None:
        if self.run is not None:
            self.run.summary.update({f"final_{k}": v for k, v in _numbers(metrics, FINAL_KEYS).items()})

    def close(self) -> None:
        if self.run is not None:
            run, self.run = self.run, None
            run.finish()


def check_logger(lcfg: Mapping[str, Any] | None) -> None:
    """Check ``cfg.logger`` (:func:`resnet_cli.config.validate`, before any data loads): a dict
    of name -> tracker config, each with a ``_target_`` whose package is installed and whose
    options its class's ``check`` accepts.

    Raises:
        ConfigError: not a dict of tracker configs; a missing ``_target_``; a tracker whose
            package is missing (naming the extra: ``pip install 'resnet-cli[mlflow]'``); a bad option.
    """
    from hydra.utils import get_object

    from .errors import ConfigError

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
