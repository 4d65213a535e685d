"""``logger=mlflow``: :class:`MLflowLogger` (extra ``mlflow``, imported when the tracker starts); named
so as not to stand in for the ``mlflow`` package."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

from .common import FINAL_KEYS, epoch_values, numbers

log = logging.getLogger("resnet_cli")


def _metrics(values: Mapping[str, float], step: int) -> list:
    """MLflow ``Metric`` entities stamped now (imported here: a run without MLflow never loads it)."""
    from mlflow.entities import Metric

    ts = int(time.time() * 1000)
    return [Metric(k, float(v), ts, int(step)) for k, v in values.items()]


class MLflowLogger:
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
        if self.log_steps:
            self._pending += _metrics({"lr": lr, **({} if momentum is None else {"momentum": momentum})}, step)

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        self._pending += _metrics(epoch_values(row), row["epoch"])
        self._flush()

    def log_images(self, plots_dir: Path, step: int) -> int:
        if not self.artifacts or not Path(plots_dir).is_dir():
            return 0
        self.client.log_artifacts(self.run_id, str(plots_dir), artifact_path="plots")
        return len(list(Path(plots_dir).rglob("*.png")))

    def finish(self, metrics: Mapping[str, Any]) -> None:
        self._pending += _metrics({f"final_{k}": v for k, v in numbers(metrics, FINAL_KEYS).items()}, 0)
        self._flush()
        self._status = "FINISHED"

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._flush()
            self.client.set_terminated(self.run_id, status=self._status)
