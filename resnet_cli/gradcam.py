"""``resnet-gradcam``: class-wise accuracy, confusion matrix, misclassified images and Grad-CAM
for a trained checkpoint, written into a run folder of its own (``outputs/gradcam/<date>/<time>``).

The model, class names, normalisation (mean/std) and image size are rebuilt from the checkpoint
alone (:func:`model_from_checkpoint`); the test split is re-read from the checkpoint's absolute
``data.root`` with the run's seed and ``data.test_subset``, so the figures describe the images
the run was evaluated on. With ``images=[...]`` the user's own images are explained instead.

Examples::

    resnet-gradcam ckpt=outputs/2024-05-01/12-00-00/checkpoints/last.pt
    resnet-gradcam ckpt=.../last.pt method=gradcam++ layers=[layer3] target=true count=8
    resnet-gradcam ckpt=.../last.pt images=[cat.png,plane.jpg]

Run folder::

    metrics.json          status, test_acc/test_loss (fractions 0-1), class_acc, confusion (rows = true)
    model_summary.txt     torchinfo layer table
    plots/misclassified.png, plots/confusion_matrix.png, plots/gradcam/*.png (+ grid.png)
    predictions.json      images mode only: top-3 classes and probabilities (0-1) per image
    gradcam.log
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

import hydra
import numpy as np
import torch
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from PIL import Image, UnidentifiedImageError
from rich.console import Console
from rich.table import Table
from torch import nn

from .cli import config_dir, run_hydra, user_errors
from .errors import CheckpointError, ConfigError, DataError

log = logging.getLogger("resnet_cli")

REQUIRED_KEYS = ("model", "config", "classes", "mean", "std", "image_size")
"""Checkpoint keys :func:`model_from_checkpoint` needs (all written by resnet-train)."""


@dataclass
class GradcamConfig:
    """The ``resnet-gradcam`` configuration (see conf/gradcam.yaml for each key)."""

    ckpt: Optional[str] = None
    method: str = "gradcam"
    layers: Optional[List[str]] = None
    count: int = 20
    order: str = "confident"
    target: str = "both"
    images: List[str] = field(default_factory=list)
    seed: Optional[int] = None
    data_root: Optional[str] = None
    test_subset: Any = None
    batch_size: int = 256
    device: str = "auto"


ConfigStore.instance().store(name="gradcam_schema", node=GradcamConfig)


def model_from_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the trained network from a resnet-train checkpoint alone.

    Returns ``(model, checkpoint)``: the model in eval mode on ``device``, with the checkpoint's
    weights; the checkpoint dict holds ``classes``, ``mean``/``std`` (fractions 0-1),
    ``image_size`` (pixels) and ``config`` (the run's resolved config, absolute ``data.root``).

    Raises:
        CheckpointError: missing, unreadable or foreign file, a missing key, a model class
            outside resnet_cli.models, or weights that do not fit the model.
    """
    ckpt = _load(path)
    target = str(ckpt["config"].get("model", {}).get("_target_", ""))
    if not target.startswith("resnet_cli.models."):
        raise CheckpointError(
            f"{path}: model._target_={target!r} is not a resnet_cli.models network; "
            "use a checkpoints/last.pt written by resnet-train"
        )
    try:
        model = instantiate({"_target_": target}, num_classes=len(ckpt["classes"]))
        model.load_state_dict(ckpt["model"])
    except Exception as e:  # noqa: BLE001 - missing class, shape or key mismatch
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: weights do not fit {target} ({reason}); the checkpoint is damaged") from None
    return model.to(device).eval(), ckpt


def _load(path: str | Path) -> dict:
    from .checkpoint import load_checkpoint

    ckpt = load_checkpoint(path, key="ckpt", require=REQUIRED_KEYS)
    if not isinstance(ckpt["config"], dict) or not isinstance(ckpt["config"].get("data"), dict):
        raise CheckpointError(f"{path} holds no run config; use a checkpoints/last.pt written by resnet-train")
    return ckpt


def load_test_split(data_cfg: dict, seed: int, test_subset: Any = None,
                    root: str | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The run's test images only (no training images are decoded).

    Args:
        data_cfg: the checkpoint's ``config["data"]`` (name, root, image_size, test_subset).
        seed: the subset seed (the run's ``seed`` reproduces its test subset).
        test_subset: None = ``data_cfg["test_subset"]``; ``"all"`` = the whole split; N = a
            seeded class-stratified subset of N images.
        root: overrides ``data_cfg["root"]``.

    Returns:
        images uint8 (N, S, S, 3) RGB, labels int64 (N,), class names in label order.

    Raises:
        DataError: the data folder is missing or unreadable. ConfigError: a bad ``test_subset``.
    """
    from .data import _scan_split, decode_images, stratified_subset

    if test_subset is None:
        size = data_cfg.get("test_subset")
    elif test_subset == "all":
        size = None
    elif isinstance(test_subset, int) and not isinstance(test_subset, bool) and test_subset > 0:
        size = test_subset
    else:
        raise ConfigError(f"test_subset={test_subset!r} is not allowed: null (as in the run), all, or a positive count")
    root_dir = Path(root or data_cfg["root"]).expanduser()
    image_size = int(data_cfg["image_size"])
    if data_cfg.get("name") == "cifar10":
        from torchvision.datasets import CIFAR10

        try:
            ds = CIFAR10(str(root_dir), train=False, download=False)
        except RuntimeError:
            raise DataError(f"CIFAR-10 test set not found in {root_dir}: set data_root=<folder> where the run's data is") from None
        labels = np.asarray(ds.targets, dtype=np.int64)
        idx = stratified_subset(labels, size, seed, "test_subset")
        return np.ascontiguousarray(ds.data[idx]), labels[idx], list(ds.classes)
    if not root_dir.is_dir():
        raise DataError(f"data folder not found: {root_dir}: set data_root=<folder with test/<class>/*>")
    classes, samples = _scan_split(root_dir / "test")
    labels = np.array([s[1] for s in samples], dtype=np.int64)
    idx = stratified_subset(labels, size, seed, "test_subset")
    return decode_images([samples[i][0] for i in idx], image_size), labels[idx], classes


def load_user_images(paths: list[str], image_size: int) -> np.ndarray:
    """Decode the user's image files to uint8 RGB (N, S, S, 3), resized (bilinear) to S pixels.

    Raises:
        DataError: a file that is missing or cannot be decoded (names it).
    """
    out = []
    for p in paths:
        path = Path(p).expanduser()
        if not path.is_file():
            raise DataError(f"image not found: {p} (check the path in images=[...])")
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                if im.size != (image_size, image_size):
                    im = im.resize((image_size, image_size), Image.BILINEAR)
                out.append(np.asarray(im, dtype=np.uint8))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise DataError(f"cannot decode image {p} ({type(e).__name__}): pass a PNG or JPEG file in images=[...]") from None
    return np.stack(out)


def _explain_images(cfg: DictConfig, model: nn.Module, ckpt: dict, run_dir: Path, device: torch.device,
                    console: Console) -> dict[str, Any]:
    from .augment import normalize
    from .checkpoint import write_json
    from .explain import denormalize, gradcam_maps, plot_gradcam_grid, resolve_target_layers
    from .plots import save_figure

    if cfg.target == "true":
        raise ConfigError("target=true needs true labels, which your own images lack: use target=predicted")
    classes, size = list(ckpt["classes"]), int(ckpt["image_size"])
    names, modules = resolve_target_layers(model, cfg.layers, size)
    raw = load_user_images(list(cfg.images), size)
    mean = torch.tensor(ckpt["mean"], dtype=torch.float32, device=device)
    std = torch.tensor(ckpt["std"], dtype=torch.float32, device=device)
    x = normalize(torch.from_numpy(raw).to(device), mean, std)
    probs = model.predict_proba(x).cpu()
    top_p, top_i = probs.topk(min(3, len(classes)), dim=1)

    table = Table(title="top-3 predictions")
    table.add_column("image")
    for k in range(top_i.shape[1]):
        table.add_column(f"#{k + 1}")
    predictions = []
    for path, ps, ix in zip(cfg.images, top_p.tolist(), top_i.tolist()):
        table.add_row(str(path), *[f"{classes[i]} ({p:.2f})" for p, i in zip(ps, ix)])
        predictions.append({"image": str(path), "top3": [{"class": classes[i], "p": p} for p, i in zip(ps, ix)]})
        log.info("%s: %s", path, ", ".join(f"{classes[i]} {p:.3f}" for p, i in zip(ps, ix)))
    console.print(table)

    pred = top_i[:, 0].tolist()
    cams = {f"{n} | predicted": gradcam_maps(model, x, [m], pred, cfg.method) for n, m in zip(names, modules)}
    images = denormalize(x, ckpt["mean"], ckpt["std"])
    titles = [f"{Path(p).name}: {classes[c]} (p={top_p[r, 0]:.2f})" for r, (p, c) in enumerate(zip(cfg.images, pred))]
    cam_dir = run_dir / "plots" / "gradcam"
    for r, p in enumerate(cfg.images):
        one = {k: v[r:r + 1] for k, v in cams.items()}
        save_figure(plot_gradcam_grid(images[r:r + 1], one, titles[r:r + 1]), cam_dir / f"{r + 1:02d}_{Path(p).stem}.png")
    save_figure(plot_gradcam_grid(images, cams, titles), cam_dir / "grid.png", dpi=100)
    write_json(run_dir / "predictions.json", predictions)
    return {"mode": "images", "predictions": predictions, "layers": names}


def explain_checkpoint(cfg: DictConfig, run_dir: str | Path, console: Console | None = None) -> dict[str, Any]:
    """Everything ``resnet-gradcam`` does, for a composed ``gradcam`` config; returns metrics.json.

    Raises:
        ConfigError: a missing ``ckpt`` or a bad option/layer. CheckpointError: a missing,
            unreadable or foreign checkpoint. DataError: missing test data or an undecodable image.
    """
    from .augment import TestBatches
    from .checkpoint import write_json
    from .config import check_writable, resolve_device
    from .engine import evaluate
    from .explain import check_options, model_summary, resolve_target_layers, write_diagnostics

    run_dir = Path(run_dir)
    console = console or Console()
    if not cfg.ckpt:
        raise ConfigError("ckpt is required: resnet-gradcam ckpt=<run folder>/checkpoints/last.pt")
    check_options(cfg.count, cfg.order, cfg.method, cfg.target, prefix="")
    if cfg.batch_size < 1:
        raise ConfigError(f"batch_size={cfg.batch_size} is not allowed: must be >= 1")
    device = resolve_device(cfg.device)
    check_writable(run_dir)
    model, ckpt = model_from_checkpoint(cfg.ckpt, device)
    size = int(ckpt["image_size"])
    resolve_target_layers(model, cfg.layers, size)  # a bad layer name fails before any data is read
    model_summary(model, size, run_dir / "model_summary.txt")
    seed = int(cfg.seed if cfg.seed is not None else ckpt["config"].get("seed", 0))
    metrics: dict[str, Any] = {
        "status": "completed", "ckpt": str(Path(cfg.ckpt).resolve()),
        "model": ckpt["config"]["model"]["_target_"], "method": cfg.method, "target": cfg.target,
        "classes": list(ckpt["classes"]),
    }
    if cfg.images:
        metrics.update(_explain_images(cfg, model, ckpt, run_dir, device, console))
        write_json(run_dir / "metrics.json", metrics)
        return metrics

    images, labels, classes = load_test_split(ckpt["config"]["data"], seed, cfg.test_subset, cfg.data_root)
    if list(classes) != list(ckpt["classes"]):
        raise DataError(f"the test classes {classes} differ from the checkpoint's {list(ckpt['classes'])}: "
                        "set data_root=<the run's data folder>")
    batches = TestBatches(images, labels, ckpt["mean"], ckpt["std"], cfg.batch_size, device)
    ev = evaluate(model, batches, device, "fp32", return_outputs=True)
    log.info("test set: %d images, test_acc %.2f%%, test_loss %.4f", ev["n"], 100 * ev["acc"], ev["loss"])
    diag = write_diagnostics(model, batches.x, batches.y, ev["preds"], ev["probs"], classes, ckpt["mean"],
                             ckpt["std"], run_dir, count=cfg.count, order=cfg.order, method=cfg.method,
                             layers=cfg.layers, target=cfg.target, seed=seed, console=console)
    names, _ = resolve_target_layers(model, cfg.layers, size)
    metrics.update({"mode": "test", "test_acc": ev["acc"], "test_loss": ev["loss"], "test_size": ev["n"],
                    "layers": names, "count": int(cfg.count), "order": cfg.order, "seed": seed, **diag})
    write_json(run_dir / "metrics.json", metrics)
    return metrics


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="gradcam")
def hydra_main(cfg: DictConfig) -> float | None:
    """Explain ``cfg.ckpt`` into the Hydra run folder; returns test_acc (fraction 0-1), or None
    in images mode or when the job failed."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with user_errors(run_dir, cfg):
        log.info("resnet-gradcam %s", " ".join(f"{k}={v}" for k, v in OmegaConf.to_container(cfg, resolve=True).items()))
        return explain_checkpoint(cfg, run_dir).get("test_acc")
    return None


def main() -> None:
    """The ``resnet-gradcam`` console script: :func:`hydra_main` with config errors (unknown key,
    wrong type) as one line and exit 2 (:func:`resnet_cli.cli.run_hydra`)."""
    run_hydra(hydra_main)


if __name__ == "__main__":
    main()
