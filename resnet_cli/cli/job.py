"""Where a run sits in its command: the entry points ask Hydra's runtime once
(:func:`resnet_cli.cli.entry.hydra_job`) and pass a :class:`JobInfo` down; nothing below asks Hydra."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JobInfo:
    """One job of a command; the default is a single run (what the Python API passes).

    ``multirun``: a job of a Hydra multirun (``-m`` or a sweeper). ``first``: a single run or job 0,
    where what is shown once per command is shown. ``sweep_dir``: the absolute ``hydra.sweep.dir`` in
    a multirun, else None (the trackers' group).
    """

    multirun: bool = False
    first: bool = True
    sweep_dir: str | None = None
