#!/usr/bin/env python
"""What writing checkpoints/last.pt costs against an epoch of training.

Usage::

    python bench/checkpoint_cost.py --out results/checkpoint-cost

Builds the default job's training state (the custom ResNet for 10 classes, SGD with its momentum
buffers after one step, One Cycle, a 24-epoch history; ``--ema`` adds trainer.ema_decay's copy)
and writes it ``--writes`` times with :func:`resnet_cli.core.checkpoint.save_training`, the write every
epoch does (torch.save straight into a temporary file, fsync, os.replace), into a folder under
``--out`` (the disk a run folder is on). For comparison it also times the earlier write, which
serialised into an in-memory ``io.BytesIO`` and copied that out before writing, and measures the
Python-heap peak of each with tracemalloc. The epoch's seconds: the median of the ``history``
``seconds`` in ``--epoch-metrics`` (a committed run's metrics.json), or ``--epoch-seconds``.
Writes ``checkpoint_cost.json`` and ``checkpoint_cost.log`` (``checkpoint_cost_ema.*`` with ``--ema``)
into ``--out``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import torch

from resnet_cli.core import checkpoint
from resnet_cli.core.ema import build_ema
from resnet_cli.models import CustomResNet
from resnet_cli.core.precision import device_name
from resnet_cli.core.run_folder import RunState
from resnet_cli.core.schedule import LRs, one_cycle

DEFAULT_METRICS = Path("results/full-cpu/runs/full-default-s0/metrics.json")
log = logging.getLogger("checkpoint_cost")


def training_state(ema: bool) -> tuple[RunState, dict, SimpleNamespace]:
    """The default job's state at its end: weights, SGD momentum buffers, One Cycle, 24 history rows."""
    torch.manual_seed(0)
    model = CustomResNet(num_classes=10, logit_scale=0.125)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    scheduler = one_cycle(optimizer, max_lr=0.849, min_lr=0.029, epochs=24, steps_per_epoch=97, max_epoch=5,
                          anneal_strategy="linear", final_div_factor=1e4, cycle_momentum=True, base_momentum=0.85,
                          max_momentum=0.95)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()  # the momentum buffers exist from the first step on
    state = RunState(model, LRs(0.849, 0.029), optimizer=optimizer, scheduler=scheduler)
    state.history = [{"epoch": e + 1, "lr": 0.1, "train_loss": 0.5, "train_acc": 0.9, "test_loss": 0.3,
                      "test_acc": 0.9, "seconds": 200.0, "images_per_s": 250.0} for e in range(24)]
    state.step_lrs, state.epoch = [0.1] * 24 * 97, 24
    state.ema = build_ema(model, 0.99) if ema else None
    config = {"data": {"image_size": 32, "root": "/data"}, "trainer": {"precision": "auto"}}
    data = SimpleNamespace(classes=[str(c) for c in range(10)], mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))
    return state, config, data


def write_new(path: Path, state: RunState, config: dict, data) -> None:
    checkpoint.save_training(path, state, config, data, 4895.6)


def write_old(path: Path, state: RunState, config: dict, data) -> None:
    """The write before: serialise into memory, copy the bytes out, then the atomic write."""
    real = checkpoint.atomic_write_bytes

    def via_buffer(p, write, needed=None):
        buffer = io.BytesIO()
        write(buffer)
        return real(p, buffer.getbuffer().tobytes())

    checkpoint.atomic_write_bytes = via_buffer
    try:
        checkpoint.save_training(path, state, config, data, 4895.6)
    finally:
        checkpoint.atomic_write_bytes = real


def timed(write, path: Path, *args) -> float:
    t0 = time.perf_counter()
    write(path, *args)
    return time.perf_counter() - t0


def heap_peak_mb(write, path: Path, *args) -> float:
    """Peak of Python-heap allocations during one write (tracemalloc), MB."""
    tracemalloc.start()
    try:
        write(path, *args)
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--writes", type=int, default=5, help="timed writes of each kind (interleaved)")
    ap.add_argument("--ema", action="store_true", help="also hold trainer.ema_decay's copy of the weights")
    ap.add_argument("--epoch-metrics", type=Path, default=DEFAULT_METRICS,
                    help="a run's metrics.json: its median epoch seconds is the comparison")
    ap.add_argument("--epoch-seconds", type=float, default=None, help="an epoch's seconds instead of --epoch-metrics")
    args = ap.parse_args(argv)
    if args.writes < 1:
        print("error: --writes must be >= 1", file=sys.stderr)
        return 2
    if args.epoch_seconds is None and not args.epoch_metrics.is_file():
        print(f"error: --epoch-metrics {args.epoch_metrics} not found: give a run's metrics.json or --epoch-seconds",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "checkpoint_cost_ema" if args.ema else "checkpoint_cost"
    log.handlers, log.propagate = [logging.StreamHandler(), logging.FileHandler(args.out / f"{stem}.log", "w")], False
    log.setLevel(logging.INFO)
    if args.epoch_seconds is not None:
        epoch_s, epoch_source = args.epoch_seconds, "--epoch-seconds"
    else:
        history = json.loads(args.epoch_metrics.read_text())["history"]
        epoch_s, epoch_source = statistics.median(h["seconds"] for h in history), str(args.epoch_metrics)
    state, config, data = training_state(args.ema)
    load_before = os.getloadavg()
    new, old = [], []
    with tempfile.TemporaryDirectory(prefix="ckpt-bench-", dir=args.out) as tmp:
        path = Path(tmp) / "checkpoints" / "last.pt"
        write_new(path, state, config, data)  # untimed: the folder and the page cache warmed once
        for i in range(args.writes):
            new.append(timed(write_new, path, state, config, data))
            old.append(timed(write_old, path, state, config, data))
            log.info("write %d: straight into the file %.3f s, through BytesIO %.3f s", i + 1, new[-1], old[-1])
        size_mb = path.stat().st_size / 1e6
        heap_new, heap_old = heap_peak_mb(write_new, path, state, config, data), heap_peak_mb(write_old, path, state,
                                                                                            config, data)
    load_after = os.getloadavg()
    write_s, old_s = statistics.median(new), statistics.median(old)
    result = {
        "checkpoint_mb": round(size_mb, 1), "ema": args.ema, "writes": args.writes,
        "write_seconds": [round(s, 4) for s in new], "write_seconds_median": round(write_s, 4),
        "bytesio_write_seconds": [round(s, 4) for s in old], "bytesio_write_seconds_median": round(old_s, 4),
        "python_heap_peak_mb": {"straight": round(heap_new, 1), "bytesio": round(heap_old, 1)},
        "epoch_seconds": round(epoch_s, 3), "epoch_seconds_from": epoch_source,
        "write_over_epoch": round(write_s / epoch_s, 5),
        "machine": {"cpu": device_name(torch.device("cpu")), "cores": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "torch": str(torch.__version__), "nice": os.nice(0),
                    "loadavg_1_5_15_before": [round(v, 2) for v in load_before],
                    "loadavg_1_5_15_after": [round(v, 2) for v in load_after]},
        "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
    }
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    log.info("checkpoint %.1f MB: write %.3f s (median of %d; through BytesIO %.3f s), epoch %.1f s (%s): "
             "the write is %.2f %% of an epoch", size_mb, write_s, args.writes, old_s, epoch_s, epoch_source,
             100 * write_s / epoch_s)
    for handler in log.handlers:
        handler.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
