"""Where a run sits in its command, as plain values: the entry points ask Hydra's runtime once
(:func:`resnet_cli.entry.hydra_job`) and pass a :class:`JobInfo` down; nothing below asks Hydra."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JobInfo:
    """One job of a command. The default is a single run (and what the Python API passes).

    ``multirun``: a job of a Hydra multirun sweep (``-m``, or a sweeper such as Optuna).
    ``first``: a single run or job 0 of a sweep; what is shown once per command is shown there.
    ``sweep_dir``: the sweep folder (``hydra.sweep.dir``, absolute) in a multirun, else None; the
    group under which experiment trackers file the sweep's jobs (:mod:`resnet_cli.loggers`).
    """

    multirun: bool = False
    first: bool = True
    sweep_dir: str | None = None
