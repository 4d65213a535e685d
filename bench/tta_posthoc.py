#!/usr/bin/env python
"""Flip test-time augmentation read off finished twin runs (issue 23's option table): each
run's checkpoint evaluated on the whole test set with and without ``tta_flip``, for its trained
weights and, where the run kept one (``trainer.ema_decay``), its EMA.

TTA changes only the evaluation, so the same weights are compared with and without it. The
evaluations made the way the run made its own (its ``trainer.tta_flip``) must reproduce the run's
``test_acc`` and ``ema_test_acc`` (checked and recorded as ``reproduces_run``).

Usage (from the repository root, after bench/twin_study.py has finished the runs)::

    python bench/tta_posthoc.py o-tta-s0 o-tta-s1

Writes ``results/twin-study/runs/<name>/tta.json`` per run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import resnet_cli

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="+")
    ap.add_argument("--runs", type=Path, default=ROOT / "outputs" / "twin-study", help="run folders (checkpoints)")
    ap.add_argument("--results", type=Path, default=ROOT / "results" / "twin-study" / "runs")
    args = ap.parse_args(argv)
    for name in args.names:
        ckpt = args.runs / name / "checkpoints" / "last.pt"
        run = json.loads((args.results / name / "metrics.json").read_text())
        out = {"checkpoint": str(ckpt.relative_to(ROOT)), "run_test_acc": run["test_acc"],
               "run_ema_test_acc": run.get("ema_test_acc"), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        for weights in ("model", "ema") if "ema_test_acc" in run else ("model",):
            for tta in (False, True):
                ev = resnet_cli.evaluate(ckpt, device="cpu", tta_flip=tta, weights=weights)
                out[f"{weights}{'_tta' if tta else ''}_test_acc"] = ev.acc
                print(f"{name}: {weights} tta_flip={tta}: test_acc {100 * ev.acc:.2f} % ({ev.n} images)", flush=True)
        own = "_tta" if torch.load(ckpt, map_location="cpu", weights_only=False)["config"]["trainer"].get("tta_flip") else ""
        out["reproduces_run"] = abs(out[f"model{own}_test_acc"] - run["test_acc"]) < 1e-9 and (
            "ema_test_acc" not in run or abs(out[f"ema{own}_test_acc"] - run["ema_test_acc"]) < 1e-9)
        (args.results / name / "tta.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
