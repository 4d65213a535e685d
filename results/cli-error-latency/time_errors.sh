#!/usr/bin/env bash
# Wall seconds from `resnet-train <bad override>` to its one-line error (exit 2), 5 runs each.
# Run from the repository root with the project installed: bash results/cli-error-latency/time_errors.sh
set -u
out="$(dirname "$0")/time_errors.log"
tmp="$(mktemp -d)"
{
  echo "# $(date -u +%FT%TZ) $(nproc) cores, $(python -c 'import torch; print("torch", torch.__version__)'), commit $(git rev-parse --short HEAD)"
  for override in trainer.epochs=0 data.batch_size=0 explain.method=foo trainer.epoch=3; do
    for i in 1 2 3 4 5; do
      /usr/bin/time --quiet -f "%e" -o "$tmp/t" resnet-train "$override" "hydra.run.dir=$tmp/run" > /dev/null 2> "$tmp/err"
      echo "$override run $i: exit $? after $(cat "$tmp/t") s: $(grep '^error:' "$tmp/err")"
    done
  done
} | tee "$out"
rm -rf "$tmp"
