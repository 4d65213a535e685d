"""The report of a finished sweep (:func:`summarize`), from the rows of
:func:`resnet_cli.cli.sweep_results.collect`: ``sweep_summary.csv`` (one row per job, raw values, accuracies
as fractions 0-1), ``sweep_summary.md`` (the same in percent, test accuracy grouped over seeds, Optuna's
result if any), ``sweep_summary.png`` (test accuracy against each swept numeric key) and the table
printed with rich.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from .sweep_results import (COLUMNS, NOT_LEARNED, SEED_KEY, SweepSummaryResult, collect, group_over_seeds, is_number,
                            numeric_keys, shown_status)

log = logging.getLogger("resnet_cli")

LOG_KEYS = ("max_lr", "min_lr", "lr", "weight_decay", "start_lr", "end_lr")  # log x axis in sweep_summary.png
PERCENT_KEYS = ("test_acc", "train_acc", "mean", "std", "min", "max")


def _fmt(key: str, v: Any) -> str:
    if v is None or v == "":
        return "-"
    if not is_number(v):
        return str(v)
    if key in PERCENT_KEYS:
        return f"{100 * v:.2f}%"
    if key in ("max_lr", "min_lr", "test_loss"):
        return f"{v:.4g}"
    return f"{v:.1f}" if key == "train_seconds" else str(v)


def table(rows: Sequence[dict], columns: Sequence[str]) -> pd.DataFrame:
    """The rows as a DataFrame of ``columns`` (object dtype: an int stays an int beside a missing value)."""
    return pd.DataFrame(list(rows), columns=list(columns), dtype=object)


def _md_table(rows: Sequence[dict], columns: Sequence[str], **replace: list) -> str:
    """The rows as a Markdown table of display strings (:func:`_fmt`; ``replace``: column -> its cells
    instead), ``|`` escaped, one line per row."""
    frame = table(rows, columns).apply(lambda col: col.map(lambda v: _fmt(str(col.name), v))).assign(**replace)
    cells = frame.map(lambda v: str(v).replace("|", "\\|").replace("\n", " "))
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)])


def write_markdown(path: Path, sweep_dir: Path, rows: Sequence[dict], swept: Sequence[str]) -> Path:
    """The per-job table, the table grouped over seeds and Optuna's result (if any) as Markdown."""
    cols = ["job", "overrides", *(c for c in COLUMNS if c != "health")]  # the status says "(did not learn)"
    done = sum(r["status"] == "completed" for r in rows)
    bad = sum(r.get("health") == NOT_LEARNED for r in rows)
    parts = [f"# Sweep summary: {sweep_dir}", "",
             f"{len(rows)} jobs, {done} completed{f' ({bad} did not learn)' if bad else ''}, "
             f"{len(rows) - done} not completed. Accuracies are of the last epoch, in percent.", "",
             _md_table(rows, cols, status=[shown_status(r) for r in rows])]
    groups = group_over_seeds(rows, swept)
    if SEED_KEY in swept or any(g["jobs"] > 1 for g in groups):
        parts += ["", "## Test accuracy over seeds", "",
                  _md_table(groups, ["setting", "jobs", "completed", "mean", "std", "min", "max"])]
    optuna = Path(sweep_dir) / "optimization_results.yaml"
    if optuna.is_file():
        parts += ["", "## Optuna", "", "```yaml", optuna.read_text().strip(), "```"]
    Path(path).write_text("\n".join(parts) + "\n")
    return Path(path)


def _accuracies(rows: Sequence[dict], key: str) -> pd.Series:
    """Test accuracy (percent) of ``rows``, indexed by their value of ``key``."""
    return pd.Series([100 * r["test_acc"] for r in rows], index=[float(r[key]) for r in rows])


def plot_summary(rows: Sequence[dict], swept: Sequence[str]):
    """Figure: test accuracy (percent) against each swept numeric key, one line per setting of the other
    keys (up to 8), mean over seeds with a +-1 std bar, dots for single jobs; a bar per job with no
    numeric key."""
    from matplotlib.figure import Figure

    done = [r for r in rows if r["status"] == "completed" and is_number(r.get("test_acc"))]
    bad = [r for r in done if r.get("health") == NOT_LEARNED]
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
        ax.bar([r["job"] for r in done], [100 * r["test_acc"] for r in done],
               color=["tab:red" if r in bad else "tab:blue" for r in done])
        ax.set(xlabel="job", ylabel="test accuracy (%)", title="test accuracy per job")
        return fig
    for i, key in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), i + 1)
        others = [k for k in swept if k not in (key, SEED_KEY)]
        series: dict[str, list[dict]] = {}
        for r in done:
            series.setdefault(", ".join(f"{k}={r.get(k)}" for k in others), []).append(r)
        if len(series) > 8:
            series = {"all jobs": done}
        for j, (label, members) in enumerate(series.items()):
            acc = _accuracies(members, key)
            by_x = acc.groupby(level=0).agg(["mean", "std"]).fillna({"std": 0.0})  # sorted by x; one job: std 0
            ax.errorbar(by_x.index, by_x["mean"], yerr=by_x["std"], fmt="-o", color=f"C{j % 10}", capsize=3,
                        label=label or None)
            ax.scatter(acc.index, acc.values, color=f"C{j % 10}", alpha=0.35, s=14)
        if bad:
            acc = _accuracies(bad, key)
            ax.scatter(acc.index, acc.values, marker="x", s=60, color="tab:red", zorder=5,
                       label=f"did not learn ({len(bad)})")
        xs = _accuracies(done, key).index
        # LRs and weight decay are swept in ratios: log axis; other keys when they span >= 20x
        if min(xs) > 0 and (key.rsplit(".", 1)[-1] in LOG_KEYS or max(xs) / min(xs) >= 20):
            ax.set_xscale("log")
        spread = "mean ± std over seeds" if SEED_KEY in swept and key != SEED_KEY else "per job"
        ax.set(xlabel=key, ylabel="test accuracy (%)", title=f"test accuracy vs {key} ({spread})")
        if any(series) or bad:
            ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    return fig


def rich_table(rows: Sequence[dict], title: str):
    """The per-job table as a :class:`rich.table.Table` (failed rows red, jobs that did not learn yellow)."""
    from rich.table import Table

    numeric = ("test_acc", "train_acc", "max_lr", "min_lr", "train_seconds")
    t = Table(title=title)
    for c in ("job", "overrides", "status", *numeric, "error"):
        t.add_column(c, justify="right" if c in numeric else "left", overflow="fold")
    for r in rows:
        err = r.get("error") or ""
        style = "red" if r["status"] != "completed" else "yellow" if r.get("health") == NOT_LEARNED else None
        t.add_row(_fmt("job", r.get("job")), _fmt("overrides", r.get("overrides")), shown_status(r),
                  *(_fmt(c, r.get(c)) for c in numeric), err[:200] + ("..." if len(err) > 200 else ""), style=style)
    return t


def summarize(sweep_dir: str | Path, name: str = "sweep_summary", plot: bool = True,
              console=None) -> SweepSummaryResult:
    """Write ``<name>.csv``, ``.md`` and (``plot``) ``.png`` into ``sweep_dir``; print the table on
    ``console`` (default: a rich Console on stdout).

    Raises:
        FileNotFoundError: ``sweep_dir`` is not a folder.
    """
    from rich.console import Console

    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep folder not found: {sweep_dir}")
    rows, swept = collect(sweep_dir)
    result = SweepSummaryResult(sweep_dir, rows, swept)
    # raw values: accuracies are fractions 0-1, empty cells for missing values
    table(rows, ["job", "overrides", *swept, *COLUMNS]).to_csv(sweep_dir / f"{name}.csv", index=False)
    result.paths["csv"] = sweep_dir / f"{name}.csv"
    result.paths["md"] = write_markdown(sweep_dir / f"{name}.md", sweep_dir, rows, swept)
    if plot:
        from ..diagnostics.plots import save_figure

        result.paths["png"] = save_figure(plot_summary(rows, swept), sweep_dir / f"{name}.png")
    # a terminal: its width; a pipe or file (CI logs, Slurm output): wide enough for the table
    console = console or Console(width=None if sys.stdout.isatty() else 200)
    console.print(rich_table(rows, f"sweep {sweep_dir}"))
    bad, failed = result.not_learned, result.failed
    not_learned = f" ({len(bad)} did not learn)" if bad else ""
    console.print(f"{len(rows) - len(failed)}/{len(rows)} jobs completed{not_learned}; "
                  f"summary: {', '.join(str(p) for p in result.paths.values())}", soft_wrap=True)
    if bad:
        log.warning("%d completed job(s) did not learn: %s", len(bad),
                    ", ".join(f"{r['job']} ({r['error']})" for r in bad))
    if failed:
        log.warning("%d of %d jobs did not complete: %s", len(failed), len(rows),
                    ", ".join(f"{r['job']} ({r['status']})" for r in failed))
    return result
