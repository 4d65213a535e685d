#!/usr/bin/env python
"""Run the LR range test of a ``resnet-train`` config alone and record its whole curve (issue 12).

Usage (any ``resnet-train`` override passes through)::

    python bench/range_test.py --out results/lr-range-test/exponential-full \\
        data=image_folder data.root=../shared/data/cifar10-jpeg lr_finder=exponential trainer.device=cpu

Writes into ``--out``: ``range_test.json`` (config overrides, device, seconds, the chosen max_lr,
min_lr and warnings, and per step: LR, smoothed loss, batch accuracy and its smoothed value,
fractions 0-1), ``lr_finder.png`` (the run's own plot) and ``range_test.log``. It runs
:func:`resnet_cli.find_lr`, i.e. the set-up ``resnet-train`` uses, so the answer is the one a
training run with the same overrides would get. Exit status 0, or 1 when the test failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import torch

import resnet_cli
from resnet_cli.core.schedule import smooth


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="folder for range_test.json/.log and lr_finder.png")
    ap.add_argument("overrides", nargs="*", help="resnet-train overrides")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(args.out / "range_test.log", mode="w")
    handler.setFormatter(logging.Formatter(resnet_cli.api.LOG_FORMAT))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    cfg = resnet_cli.compose(args.overrides)
    t0 = time.perf_counter()
    result, fig = resnet_cli.find_lr(cfg, output_dir=args.out / "run")
    seconds = time.perf_counter() - t0
    resnet_cli.save_figure(fig, args.out / "lr_finder.png")
    f = cfg.lr_finder
    record = {
        "command": "python bench/range_test.py --out " + str(args.out) + " " + " ".join(args.overrides),
        "overrides": args.overrides,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() and cfg.trainer.device != "cpu"
        else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "seconds": round(seconds, 1),
        "lr_finder": dict(f),
        "batch_size": int(cfg.data.batch_size),
        "steps": len(result.lrs),
        "max_lr": result.max_lr,
        "min_lr": result.min_lr,
        "rule": result.rule,
        "smooth_f": result.smooth_f,
        "warnings": result.warnings,
        "lrs": result.lrs,
        "losses": result.losses,
        "accs": result.accs,
        "accs_smoothed": smooth(result.accs, result.smooth_f).tolist(),
    }
    (args.out / "range_test.json").write_text(json.dumps(record, indent=1) + "\n")
    logging.getLogger("bench").info("range test: %d steps in %.0f s -> max_lr %.4g, min_lr %.4g; %s",
                                    len(result.lrs), seconds, result.max_lr, result.min_lr, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
