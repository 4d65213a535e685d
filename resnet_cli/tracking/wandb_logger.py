"""``logger=wandb``: :class:`WandbLogger` (extra ``wandb``, imported when the run starts); named so as
not to stand in for the ``wandb`` package."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from .common import Tracker, epoch_values, final_values, plot_images, step_values

log = logging.getLogger("resnet_cli")


class WandbLogger(Tracker):
    """One W&B run per training run (https://docs.wandb.ai/ref/python/init/): ``config``, ``lr``/``momentum``
    against ``step``, the history against ``epoch``, ``plots/*.png`` as images, the final metrics in the
    summary. ``mode: offline`` writes ``<run>/wandb/offline-run-*/`` (no account; ``wandb sync`` uploads);
    ``online`` needs ``wandb login``. ``entity``/``name`` null: W&B's defaults; ``group``: the sweep folder.
    Raises ConfigError: ``mode`` not offline/online/disabled, ``max_images`` < 0.
    """

    requires = ("wandb", "wandb")
    choices = {"mode": ("offline", "online", "disabled")}
    int_options = {"max_images": 0}

    def __init__(self, run_dir: str | Path, project: str = "resnet-cli", entity: str | None = None,
                 name: str | None = None, mode: str = "offline", log_steps: bool = True, images: bool = True,
                 max_images: int = 64, group: str | None = None):
        self.check({"mode": mode, "max_images": max_images})
        self.run_dir, self.group = Path(run_dir), group
        self.kw = dict(project=project, entity=entity, name=name, mode=mode)
        self.log_steps, self.images, self.max_images = log_steps, images, max_images
        self.run = None

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
            self.run.log({"step": int(step), **step_values(lr, momentum)})

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        if self.run is None:
            return
        values = epoch_values(row)
        for k in values:
            self.run.define_metric(k, step_metric="epoch")
        self.run.log({**values, "epoch": int(row["epoch"])})

    def log_images(self, plots_dir: Path, step: int) -> int:
        if self.run is None or not self.images:
            return 0
        import wandb

        images = {tag: wandb.Image(str(p)) for tag, p in plot_images(plots_dir, self.max_images, "wandb").items()}
        if images:
            self.run.log({**images, "epoch": int(step)})
        return len(images)

    def finish(self, metrics: Mapping[str, Any]) -> None:
        if self.run is not None:
            self.run.summary.update(final_values(metrics))

    def close(self) -> None:
        if self.run is not None:
            run, self.run = self.run, None
            run.finish()
