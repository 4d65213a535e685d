"""The LR range tests quoted in ../README.md: 40 and 100 steps on the sweep's subset (seed 0).

Run from the repository root: python results/cpu-backends-5ep/range_test/range_test.py
Writes range_test.log and lr_finder_<steps>.png beside this file.
"""
from pathlib import Path

import resnet_cli

HERE = Path(__file__).resolve().parent
BASE = ["data=image_folder", "data.root=../shared/data/cifar10-jpeg", "data.train_subset=2560",
        "data.test_subset=1000", "data.batch_size=128", "data.num_workers=0", "trainer.device=cpu",
        "trainer.epochs=5", "scheduler.max_epoch=2", "augment.backend=albumentations", "seed=0"]

with open(HERE / "range_test.log", "w") as log:
    for steps in (40, 100):
        result, fig = resnet_cli.find_lr(BASE + [f"lr_finder.num_iter={steps}"], verbose=False)
        fig.savefig(HERE / f"lr_finder_{steps}.png", dpi=100)
        log.write(f"num_iter={steps}: {len(result.lrs)} steps, rule {result.rule}: "
                  f"max_lr {result.max_lr:.4g}, min_lr {result.min_lr:.4g}\n")
        for lr, loss in zip(result.lrs[::5], result.losses[::5]):
            log.write(f"  lr {lr:.3e}  smoothed loss {loss:.3f}\n")
print((HERE / "range_test.log").read_text())
