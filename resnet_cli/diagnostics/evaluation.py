"""Evaluation: the test pass (:func:`evaluate_batches`, also the training loop's), a trained model evaluated
from a checkpoint, a run or a module (:func:`evaluate`, :func:`load_model`), figures read back from a run,
and ``resnet-gradcam``'s work (:func:`explain_checkpoint`). Accuracies are fractions 0-1, losses mean
cross-entropy (nats per image).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from torch import nn
from torch.nn import functional as F

from ..core import distributed
from . import plots
from .gradcam import check_options, layer_maps
from ..core.checkpoint import LAST, TENSOR_KEYS, last_checkpoint, load_checkpoint, model_from_checkpoint, write_json
from ..data import DataBundle, load_test_split
from ..data.decode import load_images
from .report import Evaluation, save_gradcam, write_diagnostics
from ..errors import CheckpointError, ConfigError, DataError
from .interpretation import check_choice, top_predictions
from ..models.summary import TargetLayers, model_summary, resolve_target_layers
from ..core.precision import PRECISIONS, autocast, checkpoint_precision, resolve_device
from ..core.run_folder import RunResult, check_writable

log = logging.getLogger("resnet_cli")


@torch.inference_mode()
def evaluate_batches(model: nn.Module, batches, device: torch.device, precision: str = "fp32",
                     return_outputs: bool = False, tta_flip: bool = False,
                     world: distributed.World | None = None) -> dict[str, Any]:
    """``{"loss": mean cross-entropy (nats per image), "acc": fraction 0-1, "n"}`` of ``model`` over
    ``batches`` (float (N, 3, H, W) images, int64 (N,) labels on ``device``) under ``precision``'s autocast.

    ``tta_flip``: logits averaged over each image and its mirror (airbench94's ``0.5 * (net(x) +
    net(x.flip(-1)))``). ``world`` (torchrun): sums reduced over ranks. ``return_outputs`` (one process):
    also ``preds`` int64 (N,) and ``probs`` float32 (N, C) softmax probabilities, on the CPU.
    """
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    n, preds, probs = 0, [], []
    for x, y in batches:
        with autocast(device, precision):
            logits = model(x)
            if tta_flip:
                logits = 0.5 * (logits.float() + model(x.flip(-1)).float())
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        p = logits.argmax(1)
        correct += (p == y).sum()
        n += len(y)
        if return_outputs:
            preds.append(p)
            probs.append(F.softmax(logits, 1))
    sums = (loss_sum.item(), correct.item(), n)
    if world is not None and world.distributed:
        sums = distributed.all_reduce_sums(*sums, device=device)
    out = {"loss": sums[0] / max(sums[2], 1), "acc": sums[1] / max(sums[2], 1), "n": int(sums[2])}
    if return_outputs:
        out["preds"] = torch.cat(preds).cpu()
        out["probs"] = torch.cat(probs).cpu()
    return out


def load_model(checkpoint: str | Path, device: str = "auto") -> tuple[nn.Module, dict[str, Any]]:
    """``(model, info)``: the trained network (only ``resnet_cli.models`` classes) rebuilt from a ``last.pt``
    alone, in eval mode on ``device`` (auto, cpu, cuda, mps), and the checkpoint's other entries: ``config`` (a dict),
    ``classes``, ``mean``/``std`` (3 fractions 0-1), ``image_size`` (pixels), ``history``, ``step_lrs``...

    Raises CheckpointError (missing, unreadable, foreign or not fitting) or ConfigError (bad ``device``).
    """
    model, ckpt = model_from_checkpoint(checkpoint, resolve_device(device))
    return model, {k: v for k, v in ckpt.items() if k not in TENSOR_KEYS}


def _evaluation(model: nn.Module, images: np.ndarray, labels: np.ndarray, norm: tuple, batch_size: int,
                precision: str, seed: int, tta_flip: bool = False) -> Evaluation:
    """:func:`evaluate_batches` of ``model`` over uint8 images (N, H, W, 3) normalised with
    ``norm = (mean, std, classes)``, as a training run passes its test set."""
    from ..data.batches import TestBatches

    mean, std, classes = norm
    device = next(model.parameters()).device
    batches = TestBatches(images, labels, mean, std, batch_size, device)
    out = evaluate_batches(model, batches, device, precision, return_outputs=True, tta_flip=tta_flip)
    return Evaluation(
        loss=float(out["loss"]), acc=float(out["acc"]), n=int(out["n"]), preds=out["preds"],
        probs=out["probs"], labels=torch.as_tensor(labels, dtype=torch.int64), x=batches.x,
        classes=[str(c) for c in classes], mean=[float(m) for m in mean], std=[float(s) for s in std],
        model=model, seed=seed,
    )


def evaluate(source: Any, data: Any = None, *, device: str = "auto", batch_size: int | None = None,
             precision: str | None = None, tta_flip: bool | None = None, weights: str = "model") -> Evaluation:
    """Evaluate a trained model on a test set with the training run's pass (:func:`evaluate_batches`).

    Args:
        source: a checkpoint path (model and normalisation from it alone; by default its run's test split,
            reproducing the run's ``test_acc``/``test_loss``), a :class:`~resnet_cli.core.run_folder.RunResult`
            (its model and data) or an ``nn.Module`` (``data`` required; its training images' mean/std).
        data: a :class:`~resnet_cli.data.DataBundle`, a config or a list of overrides whose test split is
            read; class names must match the model's.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps`` (a RunResult's model stays where it is).
        batch_size, precision (``auto``, ``bf16``, ``fp32``), tta_flip: default the run's ``data.batch_size``,
            the precision it computed in (a checkpoint's record; fp32 with a warning where this device has no
            native bf16), ``trainer.tta_flip``, else 512, ``auto``, False.
        weights: ``model`` or ``ema`` (a checkpoint's EMA of the weights, ``trainer.ema_decay``).

    Returns :class:`~resnet_cli.diagnostics.report.Evaluation` (loss in nats/image, acc fraction 0-1, figures).
    Raises CheckpointError, DataError, ConfigError (bad checkpoint, data, option, or classes differing
    between model and data) or TypeError (unsupported ``source``/``data``, a bare module without ``data``).
    """
    from ..cli.composition import as_config
    from ..data import load_data as _load

    run_cfg: Any = None  # the run's config (dict or DictConfig): batch size, precision, seed
    info: dict | None = None  # the checkpoint's entries: its recorded precision
    norm: tuple | None = None  # (mean, std, classes) the model was trained with
    if weights not in ("model", "ema") or (weights == "ema" and not isinstance(source, (str, Path))):
        raise ConfigError(f"weights={weights!r} is not allowed: model, or ema for a checkpoint path")
    if isinstance(source, RunResult):
        info = load_checkpoint(source.checkpoint)
        model, run_cfg = source.model, info["config"]
        norm = (info["mean"], info["std"], info["classes"])
        data = source.data if data is None else data
    elif isinstance(source, (str, Path)):
        model, info = load_model(source, device)
        run_cfg, norm = info["config"], (info["mean"], info["std"], info["classes"])
        if weights == "ema":
            ema = load_checkpoint(source).get("ema")
            if ema is None:
                raise CheckpointError(f"{source} holds no EMA of the weights: it was trained without "
                                      "trainer.ema_decay; evaluate its weights=model")
            model.load_state_dict({k.removeprefix("module."): v for k, v in ema.items() if k != "n_averaged"})
    elif isinstance(source, nn.Module):
        if data is None:
            raise TypeError("evaluate(model, data): a bare model needs data (a DataBundle, a config or overrides)")
        model = source.to(resolve_device(device))
    else:
        raise TypeError(f"evaluate() takes a checkpoint path, a RunResult or an nn.Module, not {type(source).__name__}")

    if data is None:
        images, labels, data_classes = load_test_split(run_cfg["data"], int(run_cfg["seed"]))
    elif isinstance(data, DataBundle):
        images, labels, data_classes = data.test_images, data.test_labels, list(data.classes)
        norm = norm or (data.mean, data.std, list(data.classes))
    else:
        cfg, _ = as_config(data)
        if norm is None:  # the mean/std of the training images, as a run computes them
            bundle = _load(cfg.data, int(cfg.seed))
            images, labels, data_classes = bundle.test_images, bundle.test_labels, list(bundle.classes)
            norm = (bundle.mean, bundle.std, list(bundle.classes))
        else:
            data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
            images, labels, data_classes = load_test_split(data_cfg, int(cfg.seed))
        run_cfg = run_cfg if run_cfg is not None else cfg
    if list(data_classes) != list(norm[2]):
        raise ConfigError(f"the test data's classes {list(data_classes)} differ from the model's {list(norm[2])}")

    if run_cfg is None:  # a bare module with a DataBundle
        run_cfg = {"seed": 0, "data": {"batch_size": 512}, "trainer": {"precision": "auto"}}
    batch_size = int(run_cfg["data"]["batch_size"]) if batch_size is None else batch_size
    if precision is None and info is not None:
        precision = checkpoint_precision(info, next(model.parameters()).device)
    precision = str(run_cfg["trainer"]["precision"]) if precision is None else precision
    check_choice("precision", precision, PRECISIONS)
    tta_flip = bool(run_cfg["trainer"].get("tta_flip", False)) if tta_flip is None else tta_flip
    return _evaluation(model, images, labels, norm, batch_size, precision, int(run_cfg["seed"]), tta_flip)


# -- figures from a run ---------------------------------------------------------------------

def plot_one_cycle(run: Any) -> Figure:
    """The One Cycle LR a run applied at every step (``plots/lr_schedule.png``) from the checkpoint of ``run``
    (a RunResult, run folder or checkpoint path); CheckpointError without a completed epoch."""
    path = Path(run.checkpoint if isinstance(run, RunResult) else run)
    path = last_checkpoint(path) if path.is_dir() else path
    ckpt = load_checkpoint(path)
    epochs_done, lrs = int(ckpt.get("epoch") or 0), list(ckpt.get("step_lrs") or [])
    if epochs_done < 1 or not lrs:
        raise CheckpointError(f"{path} has no completed epoch, so no LR schedule to plot")
    steps_per_epoch = (len(lrs) - int(ckpt.get("step") or 0)) // epochs_done  # steps = epochs * spe + step
    return plots.plot_lr_schedule(lrs, steps_per_epoch, int(ckpt["config"]["scheduler"]["max_epoch"]))


def plot_history(run: Any) -> Figure:
    """Train/test loss and accuracy per epoch (``plots/curves.png``) from a
    :class:`~resnet_cli.core.run_folder.RunResult`, a metrics dict or a history list."""
    if isinstance(run, RunResult):
        run = run.metrics
    history = run["history"] if isinstance(run, dict) else run
    return plots.plot_curves(history)


# -- resnet-gradcam -------------------------------------------------------------------------

def _explain_images(cfg: DictConfig, model: nn.Module, ckpt: dict, target_layers: TargetLayers, run_dir: Path,
                    console: Console) -> dict[str, Any]:
    """Own images: top-3 predictions (printed, predictions.json), predicted-class heat maps in plots/gradcam/."""
    from ..data.batches import normalize

    if cfg.target == "true":
        raise ConfigError("target=true needs true labels, which your own images lack: use target=predicted")
    classes, paths = list(ckpt["classes"]), [str(p) for p in cfg.images]
    device = next(model.parameters()).device
    raw = load_images(paths, int(ckpt["image_size"]))
    x = normalize(torch.from_numpy(raw).to(device), torch.tensor(ckpt["mean"], dtype=torch.float32, device=device),
                  torch.tensor(ckpt["std"], dtype=torch.float32, device=device))
    with autocast(device, checkpoint_precision(ckpt, device)):  # the run's precision
        probs = model.predict_proba(x).float().cpu()
    predictions, table = top_predictions(paths, probs, classes)
    for p in predictions:
        log.info("%s: %s", p["image"], ", ".join(f"{t['class']} {t['p']:.3f}" for t in p["top3"]))
    console.print(table)

    pred = probs.argmax(1).tolist()
    cams = layer_maps(model, x, target_layers, {"predicted": pred}, cfg.method)
    titles = [f"{Path(p).name}: {classes[c]} (p={probs[r, c]:.2f})" for r, (p, c) in enumerate(zip(paths, pred))]
    files = [f"{r + 1:02d}_{Path(p).stem}.png" for r, p in enumerate(paths)]
    save_gradcam(plots.denormalize(x, ckpt["mean"], ckpt["std"]), cams, titles, files, run_dir / "plots" / "gradcam",
                 {"predicted": [classes[c] for c in pred]})
    write_json(run_dir / "predictions.json", predictions)
    return {"mode": "images", "predictions": predictions, "layers": target_layers.names}


def explain_checkpoint(cfg: DictConfig, run_dir: str | Path, console: Console | None = None) -> dict[str, Any]:
    """Everything ``resnet-gradcam`` does for a composed ``gradcam`` config; writes and returns metrics.json.
    Raises ConfigError (no ``ckpt``, a bad option or layer), CheckpointError or DataError (no test data,
    an undecodable image).
    """
    run_dir = Path(run_dir)
    console = console or Console()
    if not cfg.ckpt:
        raise ConfigError(f"ckpt is required: resnet-gradcam ckpt=<run folder>/{LAST}")
    check_options(cfg.count, cfg.order, cfg.method, cfg.target, prefix="")
    if cfg.batch_size < 1:
        raise ConfigError(f"batch_size={cfg.batch_size} is not allowed: must be >= 1")
    device = resolve_device(cfg.device)
    check_writable(run_dir)
    model, ckpt = model_from_checkpoint(cfg.ckpt, device)
    size = int(ckpt["image_size"])
    target_layers = resolve_target_layers(model, cfg.layers, size)  # a bad layer name fails before any data is read
    model_summary(model, size, run_dir / "model_summary.txt")
    seed = int(cfg.seed if cfg.seed is not None else ckpt["config"].get("seed", 0))
    metrics: dict[str, Any] = {
        "status": "completed", "ckpt": str(Path(cfg.ckpt).resolve()),
        "model": ckpt["config"]["model"]["_target_"], "method": cfg.method, "target": cfg.target,
        "classes": list(ckpt["classes"]),
    }
    if cfg.images:
        metrics.update(_explain_images(cfg, model, ckpt, target_layers, run_dir, console))
    else:
        images, labels, classes = load_test_split(ckpt["config"]["data"], seed, cfg.test_subset, cfg.data_root)
        if list(classes) != list(ckpt["classes"]):
            raise DataError(f"the test classes {classes} differ from the checkpoint's {list(ckpt['classes'])}: "
                            "set data_root=<the run's data folder>")
        precision = checkpoint_precision(ckpt, device)  # the run's, to reproduce its test_acc
        ev = _evaluation(model, images, labels, (ckpt["mean"], ckpt["std"], classes), cfg.batch_size, precision, seed)
        log.info("test set: %d images, test_acc %.2f%%, test_loss %.4f", ev.n, 100 * ev.acc, ev.loss)
        diag = write_diagnostics(model, ev.x, ev.labels, ev.preds, ev.probs, classes, ckpt["mean"], ckpt["std"],
                                 run_dir, count=cfg.count, order=cfg.order, method=cfg.method, layers=target_layers,
                                 target=cfg.target, seed=seed, console=console)
        metrics.update({"mode": "test", "test_acc": ev.acc, "test_loss": ev.loss, "test_size": ev.n,
                        "precision": precision, "layers": target_layers.names, "count": int(cfg.count),
                        "order": cfg.order, "seed": seed, **diag})
    write_json(run_dir / "metrics.json", metrics)
    return metrics
