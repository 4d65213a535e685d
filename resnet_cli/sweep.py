"""Multirun sweeps: one summary for all jobs, and failing jobs that do not stop the sweep.

``resnet-train -m scheduler.max_lr=0.02,0.05,0.1 seed=0,1,2`` runs one job per combination
(any Hydra launcher: the default sequential one, ``hydra/launcher=joblib``, ``submitit_local``,
``submitit_slurm``; or a sweeper such as ``hparams_search=max_lr_optuna``). When the sweep ends,
the :class:`SweepSummary` callback (registered under ``hydra.callbacks`` in ``conf/train.yaml``,
run by Hydra's ``on_multirun_end``) reads every job folder of the sweep and writes, into the
sweep folder:

* ``sweep_summary.csv`` - one row per job: job (sub-folder), overrides (the swept ones), one
  column per swept key, test_acc, train_acc, test_loss (last epoch; accuracies are fractions
  0-1), max_lr, min_lr (the LRs actually used), epochs_done, train_seconds, status
  (completed | failed | diverged | interrupted) and error.
* ``sweep_summary.md`` - the same table (accuracies in percent), a table grouped over seeds
  (mean, std, min, max of test accuracy per setting) and Optuna's best parameters if any.
* ``sweep_summary.png`` - test accuracy (percent) against each swept numeric key: mean over
  seeds with a +-1 std bar, individual jobs as dots, one line per setting of the other keys.

and prints the table with rich. ``python -m resnet_cli.sweep <sweep folder>`` writes the same
files again, e.g. for a sweep whose launcher stopped early.

A job is found by its ``.hydra/overrides.yaml`` (or its ``metrics.json``) below the sweep folder.
Its row comes from its ``metrics.json``; a job with none, or one left at status ``running``,
was killed and is reported as failed.

Failures: in multirun mode :func:`job_failures` turns an unexpected exception in a job into
``status: failed`` plus ``error: "<Type>: <message>"`` in its metrics.json (the traceback goes
to the job's log) and returns normally, so the launcher goes on with the other jobs. (Hydra 1.3
itself records a raising job as ``JobStatus.FAILED``, but the sweeper re-raises it after the
batch - ``BasicSweeper.sweep`` reads every ``JobReturn.return_value`` - which would end the sweep
before ``on_multirun_end``.) User errors (:class:`~resnet_cli.errors.UserError`) are recorded the
same way by :func:`resnet_cli.cli.user_errors`. A failed job returns None, which Optuna records
as a failed trial.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import statistics
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("resnet_cli")

COLUMNS = ("test_acc", "train_acc", "test_loss", "max_lr", "min_lr", "epochs_done", "train_seconds", "status", "error")
"""Columns after ``job``, ``overrides`` and the swept keys, in order."""

SEED_KEY = "seed"
FAILED = "failed"


# -- failures inside a job ---------------------------------------------------------------------

def record_failure(run_dir: Path | None, error: str) -> None:
    """Mark the job in ``run_dir`` as failed in its metrics.json, keeping what the run wrote.

    A metrics.json with status ``running`` (or none) becomes ``failed`` with ``error``; a status
    the run set itself (diverged, interrupted, failed) is kept and ``error`` added if missing.
    Nothing is written when ``run_dir`` is None (ranks other than 0).
    """
    if run_dir is None:
        return
    from .checkpoint import write_json

    path = Path(run_dir) / "metrics.json"
    metrics: dict[str, Any] = {}
    if path.is_file():
        try:
            metrics = json.loads(path.read_text())
        except (OSError, ValueError):
            metrics = {}
    if metrics.get("status") in (None, "running", "completed"):
        metrics["status"] = FAILED
    metrics.setdefault("error", error)
    try:
        write_json(path, metrics)
    except OSError as e:  # the job is failing already; say so and go on
        log.error("cannot record the failure in %s: %s", path, e)


@contextmanager
def job_failures(run_dir: Path | None) -> Iterator[None]:
    """In a multirun job, record an unexpected exception as a failed job and let the sweep go on.

    Outside multirun mode, or with ``HYDRA_FULL_ERROR=1``, the exception propagates unchanged
    (Hydra prints it and the command exits non-zero). In multirun mode the traceback is logged
    (the job's ``train.log``), ``metrics.json`` gets ``status: failed`` and
    ``error: "<Type>: <message>"`` (:func:`record_failure`) and the block exits normally.
    ``KeyboardInterrupt``/``SystemExit`` are never caught here.
    """
    from .cli import _is_multirun, full_error

    try:
        yield
    except Exception as e:  # noqa: BLE001 - a job's failure is data in a sweep
        if not _is_multirun() or full_error():  # full_error: the user's HYDRA_FULL_ERROR (run_hydra sets it)
            raise
        message = f"{type(e).__name__}: {e}".strip()
        log.exception("job failed: %s", message)
        record_failure(run_dir, message)
        _count_in_cli_report(run_dir)


def _count_in_cli_report(run_dir: Path | None) -> None:
    """Count this job in :func:`resnet_cli.cli.run_hydra`'s end-of-sweep failure report (exit
    code 1, as for an unhandled exception), where that report exists in this process."""
    from . import cli

    state = getattr(cli, "_state", None)
    if isinstance(state, dict) and isinstance(state.get("sweep_failures"), list):
        state["sweep_failures"].append((run_dir, 1))


# -- reading a sweep folder --------------------------------------------------------------------

def _natural(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def find_jobs(sweep_dir: Path) -> list[Path]:
    """Job folders below ``sweep_dir`` (holding ``.hydra/overrides.yaml`` or ``metrics.json``),
    in natural order (0, 1, ..., 10)."""
    sweep_dir = Path(sweep_dir)
    found = {p.parent.parent for p in sweep_dir.glob("**/.hydra/overrides.yaml")}
    found |= {p.parent for p in sweep_dir.glob("**/metrics.json")}
    found.discard(sweep_dir)
    found = {d for d in found if ".submitit" not in d.relative_to(sweep_dir).parts}
    return sorted(found, key=lambda d: _natural(d.relative_to(sweep_dir).as_posix()))


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``["scheduler.max_lr=0.05", "+a.b=4", "model=resnet18"]`` -> ``{"scheduler.max_lr": 0.05,
    "a.b": 4, "model": "resnet18"}``, values parsed by Hydra's override grammar (numbers become
    int/float). Overrides that do not parse are split at the first ``=``."""
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
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    try:
        return [str(s) for s in (OmegaConf.to_container(OmegaConf.load(path)) or [])]
    except Exception:  # noqa: BLE001 - unreadable: no overrides
        return []


def _status_and_error(metrics: dict[str, Any] | None, job: str) -> tuple[str, str]:
    if metrics is None:
        return FAILED, f"no metrics.json: the job did not start or was killed (see {job}/ for its log)"
    status = str(metrics.get("status") or FAILED)
    error = str(metrics.get("error") or "")
    if status == "running":
        return FAILED, error or f"stopped with {metrics.get('epochs_done', 0)} epoch(s) done and no final status (killed?)"
    if not error and status == "diverged" and metrics.get("diverged_at"):
        at = metrics["diverged_at"]
        error = f"loss became non-finite at epoch {at.get('epoch')} step {at.get('step')}"
    if not error and status == "interrupted" and metrics.get("interrupted_at"):
        at = metrics["interrupted_at"]
        error = f"{at.get('signal')} at epoch {at.get('epoch')} step {at.get('step')}"
    return status, error


@dataclass
class SweepSummaryResult:
    """What :func:`summarize` found and wrote.

    Attributes:
        rows: one dict per job (keys: job, overrides, the swept keys, then :data:`COLUMNS`).
        swept: override keys whose value differs between jobs (all keys if only one job).
        paths: the files written (csv, md, png).
    """

    sweep_dir: Path
    rows: list[dict[str, Any]]
    swept: list[str]
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] != "completed"]


def collect(sweep_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows (one per job, see :class:`SweepSummaryResult`) and swept keys of a sweep folder."""
    sweep_dir = Path(sweep_dir)
    jobs = []
    for d in find_jobs(sweep_dir):
        name = d.relative_to(sweep_dir).as_posix()
        raw = _job_overrides(d)
        metrics = None
        if (d / "metrics.json").is_file():
            try:
                metrics = json.loads((d / "metrics.json").read_text())
            except (OSError, ValueError) as e:
                metrics = {"status": FAILED, "error": f"unreadable metrics.json ({e})"}
        jobs.append((name, raw, parse_overrides(raw), metrics))
    keys: list[str] = []
    for _, _, parsed, _ in jobs:
        keys += [k for k in parsed if k not in keys]
    if len(jobs) > 1:
        swept = [k for k in keys if len({json.dumps(p.get(k), sort_keys=True, default=str) for _, _, p, _ in jobs}) > 1]
    else:
        swept = keys
    rows = []
    for name, raw, parsed, metrics in jobs:
        status, error = _status_and_error(metrics, name)
        m = metrics or {}
        shown = [s for s in raw if parse_overrides([s]).keys() & set(swept)]
        row: dict[str, Any] = {"job": name, "overrides": " ".join(shown)}
        row.update({k: parsed.get(k) for k in swept})
        row.update({
            "test_acc": m.get("test_acc"), "train_acc": m.get("train_acc"), "test_loss": m.get("test_loss"),
            "max_lr": m.get("max_lr"), "min_lr": m.get("min_lr"), "epochs_done": m.get("epochs_done"),
            "train_seconds": m.get("train_seconds"), "status": status, "error": error,
        })
        rows.append(row)
    return rows, swept


# -- grouping over seeds -----------------------------------------------------------------------

def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def numeric_keys(rows: Sequence[dict], swept: Sequence[str]) -> list[str]:
    """Swept keys whose values are numbers in every completed job (``seed`` last)."""
    done = [r for r in rows if r["status"] == "completed"]
    keys = [k for k in swept if done and all(_is_number(r.get(k)) for r in done)]
    return sorted(keys, key=lambda k: k == SEED_KEY)


def group_over_seeds(rows: Sequence[dict], swept: Sequence[str]) -> list[dict[str, Any]]:
    """One record per setting of the swept keys other than ``seed``: ``setting`` (text),
    ``jobs``, ``completed``, and mean/std/min/max of test_acc over its completed jobs
    (std: sample standard deviation, 0 for one job; None when none completed)."""
    others = [k for k in swept if k != SEED_KEY]
    groups: dict[str, list[dict]] = {}
    for r in rows:
        setting = " ".join(f"{k}={r.get(k)}" for k in others) or "(all jobs)"
        groups.setdefault(setting, []).append(r)
    out = []
    for setting, members in groups.items():
        accs = [r["test_acc"] for r in members if r["status"] == "completed" and _is_number(r.get("test_acc"))]
        out.append({
            "setting": setting, "jobs": len(members), "completed": len(accs),
            "mean": statistics.fmean(accs) if accs else None,
            "std": statistics.stdev(accs) if len(accs) > 1 else (0.0 if accs else None),
            "min": min(accs) if accs else None, "max": max(accs) if accs else None,
        })
    return out


# -- output ------------------------------------------------------------------------------------

def _fmt(key: str, v: Any) -> str:
    if v is None or v == "":
        return "-"
    if key in ("test_acc", "train_acc", "mean", "std", "min", "max") and _is_number(v):
        return f"{100 * v:.2f}%"
    if key in ("max_lr", "min_lr", "test_loss") and _is_number(v):
        return f"{v:.4g}"
    if key == "train_seconds" and _is_number(v):
        return f"{v:.1f}"
    return str(v)


def write_csv(path: Path, rows: Sequence[dict], swept: Sequence[str]) -> Path:
    """Rows as CSV (raw values: accuracies are fractions 0-1, empty cells for missing values)."""
    fields = ["job", "overrides", *swept, *COLUMNS]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
    return path


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_markdown(path: Path, sweep_dir: Path, rows: Sequence[dict], swept: Sequence[str]) -> Path:
    """The per-job table, the table grouped over seeds and Optuna's result (if any) as Markdown."""
    cols = ["job", "overrides", *COLUMNS]
    done = sum(r["status"] == "completed" for r in rows)
    parts = [f"# Sweep summary: {sweep_dir}", "",
             f"{len(rows)} jobs, {done} completed, {len(rows) - done} not completed. "
             "Accuracies are of the last epoch, in percent.", "",
             _md_table(cols, [[_fmt(c, r.get(c)) for c in cols] for r in rows])]
    groups = group_over_seeds(rows, swept)
    if SEED_KEY in swept or any(g["jobs"] > 1 for g in groups):
        parts += ["", "## Test accuracy over seeds", "",
                  _md_table(["setting", "jobs", "completed", "mean", "std", "min", "max"],
                            [[g["setting"], g["jobs"], g["completed"], *(_fmt(k, g[k]) for k in ("mean", "std", "min", "max"))]
                             for g in groups])]
    optuna = Path(sweep_dir) / "optimization_results.yaml"
    if optuna.is_file():
        parts += ["", "## Optuna", "", "```yaml", optuna.read_text().strip(), "```"]
    Path(path).write_text("\n".join(parts) + "\n")
    return Path(path)


LOG_KEYS = ("max_lr", "min_lr", "lr", "weight_decay", "start_lr", "end_lr")
"""Swept keys drawn on a log x axis in sweep_summary.png."""


def plot_summary(rows: Sequence[dict], swept: Sequence[str]):
    """Figure: test accuracy (percent) against each swept numeric key (``seed`` only when it is
    the only one). Per key, jobs are grouped by the other non-seed swept keys (one line each, up
    to 8 settings; beyond that all jobs are pooled); each point is the mean over seeds with a
    +-1 std bar, dots are single jobs. Log x axis when the values span a factor of 20 or more.
    With no numeric key, a bar per job."""
    from matplotlib.figure import Figure

    done = [r for r in rows if r["status"] == "completed" and _is_number(r.get("test_acc"))]
    nums = numeric_keys(rows, swept)
    keys = [k for k in nums if k != SEED_KEY] or nums
    fig = Figure(figsize=(5.5 * max(1, len(keys)), 4.2), layout="constrained")
    if not done:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no completed jobs", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    if not keys:
        ax = fig.add_subplot(1, 1, 1)
        ax.bar([r["job"] for r in done], [100 * r["test_acc"] for r in done], color="tab:blue")
        ax.set(xlabel="job", ylabel="test accuracy (%)", title="test accuracy per job")
        return fig
    for i, key in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), i + 1)
        others = [k for k in swept if k not in (key, SEED_KEY)]
        series: dict[str, list[dict]] = {}
        for r in done:
            label = ", ".join(f"{k}={r.get(k)}" for k in others)
            series.setdefault(label, []).append(r)
        if len(series) > 8:
            series = {"all jobs": done}
        for j, (label, members) in enumerate(series.items()):
            color = f"C{j % 10}"
            by_x: dict[float, list[float]] = {}
            for r in members:
                by_x.setdefault(float(r[key]), []).append(100 * r["test_acc"])
            xs = sorted(by_x)
            means = [statistics.fmean(by_x[x]) for x in xs]
            stds = [statistics.stdev(by_x[x]) if len(by_x[x]) > 1 else 0.0 for x in xs]
            ax.errorbar(xs, means, yerr=stds, fmt="-o", color=color, capsize=3, label=label or None)
            ax.scatter([float(r[key]) for r in members], [100 * r["test_acc"] for r in members],
                       color=color, alpha=0.35, s=14)
        xs_all = [float(r[key]) for r in done]
        # LRs and weight decay are swept in ratios: log axis; other keys when they span >= 20x
        if min(xs_all) > 0 and (key.rsplit(".", 1)[-1] in LOG_KEYS or max(xs_all) / min(xs_all) >= 20):
            ax.set_xscale("log")
        spread = "mean ± std over seeds" if SEED_KEY in swept and key != SEED_KEY else "per job"
        ax.set(xlabel=key, ylabel="test accuracy (%)", title=f"test accuracy vs {key} ({spread})")
        if any(series):
            ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    return fig


def rich_table(rows: Sequence[dict], title: str):
    """The per-job table as a :class:`rich.table.Table` (failed rows in red)."""
    from rich.table import Table

    t = Table(title=title)
    for c in ("job", "overrides", "status", "test_acc", "train_acc", "max_lr", "min_lr", "train_seconds", "error"):
        t.add_column(c, justify="right" if c in ("test_acc", "train_acc", "max_lr", "min_lr", "train_seconds") else "left",
                     overflow="fold")
    for r in rows:
        err = r.get("error") or ""
        t.add_row(*(_fmt(c, r.get(c)) for c in ("job", "overrides", "status", "test_acc", "train_acc",
                                                  "max_lr", "min_lr", "train_seconds")),
                  err[:200] + ("..." if len(err) > 200 else ""),
                  style=None if r["status"] == "completed" else "red")
    return t


def summarize(sweep_dir: str | Path, name: str = "sweep_summary", plot: bool = True, console=None) -> SweepSummaryResult:
    """Read every job of ``sweep_dir`` and write ``<name>.csv``, ``<name>.md`` and (``plot``)
    ``<name>.png`` into it; print the table on ``console`` (default: a rich Console on stdout).

    Raises:
        FileNotFoundError: ``sweep_dir`` is not a folder.
    """
    from rich.console import Console

    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep folder not found: {sweep_dir}")
    rows, swept = collect(sweep_dir)
    result = SweepSummaryResult(sweep_dir, rows, swept)
    result.paths["csv"] = write_csv(sweep_dir / f"{name}.csv", rows, swept)
    result.paths["md"] = write_markdown(sweep_dir / f"{name}.md", sweep_dir, rows, swept)
    if plot:
        from .plots import save_figure

        result.paths["png"] = save_figure(plot_summary(rows, swept), sweep_dir / f"{name}.png")
    # a terminal: its width; a pipe or file (CI logs, Slurm output): wide enough for the table
    console = console or Console(width=None if sys.stdout.isatty() else 200)
    done = len(rows) - len(result.failed)
    console.print(rich_table(rows, f"sweep {sweep_dir}"))
    console.print(f"{done}/{len(rows)} jobs completed; summary: {', '.join(str(p) for p in result.paths.values())}",
                  soft_wrap=True)
    if result.failed:
        log.warning("%d of %d jobs did not complete: %s", len(result.failed), len(rows),
                    ", ".join(f"{r['job']} ({r['status']})" for r in result.failed))
    return result


class SweepSummary(Callback):
    """Hydra callback: after a multirun (``on_multirun_end``), :func:`summarize` its sweep folder.

    Registered in ``conf/train.yaml``::

        hydra:
          callbacks:
            sweep_summary:
              _target_: resnet_cli.sweep.SweepSummary
              name: sweep_summary   # file stem
              plot: true

    Single runs are not affected. If writing the summary fails, the error is logged with the
    command that retries it and re-raised (the jobs' own results are already on disk).
    """

    def __init__(self, name: str = "sweep_summary", plot: bool = True) -> None:
        self.name, self.plot = name, plot

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            result = summarize(sweep_dir, self.name, self.plot)
        except Exception:
            log.error("could not write the sweep summary; retry with: python -m resnet_cli.sweep %s", sweep_dir)
            raise
        _report_to_cli(result)


def _report_to_cli(result: SweepSummaryResult) -> None:
    """Add the jobs that did not complete to :func:`resnet_cli.cli.run_hydra`'s end-of-sweep report
    (which then exits non-zero), where that report exists. Jobs run in other processes (joblib,
    submitit) are only known here, from their folders; they count with exit code 1 unless the
    job was already counted in this process."""
    from . import cli

    state = getattr(cli, "_state", None)
    if not (isinstance(state, dict) and isinstance(state.get("sweep_failures"), list)):
        return
    known = {Path(d).resolve() for d, _ in state["sweep_failures"] if d is not None}
    for r in result.failed:
        d = (result.sweep_dir / r["job"]).resolve()
        if d not in known:
            state["sweep_failures"].append((d, 1))
    if isinstance(state.get("sweep_jobs"), int):
        state["sweep_jobs"] = max(state["sweep_jobs"], len(result.rows))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m resnet_cli.sweep SWEEP_DIR [--name NAME] [--no-plot]``: (re)write the summary."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m resnet_cli.sweep", description=main.__doc__)
    p.add_argument("sweep_dir", type=Path, help="a multirun folder, e.g. outputs/multirun/2024-01-01/12-00-00")
    p.add_argument("--name", default="sweep_summary", help="file stem of the summary files")
    p.add_argument("--no-plot", action="store_true", help="skip sweep_summary.png")
    a = p.parse_args(argv)
    try:
        summarize(a.sweep_dir, a.name, not a.no_plot)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())


# -- checking every job before the first trains ----------------------------------------------

def sweep_job_overrides(args: Sequence[str]) -> list[list[str]] | None:
    """The override list of every job of a discrete sweep (``a=1,2 b=x,y``: the Cartesian
    product, as Hydra's basic sweeper builds it), or None when a sweep cannot be listed ahead
    (``interval(...)`` ranges, a sweeper such as ``hparams_search=...``). Flags are ignored.

    Raises:
        hydra.errors.OverrideParseException: an override Hydra's grammar cannot parse.
    """
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser

    given = [a for a in args if not a.startswith("-")]
    if any(a.lstrip("+~").startswith("hparams_search=") for a in given):
        return None
    choices = []
    for o in OverridesParser.create().parse_overrides(given):
        if not o.is_sweep_override():
            choices.append([o.input_line])
        elif o.is_discrete_sweep():
            prefix = o.input_line.split("=", 1)[0]
            choices.append([f"{prefix}={v}" for v in o.sweep_string_iterator()])
        else:
            return None
    return [list(job) for job in itertools.product(*choices)]


def check_sweep(args: Sequence[str], max_jobs: int = 1000) -> int:
    """Compose and validate the config of every job of a ``-m`` sweep before any job trains;
    returns the number of jobs checked (0 when the sweep cannot be listed ahead or has more
    than ``max_jobs`` jobs: each job then checks its own config when it starts).

    Raises:
        ConfigError: one line naming the first bad job (number and overrides) and the problem.
    """
    from hydra.errors import HydraException

    from .api import compose
    from .cli import composition_message
    from .errors import ConfigError

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
            cause = e.__cause__
            message = composition_message(cause, job) if cause is not None else str(e)
            which = " ".join(job[i] for i in swept) or " ".join(job)
            raise ConfigError(f"sweep job {num} ({which}): {message}; no job was started") from None
    return len(jobs)
