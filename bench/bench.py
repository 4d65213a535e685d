#!/usr/bin/env python
"""Benchmark the default ``resnet-train`` job on the current device, for N seeds (issue 4).

Usage (any Hydra override of ``resnet-train`` passes through)::

    python bench/bench.py --seeds 5 data=image_folder data.root=../shared/data/cifar10-jpeg
    python bench/bench.py --seeds 5 data=image_folder data.root=... augment.backend=albumentations
    python bench/bench.py --seeds 1 --warmup 0 trainer.device=cpu data.train_subset=200 ...   # smoke

For every run it records the device name, torch/CUDA versions, epochs, training seconds
(``Run.seconds["train"]``: the step loops only, CUDA-synchronised at each epoch end; data loading,
moving the data to the device and the LR range test are timed separately in ``setup_seconds``;
evaluation and the end-of-run diagnostics are in neither), per-epoch seconds, images/s, model
FLOPs per image (``torch.utils.flop_counter.FlopCounterMode``: convolutions and matmuls, 2 FLOPs
per multiply-add, forward + backward), the achieved fraction of the device's dense bf16 peak, peak
CUDA memory and the allocated/peak memory after every epoch, and the test accuracy; then the mean
and sample standard deviation across seeds. Results go to ``<out>/bench-<device>-<time>.json`` and
a ``.log`` beside it; the JSON is rewritten after every run, so a cut-off benchmark keeps what it
measured. ``--warmup`` runs (default 1 on CUDA) first train 2 epochs untimed so CUDA context,
cuDNN autotuning and ``torch.compile`` caches do not land on the first seed.

Exit status: 0 when every timed run completed, 1 when a run failed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import gc
import importlib.metadata
import json
import logging
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("bench")

# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's data sheets, TFLOP/s; first match wins.
PEAK_BF16_TFLOPS: list[tuple[str, float]] = [
    (r"H100.*PCIe", 756.0),
    (r"H100.*NVL", 835.0),
    (r"H100", 989.0),   # SXM5 (e.g. "NVIDIA H100 80GB HBM3")
    (r"H200", 989.0),
    (r"A100", 312.0),
    (r"\bL4\b", 121.0),
]


def peak_bf16_tflops(device_name: str) -> tuple[float | None, str | None]:
    """Dense bf16 peak of a GPU named ``device_name`` (``torch.cuda.get_device_name``), in
    TFLOP/s, and the table pattern that matched; (None, None) for unknown devices and CPUs."""
    for pattern, tflops in PEAK_BF16_TFLOPS:
        if re.search(pattern, device_name, re.IGNORECASE):
            return tflops, pattern
    return None, None


def flops_per_image(model: torch.nn.Module, image_size: int, batch: int = 2) -> dict[str, int]:
    """FLOPs of one training image through ``model``: forward, and forward + backward.

    Counted by ``FlopCounterMode`` (convolutions and matrix products, 2 FLOPs per multiply-add;
    BN, ReLU and pooling are not counted) on a float32 batch (``batch``, 3, image_size,
    image_size) on the CPU, in train mode, with ``sum(logits).backward()``. ``model`` should be a
    fresh copy: its BN statistics and gradients change.
    """
    from torch.utils.flop_counter import FlopCounterMode

    model = model.cpu().float().train()
    x = torch.randn(batch, 3, image_size, image_size)
    with FlopCounterMode(display=False) as fwd:
        model(x)
    with FlopCounterMode(display=False) as both:
        model(x).sum().backward()
    return {"forward": fwd.get_total_flops() // batch, "forward_backward": both.get_total_flops() // batch}


def stats_of(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """mean, sample std (n - 1; 0.0 for one value), min, max and n of the non-None values."""
    v = [float(x) for x in values if x is not None]
    if not v:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0,
            "min": min(v), "max": max(v), "n": len(v)}


def device_record(device: torch.device, peak_override: float | None) -> dict[str, Any]:
    """Name, memory and dense bf16 peak of ``device``."""
    rec: dict[str, Any] = {"type": device.type}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        rec.update(name=torch.cuda.get_device_name(device), capability=list(torch.cuda.get_device_capability(device)),
                   total_memory_mib=round(props.total_memory / 2**20), count_visible=torch.cuda.device_count())
    else:
        rec.update(name=platform.processor() or platform.machine() or "cpu", threads=torch.get_num_threads())
    peak, pattern = peak_bf16_tflops(rec["name"]) if device.type == "cuda" else (None, None)
    if peak_override is not None:
        peak, pattern = peak_override, "--peak-tflops"
    rec.update(peak_bf16_tflops=peak, peak_source=pattern)
    return rec


def software_record() -> dict[str, Any]:
    """Versions of the pieces that decide the speed, and the git commit of the checkout."""
    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    rec = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
           "resnet_cli": version("resnet-cli"), "albumentations": version("albumentations"),
           "platform": platform.platform()}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10)
        rec["git_commit"] = commit.stdout.strip() or None
        rec["git_dirty"] = bool(dirty.stdout.strip()) if commit.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        rec["git_commit"] = rec["git_dirty"] = None
    return rec


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


def run_record(metrics: dict, *, seed: int, batch_size: int, backend: str, flops: dict, peak_tflops: float | None,
               wall: float, peak_mem_mib: float | None, peak_reserved_mib: float | None) -> dict[str, Any]:
    """One benchmark row from a run's ``metrics`` (as in metrics.json)."""
    train_size = metrics["dataset"]["train_size"]
    steps = train_size // batch_size
    epochs_done = metrics["epochs_done"]
    images = epochs_done * steps * batch_size
    seconds = metrics["train_seconds"]
    ips = images / seconds if seconds > 0 else None
    tflops = flops["forward_backward"] * ips / 1e12 if ips else None
    epoch_s = [h["seconds"] for h in metrics["history"]]
    mem = metrics.get("cuda_memory") or []
    return {
        "seed": seed, "status": metrics["status"], "augment_backend": backend,
        "epochs": metrics["epochs"], "epochs_done": epochs_done, "batch_size": batch_size,
        "train_images": train_size, "steps_per_epoch": steps, "images_trained": images,
        "train_seconds": seconds, "epoch_seconds": epoch_s,
        "epoch_seconds_median": statistics.median(epoch_s) if epoch_s else None,
        "images_per_s": ips, "achieved_tflops": tflops,
        "peak_fraction": tflops / peak_tflops if tflops and peak_tflops else None,
        "setup_seconds": metrics.get("setup_seconds", {}), "wall_seconds": wall,
        "peak_mem_mib": peak_mem_mib, "peak_reserved_mib": peak_reserved_mib,
        "epoch_memory": mem,
        "mem_growth_mib": mem[-1]["allocated_mib"] - mem[0]["allocated_mib"] if mem else None,
        "test_acc": metrics.get("test_acc"), "test_loss": metrics.get("test_loss"),
        "max_lr": metrics.get("max_lr"), "min_lr": metrics.get("min_lr"),
        "timings": metrics.get("timings", {}),
        "seconds_to_90": seconds_to(metrics["history"], 0.90),
        "dataset": {k: metrics["dataset"][k] for k in ("name", "root", "train_size", "test_size")},
    }


def seconds_to(history: list[dict], acc: float) -> float | None:
    """Training seconds (sum of the epochs' step-loop ``seconds``) until the first epoch whose
    test accuracy (fraction 0-1) reaches ``acc``; None if none does."""
    total = 0.0
    for h in history:
        total += h["seconds"]
        if h["test_acc"] >= acc:
            return round(total, 3)
    return None


SUMMARY_KEYS = ("train_seconds", "epoch_seconds_median", "images_per_s", "achieved_tflops", "peak_fraction",
                "peak_mem_mib", "test_acc", "wall_seconds", "seconds_to_90")


def summary(runs: list[dict]) -> dict[str, Any]:
    """Mean/std/min/max over the completed runs, for the headline keys and the set-up phases."""
    done = [r for r in runs if r["status"] == "completed"]
    out = {k: stats_of([r[k] for r in done]) for k in SUMMARY_KEYS}
    phases = sorted({p for r in done for p in r["setup_seconds"]})
    out["setup_seconds"] = {p: stats_of([r["setup_seconds"].get(p) for r in done]) for p in phases}
    phases = [p for p in ("startup", "data", "batches", "lr_finder", "train", "eval", "diagnostics", "other", "total")
              if any(p in r.get("timings", {}) for r in done)]
    out["timings"] = {p: stats_of([r["timings"].get(p) for r in done]) for p in phases}
    out["runs_completed"], out["runs_failed"] = len(done), len(runs) - len(done)
    return out


def _fmt(v, spec: str) -> str:
    """``format(v, spec)``, or "-" right-aligned to the spec's width for a missing value."""
    width = re.match(r"\d*", spec).group()
    return format("-", f">{width}") if v is None else format(v, spec)


def table(runs: list[dict], summ: dict) -> str:
    """The per-run table and the mean +- std line, as printed and logged."""
    head = (f"{'seed':>4} {'status':>9} {'train_s':>8} {'epoch_s':>8} {'img/s':>9} {'TFLOP/s':>8} {'peak%':>6} "
            f"{'mem_MiB':>8} {'test_acc':>8} {'data_s':>7} {'lrfind_s':>8}")
    lines = [head]
    for r in runs:
        s = r["setup_seconds"]
        frac = r["peak_fraction"] * 100 if r["peak_fraction"] is not None else None
        acc = r["test_acc"] * 100 if r["test_acc"] is not None else None
        lines.append(f"{r['seed']:>4} {r['status']:>9} {_fmt(r['train_seconds'], '8.2f')} "
                     f"{_fmt(r['epoch_seconds_median'], '8.3f')} {_fmt(r['images_per_s'], '9.0f')} "
                     f"{_fmt(r['achieved_tflops'], '8.2f')} {_fmt(frac, '6.1f')} {_fmt(r['peak_mem_mib'], '8.0f')} "
                     f"{_fmt(acc, '8.2f')} {_fmt(s.get('data'), '7.1f')} {_fmt(s.get('lr_finder'), '8.1f')}")
    def ms(key, scale=1.0, spec=".2f"):
        st = summ[key]
        return "-" if st["mean"] is None else f"{st['mean'] * scale:{spec}} +- {st['std'] * scale:{spec}}"
    lines.append(f"mean +- std over {summ['runs_completed']} run(s): train {ms('train_seconds')} s, "
                 f"epoch {ms('epoch_seconds_median', spec='.3f')} s, {ms('images_per_s', spec='.0f')} img/s, "
                 f"{ms('achieved_tflops')} TFLOP/s ({ms('peak_fraction', 100, '.1f')} % of peak), "
                 f"test_acc {ms('test_acc', 100)} %, to 90 %: {ms('seconds_to_90')} s")
    if summ.get("timings"):
        lines.append("time per phase (s, mean): " + ", ".join(
            f"{p} {st['mean']:.2f}" for p, st in summ["timings"].items() if st["mean"] is not None))
    return "\n".join(lines)


def _parse(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(
        description="Run the default resnet-train job for N seeds on this device and record speed and accuracy.",
        epilog="Other arguments are Hydra overrides of resnet-train, e.g. data=image_folder data.root=DIR.")
    p.add_argument("--seeds", type=int, default=5, help="timed runs, seeds first-seed .. first-seed+N-1 (default 5)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed 2-epoch runs before the timed ones (default: 1 on CUDA, 0 on the CPU)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="dense bf16 peak of this device in TFLOP/s (default: from the built-in table by GPU name)")
    p.add_argument("--out", type=Path, default=ROOT / "results", help="folder for the JSON and log (default results/)")
    p.add_argument("--compare", default=None, metavar="OVERRIDES",
                   help="also run these extra overrides (space-separated, e.g. the runner-up LR policy) "
                        "for --compare-seeds seeds, recorded under 'compare' in the same JSON")
    p.add_argument("--compare-seeds", type=int, default=2)
    p.add_argument("--runs-dir", type=Path, default=None,
                   help="folder for the run folders (default outputs/bench/<time>; not meant for git)")
    args, rest = p.parse_known_args(argv)
    bad = [a for a in rest if "=" not in a or a.startswith("-")]
    if bad:
        p.error(f"not an option or a Hydra override (key=value): {' '.join(bad)}")
    if args.seeds < 1 or (args.warmup is not None and args.warmup < 0):
        p.error("--seeds must be >= 1 and --warmup >= 0")
    if args.peak_tflops is not None and args.peak_tflops <= 0:
        p.error("--peak-tflops must be > 0")
    return args, rest


def _setup_logging(log_path: Path) -> None:
    from resnet_cli.api import LOG_FORMAT

    fmt = logging.Formatter(LOG_FORMAT)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for h in (logging.FileHandler(log_path), logging.StreamHandler(sys.stderr)):
        h.setFormatter(fmt)
        root.addHandler(h)


def main(argv: Sequence[str] | None = None) -> int:
    args, overrides = _parse(argv)
    from omegaconf import OmegaConf

    import resnet_cli
    from resnet_cli.data.batches import resolve_backend
    from resnet_cli.core.precision import resolve_device
    from resnet_cli.cli.build import build_recipe
    from resnet_cli.engine import run
    from resnet_cli.errors import UserError

    try:
        base = resnet_cli.compose(overrides)  # as resnet-train composes and validates it
        device = resolve_device(base.trainer.device)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    warmup = args.warmup if args.warmup is not None else (1 if device.type == "cuda" else 0)
    dev = device_record(device, args.peak_tflops)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"bench-{slug(dev['name'] if device.type == 'cuda' else 'cpu')}-{stamp}"
    runs_dir = args.runs_dir or ROOT / "outputs" / "bench" / stamp
    _setup_logging(stem.with_suffix(".log"))
    log.info("bench: %d timed run(s) + %d warm-up on %s (%s), overrides: %s", args.seeds, warmup, dev["name"],
             device, " ".join(overrides) or "(none)")

    from hydra.utils import instantiate

    model = instantiate(base.model, num_classes=10)
    flops = flops_per_image(model, int(base.data.image_size))
    del model
    log.info("model FLOPs per image (FlopCounterMode, 10 classes): forward %.4g, forward+backward %.4g",
             flops["forward"], flops["forward_backward"])
    record: dict[str, Any] = {
        "benchmark": "resnet-train default job", "started": dt.datetime.now().isoformat(timespec="seconds"),
        "command": [sys.executable, *sys.argv] if argv is None else ["bench.py", *argv],
        "overrides": overrides, "device": dev, "software": software_record(),
        "config": OmegaConf.to_container(base, resolve=True), "flops_per_image": flops,
        "flops_note": "FlopCounterMode: conv + matmul FLOPs (2 per multiply-add), BN/ReLU/pool not counted; "
                      "achieved_tflops = forward_backward * images_trained / train_seconds",
        "warmup_runs": warmup, "runs": [], "summary": None, "log": stem.with_suffix(".log").name,
    }
    json_path = stem.with_suffix(".json")

    compare = None
    if args.compare:  # the runner-up policy, in the same JSON
        try:
            compare = resnet_cli.compose([*overrides, *args.compare.split()])
        except UserError as e:
            print(f"error: --compare: {e}", file=sys.stderr)
            return 2
        record["compare"] = {"overrides": args.compare.split(), "runs": [], "summary": None}

    def write() -> None:
        record["summary"] = summary(record["runs"])
        if compare is not None:
            record["compare"]["summary"] = summary(record["compare"]["runs"])
        json_path.write_text(json.dumps(record, indent=2) + "\n")

    write()
    failed = 0
    for k in range(warmup):
        cfg = copy.deepcopy(base)
        OmegaConf.update(cfg, "trainer.epochs", 2)
        OmegaConf.update(cfg, "scheduler.max_epoch", 1)
        for key, v in (("max_lr", 0.05), ("min_lr", 0.005)):  # no range test in a warm-up
            if cfg.scheduler[key] == "find":
                OmegaConf.update(cfg, f"scheduler.{key}", v)
        log.info("warm-up run %d/%d (2 epochs, untimed)", k + 1, warmup)
        try:
            run(build_recipe(cfg), runs_dir / f"warmup{k}")
        except UserError as e:
            log.error("warm-up failed: %s", e)
            failed += 1
        gc.collect()
    def timed(cfg_base, seeds: range, rows: list, tag: str) -> int:
        """Timed runs of ``cfg_base`` for ``seeds`` into ``rows`` (the JSON is rewritten after each)."""
        failures = 0
        for seed in seeds:
            cfg = copy.deepcopy(cfg_base)
            OmegaConf.update(cfg, "seed", seed)
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            log.info("timed run%s: seed %d", tag, seed)
            folder = runs_dir / f"{tag.strip() or 'seed'}{seed}".replace(" ", "")
            t0 = time.perf_counter()
            try:
                metrics = run(build_recipe(cfg), folder).metrics
            except UserError as e:
                log.error("seed %d failed: %s", seed, e)
                failures += 1
                mpath = folder / "metrics.json"
                metrics = json.loads(mpath.read_text()) if mpath.is_file() else {}
                if "history" not in metrics:
                    rows.append({"seed": seed, "status": "failed", "error": str(e)})
                    write()
                    continue
                metrics["status"] = metrics.get("status", "failed")
            wall = time.perf_counter() - t0
            mem = metrics.get("cuda_memory") or []
            row = run_record(
                metrics, seed=seed, batch_size=int(cfg.data.batch_size),
                backend=resolve_backend(cfg.augment.backend, device), flops=flops, peak_tflops=dev["peak_bf16_tflops"],
                wall=wall, peak_mem_mib=mem[-1]["peak_mib"] if mem else None,
                peak_reserved_mib=round(torch.cuda.max_memory_reserved(device) / 2**20, 1) if device.type == "cuda" else None)
            row["run_dir"] = str(folder)
            rows.append(row)
            write()
            log.info("seed %d: train %.2f s, %s img/s, test_acc %s", seed, row["train_seconds"],
                     _fmt(row["images_per_s"], ".0f"), _fmt(row["test_acc"], ".4f"))
            gc.collect()
        return failures

    seeds = range(args.first_seed, args.first_seed + args.seeds)
    failed += timed(base, seeds, record["runs"], "")
    if compare is not None:
        failed += timed(compare, range(args.first_seed, args.first_seed + args.compare_seeds),
                        record["compare"]["runs"], "compare ")
    record["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    write()
    text = table([r for r in record["runs"] if "train_seconds" in r], record["summary"])
    if compare is not None:
        text += f"\n\n--compare {args.compare}:\n" + table(
            [r for r in record["compare"]["runs"] if "train_seconds" in r], record["compare"]["summary"])
    log.info("results (%s, torch %s):\n%s", dev["name"], torch.__version__, text)
    print(text)
    print(f"saved {json_path} and {stem.with_suffix('.log')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
