"""``resnet-gradcam``: class-wise accuracy, confusion matrix, misclassified images and Grad-CAM
for a trained checkpoint, written into a run folder of its own (``outputs/gradcam/<date>/<time>``).

The model, class names, normalisation (mean/std) and image size are rebuilt from the checkpoint
alone (:func:`resnet_cli.checkpoint.model_from_checkpoint`); the test split is re-read from the
checkpoint's absolute ``data.root`` with the run's seed and ``data.test_subset``
(:func:`resnet_cli.data.load_test_split`), so the figures describe the images the run was
evaluated on. With ``images=[...]`` the user's own images are explained instead. The work is
:func:`resnet_cli.evaluation.explain_checkpoint`; this module is the Hydra entry point.

Examples::

    resnet-gradcam ckpt=outputs/2024-05-01/12-00-00/checkpoints/last.pt
    resnet-gradcam ckpt=.../last.pt method=gradcam++ layers=[layer3] target=true count=8
    resnet-gradcam ckpt=.../last.pt images=[cat.png,plane.jpg]

Run folder::

    metrics.json          status, test_acc/test_loss (fractions 0-1), class_acc, confusion (rows = true)
    model_summary.txt     torchinfo layer table
    plots/misclassified.png, plots/confusion_matrix.png, plots/gradcam/*.png (+ grid.png)
    predictions.json      images mode only: top-3 classes and probabilities (0-1) per image
    gradcam.log
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from .composition import config_dir
from .config_schema import register_configs
from .entry import run_hydra, task_wrapper
from .job import JobInfo

log = logging.getLogger("resnet_cli")


register_configs()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="gradcam")
@task_wrapper
def hydra_main(cfg: DictConfig, run_dir: Path, job: JobInfo) -> float | None:
    """Explain ``cfg.ckpt`` into the Hydra run folder ``run_dir``; returns test_acc (fraction
    0-1), or None in images mode. Failures: :func:`resnet_cli.entry.task_wrapper`."""
    from .evaluation import explain_checkpoint

    log.info("resnet-gradcam %s", " ".join(f"{k}={v}" for k, v in OmegaConf.to_container(cfg, resolve=True).items()))
    return explain_checkpoint(cfg, run_dir).get("test_acc")


def main() -> None:
    """The ``resnet-gradcam`` console script: :func:`hydra_main` with config errors (unknown key,
    wrong type) as one line and exit 2 (:func:`resnet_cli.entry.run_hydra`)."""
    run_hydra(hydra_main)


if __name__ == "__main__":
    main()
