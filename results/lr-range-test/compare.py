#!/usr/bin/env python
"""Draw the recorded range tests side by side: results/lr-range-test/compare.png.

Usage: python results/lr-range-test/compare.py   (reads */range_test.json beside this file)
"""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure

from resnet_cli.lr_finder import smooth

HERE = Path(__file__).resolve().parent


def main() -> None:
    runs = sorted(HERE.glob("*/range_test.json"))
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    ax_loss, ax_acc = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for i, path in enumerate(runs):
        r = json.loads(path.read_text())
        label = f"{path.parent.name}: {r['lr_finder']['step_mode']}, {r['steps']} steps, batch {r['batch_size']}"
        color = f"C{i}"
        ax_loss.plot(r["lrs"], r["losses"], color=color, label=label)
        ax_acc.plot(r["lrs"], [100 * a for a in smooth(r["accs"], r["lr_finder"]["smooth_f"] or r["smooth_f"])], color=color, label=label)
        for ax in (ax_loss, ax_acc):
            ax.axvline(r["max_lr"], color=color, ls="--", lw=1)
    ax_loss.set(xscale="log", xlabel="learning rate", ylabel="smoothed training loss",
                title="range tests on CIFAR-10 (JPEG q75 copy); dashed: max_lr picked", ylim=(0, 5))
    ax_acc.set(xscale="log", xlabel="learning rate", ylabel="smoothed batch accuracy (%)", title="batch accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.savefig(HERE / "compare.png", dpi=110)
    print(HERE / "compare.png")


if __name__ == "__main__":
    main()
