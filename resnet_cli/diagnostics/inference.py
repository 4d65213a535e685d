"""``resnet-predict``'s work: top-k predictions for image files with a trained checkpoint (timm's
``inference.py``). Model, classes, mean/std and image size come from the checkpoint; images are decoded
with the training data's checks (:func:`resnet_cli.data.decode.decode`) and run in the precision the checkpoint's
run computed in (:func:`resnet_cli.core.precision.checkpoint_precision`). An unreadable image
is reported (a row with ``error``, a warning) and the others go on; only when none can be predicted
does the command fail.
"""

from __future__ import annotations

from dataclasses import dataclass

import csv
import glob
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..data.decode import IMAGE_SUFFIXES, decode
from ..errors import ConfigError, DataError
from .interpretation import short_names, top_predictions

log = logging.getLogger("resnet_cli")


def expand_images(entries: Sequence[str]) -> tuple[list[str], list[dict[str, str]]]:
    """``images=[...]`` entries -> ``(paths, problems)``: paths in order, each once (a file as it is; a folder's
    image files, recursive, sorted; else a glob, ``**`` recursive, sorted); ``problems``: ``{"path": entry,
    "error": why}`` for entries matching nothing."""
    paths: list[str] = []
    problems: list[dict[str, str]] = []
    seen: set[str] = set()
    for entry in entries:
        entry = str(entry)
        p = Path(entry).expanduser()
        if p.is_file():
            found = [str(p)]
        elif p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                problems.append({"path": entry, "error": f"folder holds no image files ({', '.join(IMAGE_SUFFIXES)})"})
        else:
            found = sorted(f for f in glob.glob(str(p), recursive=True) if Path(f).is_file())
            if not found:
                why = "no file matches this pattern" if glob.has_magic(entry) else "file not found"
                problems.append({"path": entry, "error": why})
        for f in found:
            if f not in seen:
                seen.add(f)
                paths.append(f)
    return paths, problems


def check_finite_weights(model: nn.Module, path: Any) -> None:
    """Refuse a network with a NaN or infinite weight or buffer (a diverged run's), which would
    predict NaN probabilities.

    Raises:
        CheckpointError: naming ``path`` and the first non-finite tensor.
    """
    from ..errors import CheckpointError

    for name, t in model.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"ckpt={path} holds non-finite weights (NaN or inf in {name}), as a diverged run "
                                  "leaves them: use the checkpoint of a run that trained without diverging")


@torch.no_grad()
def predict_files(model: nn.Module, paths: Sequence[str], classes: Sequence[str], mean: Sequence[float],
                  std: Sequence[float], image_size: int, topk: int = 3,
                  batch_size: int = 256, precision: str = "fp32") -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Predict ``paths`` with ``model`` (eval mode; ``predict_proba``: float32 (N, 3, S, S) -> probabilities
    (N, C)), ``batch_size`` images per pass, under ``precision``'s autocast (auto, bf16, fp32);
    ``mean``/``std``: 3 fractions 0-1; ``image_size``: S pixels.

    Returns ``(predictions, failures)``: ``{"path", "top": [{"class", "p" (0-1)}, ...]}`` in the order of
    ``paths``, and ``{"path", "error"}`` for files that could not be decoded.
    """
    from ..data.batches import normalize
    from ..core.precision import autocast

    device = next(model.parameters()).device
    m = torch.tensor(mean, dtype=torch.float32, device=device)
    s = torch.tensor(std, dtype=torch.float32, device=device)
    predictions: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    for start in range(0, len(paths), batch_size):
        ok, arrays = [], []
        for p in paths[start:start + batch_size]:
            try:
                arrays.append(decode(p, image_size))
                ok.append(p)
            except DataError as e:
                log.warning("%s", e)
                failures.append({"path": p, "error": str(e)})
        if not ok:
            continue
        x = normalize(torch.from_numpy(np.stack(arrays)).to(device), m, s)
        with autocast(device, precision):
            probs = model.predict_proba(x).float().cpu()
        records, _ = top_predictions(ok, probs, classes, k=topk)
        predictions += [{"path": r["image"], "top": r["top3"]} for r in records]
    return predictions, failures


def write_predictions(predictions: Sequence[dict[str, Any]], failures: Sequence[dict[str, str]], topk: int,
                      csv_path: Path, json_path: Path) -> None:
    """``csv_path``: ``path, class_1, p_1, ..., class_k, p_k, error`` per image; ``json_path``:
    ``{"predictions": [...], "errors": [...]}`` as :func:`predict_files` returns them."""
    from ..core.checkpoint import write_json

    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", *[c for j in range(1, topk + 1) for c in (f"class_{j}", f"p_{j}")], "error"])
        for r in predictions:
            cells = [v for t in r["top"] for v in (t["class"], f"{t['p']:.6f}")]
            w.writerow([r["path"], *cells, *[""] * (2 * topk - len(cells)), ""])
        for r in failures:
            w.writerow([r["path"], *[""] * (2 * topk), r["error"]])
    write_json(json_path, {"predictions": list(predictions), "errors": list(failures)})


@dataclass(frozen=True)
class PredictRequest:
    """What ``resnet-predict`` is asked (conf/predict.yaml): a checkpoint, image files/folders/globs,
    the classes kept per image, images per forward pass and the device (auto, cpu, cuda, mps)."""

    ckpt: str | None
    images: list[str]
    topk: int
    batch_size: int
    device: str


def predict_checkpoint(cfg: PredictRequest, run_dir: str | Path) -> dict[str, Any]:
    """Everything ``resnet-predict`` does for a :class:`PredictRequest`: writes ``predictions.csv`` and
    ``predictions.json`` into ``run_dir`` and returns the JSON's content plus ``csv``/``json`` paths.

    Raises ConfigError (``ckpt``/``images`` missing, ``topk``/``batch_size`` < 1, a bad ``device``),
    CheckpointError, or DataError (not one image could be predicted).
    """
    from rich.console import Console

    from ..core.checkpoint import model_from_checkpoint
    from ..core.precision import checkpoint_precision, resolve_device
    from ..core.run_folder import check_writable

    if not cfg.ckpt:
        raise ConfigError("ckpt is required: resnet-predict ckpt=<run folder>/checkpoints/last.pt images=[...]")
    if not cfg.images:
        raise ConfigError("images is empty: give files, folders or globs, e.g. images=[cat.png,photos/,'shots/*.jpg']")
    for key in ("topk", "batch_size"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key}={getattr(cfg, key)} is not allowed: must be >= 1")
    device = resolve_device(cfg.device)
    run_dir = Path(run_dir)
    check_writable(run_dir)
    model, ckpt = model_from_checkpoint(cfg.ckpt, device)
    check_finite_weights(model, cfg.ckpt)
    classes = [str(c) for c in ckpt["classes"]]
    topk = min(int(cfg.topk), len(classes))
    paths, failures = expand_images(list(cfg.images))
    for f in failures:
        log.warning("%s: %s", f["path"], f["error"])
    predictions, bad = predict_files(model, paths, classes, ckpt["mean"], ckpt["std"], int(ckpt["image_size"]),
                                     topk=topk, batch_size=int(cfg.batch_size),
                                     precision=checkpoint_precision(ckpt, device))
    failures += bad
    csv_path, json_path = run_dir / "predictions.csv", run_dir / "predictions.json"
    write_predictions(predictions, failures, topk, csv_path, json_path)
    if not predictions:
        raise DataError(f"no image could be predicted ({len(failures)} failed; first: {failures[0]['path']}: "
                        f"{failures[0]['error']}); see {csv_path}")
    Console(stderr=True).print(predictions_table(predictions, topk))
    log.info("%d images predicted, %d failed: %s, %s", len(predictions), len(failures), csv_path, json_path)
    return {"predictions": predictions, "errors": failures, "csv": str(csv_path), "json": str(json_path)}


def predictions_table(predictions: Sequence[dict[str, Any]], topk: int, rows: int = 20):
    """A rich table of the first ``rows`` predictions: the image (its path relative to the folder all
    images share, named in the caption; long names fold onto more lines, never cut) and ``class (p)``
    for each rank."""
    from rich.table import Table

    shown = predictions[:rows]
    names, folder = short_names([r["path"] for r in shown])
    more = f" (first {rows} of {len(predictions)})" if len(predictions) > rows else ""
    table = Table(title=f"top-{topk} predictions{more}", caption=f"images in {folder}" if folder else None)
    table.add_column("image", overflow="fold", ratio=2)
    for j in range(topk):
        table.add_column(f"#{j + 1}", no_wrap=True)
    for name, r in zip(names, shown):
        table.add_row(name, *[f"{t['class']} ({t['p']:.2f})" for t in r["top"]])
    return table
