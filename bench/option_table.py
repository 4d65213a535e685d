#!/usr/bin/env python
"""Issue 23's option table from finished twin-study runs: each accuracy option against the
default trained with the same range-test picks, two seeds each.

Pairs are checked, not assumed: an option's baseline must have the same ``max_lr``/``min_lr``
per seed, and an evaluation-only option (flip TTA) must come from a run whose training history
is identical to its baseline's, so that only the evaluation differs.

Usage (from the repository root)::

    python bench/option_table.py

Writes ``results/twin-study/options.md`` and ``options.json``.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

RUNS = Path(__file__).resolve().parent.parent / "results" / "twin-study" / "runs"

# (row, run prefix, metric, baseline row, same training as the baseline?)
ROWS = [
    ("default (e2)", "e-logit-anneal", "test_acc", None, False),
    ("default, picks of the o-ema/o-ls range tests", "o-ema", "test_acc", None, False),
    ("label smoothing 0.2", "o-ls", "test_acc", "default, picks of the o-ema/o-ls range tests", False),
    ("EMA of the weights, decay 0.99", "o-ema", "ema_test_acc", "default, picks of the o-ema/o-ls range tests", True),
    ("flip TTA", "o-tta", "test_acc", "default (e2)", True),
    ("EMA 0.99 + flip TTA", "o-tta", "ema_test_acc", "default (e2)", True),
]
SEEDS = (0, 1)


def load(prefix: str, seed: int) -> dict:
    folder = RUNS / f"{prefix}-s{seed}"
    m = json.loads((folder / "metrics.json").read_text())
    with open(folder / "history.csv") as f:
        m["train_losses"] = [row["train_loss"] for row in csv.DictReader(f)]
    return m


def main() -> int:
    rows, by_name = [], {}
    for name, prefix, metric, base, same_training in ROWS:
        runs = [load(prefix, s) for s in SEEDS]
        row = {"option": name, "runs": [f"{prefix}-s{s}" for s in SEEDS], "metric": metric,
               "acc": [100 * r[metric] for r in runs], "max_lr": [r["max_lr"] for r in runs]}
        row["mean"] = statistics.mean(row["acc"])
        if base is not None:
            b, b_runs = by_name[base]
            for r, br in zip(runs, b_runs):
                if (r["max_lr"], r["min_lr"]) != (br["max_lr"], br["min_lr"]):
                    raise SystemExit(f"{name}: range-test picks differ from {base}'s; not a pair")
                if same_training and r["train_losses"] != br["train_losses"]:
                    raise SystemExit(f"{name}: training history differs from {base}'s; not the same weights")
            row.update(baseline=base, baseline_mean=b["mean"], delta=row["mean"] - b["mean"],
                       same_weights=same_training)
        by_name[name] = (row, runs)
        rows.append(row)
    out = RUNS.parent
    (out / "options.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| option | runs (metric) | max_lr s0 / s1 | test_acc % s0 / s1 | mean | against | difference (pts) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        against = "-" if "baseline" not in r else r["baseline"] + (", same training run" if r["same_weights"] else "")
        delta = "-" if "delta" not in r else f"{r['delta']:+.2f}"
        lines.append(f"| {r['option']} | {r['runs'][0][:-3]} ({r['metric']}) | {r['max_lr'][0]:.3g} / {r['max_lr'][1]:.3g} "
                     f"| {r['acc'][0]:.2f} / {r['acc'][1]:.2f} | {r['mean']:.2f} | {against} | {delta} |")
    (out / "options.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
