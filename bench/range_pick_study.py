#!/usr/bin/env python
"""How far the range test's pick moves with the seed, and whether a cheaper test picks the same LRs.

Runs ``bench/range_test.py`` (the range test of ``resnet-train``, alone) for each entry of
:data:`RUNS` whose ``<results>/<name>/range_test.json`` does not exist yet, one at a time, so a
stopped study picks up where it was; after each it rewrites ``<results>/table.md`` and
``table.json``. The full test is the default job's (batch 512, 485 warm-up steps, five epochs of
compute); the cheap one takes the same 485 steps at batch 128 (a quarter of the images per step).
Its picks are shown as they are, and scaled to batch 512 by sqrt(512/128) = 2 and by 512/128 = 4
(the square-root and linear batch-size rules), against the full test's spread over seeds.

Usage (from the repository root; takes about an hour on 2 CPU cores, so start it with nohup)::

    nohup python bench/range_pick_study.py --data-root ../shared/data/cifar10-jpeg \\
        --results results/range-pick >> results/range-pick/study.log 2>&1 &
    python bench/range_pick_study.py --data-root ... --results results/range-pick --table-only

``--code`` runs the tests with another checkout's ``resnet_cli`` (a git worktree), so edits in
this one never reach a running test. Runs already recorded elsewhere (a full job's range test,
``extra`` in ``table.json``) can be added with ``--extra name=path/to/range_test.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMON = ["augment.backend=gpu", "trainer.eval_every=4"]
CHEAP = ["data.batch_size=128", "lr_finder.num_iter=485"]
RUNS = [  # name, family, seed, overrides after the data; seeds 0 and 1 of the full test come from full jobs
    ("full-b512-s2", "full", 2, []),          # (--extra), so they are re-run here last
    *[(f"cheap-b128-s{s}", "cheap", s, CHEAP) for s in (0, 1, 2)],
    *[(f"full-b512-s{s}", "full", s, []) for s in (1, 0)],
]


def run(name: str, seed: int, overrides: list[str], args) -> None:
    out = args.results / name
    cmd = [sys.executable, str((args.code or ROOT) / "bench" / "range_test.py"), "--out", str(out), "data=image_folder",
           f"data.root={args.data_root}", f"seed={seed}", *COMMON, *overrides]
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(cmd[1:])} (load {os.getloadavg()[0]:.1f})", flush=True)
    env = {**os.environ, "PYTHONPATH": str(args.code or ROOT)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    (out / "stderr.txt").parent.mkdir(parents=True, exist_ok=True)
    (out / "stderr.txt").write_text(proc.stderr[-20000:])
    print(f"[{time.strftime('%H:%M:%S')}] {name}: exit {proc.returncode} (load {os.getloadavg()[0]:.1f})", flush=True)


def table(results: Path, extra: dict[str, Path]) -> None:
    """table.json/table.md: each run's picks, the full test's mean and spread, the cheap test's
    picks as they are and scaled by 2 and by 4."""
    rows = []
    for name, family, seed, _ in RUNS:
        f = results / name / "range_test.json"
        if f.is_file():
            r = json.loads(f.read_text())
            rows.append({"name": name, "family": family, "seed": seed, "max_lr": r["max_lr"], "min_lr": r["min_lr"],
                         "seconds": r["seconds"], "steps": r["steps"], "batch_size": r["batch_size"]})
    for name, path in extra.items():
        r = json.loads(Path(path).read_text())
        tail = name.rsplit("-s", 1)[-1]
        rows.append({"name": name, "family": "full", "seed": int(tail) if tail.isdigit() else None, "max_lr": r["max_lr"], "min_lr": r["min_lr"],
                     "seconds": r.get("seconds"), "steps": len(r.get("lrs", [])) or r.get("steps"),
                     "batch_size": 512, "source": str(path)})
    full = [r for r in rows if r["family"] == "full"]
    cheap = [r for r in rows if r["family"] == "cheap"]

    def stats(values: list[float]) -> dict:
        return {"mean": statistics.mean(values), "min": min(values), "max": max(values),
                "std": statistics.stdev(values) if len(values) > 1 else None} if values else {}

    summary = {"full_max_lr": stats([r["max_lr"] for r in full]), "full_min_lr": stats([r["min_lr"] for r in full]),
               **{f"cheap_max_lr_x{k}": stats([k * r["max_lr"] for r in cheap]) for k in (1, 2, 4)},
               **{f"cheap_min_lr_x{k}": stats([k * r["min_lr"] for r in cheap]) for k in (1, 2, 4)}}
    (results / "table.json").write_text(json.dumps({"runs": rows, "summary": summary}, indent=1) + "\n")
    fmt = lambda v: "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"
    lines = ["| run | seed | batch | steps | max_lr | min_lr | max_lr x2 | max_lr x4 | minutes |", "|---" * 9 + "|"]
    for r in rows:
        k = 1 if r["family"] == "full" else None
        lines.append(f"| {r['name']} | {fmt(r['seed'])} | {r['batch_size']} | {r['steps']} | {fmt(r['max_lr'])} | "
                     f"{fmt(r['min_lr'])} | {'-' if k else fmt(2 * r['max_lr'])} | {'-' if k else fmt(4 * r['max_lr'])} | "
                     f"{fmt(r['seconds'] / 60 if r['seconds'] else None)} |")
    lines += ["", "| picks | mean | min | max | std |", "|---|---|---|---|---|"]
    for key, s in summary.items():
        if s:
            lines.append(f"| {key} | {fmt(s['mean'])} | {fmt(s['min'])} | {fmt(s['max'])} | {fmt(s['std'])} |")
    (results / "table.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", required=True, type=Path)
    ap.add_argument("--results", type=Path, default=ROOT / "results" / "range-pick")
    ap.add_argument("--code", type=Path, default=None, help="checkout whose resnet_cli runs the tests")
    ap.add_argument("--extra", action="append", default=[], help="name=path of a range_test.json recorded elsewhere")
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args(argv)
    args.data_root = args.data_root.resolve()
    args.results.mkdir(parents=True, exist_ok=True)
    extra = dict(e.split("=", 1) for e in args.extra)
    for name, _, seed, overrides in RUNS:
        if not args.table_only and not (args.results / name / "range_test.json").is_file():
            run(name, seed, overrides, args)
        table(args.results, extra)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
