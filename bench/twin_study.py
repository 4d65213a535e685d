#!/usr/bin/env python
"""The LR-policy study on the CPU twin of the recipe (issue 19): 24-epoch runs of
``experiment=cpu_twin``, one per policy and seed, each result committed as it ends.

Usage (from the repository root; runs for hours, so start it with nohup)::

    nohup python bench/twin_study.py --data-root ../shared/data/cifar10-jpeg > results/twin-study/study.log 2>&1 &
    # the full default job (no preset) on the CPU, into its own results folder:
    nohup python bench/twin_study.py --data-root ../shared/data/cifar10-jpeg --experiment none \
        --results results/full-cpu --runs outputs/full-cpu >> results/full-cpu/study.log 2>&1 &

Policies are read from ``results/twin-study/policies.json`` before every run (a list of
``{"name", "policy", "what", "overrides", "seed"}``), so entries can be added while the study
runs. Each run uses the code of the ``main`` branch as committed when it starts: the script
checks it out into ``--code`` (a git worktree it creates) and runs ``resnet-train`` from there,
so edits in the working tree never reach a running job. A policy whose folder under
``results/twin-study/runs/`` already holds a metrics.json is skipped (completed or failed: delete
the folder to run it again), so the study stops and picks up again at any point; a run stopped
after writing a checkpoint (a session ended) is resumed bit for bit into ``<name>.r1``, ``.r2``... After every run
it copies the record (command, metrics.json, history.csv, train.log, the resolved config and the
plots that decide: lr_finder, lr_schedule, curves) and rewrites ``table.md``/``table.json``:
one row per policy, mean and spread over seeds. The load average before and after each run is
kept in its ``study.json``: anything that shared the two cores shows there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPY = ("metrics.json", "history.csv", "train.log", ".hydra/config.yaml", ".hydra/overrides.yaml",
        "plots/lr_finder.png", "plots/lr_schedule.png", "plots/curves.png")


def sh(*cmd: str, cwd: Path | None = None) -> str:
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def code_at_main(code: Path) -> str:
    """Check out the committed ``main`` into the worktree ``code``; returns its commit."""
    if not (code / ".git").exists():
        sh("git", "worktree", "add", "--detach", str(code), "main", cwd=ROOT)
    sh("git", "checkout", "-q", "--detach", sh("git", "rev-parse", "main", cwd=ROOT), cwd=code)
    return sh("git", "rev-parse", "--short", "HEAD", cwd=code)


def segments(run_dir: Path) -> list[Path]:
    """The run's folders in order: ``<name>``, then ``<name>.r1``, ``<name>.r2``... each resuming
    the one before from its ``checkpoints/last.pt``."""
    out, k = [run_dir], 1
    while run_dir.with_name(f"{run_dir.name}.r{k}").is_dir():
        out.append(run_dir.with_name(f"{run_dir.name}.r{k}"))
        k += 1
    return out


def resumable(seg: Path) -> bool:
    """A folder whose run was stopped (a session ended) after writing a checkpoint: status
    ``interrupted`` (SIGTERM), or ``running`` (killed outright; its last epoch's checkpoint)."""
    try:
        m = json.loads((seg / "metrics.json").read_text())
    except (OSError, ValueError):
        return False
    return m.get("status") in ("interrupted", "running") and (seg / "checkpoints" / "last.pt").is_file()


def run_one(p: dict, args, out: Path) -> bool:
    """Run (or resume) one policy; False when it stopped before its end (the study then stops)."""
    commit = code_at_main(args.code)
    run_dir = args.runs / p["name"]
    overrides = [*([f"experiment={args.experiment}"] if args.experiment != "none" else []), "data=image_folder", f"data.root={args.data_root}",
                 f"seed={p.get('seed', 0)}", *p["overrides"]]
    shown = "resnet-train " + " ".join(overrides)
    segs = segments(run_dir) if run_dir.exists() else []
    if segs and resumable(segs[-1]):  # stopped by the end of a session: continue it, bit for bit
        last = segs[-1]
        run_dir = run_dir.with_name(f"{run_dir.name}.r{len(segs)}")
        overrides = [f"resume={last / 'checkpoints' / 'last.pt'}"]
        label = f"resnet-train resume=<{last.name}>/checkpoints/last.pt"
    else:
        for seg in segs:
            shutil.rmtree(seg)  # cut off before any checkpoint: start it again from scratch
        segs, label = [], shown
    cmd = [sys.executable, "-m", "resnet_cli.cli.train", *overrides, f"hydra.run.dir={run_dir}"]
    print(f"[{time.strftime('%H:%M:%S')}] {p['name']} (code {commit}): {label}", flush=True)
    load_before, t0 = os.getloadavg(), time.time()
    proc = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(args.code)}, cwd=ROOT,
                          capture_output=True, text=True)
    wall = time.time() - t0
    m_run = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else {}
    if proc.returncode != 0 and resumable(run_dir):
        print(f"[{time.strftime('%H:%M:%S')}] {p['name']}: stopped at epoch {m_run.get('epochs_done')} "
              f"(exit {proc.returncode}); the next start resumes it", flush=True)
        return
    out.mkdir(parents=True, exist_ok=True)
    for rel in COPY:
        if (run_dir / rel).is_file():
            (out / Path(rel).name).write_bytes((run_dir / rel).read_bytes())
    if not (out / "metrics.json").is_file():  # failed before the run folder had records
        (out / "metrics.json").write_text(json.dumps({"status": "failed", "exit_code": proc.returncode,
                                                      "error": proc.stderr.strip().splitlines()[-1:]}) + "\n")
    (out / "stderr.txt").write_text(proc.stderr[-20000:])
    study = {"name": p["name"], "policy": p["policy"], "what": p["what"], "command": shown, "code_commit": commit,
             "exit_code": proc.returncode, "wall_seconds": round(wall, 1),
             "loadavg_before": [round(v, 2) for v in load_before],
             "loadavg_after": [round(v, 2) for v in os.getloadavg()],
             "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t0))}
    if segs:  # the earlier segments' records, so the whole run's time can be read
        study["resumed_from"] = [{"folder": s.name, **{k: v for k, v in json.loads((s / "metrics.json").read_text()).items()
                                                       if k in ("epochs_done", "timings", "interrupted_at")}} for s in segs]
        study["wall_seconds_note"] = "this segment only; see resumed_from for the earlier ones"
        for rel in COPY:  # the range-test plot and log of the first segment
            src = segs[0] / rel
            if src.is_file() and rel != "metrics.json":
                (out / f"first-segment-{Path(rel).name}").write_bytes(src.read_bytes())
    (out / "study.json").write_text(json.dumps(study, indent=2) + "\n")
    save_curve(run_dir, out)
    m = json.loads((out / "metrics.json").read_text())
    print(f"[{time.strftime('%H:%M:%S')}] {p['name']}: exit {proc.returncode}, {m.get('status')}, "
          f"test_acc {m.get('test_acc')}, max_lr {m.get('max_lr')}, min_lr {m.get('min_lr')}, {wall:.0f} s", flush=True)
    return True


def save_curve(run_dir: Path, out: Path) -> None:
    """``range_test.json``: the run's range-test curve and picks, from its checkpoint (kept in
    the run folder, not in git), so other max_lr/min_lr rules can be read off the same curve."""
    ckpt = run_dir / "checkpoints" / "last.pt"
    if (out / "range_test.json").is_file() or not ckpt.is_file():
        return
    import torch

    lr = torch.load(ckpt, map_location="cpu", weights_only=False).get("lr") or {}
    (out / "range_test.json").write_text(json.dumps(lr) + "\n")


def table(results: Path, policies: list[dict], experiment: str = "cpu_twin") -> None:
    """table.json and table.md: per policy, each seed's final test accuracy, mean and spread."""
    rows = []
    for policy in dict.fromkeys(p["policy"] for p in policies):
        members = [p for p in policies if p["policy"] == policy]
        runs = []
        for p in members:
            f = results / "runs" / p["name"] / "metrics.json"
            if f.is_file():
                m, s = json.loads(f.read_text()), json.loads((f.parent / "study.json").read_text())
                runs.append({"name": p["name"], "seed": p.get("seed", 0), "status": m.get("status"),
                             "test_acc": m.get("test_acc"), "ema_test_acc": m.get("ema_test_acc"),
                             "train_acc": m.get("train_acc"),
                             "max_lr": m.get("max_lr"), "min_lr": m.get("min_lr"),
                             "final_lr": (m.get("history") or [{}])[-1].get("lr"),
                             "total_seconds": (m.get("timings") or {}).get("total"), "loadavg": s["loadavg_after"][1]})
        accs = [r["test_acc"] for r in runs if r["status"] == "completed" and r["test_acc"] is not None]
        emas = [r["ema_test_acc"] for r in runs if r["status"] == "completed" and r["ema_test_acc"] is not None]
        rows.append({"policy": policy, "what": members[0]["what"], "overrides": members[0]["overrides"], "runs": runs,
                     "mean_acc": statistics.mean(accs) if accs else None, "min_acc": min(accs) if accs else None,
                     "std_acc": statistics.stdev(accs) if len(accs) > 1 else None,  # sample std (n - 1)
                     "spread": (max(accs) - min(accs)) if len(accs) > 1 else None, "seeds": len(accs),
                     "mean_ema_acc": statistics.mean(emas) if emas else None})
    (results / "table.json").write_text(json.dumps(rows, indent=2) + "\n")
    after = f"after `experiment={experiment}`" if experiment != "none" else "after the data"
    lines = [f"| policy | what | overrides ({after}) | seeds | test_acc % per seed | mean | min | std (pts) "
             "| spread (max-min, pts) | ema_test_acc % per seed (mean) | max_lr | min_lr | last LR | train_acc % "
             "| minutes |", "|---" * 15 + "|"]
    for r in rows:
        done = [x for x in r["runs"] if x["status"] == "completed"]
        fmt = lambda key, f: " / ".join(f.format(x[key]) if x[key] is not None else "-" for x in done) or "-"
        lines.append(
            f"| {r['policy']} | {r['what']} | `{' '.join(r['overrides']) or '(default)'}` | {r['seeds']} | "
            + (" / ".join(f"{100 * x['test_acc']:.2f} (s{x['seed']})" for x in done) if r["mean_acc"] is not None
               else ", ".join(f"{x['status']} (see below)" for x in r["runs"]) or "not run yet") + " | "
            + " | ".join(f"{100 * r[k]:.2f}" if r[k] is not None else "-"
                         for k in ("mean_acc", "min_acc", "std_acc", "spread")) + " | "
            + (" / ".join(f"{100 * x['ema_test_acc']:.2f}" for x in done if x["ema_test_acc"] is not None)
               + f" ({100 * r['mean_ema_acc']:.2f})" if r["mean_ema_acc"] is not None else "-") + " | "
            + " | ".join([fmt("max_lr", "{:.3g}"), fmt("min_lr", "{:.3g}"), fmt("final_lr", "{:.2g}")]) + " | "
            + " / ".join(f"{100 * x['train_acc']:.1f}" for x in done if x["train_acc"] is not None) + " | "
            + " / ".join(f"{x['total_seconds'] / 60:.1f}" for x in done if x["total_seconds"]) + " |")
    failed = [x for r in rows for x in r["runs"] if x["status"] != "completed"]
    if failed:
        lines += ["", "Not completed: " + ", ".join(f"{x['name']} ({x['status']})" for x in failed)]
    (results / "table.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", required=True, type=Path)
    ap.add_argument("--results", type=Path, default=ROOT / "results" / "twin-study")
    ap.add_argument("--runs", type=Path, default=ROOT / "outputs" / "twin-study", help="run folders (not for git)")
    ap.add_argument("--code", type=Path, default=ROOT.parent / "study", help="git worktree the runs import from")
    ap.add_argument("--experiment", default="cpu_twin", help="experiment preset of every run ('none': the full job)")
    ap.add_argument("--table-only", action="store_true", help="rewrite table.md/json and stop")
    args = ap.parse_args(argv)
    args.data_root = args.data_root.resolve()
    while True:
        policies = json.loads((args.results / "policies.json").read_text())
        for p in policies:  # runs finished before the curve was saved
            if (args.results / "runs" / p["name"] / "metrics.json").is_file():
                save_curve(args.runs / p["name"], args.results / "runs" / p["name"])
        table(args.results, policies, args.experiment)
        todo = [p for p in policies if not (args.results / "runs" / p["name"] / "metrics.json").is_file()]
        if args.table_only or not todo:
            return 0
        if not run_one(todo[0], args, args.results / "runs" / todo[0]["name"]):
            return 1


if __name__ == "__main__":
    raise SystemExit(main())
