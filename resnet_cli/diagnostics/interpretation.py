"""What the model gets wrong, in numbers: confusion matrix, class-wise accuracy, the misclassified
selection and their console tables.

Inputs: class indices int (N,) and softmax probabilities float (N, C), torch tensors (any device)
or NumPy arrays. Accuracies are fractions 0-1; confusion matrices hold counts, rows = true class.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np
from rich.table import Table

from ..errors import check_choice

ORDERS = ("confident", "random")
"""``order`` of the misclassified selection: most confident mistakes first, or a seeded random draw."""


def to_numpy(a: Any) -> np.ndarray:
    """A torch tensor (any device, detached) or array-like as a NumPy array."""
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def confusion_matrix(preds: Any, labels: Any, num_classes: int) -> np.ndarray:
    """Counts int64 (C, C), [t, p] = images of true class t predicted as p (scikit-learn's
    ``confusion_matrix``); ``preds``/``labels`` int (N,), ValueError if their lengths differ."""
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    p, t = to_numpy(preds).astype(np.int64).ravel(), to_numpy(labels).astype(np.int64).ravel()
    if p.shape != t.shape:
        raise ValueError(f"preds {p.shape} and labels {t.shape} differ in length")
    if not len(t):
        return np.zeros((num_classes, num_classes), np.int64)
    return sk_confusion_matrix(t, p, labels=np.arange(num_classes)).astype(np.int64)


def class_accuracy(preds: Any, labels: Any, classes: Sequence[str]) -> dict[str, float | None]:
    """``{class name: accuracy, fraction 0-1}`` in label order; None for a class with no test images."""
    cm = confusion_matrix(preds, labels, len(classes))
    totals = cm.sum(1)
    return {c: (float(cm[i, i] / totals[i]) if totals[i] else None) for i, c in enumerate(classes)}


def interpretation(labels: Any, preds: Any, probs: Any, classes: Sequence[str], top: int = 10,
                   names: Sequence[str] | None = None) -> dict[str, Any]:
    """fastai's ``ClassificationInterpretation`` in numbers, for labels/preds int (N,), probs float (N, C)
    and optional ``names`` (one per image).

    Returns:
        ``{"per_class": {class: {"precision", "recall", "f1" (0-1), "support" (images)}}`` (scikit-learn's
        ``precision_recall_fscore_support``, 0 where undefined), ``"macro_f1"``, ``"most_confused"``:
        ``top`` ``{"true", "predicted", "count"}`` (most first, count > 0), ``"top_losses"``: ``top``
        ``{"index", "path" (with names), "true", "predicted", "loss" (nats, -ln p_true), "p_true"}``}``.
    """
    from sklearn.metrics import precision_recall_fscore_support

    t, p = to_numpy(labels).astype(np.int64).ravel(), to_numpy(preds).astype(np.int64).ravel()
    pr = to_numpy(probs).astype(np.float64)
    c = len(classes)
    prec, rec, f1, sup = precision_recall_fscore_support(t, p, labels=np.arange(c), zero_division=0)
    per_class = {name: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                        "support": int(sup[i])} for i, name in enumerate(classes)}
    cm = confusion_matrix(p, t, c)
    off = sorted((-int(cm[i, j]), int(i), int(j)) for i, j in zip(*np.nonzero(cm)) if i != j)  # most first
    most_confused = [{"true": classes[i], "predicted": classes[j], "count": -n} for n, i, j in off[:top]]
    p_true = pr[np.arange(len(t)), t] if len(t) else np.zeros(0)
    losses = -np.log(np.clip(p_true, 1e-12, None))
    order = np.argsort(-losses, kind="stable")[:top]
    top_losses = [{"index": int(k), **({"path": str(names[k])} if names is not None else {}),
                   "true": classes[t[k]], "predicted": classes[p[k]], "loss": float(losses[k]),
                   "p_true": float(p_true[k])} for k in order]
    return {"per_class": per_class, "macro_f1": float(np.mean(f1)) if c else 0.0, "most_confused": most_confused,
            "top_losses": top_losses}


def find_misclassified(preds: Any, probs: Any, labels: Any, count: int = 20, order: str = "confident",
                       seed: int = 0) -> np.ndarray:
    """Indices int64 (k,), k = min(count, mistakes), of misclassified images (``probs`` float (N, C)).
    ``order``: ``confident`` (highest predicted-class probability first, ties by index) or ``random``
    (a uniform draw seeded with ``seed``, NumPy PCG64); ConfigError for another."""
    check_choice("order", order, ORDERS)
    p, t, pr = to_numpy(preds).ravel(), to_numpy(labels).ravel(), to_numpy(probs)
    wrong = np.flatnonzero(p != t)
    if order == "random":
        rng = np.random.default_rng(seed)
        return rng.choice(wrong, size=min(count, len(wrong)), replace=False).astype(np.int64)
    conf = pr[wrong, p[wrong]]
    return wrong[np.argsort(-conf, kind="stable")][:count].astype(np.int64)


def class_accuracy_table(class_acc: Mapping[str, float | None], confusion: np.ndarray) -> Table:
    """A rich table: class, test images, correct, accuracy (percent), and an ``all`` row."""
    cm = np.asarray(confusion)
    table = Table("class", title="class-wise test accuracy")
    for column in ("images", "correct", "accuracy"):
        table.add_column(column, justify="right")
    for i, (name, acc) in enumerate(class_acc.items()):
        table.add_row(name, str(int(cm[i].sum())), str(int(cm[i, i])), "-" if acc is None else f"{100 * acc:.2f}%")
    total = int(cm.sum())
    table.add_row("all", str(total), str(int(np.trace(cm))), f"{100 * np.trace(cm) / max(total, 1):.2f}%", style="bold")
    return table


def short_names(paths: Sequence[str]) -> tuple[list[str], str]:
    """``(names, folder)``: each path relative to the deepest folder holding them all (``folder``), so
    names differ where the paths differ; one path: its file name."""
    if not paths:
        return [], ""
    folder = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    return [os.path.relpath(os.path.abspath(p), folder) for p in paths], folder


def top_predictions(names: Sequence[str], probs: Any, classes: Sequence[str],
                    k: int = 3) -> tuple[list[dict[str, Any]], Table]:
    """The ``k`` most probable classes of each image (``probs`` float (N, C)), as records
    ``[{"image": name, "top3": [{"class", "p" (0-1)}, ...]}]`` (key ``top3`` whatever ``k``) and a rich table
    (names shown by :func:`short_names`).
    """
    pr = to_numpy(probs).astype(np.float64)
    k = min(k, len(classes))
    top = np.argsort(-pr, axis=1, kind="stable")[:, :k]
    shown, folder = short_names([str(n) for n in names])  # the table: names relative to their shared folder
    table = Table(title="top-3 predictions", caption=f"images in {folder}" if folder else None)
    table.add_column("image", overflow="fold", ratio=2)
    for j in range(k):
        table.add_column(f"#{j + 1}", no_wrap=True)
    records = []
    for name, short, row, ix in zip(names, shown, pr, top):
        table.add_row(short, *[f"{classes[i]} ({row[i]:.2f})" for i in ix])
        records.append({"image": str(name), "top3": [{"class": classes[i], "p": float(row[i])} for i in ix]})
    return records, table
