#!/usr/bin/env bash
# Venv sizes of the README's install paths (issue 21), each in a fresh venv under a temporary folder:
#   default  pip install torch==2.14.1 torchvision==0.29.1 (.ci/run's pins; PyPI's Linux build is CUDA's),
#            then pip install <clone>; then pip install "<clone>[test]"
#   cpu      pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu (README step 1),
#            then pip install <clone>
#
#   bash results/install/measure.sh [CLONE] > results/install/sizes.txt
#
# Disk sizes only (du -sh), so it may run while the cores are busy. The cpu path needs that index
# to be reachable; where it is not, the line says so.
set -uo pipefail
clone=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
size() { du -sh "$1" | cut -f1; }
python3 -m venv "$tmp/default"
"$tmp/default/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
"$tmp/default/bin/pip" install -q "$clone"
echo "default (torch 2.14.1 from PyPI/.ci/run's pins + resnet-cli): $(size "$tmp/default")"
"$tmp/default/bin/pip" install -q "$clone[test]"
echo "default + [test] extra: $(size "$tmp/default")"
rm -rf "$tmp/default"
python3 -m venv "$tmp/cpu"
if "$tmp/cpu/bin/pip" install -q torch torchvision --index-url https://download.pytorch.org/whl/cpu; then
    "$tmp/cpu/bin/pip" install -q "$clone"
    "$tmp/cpu/bin/python" -c "import torch, torchvision; assert not torch.version.cuda, torch.version.cuda"
    echo "cpu (torch CPU build + resnet-cli): $(size "$tmp/cpu")"
else
    echo "cpu: the CPU index could not be reached from this machine: not measured"
fi
