"""``logger=mlflow``: :class:`MLflowLogger`, one MLflow run per training run through
``mlflow.MlflowClient`` (extra ``mlflow``; imported when the tracker starts, so a run without it
never loads MLflow). Named ``mlflow_logger`` so that it never stands in for the ``mlflow`` package."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from .common import FINAL_KEYS, epoch_values, numbers

log = logging.getLogger("resnet_cli")


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
        self._pending += [Metric(k, v, ts, epoch) for k, v in epoch_values(row).items()]
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
        self._pending += [Metric(f"final_{k}", v, ts, 0) for k, v in numbers(metrics, FINAL_KEYS).items()]
        self._flush()
        self._status = "FINISHED"

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._flush()
            self.client.set_terminated(self.run_id, status=self._status)
