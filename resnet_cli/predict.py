"""``resnet-predict``: top-k classes and probabilities for your own images from a checkpoint
(timm's ``inference.py``), into a run folder of its own (``outputs/predict/<date>/<time>``).

Examples::

    resnet-predict ckpt=outputs/2024-05-01/12-00-00/checkpoints/last.pt images=[cat.png,plane.jpg]
    resnet-predict ckpt=.../last.pt images=[photos/] topk=5          # every image under a folder
    resnet-predict ckpt=.../last.pt "images=['shots/**/*.jpg']" device=cuda batch_size=1024

Run folder::

    predictions.csv     path, class_1, p_1, ..., class_k, p_k, error (probabilities: fractions 0-1)
    predictions.json    {"predictions": [{"path", "top": [{"class", "p"}, ...]}], "errors": [{"path", "error"}]}
    predict.log

The work is :func:`resnet_cli.inference.predict_checkpoint`; this module is the Hydra entry point.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from .composition import config_dir
from .config_schema import register_configs
from .entry import run_hydra, task_wrapper
from .job import JobInfo

log = logging.getLogger("resnet_cli")


register_configs()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="predict")
@task_wrapper
def hydra_main(cfg: DictConfig, run_dir: Path, job: JobInfo) -> int:
    """Predict ``cfg.images`` with ``cfg.ckpt`` into the Hydra run folder ``run_dir``; returns the
    number of images predicted. Failures: :func:`resnet_cli.entry.task_wrapper`."""
    from .inference import predict_checkpoint

    return len(predict_checkpoint(cfg, run_dir)["predictions"])


def main() -> None:
    """The ``resnet-predict`` console script (config errors as one line, exit 2)."""
    run_hydra(hydra_main)
