"""``resnet-train``: the Hydra entry point for the whole recipe (see :func:`resnet_cli.engine.run`).

Examples::

    resnet-train                                   # LR range test + 24 epochs One Cycle
    resnet-train scheduler.max_epoch=5 trainer.epochs=10
    resnet-train data=image_folder data.root=../shared/data/cifar10-jpeg
    resnet-train -m scheduler.max_lr=0.05,0.1,0.2 scheduler.min_lr=0.005
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .cli import config_dir, user_errors
from .config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Run the recipe into the Hydra run folder; returns the final ``test_acc`` (fraction 0-1),
    for sweepers that optimise it, or None when the job failed."""
    from .engine import run

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with user_errors(run_dir):
        return float(run(cfg, run_dir).metrics["test_acc"])
    return None


if __name__ == "__main__":
    main()
