"""Before/after pictures of issue 21's plot rows, drawn from the same data by the plotting code of
main before the change (``--before``, a commit) and by this checkout's.

    python results/plots-before-after/render.py [--before d38df05] [--data ../shared/data/cifar10-jpeg]

Writes into this folder:

* ``lr_finder-<case>-before.png`` / ``-after.png`` for the recorded range tests
  (``results/lr-range-test/*/range_test.json``) and for ``quick`` (``quick_range_test.json``: the
  range test ``experiment=quick`` runs on the quick data, every ramp; made with ``--run-quick``);
* ``augmentations-before.png`` / ``-after.png``: the preview of a 2-epoch run (trainer.epochs=2);
* ``gradcam-before.png`` / ``-after.png``: Grad-CAM panels of an untrained CustomResNet on three
  test images (its maps are often blank: the note shows), both explained classes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))


def old_module(commit: str, name: str):
    """``resnet_cli/<name>.py`` as of ``commit``, loaded inside the package (its relative imports
    resolve to this checkout's modules)."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:resnet_cli/{name}.py"], capture_output=True,
                         text=True, check=True).stdout
    spec = importlib.util.spec_from_loader(f"resnet_cli._before_{name}", loader=None)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "resnet_cli"
    exec(compile(src, f"{commit}:resnet_cli/{name}.py", "exec"), mod.__dict__)
    return mod


def run_quick(data: str) -> None:
    """The range test of ``experiment=quick`` on the quick data, every ramp, into quick_range_test.json."""
    import resnet_cli

    cfg = resnet_cli.compose(["experiment=quick", "data=image_folder", f"data.root={data}", "data.num_workers=0",
                              "trainer.device=cpu"])
    r = resnet_cli.find_lr(cfg, verbose=True).result
    (HERE / "quick_range_test.json").write_text(json.dumps(r.as_dict()) + "\n")


def lr_finder_pictures(before: str) -> None:
    from resnet_cli import plots

    old = old_module(before, "plots")
    cases = {p.parent.name: json.loads(p.read_text()) for p in sorted((ROOT / "results/lr-range-test").glob("*/range_test.json"))}
    if (HERE / "quick_range_test.json").is_file():
        cases["quick"] = json.loads((HERE / "quick_range_test.json").read_text())
    for case, r in cases.items():
        mode = r.get("step_mode") or r.get("lr_finder", {}).get("step_mode", "exp")
        args = (r["lrs"], r["losses"], r["max_lr"], r["min_lr"], r["rule"], r.get("accs", []), mode, r.get("smooth_f", 0.05))
        plots.save_figure(old.plot_lr_finder(*args), HERE / f"lr_finder-{case}-before.png")
        plots.save_figure(plots.plot_lr_finder(*args, earlier=r.get("earlier", [])), HERE / f"lr_finder-{case}-after.png")


def preview_pictures(before: str, data: str) -> None:
    import resnet_cli
    from resnet_cli import plots, previews
    from resnet_cli.batches import build_train_batches

    old = old_module(before, "previews")
    cfg = resnet_cli.compose(["experiment=quick", "data=image_folder", f"data.root={data}", "data.num_workers=0",
                              "trainer.device=cpu"])
    bundle = resnet_cli.load_data(cfg)
    batches = build_train_batches(bundle, cfg, "cpu")
    plots.save_figure(old.previews(bundle, batches, int(cfg.seed))[1], HERE / "augmentations-before.png")
    plots.save_figure(previews.previews(bundle, batches, int(cfg.seed), epochs=int(cfg.trainer.epochs))[1],
                      HERE / "augmentations-after.png")
    return bundle


def gradcam_pictures(before: str, bundle) -> None:
    import numpy as np
    import torch

    from resnet_cli import plots
    from resnet_cli.batches import normalize
    from resnet_cli.cam import layer_maps
    from resnet_cli.layers import resolve_target_layers
    from resnet_cli.models import CustomResNet

    old = old_module(before, "plots")
    torch.manual_seed(0)
    model = CustomResNet(num_classes=10).eval()
    x = normalize(torch.from_numpy(np.ascontiguousarray(bundle.test_images[:3])),
                  torch.tensor(bundle.mean), torch.tensor(bundle.std))
    preds = model(x).argmax(1).tolist()
    labels = bundle.test_labels[:3].tolist()
    cams = layer_maps(model, x, resolve_target_layers(model, ["layer3"], 32), {"predicted": preds, "true": labels})
    images = plots.denormalize(x, bundle.mean, bundle.std)
    titles = [plots.mistake_title(bundle.classes, t, p, 0.1) for t, p in zip(labels, preds)]
    plots.save_figure(old.plot_gradcam_grid(images, cams, titles), HERE / "gradcam-before.png")
    explained = {"predicted": [bundle.classes[c] for c in preds], "true": [bundle.classes[c] for c in labels]}
    plots.save_figure(plots.plot_gradcam_grid(images, cams, titles, explained), HERE / "gradcam-after.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="d38df05", help="commit whose plotting code drew the 'before' pictures")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10-jpeg"))
    ap.add_argument("--run-quick", action="store_true", help="first run experiment=quick's range test (minutes on a CPU)")
    ap.add_argument("--only", choices=["lr_finder", "previews"], default=None)
    a = ap.parse_args()
    if a.run_quick:
        run_quick(a.data)
    if a.only in (None, "lr_finder"):
        lr_finder_pictures(a.before)
    if a.only in (None, "previews"):
        bundle = preview_pictures(a.before, a.data)
        gradcam_pictures(a.before, bundle)


if __name__ == "__main__":
    main()
