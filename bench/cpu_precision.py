#!/usr/bin/env python
"""Training and inference throughput of the custom ResNet per precision and memory layout, in one
process, so the ratios compare like with like (issue 19).

Usage::

    python bench/cpu_precision.py --out results/cpu-precision [--batch 128] [--steps 10] [--device cpu]

For fp32 and bf16 (``torch.autocast``), each with and without channels-last, it times ``--steps``
training steps (forward, cross-entropy, backward, SGD with Nesterov momentum) after 3 untimed
ones, and ``--steps`` forward passes under ``torch.inference_mode``, on random 32x32 images
(throughput does not depend on pixel values). bf16 is skipped on a device without native bf16
(resnet_cli.core.precision.native_bf16). Writes ``cpu_precision.json`` (per case: seconds per step,
images/s, and the ratio to fp32 without channels-last) and prints a table. Run it with the
cores idle: anything else running changes the figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from resnet_cli.models import CustomResNet
from resnet_cli.core.precision import autocast, native_bf16


def _time(fn, steps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def measure(device: torch.device, precision: str, channels_last: bool, batch: int, steps: int) -> dict:
    """Seconds per training step and per inference batch of ``batch`` images, and images/s."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = CustomResNet(num_classes=10).to(device).to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)

    def train_step():
        with autocast(device, precision):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    @torch.inference_mode()
    def infer():
        with autocast(device, precision):
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()

    model.train()
    train_s = _time(train_step, steps)
    model.eval()
    infer_s = _time(infer, steps)
    return {"precision": precision, "channels_last": channels_last, "train_step_s": round(train_s, 4),
            "train_images_per_s": round(batch / train_s, 1), "infer_batch_s": round(infer_s, 4),
            "infer_images_per_s": round(batch / infer_s, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    precisions = ["fp32"] + (["bf16"] if native_bf16(device) else [])
    rows = [measure(device, p, cl, args.batch, args.steps) for p in precisions for cl in (False, True)]
    base = rows[0]
    for r in rows:
        r["train_speedup"] = round(r["train_images_per_s"] / base["train_images_per_s"], 2)
        r["infer_speedup"] = round(r["infer_images_per_s"] / base["infer_images_per_s"], 2)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    record = {"command": "python bench/cpu_precision.py " + " ".join(argv if argv is not None else []),
              "device": args.device, "cpu": platform.processor() or platform.machine(),
              "threads": torch.get_num_threads(), "torch": torch.__version__, "git_commit": commit,
              "native_bf16": native_bf16(device), "batch": args.batch, "steps": args.steps, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cpu_precision.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"{'precision':9} {'layout':13} {'train s/step':>12} {'train img/s':>11} {'x':>5} {'infer img/s':>11} {'x':>5}")
    for r in rows:
        print(f"{r['precision']:9} {'channels_last' if r['channels_last'] else 'contiguous':13} "
              f"{r['train_step_s']:12.3f} {r['train_images_per_s']:11.1f} {r['train_speedup']:5.2f} "
              f"{r['infer_images_per_s']:11.1f} {r['infer_speedup']:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
