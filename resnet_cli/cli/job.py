"""Where a run sits in its command: the entry points ask Hydra's runtime once
(:func:`resnet_cli.cli.entry.hydra_job`) and pass a :class:`~resnet_cli.core.settings.JobInfo` down;
nothing below asks Hydra."""

from ..core.settings import JobInfo  # noqa: F401
