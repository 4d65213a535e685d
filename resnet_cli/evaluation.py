"""Evaluation: the test pass (:func:`evaluate_batches`, the one the training loop runs after
each epoch), a trained model evaluated from a checkpoint, a run or a module (the Python API's
:func:`evaluate`, :func:`load_model`), figures read back from a run, and everything
``resnet-gradcam`` does (:func:`explain_checkpoint`).

A checkpoint alone rebuilds the model, class names, normalisation and image size
(:func:`resnet_cli.checkpoint.model_from_checkpoint`) and the test split is re-read as the run
read it, so :func:`evaluate` reproduces the run's ``test_acc``/``test_loss``. Accuracies are
fractions 0-1, losses mean cross-entropy (nats per image).
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

from . import distributed, plots
from .cam import check_options, layer_maps
from .checkpoint import LAST, TENSOR_KEYS, last_checkpoint, load_checkpoint, model_from_checkpoint, write_json
from .data import DataBundle, load_test_split
from .decode import load_images
from .diagnostics import Evaluation, save_gradcam, write_diagnostics
from .errors import CheckpointError, ConfigError, DataError
from .interpretation import top_predictions
from .layers import TargetLayers, model_summary, resolve_target_layers
from .precision import PRECISIONS, autocast, resolve_device
from .run_folder import RunResult, check_writable

log = logging.getLogger("resnet_cli")


@torch.inference_mode()
def evaluate_batches(model: nn.Module, batches, device: torch.device, precision: str = "fp32",
                     return_outputs: bool = False, tta_flip: bool = False,
                     world: distributed.World | None = None) -> dict[str, Any]:
    """Mean cross-entropy (nats per image) and accuracy (fraction 0-1) of ``model`` over
    ``batches`` (an iterable of float (N, 3, H, W) images and int64 (N,) labels on ``device``),
    under ``precision``'s autocast; ``{"loss", "acc", "n"}``.

    ``tta_flip``: test-time augmentation by horizontal flip, the logits averaged over each image
    and its mirror (airbench94's ``0.5 * (net(x) + net(x.flip(-1)))``); twice the forward passes.
    ``world`` (under torchrun): each rank passes its block of the test split and the sums are
    reduced over ranks. With ``return_outputs`` (one process), also ``preds`` int64 (N,) and
    ``probs`` float32 (N, C) softmax probabilities on the CPU, in the batches' order. Sums stay on
    the device until the end.
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
    """Rebuild the trained network from a ``checkpoints/last.pt`` alone, as ``resnet-gradcam``
    does (:func:`resnet_cli.checkpoint.model_from_checkpoint`: only ``resnet_cli.models`` classes).

    Args:
        checkpoint: path of a checkpoint written by ``resnet-train`` / :func:`resnet_cli.train`.
        device: ``auto`` (CUDA if available), ``cpu`` or ``cuda``.

    Returns:
        ``(model, info)``: the network with the trained weights, in eval mode on ``device``, and
        the checkpoint's other entries: ``config`` (the run's resolved config as a dict, absolute
        ``data.root``), ``classes`` (names in label order), ``mean``/``std`` (3 fractions 0-1),
        ``image_size`` (pixels), ``history``, ``step_lrs``, ``epoch``, ``lr`` ...

    Raises:
        CheckpointError: missing, unreadable or foreign checkpoint, a model class outside
            resnet_cli.models, or weights that do not fit.
        ConfigError: an unusable ``device``.
    """
    model, ckpt = model_from_checkpoint(checkpoint, resolve_device(device))
    return model, {k: v for k, v in ckpt.items() if k not in TENSOR_KEYS}


def _evaluation(model: nn.Module, images: np.ndarray, labels: np.ndarray, norm: tuple, batch_size: int,
                precision: str, seed: int, tta_flip: bool = False) -> Evaluation:
    """:func:`evaluate_batches` of ``model`` (on its device) over uint8 images (N, H, W, 3)
    normalised with ``norm = (mean, std, classes)``, as a training run passes its test set."""
    from .batches import TestBatches

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
    """Evaluate a trained model on a test set, with the pass the training run uses
    (:func:`evaluate_batches` over :class:`resnet_cli.batches.TestBatches`).

    Args:
        source: one of
            * a checkpoint path (``<run>/checkpoints/last.pt``): model, class names and
              normalisation are rebuilt from the checkpoint alone (:func:`load_model`); by
              default the test split is re-read as the run read it (its absolute ``data.root``,
              ``data.test_subset`` and ``seed``; training images are not decoded), so the result
              reproduces the run's final ``test_acc``/``test_loss``;
            * a :class:`~resnet_cli.run_folder.RunResult` from :func:`resnet_cli.train` (its model and data);
            * an ``nn.Module`` (then ``data`` is required, and its training images' mean/std
              normalise the test images).
        data: other test data: a :class:`~resnet_cli.data.DataBundle` (its test split), or a
            config from :func:`resnet_cli.compose` / a list of overrides (e.g. ``["data=image_folder",
            "data.root=/elsewhere/cifar10-jpeg", "data.test_subset=1000"]``) whose test split is
            read. Class names must match the model's.
        device: ``auto``, ``cpu`` or ``cuda`` (checkpoints and bare modules; a RunResult's
            model stays where it is).
        batch_size: images per forward pass (default: the run's ``data.batch_size``, else 512).
        precision: ``auto`` (bf16 autocast where the device has native bf16, resnet_cli/precision.py), ``bf16`` or ``fp32``; default
            the run's ``trainer.precision``, else ``auto``.
        tta_flip: average the logits of each image and its mirror; default the run's
            ``trainer.tta_flip``, else False.
        weights: ``model`` (the trained weights) or ``ema`` (a checkpoint's EMA of them, kept by
            a run with ``trainer.ema_decay``).

    Returns:
        :class:`~resnet_cli.diagnostics.Evaluation`: loss (nats/image), acc (fraction 0-1),
        predictions, probabilities, and the misclassified / confusion-matrix / Grad-CAM figures.

    Raises:
        CheckpointError, DataError, ConfigError: unusable checkpoint, data, options, or class
            names that differ between model and data.
        TypeError: an unsupported ``source``/``data`` type, or a bare module without ``data``.
    """
    from .composition import as_config
    from .data import load_data as _load

    run_cfg: Any = None  # the run's config (dict or DictConfig): batch size, precision, seed
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
            images, labels, data_classes = load_test_split(OmegaConf.to_container(cfg.data, resolve=True), int(cfg.seed))
        run_cfg = run_cfg if run_cfg is not None else cfg
    if list(data_classes) != list(norm[2]):
        raise ConfigError(f"the test data's classes {list(data_classes)} differ from the model's {list(norm[2])}")

    if batch_size is None:
        batch_size = int(run_cfg["data"]["batch_size"]) if run_cfg is not None else 512
    if precision is None:
        precision = str(run_cfg["trainer"]["precision"]) if run_cfg is not None else "auto"
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r} is not allowed: one of {', '.join(PRECISIONS)}")
    seed = int(run_cfg["seed"]) if run_cfg is not None else 0
    if tta_flip is None:
        tta_flip = bool(run_cfg["trainer"].get("tta_flip", False)) if run_cfg is not None else False
    return _evaluation(model, images, labels, norm, batch_size, precision, seed, tta_flip)


# -- figures from a run ---------------------------------------------------------------------

def _checkpoint_of(run: Any) -> Path:
    if isinstance(run, RunResult):
        return Path(run.checkpoint)
    path = Path(run)
    return last_checkpoint(path) if path.is_dir() else path


def plot_one_cycle(run: Any) -> Figure:
    """The One Cycle LR a run applied at every optimizer step (the run folder's
    ``plots/lr_schedule.png``), read from its checkpoint.

    Args:
        run: a :class:`~resnet_cli.run_folder.RunResult`, a run folder or a checkpoint path.

    Raises:
        CheckpointError: no usable checkpoint, or one without completed epochs.
    """
    path = _checkpoint_of(run)
    ckpt = load_checkpoint(path)
    epochs_done, lrs = int(ckpt.get("epoch") or 0), list(ckpt.get("step_lrs") or [])
    if epochs_done < 1 or not lrs:
        raise CheckpointError(f"{path} has no completed epoch, so no LR schedule to plot")
    steps_per_epoch = (len(lrs) - int(ckpt.get("step") or 0)) // epochs_done  # steps = epochs * spe + step
    return plots.plot_lr_schedule(lrs, steps_per_epoch, int(ckpt["config"]["scheduler"]["max_epoch"]))


def plot_history(run: Any) -> Figure:
    """Train/test loss and accuracy per epoch (the run folder's ``plots/curves.png``) from a
    :class:`~resnet_cli.run_folder.RunResult`, a metrics dict or a history list."""
    if isinstance(run, RunResult):
        run = run.metrics
    history = run["history"] if isinstance(run, dict) else run
    return plots.plot_curves(history)


# -- resnet-gradcam -------------------------------------------------------------------------

def _explain_images(cfg: DictConfig, model: nn.Module, ckpt: dict, target_layers: TargetLayers, run_dir: Path,
                    console: Console) -> dict[str, Any]:
    """The user's own images: top-3 predictions (printed, predictions.json) and the heat maps of
    the predicted class in plots/gradcam/NN_<stem>.png + grid.png."""
    from .batches import normalize

    if cfg.target == "true":
        raise ConfigError("target=true needs true labels, which your own images lack: use target=predicted")
    classes, paths = list(ckpt["classes"]), [str(p) for p in cfg.images]
    device = next(model.parameters()).device
    raw = load_images(paths, int(ckpt["image_size"]))
    x = normalize(torch.from_numpy(raw).to(device), torch.tensor(ckpt["mean"], dtype=torch.float32, device=device),
                  torch.tensor(ckpt["std"], dtype=torch.float32, device=device))
    probs = model.predict_proba(x).cpu()
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
    """Everything ``resnet-gradcam`` does, for a composed ``gradcam`` config
    (:class:`resnet_cli.config_schema.GradcamConfig`); writes and returns metrics.json.

    Test-set mode: the run's test split (``test_subset``, ``data_root``, ``seed`` override the
    checkpoint's) evaluated in fp32, then :func:`resnet_cli.diagnostics.write_diagnostics`.
    Images mode (``images=[...]``): see the module docstring of :mod:`resnet_cli.gradcam`.

    Raises:
        ConfigError: a missing ``ckpt`` or a bad option/layer. CheckpointError: a missing,
            unreadable or foreign checkpoint. DataError: missing test data or an undecodable image.
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
        write_json(run_dir / "metrics.json", metrics)
        return metrics

    images, labels, classes = load_test_split(ckpt["config"]["data"], seed, cfg.test_subset, cfg.data_root)
    if list(classes) != list(ckpt["classes"]):
        raise DataError(f"the test classes {classes} differ from the checkpoint's {list(ckpt['classes'])}: "
                        "set data_root=<the run's data folder>")
    # the run's precision (bf16 where this device has it, unless the run chose fp32), so the run's test_acc is reproduced
    precision = "fp32" if (ckpt["config"].get("trainer") or {}).get("precision") == "fp32" else "auto"
    ev = _evaluation(model, images, labels, (ckpt["mean"], ckpt["std"], classes), cfg.batch_size, precision, seed)
    log.info("test set: %d images, test_acc %.2f%%, test_loss %.4f", ev.n, 100 * ev.acc, ev.loss)
    diag = write_diagnostics(model, ev.x, ev.labels, ev.preds, ev.probs, classes, ckpt["mean"], ckpt["std"], run_dir,
                             count=cfg.count, order=cfg.order, method=cfg.method, layers=target_layers,
                             target=cfg.target, seed=seed, console=console)
    metrics.update({"mode": "test", "test_acc": ev.acc, "test_loss": ev.loss, "test_size": ev.n,
                    "layers": target_layers.names, "count": int(cfg.count), "order": cfg.order, "seed": seed, **diag})
    write_json(run_dir / "metrics.json", metrics)
    return metrics
