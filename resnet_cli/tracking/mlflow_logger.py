"""``logger=mlflow``: :class:`MLflowLogger` (extra ``mlflow``, imported when the tracker starts); named
so as not to stand in for the ``mlflow`` package."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

from .common import Tracker, epoch_values, final_values, step_values

log = logging.getLogger("resnet_cli")

STORE_SCHEMES = ("", "file", "http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks",
                 "databricks-uc", "uc")  # MLflow's tracking stores (a dialect may follow "+", e.g. mysql+pymysql)
CONNECT_TIMEOUT = 3.0  # seconds an http(s) tracking server gets to accept a connection before training


def _metrics(values: Mapping[str, float], step: int) -> list:
    """MLflow ``Metric`` entities stamped now (imported here: a run without MLflow never loads it)."""
    from mlflow.entities import Metric

    ts = int(time.time() * 1000)
    return [Metric(k, float(v), ts, int(step)) for k, v in values.items()]


class MLflowLogger(Tracker):
    """One MLflow run per training run (https://mlflow.org/docs/latest/python_api/mlflow.client.html):
    params, ``lr``/``momentum`` per step (sent once an epoch), the history per epoch, ``final_<key>``,
    ``plots/`` as artifacts, tags ``sweep`` and ``run_dir``; ends ``FINISHED``, or ``FAILED`` if training raised.

    Args:
        tracking_uri: e.g. ``sqlite:///mlflow.db`` or ``http://host:5000`` (MLflow 3 refuses a plain
            ``./mlruns`` file store unless ``MLFLOW_ALLOW_FILE_STORE=true``); null = ``$MLFLOW_TRACKING_URI``.
        experiment_name: created if missing, with ``artifact_location`` (null = MLflow's default).
        run_name: null = MLflow's generated name.
        group: the sweep folder in a multirun (tag ``sweep``).
    """

    requires = ("mlflow", "mlflow")

    def __init__(self, run_dir: str | Path, tracking_uri: str | None = None, experiment_name: str = "resnet-cli",
                 artifact_location: str | None = None, run_name: str | None = None, log_steps: bool = True,
                 artifacts: bool = True, group: str | None = None):
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        exp = self.client.get_experiment_by_name(experiment_name)
        if exp is None:
            exp = self.client.get_experiment(
                self.client.create_experiment(experiment_name, artifact_location=artifact_location))
        tags = {"run_dir": str(Path(run_dir).resolve()), **({"sweep": str(group)} if group else {})}
        self.run_id = self.client.create_run(exp.experiment_id, run_name=run_name, tags=tags).info.run_id
        self.log_steps, self.artifacts = log_steps, artifacts
        if artifacts and artifact_location is None and urlparse(str(exp.artifact_location)).scheme in ("", "file"):
            # MLflow's default local store is ./mlruns of whatever folder the command ran in: keep the
            # plots in the run folder instead (tag run_dir) unless the user names a store
            self.artifacts = False
            log.info("mlflow: plots stay in %s/plots (no upload to the local default %s); set "
                     "logger.mlflow.artifact_location=<store> to upload them", Path(run_dir), exp.artifact_location)
        self._pending: list = []
        self._status = "FAILED"  # until finish() is reached
        self._closed = False
        log.info("mlflow: run %s in experiment %r at %s", self.run_id, experiment_name, self.client.tracking_uri)

    @staticmethod
    def check(opts: Mapping[str, Any], key: str = "logger") -> None:
        """Before any data is read: the tracking URI's scheme is one MLflow stores, and an http(s)
        server answers a TCP connection within :data:`CONNECT_TIMEOUT` seconds.

        Raises:
            ConfigError: naming ``<key>.tracking_uri``, its value and the fix.
        """
        import os
        import socket

        from ..errors import ConfigError

        uri = opts.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            return
        where = f"{key}.tracking_uri={uri}" if opts.get("tracking_uri") else f"MLFLOW_TRACKING_URI={uri}"
        parts = urlparse(str(uri))
        if parts.scheme.split("+")[0] not in STORE_SCHEMES and not (len(parts.scheme) == 1 and os.name == "nt"):
            raise ConfigError(f"{where} is not allowed: MLflow has no store for {parts.scheme}://; use "
                              "http://host:port (a server), sqlite:///<file>.db or postgresql://...")
        if parts.scheme in ("http", "https"):
            port = parts.port or (443 if parts.scheme == "https" else 80)
            try:
                socket.create_connection((parts.hostname or "localhost", port), timeout=CONNECT_TIMEOUT).close()
            except OSError as e:
                raise ConfigError(f"{where}: no MLflow server answers at {parts.hostname}:{port} "
                                  f"({e.strerror or type(e).__name__}); start it (mlflow server --port {port}) "
                                  f"or choose another {key}.tracking_uri") from None

    def _flush(self) -> None:
        for i in range(0, len(self._pending), 1000):  # MLflow's log_batch limit is 1000 metrics
            self.client.log_batch(self.run_id, metrics=self._pending[i:i + 1000])
        self._pending = []

    def start(self, hparams: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in hparams.items()])

    def log_step(self, step: int, lr: float, momentum: float | None = None) -> None:
        if self.log_steps:
            self._pending += _metrics(step_values(lr, momentum), step)

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        self._pending += _metrics(epoch_values(row), row["epoch"])
        self._flush()

    def log_images(self, plots_dir: Path, step: int) -> int:
        if not self.artifacts or not Path(plots_dir).is_dir():
            return 0
        self.client.log_artifacts(self.run_id, str(plots_dir), artifact_path="plots")
        return len(list(Path(plots_dir).rglob("*.png")))

    def finish(self, metrics: Mapping[str, Any]) -> None:
        self._pending += _metrics(final_values(metrics), 0)
        self._flush()
        self._status = "FINISHED"

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._flush()
            self.client.set_terminated(self.run_id, status=self._status)
