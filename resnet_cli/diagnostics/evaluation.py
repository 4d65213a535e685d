"""Evaluation: the test pass (:func:`evaluate_batches`, also the training loop's), a trained model evaluated
from a checkpoint, a run or a module (:func:`evaluate`, :func:`load_model`), figures read back from a run,
and ``resnet-gradcam``'s work (:func:`explain_checkpoint`). Accuracies are fractions 0-1, losses mean
cross-entropy (nats per image).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from rich.console import Console
from torch import nn

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
from ..core.fit import evaluate_batches  # noqa: F401 - public here too

log = logging.getLogger("resnet_cli")


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
    """What :func:`resnet_cli.api.evaluate` documents, with ``data`` a
    :class:`~resnet_cli.data.DataBundle` or a :class:`~resnet_cli.core.settings.RunConfig` (the API
    composes and validates a config or overrides into one); the training run's test pass
    (:func:`~resnet_cli.core.fit.evaluate_batches`)."""
    from ..core.settings import RunConfig
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
    elif isinstance(data, RunConfig):  # the API composed it (resnet_cli.api.evaluate)
        if norm is None:  # the mean/std of the training images, as a run computes them
            bundle = _load(data.data, data.seed)
            images, labels, data_classes = bundle.test_images, bundle.test_labels, list(bundle.classes)
            norm = (bundle.mean, bundle.std, list(bundle.classes))
        else:
            images, labels, data_classes = load_test_split(data.resolved["data"], data.seed)
        run_cfg = run_cfg if run_cfg is not None else data.resolved
    else:
        raise TypeError(f"evaluate(data=...) takes a DataBundle, a config or overrides, not {type(data).__name__}")
    if list(data_classes) != list(norm[2]):
        raise ConfigError(f"the test data's classes {list(data_classes)} differ from the model's {list(norm[2])}")

    if run_cfg is None:  # a bare module with a DataBundle
        run_cfg = {"seed": 0, "data": {"batch_size": 512}, "trainer": {"precision": "auto", "tta_flip": False}}
    batch_size = int(run_cfg["data"]["batch_size"]) if batch_size is None else batch_size
    if precision is None and info is not None:
        precision = checkpoint_precision(info, next(model.parameters()).device)
    precision = str(run_cfg["trainer"]["precision"]) if precision is None else precision
    check_choice("precision", precision, PRECISIONS)
    tta_flip = bool(run_cfg["trainer"]["tta_flip"]) if tta_flip is None else tta_flip
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

def _explain_images(cfg: ExplainRequest, model: nn.Module, ckpt: dict, target_layers: TargetLayers, run_dir: Path,
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


@dataclass(frozen=True)
class ExplainRequest:
    """What ``resnet-gradcam`` is asked (conf/gradcam.yaml): a checkpoint; the CAM ``method``, ``layers``
    (None: the model's default), ``count`` images in ``order``, the ``target`` class; own ``images`` (else
    the run's test split, ``test_subset`` of it, from ``data_root`` if given); ``seed`` (None: the run's),
    images per forward pass and the device."""

    ckpt: str | None
    method: str
    layers: str | list[str] | None
    count: int
    order: str
    target: str
    images: list[str]
    seed: int | None
    data_root: str | None
    test_subset: int | str | None
    batch_size: int
    device: str


def explain_checkpoint(cfg: ExplainRequest, run_dir: str | Path, console: Console | None = None) -> dict[str, Any]:
    """Everything ``resnet-gradcam`` does for an :class:`ExplainRequest`; writes and returns metrics.json.
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
    seed = int(cfg.seed if cfg.seed is not None else ckpt["config"]["seed"])
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
