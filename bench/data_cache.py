#!/usr/bin/env python
"""Time getting an image folder's data ready, cold (decoding) and warm (the decode cache), issue 14.

Usage::

    python bench/data_cache.py --out results/data-cache data=image_folder data.root=../shared/data/cifar10-jpeg

Loads the data of a ``resnet-train`` config (:func:`resnet_cli.load_data`: scan, subset, decode or
cache, channel statistics) ``--runs`` times against a fresh cache folder: the first load decodes
and writes the cache, the later ones read it. Writes ``data_cache.json`` (seconds per load, image
counts, cache size in bytes, device) and ``data_cache.log`` into ``--out``. Target: a warm load of
the full CIFAR-10 copy in <= 2 s on the 2-core CPU machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import resnet_cli


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--runs", type=int, default=3, help="loads in all: 1 cold + (runs - 1) warm")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="use this cache folder (entries already there make every load warm); default: a fresh one")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s",
                        handlers=[logging.FileHandler(args.out / "data_cache.log", mode="w"), logging.StreamHandler()])
    with tempfile.TemporaryDirectory(prefix="resnet-cli-cache-bench-") as tmp:
        cache = str(args.cache_dir) if args.cache_dir else tmp
        warm_before = args.cache_dir is not None and any(Path(cache).glob("*/meta.json"))
        cfg = resnet_cli.compose([*args.overrides, f"data.cache_dir={cache}", "data.cache=true"])
        seconds, first = [], None
        for i in range(args.runs):
            t0 = time.perf_counter()
            data = resnet_cli.load_data(cfg)
            seconds.append(round(time.perf_counter() - t0, 3))
            logging.info("load %d (%s): %.2f s, %d train + %d test images", i + 1,
                         "warm" if i or warm_before else "cold",
                         seconds[-1], len(data.train_labels), len(data.test_labels))
            if first is None:
                first = data
            elif not (np.array_equal(first.train_images, data.train_images) and first.mean == data.mean):
                logging.error("a warm load differs from the cold one")
                return 1
        size = sum(f.stat().st_size for f in Path(cache).rglob("*") if f.is_file())  # every entry there
    record = {
        "command": " ".join(["python bench/data_cache.py", f"--runs {args.runs}",
                             f"--cache-dir {args.cache_dir}" if args.cache_dir else "", f"--out {args.out}",
                             *args.overrides]),
        "cpu": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "train_images": int(len(first.train_labels)), "test_images": int(len(first.test_labels)),
        "seconds": seconds, "cold_seconds": None if warm_before else seconds[0],
        "warm_seconds": seconds if warm_before else seconds[1:],
        "cache_bytes": size,
    }
    (args.out / "data_cache.json").write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
