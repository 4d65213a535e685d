#!/usr/bin/env bash
# Time the README's first run from a clone, on idle cores, and record it here (issue 21).
#
#   bash results/quick-first-run/measure.sh [CLONE] [OUT]
#
# CLONE: a clone with resnet-cli installed in its active Python (default: this repository);
# ../shared/data/cifar10-jpeg must lie beside it, as the README assumes. OUT: where the records go
# (default: CLONE/results/quick-first-run). The README's command runs twice with an empty
# user cache folder (XDG_CACHE_HOME), so the first run decodes the images (cold) and the second
# loads them from the decode cache (warm). For each it keeps train.log, metrics.json and
# plots/lr_finder.png as <phase>-*, and writes measure.json: wall seconds (the whole command,
# start-up included), the run's timings, test accuracy, commit, CPU and the load before it.
# Run it with nothing else on the cores; the load average is recorded so a busy run shows.
set -euo pipefail
clone=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
out=$(mkdir -p "${2:-$clone/results/quick-first-run}" && cd "${2:-$clone/results/quick-first-run}" && pwd)
cd "$clone"
command -v resnet-train >/dev/null || { echo "error: resnet-train is not installed in this shell" >&2; exit 2; }
cache=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$cache" "$work"' EXIT
records=()
for phase in cold warm; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    start=$(date +%s.%N)
    # the README's command, as written, with the run folder placed where this script finds it
    XDG_CACHE_HOME="$cache" resnet-train experiment=quick data=image_folder data.root=../shared/data/cifar10-jpeg \
        hydra.run.dir="$work/$phase" 2>&1 | tee "$work/$phase.console.txt"
    end=$(date +%s.%N)
    cp "$work/$phase/train.log" "$out/$phase-train.log"
    cp "$work/$phase/metrics.json" "$out/$phase-metrics.json"
    cp "$work/$phase/plots/lr_finder.png" "$out/$phase-lr_finder.png"
    records+=("$phase" "$start" "$end" "$load")
done
python3 - "$out" "$clone" "${records[@]}" <<'PY'
import json, os, platform, subprocess, sys
out, clone, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = {}
for i in range(0, len(rest), 4):
    phase, start, end, load = rest[i:i + 4]
    m = json.load(open(os.path.join(out, f"{phase}-metrics.json")))
    runs[phase] = {"wall_s": round(float(end) - float(start), 1), "load_before": float(load),
                   "timings": m.get("timings"), "test_acc": m.get("test_acc"), "max_lr": m.get("max_lr"),
                   "min_lr": m.get("min_lr"), "warnings": m.get("warnings"), "status": m.get("status"),
                   "device": m.get("device")}
commit = subprocess.run(["git", "-C", clone, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
record = {"command": "resnet-train experiment=quick data=image_folder data.root=../shared/data/cifar10-jpeg",
          "commit": commit, "cpu_count": os.cpu_count(), "machine": platform.machine(), "runs": runs}
json.dump(record, open(os.path.join(out, "measure.json"), "w"), indent=2)
for phase, r in runs.items():
    t = r["timings"] or {}
    print(f"{phase}: {r['wall_s']} s wall (load before {r['load_before']}), test_acc {100 * (r['test_acc'] or 0):.1f} %, "
          f"data {t.get('data', float('nan')):.1f} s, range test {t.get('lr_finder', float('nan')):.1f} s, "
          f"train {t.get('train', float('nan')):.1f} s, warnings {len(r['warnings'] or [])}")
PY
