"""``resnet-predict``: top-k classes and probabilities for your own images from a checkpoint (timm's
``inference.py``) into its own run folder (``outputs/predict/<date>/<time>``: predictions.csv,
predictions.json, predict.log; examples in README.md). The work is
:func:`resnet_cli.diagnostics.inference.predict_checkpoint`; this module is the Hydra entry point.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from .composition import config_dir
from .schema import register_configs
from .entry import run_hydra, task_wrapper
from .job import JobInfo

register_configs()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="predict")
@task_wrapper
def hydra_main(cfg: DictConfig, run_dir: Path, job: JobInfo) -> int:
    """Predict ``cfg.images`` with ``cfg.ckpt`` into ``run_dir``; returns the number of images predicted."""
    from ..diagnostics.inference import PredictRequest, predict_checkpoint

    request = PredictRequest(**OmegaConf.to_container(cfg, resolve=True))
    return len(predict_checkpoint(request, run_dir)["predictions"])


def main() -> None:
    """The ``resnet-predict`` console script (config errors as one line, exit 2)."""
    run_hydra(hydra_main)
