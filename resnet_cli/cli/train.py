"""``resnet-train``: the Hydra entry point for the whole recipe (:func:`resnet_cli.engine.run`); under
torchrun: ``torchrun --standalone --nproc_per_node=2 -m resnet_cli.cli.train trainer.device=cuda``."""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # the command's start, for metrics.json's timings (before the heavy imports)

from pathlib import Path  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from .composition import config_dir  # noqa: E402
from .entry import run_hydra, task_wrapper  # noqa: E402
from .schema import register_configs  # noqa: E402
from .job import JobInfo  # noqa: E402

register_configs()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
@task_wrapper
def hydra_main(cfg: DictConfig, run_dir: Path, job: JobInfo) -> float:
    """Run the recipe into ``run_dir``; returns the final ``test_acc`` (fraction 0-1) for sweepers
    (None for a failed job of a sweep: :func:`resnet_cli.cli.entry.task_wrapper`)."""
    from .checks import validate
    from ..core.distributed import process_group

    # a typo fails here, before the engine's heavy imports (resume: build_recipe validates the merged config)
    if not cfg.get("resume"):
        validate(cfg)
    with process_group(cfg.trainer.device, multirun=job.multirun):
        from ..engine import run
        from .build import build_recipe

        # a sweep's later jobs count from their own start
        result = run(build_recipe(cfg), run_dir, started=STARTED if job.first else None, job=job)
        return float(result.metrics["test_acc"])


def main() -> None:
    """The ``resnet-train`` console script (:func:`resnet_cli.cli.entry.run_hydra`)."""
    import sys

    from ..core.distributed import hydra_overrides_for_rank

    sys.argv += hydra_overrides_for_rank()  # torchrun ranks > 0: no run folder, log or .hydra/ of their own
    if {"-m", "--multirun"} & set(sys.argv[1:]):  # every job's config is checked before the first trains
        from ..errors import ConfigError, exit_with
        from .sweep import check_sweep

        try:
            check_sweep(sys.argv[1:])
        except ConfigError as e:
            exit_with(str(e), e.exit_code)
    run_hydra(hydra_main)


if __name__ == "__main__":
    main()
