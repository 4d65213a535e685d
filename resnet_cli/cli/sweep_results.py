"""What a finished sweep folder holds: one row per job (from its ``metrics.json``; none, or one left at
``running``, is a killed job, reported as failed) and test accuracy grouped over seeds. A completed job
whose health check warns (exploded test loss, chance accuracy) has ``health`` ``did not learn``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from omegaconf import OmegaConf

from .run_status import read_metrics_json

COLUMNS = ("test_acc", "train_acc", "test_loss", "max_lr", "min_lr", "epochs_done", "train_seconds", "status",
           "health", "error")  # after job, overrides and the swept keys

LEARNED, NOT_LEARNED = "learned", "did not learn"

SEED_KEY = "seed"
FAILED = "failed"


def _natural(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def find_jobs(sweep_dir: Path) -> list[Path]:
    """Job folders below ``sweep_dir`` (with ``.hydra/overrides.yaml``, ``metrics.json`` or a job's log
    ``*.log``, so a job stopped before its first record counts too), in natural order; a folder inside
    another job folder (a tracker's logs) is part of that job."""
    sweep_dir = Path(sweep_dir)
    found = {p.parent.parent for p in sweep_dir.glob("**/.hydra/overrides.yaml")}
    found |= {p.parent for pattern in ("**/metrics.json", "**/*.log") for p in sweep_dir.glob(pattern)}
    found.discard(sweep_dir)
    found = {d for d in found if ".submitit" not in d.relative_to(sweep_dir).parts}
    # a tracker's own folders inside a job (wandb/offline-run-*/logs) are part of that job
    found = {d for d in found if not any(p in found for p in d.parents if p != sweep_dir and sweep_dir in p.parents)}
    return sorted(found, key=lambda d: _natural(d.relative_to(sweep_dir).as_posix()))


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``["scheduler.max_lr=0.05", "+a.b=4"]`` -> ``{"scheduler.max_lr": 0.05, "a.b": 4}`` (Hydra's override
    grammar; one that does not parse is split at the first ``=``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    out: dict[str, Any] = {}
    for s in overrides:
        try:
            o = parser.parse_override(s)
            if o.is_delete():
                continue
            out[o.key_or_group] = o.value()
        except Exception:  # noqa: BLE001 - fall back to the raw text
            key, _, value = s.lstrip("+~").partition("=")
            out[key] = value
    return out


def _job_overrides(job_dir: Path) -> list[str]:
    try:
        return [str(s) for s in OmegaConf.load(job_dir / ".hydra" / "overrides.yaml") or []]
    except Exception:  # noqa: BLE001 - missing or unreadable: no overrides
        return []


def _status_and_error(metrics: dict[str, Any] | None, job: str) -> tuple[str, str]:
    if metrics is None:
        return FAILED, f"no metrics.json: the job did not start or was killed (see {job}/ for its log)"
    status = str(metrics.get("status") or FAILED)
    error = str(metrics.get("error") or "")
    if status == "running":
        done = metrics.get("epochs_done", 0)
        return FAILED, error or f"stopped with {done} epoch(s) done and no final status (killed?)"
    if not error and status == "diverged" and metrics.get("diverged_at"):
        at = metrics["diverged_at"]
        error = f"loss became non-finite at epoch {at.get('epoch')} step {at.get('step')}"
    if not error and status == "interrupted" and metrics.get("interrupted_at"):
        at = metrics["interrupted_at"]
        error = f"{at.get('signal')} at epoch {at.get('epoch')} step {at.get('step')}"
    return status, error


def health_of(metrics: dict[str, Any] | None) -> tuple[str, list[str]]:
    """``("learned" | "did not learn", warnings)`` of a completed job
    (:func:`resnet_cli.core.run_folder.health_warnings`); ``("", [])`` for one that did not complete."""
    m = metrics or {}
    if m.get("status") != "completed":
        return "", []
    from ..core.run_folder import health_warnings

    classes = (m.get("dataset") or {}).get("classes") or []
    history = [h for h in m.get("history") or [] if isinstance(h, dict) and "test_loss" in h]
    warnings = health_warnings(history, len(classes), m.get("max_lr")) if classes and history else []
    return (NOT_LEARNED if warnings else LEARNED), warnings


def shown_status(row: dict[str, Any]) -> str:
    """The status as the md/console tables show it (``completed (did not learn)``)."""
    return f"{row['status']} ({NOT_LEARNED})" if row.get("health") == NOT_LEARNED else str(row["status"])


@dataclass
class SweepSummaryResult:
    """What :func:`resnet_cli.cli.sweep_report.summarize` found and wrote: ``rows`` (job, overrides, swept keys,
    :data:`COLUMNS`), ``swept`` (keys whose value differs between jobs; all of one job), ``paths`` written."""

    sweep_dir: Path
    rows: list[dict[str, Any]]
    swept: list[str]
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] != "completed"]

    @property
    def not_learned(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("health") == NOT_LEARNED]


def collect(sweep_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows (one per job, see :class:`SweepSummaryResult`) and swept keys of a sweep folder."""
    sweep_dir = Path(sweep_dir)
    jobs = []
    for d in find_jobs(sweep_dir):
        raw = _job_overrides(d)
        jobs.append((d.relative_to(sweep_dir).as_posix(), raw, parse_overrides(raw), read_metrics_json(d)))
    keys = list(dict.fromkeys(k for _, _, parsed, _ in jobs for k in parsed))  # in order of appearance
    swept = [k for k in keys if len(jobs) == 1  # one job: all its keys
             or len({json.dumps(p.get(k), sort_keys=True, default=str) for _, _, p, _ in jobs}) > 1]
    rows = []
    for name, raw, parsed, metrics in jobs:
        status, error = _status_and_error(metrics, name)
        health, warnings = health_of(metrics)
        error = error or "; ".join(warnings)
        m = metrics or {}
        shown = [s for s in raw if parse_overrides([s]).keys() & set(swept)]
        # COLUMNS fills the metric keys; status and error then overwrite theirs in place (dict order kept)
        rows.append({"job": name, "overrides": " ".join(shown), **{k: parsed.get(k) for k in swept},
                     **{k: m.get(k) for k in COLUMNS}, "status": status, "health": health, "error": error})
    return rows, swept


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def numeric_keys(rows: Sequence[dict], swept: Sequence[str]) -> list[str]:
    """Swept keys whose values are numbers in every completed job (``seed`` last)."""
    done = [r for r in rows if r["status"] == "completed"]
    keys = [k for k in swept if done and all(is_number(r.get(k)) for r in done)]
    return sorted(keys, key=lambda k: k == SEED_KEY)


def group_over_seeds(rows: Sequence[dict], swept: Sequence[str]) -> list[dict[str, Any]]:
    """Per setting of the swept keys but ``seed``: ``setting``, ``jobs``, ``completed`` and mean/std/min/max
    of test_acc over its completed jobs (sample std, 0 for one job; None when none completed)."""
    import pandas as pd

    others = [k for k in swept if k != SEED_KEY]
    settings = pd.Series([" ".join(f"{k}={r.get(k)}" for k in others) or "(all jobs)" for r in rows], dtype=object)
    accs = pd.Series([r["test_acc"] if r["status"] == "completed" and is_number(r.get("test_acc")) else None
                      for r in rows], dtype=float)
    t = accs.groupby(settings, sort=False).agg(["size", "count", "mean", "std", "min", "max"])
    t["std"] = t["std"].mask(t["count"] == 1, 0.0)
    return [{"setting": setting, "jobs": int(g["size"]), "completed": int(g["count"]),
             **{k: None if pd.isna(g[k]) else float(g[k]) for k in ("mean", "std", "min", "max")}}
            for setting, g in t.iterrows()]
