"""``resnet-gradcam``: class-wise accuracy, confusion matrix, misclassified images and Grad-CAM for a
trained checkpoint (or ``images=[...]``), rebuilt from the checkpoint alone, into its own run folder
(``outputs/gradcam/<date>/<time>``; layout and examples in README.md). The work is
:func:`resnet_cli.diagnostics.evaluation.explain_checkpoint`; this module is the Hydra entry point.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from .composition import config_dir
from .schema import register_configs
from .entry import run_hydra, task_wrapper
from .job import JobInfo

log = logging.getLogger("resnet_cli")

register_configs()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="gradcam")
@task_wrapper
def hydra_main(cfg: DictConfig, run_dir: Path, job: JobInfo) -> float | None:
    """Explain ``cfg.ckpt`` into ``run_dir``; returns test_acc (fraction 0-1), or None in images mode."""
    from ..diagnostics.evaluation import ExplainRequest, explain_checkpoint

    plain = OmegaConf.to_container(cfg, resolve=True)
    log.info("resnet-gradcam %s", " ".join(f"{k}={v}" for k, v in plain.items()))
    return explain_checkpoint(ExplainRequest(**plain), run_dir).get("test_acc")


def main() -> None:
    """The ``resnet-gradcam`` console script (config errors as one line, exit 2)."""
    run_hydra(hydra_main)


if __name__ == "__main__":
    main()
