"""How a run ended, as its ``metrics.json`` says (``status``, ``error``): the run writes its own
statuses (:mod:`resnet_cli.core.run_folder`); a job ending on an exception gets :func:`record_status`
from the entry points' failure path; a sweep reads jobs back with :func:`read_metrics_json`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..core.run_folder import read_metrics_json  # noqa: F401 - the sweep tables read jobs with it

log = logging.getLogger("resnet_cli")


def record_status(run_dir: str | Path | None, status: str, error: str, exit_code: int) -> None:
    """Set ``status`` (``failed``/``interrupted``), ``error`` (one line) and ``exit_code`` in
    ``run_dir/metrics.json`` unless the run wrote a final status itself; nothing when ``run_dir``
    is None (torchrun ranks > 0); a failed write is logged, not raised."""
    if run_dir is None:
        return
    from ..core.checkpoint import write_json
    from ..errors import OutputError

    path = Path(run_dir) / "metrics.json"
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        data = {}  # unreadable: replaced by the status record
    if not isinstance(data, dict):
        data = {}
    if data.get("status") not in (None, "running"):
        return
    data.update(status=status, error=error, exit_code=exit_code)
    try:
        write_json(path, data)
    except (OSError, OutputError) as e:
        log.error("cannot record status %s in %s: %s", status, path, e)
