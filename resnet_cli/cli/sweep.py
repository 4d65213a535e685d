"""Multirun sweeps (any Hydra launcher or sweeper): :func:`check_sweep` checks every job's config before
the first trains; a failing job is recorded and the sweep goes on (:func:`resnet_cli.cli.entry.task_wrapper`);
at the end :class:`SweepSummary` writes ``sweep_summary.csv``/``.md``/``.png`` from the jobs' folders and
exits with the largest exit code of the failed jobs. ``python -m resnet_cli.cli.sweep <sweep folder>``
writes the summary again.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("resnet_cli")


def sweep_job_overrides(args: Sequence[str]) -> list[list[str]] | None:
    """The overrides of every job of a discrete sweep, built by Hydra's basic sweeper, or None when it
    cannot be listed ahead (``interval(...)``, ``hparams_search=...``).

    Raises:
        hydra.errors.OverrideParseException: an override Hydra's grammar cannot parse.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    given = [a for a in args if not a.startswith("-")]
    if any(a.lstrip("+~").startswith("hparams_search=") for a in given):
        return None
    overrides = OverridesParser.create().parse_overrides(given)
    try:
        return BasicSweeper.split_arguments(overrides, max_batch_size=None)[0]
    except HydraException:  # a range or a glob only a sweeper or the config loader expands
        return None


def check_sweep(args: Sequence[str], max_jobs: int = 1000) -> int:
    """Compose and validate every job's config of a ``-m`` sweep; returns the number of jobs checked
    (0 when it cannot be listed ahead or has more than ``max_jobs``: each job then checks its own).

    Raises:
        ConfigError: one line naming the first bad job (number and overrides) and the problem.
    """
    from hydra.errors import HydraException

    from .composition import compose
    from .error_messages import composition_message
    from ..errors import ConfigError

    try:
        jobs = sweep_job_overrides(args)
    except HydraException:
        return 0  # Hydra reports the unparsable override itself
    if not jobs or len(jobs) > max_jobs:
        return 0
    swept = [i for i, vals in enumerate(zip(*jobs)) if len(set(vals)) > 1]
    for num, job in enumerate(jobs):
        try:
            compose(job)
        except ConfigError as e:
            message = composition_message(e.__cause__, job) if e.__cause__ is not None else str(e)
            which = " ".join(job[i] for i in swept) or " ".join(job)
            raise ConfigError(f"sweep job {num} ({which}): {message}; no job was started") from None
    return len(jobs)


def exit_on_failed_jobs(sweep_dir: str | Path) -> None:
    """If jobs did not complete, print ``error: N of M sweep jobs failed ...`` and exit with the largest
    of their codes (:func:`resnet_cli.errors.exit_code_of`); return when every job completed."""
    from ..errors import exit_code_of, exit_with
    from .run_status import read_metrics_json
    from .sweep_results import find_jobs

    jobs = find_jobs(Path(sweep_dir))
    failed = {d.resolve(): code for d in jobs if (code := exit_code_of(read_metrics_json(d)))}
    if failed:
        dirs = ", ".join(map(str, list(failed)[:3])) + (" ..." if len(failed) > 3 else "")
        codes = ", ".join(map(str, sorted(set(failed.values()))))
        exit_with(f"{len(failed)} of {len(jobs)} sweep jobs failed (exit codes {codes}): see metrics.json in {dirs}",
                  max(failed.values()))


class SweepSummary(Callback):
    """Hydra callback (``hydra.callbacks`` in ``conf/train.yaml``): ``on_multirun_end`` summarizes the
    sweep folder (:func:`resnet_cli.cli.sweep_report.summarize`), then :func:`exit_on_failed_jobs`.
    Callbacks listed before it (Hydra runs them in reverse order) do not run after failed jobs.
    https://hydra.cc/docs/experimental/callbacks/
    """

    def __init__(self, name: str = "sweep_summary", plot: bool = True) -> None:
        self.name, self.plot = name, plot

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from .sweep_report import summarize

        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            summarize(sweep_dir, self.name, self.plot)
        except Exception:
            log.exception("could not write the sweep summary; retry with: python -m resnet_cli.cli.sweep %s", sweep_dir)
            raise  # Hydra shows it as a warning
        finally:
            exit_on_failed_jobs(sweep_dir)  # the jobs' records decide the exit code either way


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m resnet_cli.cli.sweep SWEEP_DIR [--name NAME] [--no-plot]``: (re)write the summary."""
    import argparse

    from ..errors import EXIT_BAD_INPUT
    from .sweep_report import summarize

    p = argparse.ArgumentParser(prog="python -m resnet_cli.cli.sweep", description=main.__doc__)
    p.add_argument("sweep_dir", type=Path, help="a multirun folder, e.g. outputs/multirun/2024-01-01/12-00-00")
    p.add_argument("--name", default="sweep_summary", help="file stem of the summary files")
    p.add_argument("--no-plot", action="store_true", help="skip sweep_summary.png")
    a = p.parse_args(argv)
    try:
        summarize(a.sweep_dir, a.name, not a.no_plot)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
