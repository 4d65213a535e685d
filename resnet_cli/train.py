"""``resnet-train``: the Hydra entry point for the whole recipe (see :func:`resnet_cli.engine.run`).

Examples::

    resnet-train                                   # LR range test + 24 epochs One Cycle
    resnet-train scheduler.max_epoch=5 trainer.epochs=10
    resnet-train data=image_folder data.root=../shared/data/cifar10-jpeg
    resnet-train -m scheduler.max_lr=0.05,0.1,0.2 scheduler.min_lr=0.005
    torchrun --standalone --nproc_per_node=2 -m resnet_cli.train trainer.device=cuda   # DDP
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # the command's start, for metrics.json's timings (before the heavy imports)

from pathlib import Path  # noqa: E402

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from .cli import config_dir, run_hydra, user_errors  # noqa: E402
from .config import register_configs  # noqa: E402

register_configs()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """Run the recipe into the Hydra run folder; returns the final ``test_acc`` (fraction 0-1),
    for sweepers that optimise it, or None when the job failed."""
    from .config import validate
    from .distributed import env_world, process_group
    from .sweep import job_failures

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    files = run_dir if env_world().is_main else None  # under torchrun only rank 0 records
    # job_failures: in a sweep, an unexpected exception fails this job only (sweep.py)
    with job_failures(files), user_errors(files, cfg):
        if not cfg.get("resume"):  # a typo fails here, before the engine's heavy imports (resume: the engine validates the merged config)
            validate(cfg)
        with process_group(cfg.trainer.device):
            from .engine import run

            # a sweep's later jobs count from their own start
            started = STARTED if HydraConfig.get().job.get("num", 0) in (0, None) else None
            return float(run(cfg, run_dir, started=started).metrics["test_acc"])
    return None


def main() -> None:
    """The ``resnet-train`` console script: :func:`hydra_main` with config errors as one line, exit 2
    (:func:`resnet_cli.cli.run_hydra`)."""
    import sys

    from .distributed import hydra_overrides_for_rank

    sys.argv += hydra_overrides_for_rank()  # torchrun ranks > 0: no run folder, log or .hydra/ of their own
    if {"-m", "--multirun"} & set(sys.argv[1:]):  # every job's config is checked before the first trains
        from .cli import exit_with
        from .errors import ConfigError
        from .sweep import check_sweep

        try:
            check_sweep(sys.argv[1:])
        except ConfigError as e:
            exit_with(str(e), e.exit_code)
    run_hydra(hydra_main)


if __name__ == "__main__":
    main()
