"""What the model gets wrong, in numbers: confusion matrix, class-wise accuracy, the selection of
misclassified images, and their console tables.

Inputs are class indices int (N,) and softmax probabilities float (N, C), as torch tensors (any
device) or NumPy arrays, e.g. from :func:`resnet_cli.evaluation.evaluate_batches` (``return_outputs=True``).
Accuracies are fractions 0-1; the confusion matrix holds counts, rows = true class, columns =
predicted class.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from rich.table import Table

from .errors import ConfigError

ORDERS = ("confident", "random")
"""``order`` of the misclassified selection: most confident mistakes first, or a seeded random draw."""


def to_numpy(a: Any) -> np.ndarray:
    """A torch tensor (any device, detached) or array-like as a NumPy array."""
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def confusion_matrix(preds: Any, labels: Any, num_classes: int) -> np.ndarray:
    """Confusion counts, int64 (C, C): entry [t, p] counts images of true class t predicted as p
    (rows = true class). ``preds`` and ``labels`` are int (N,) class indices (tensor or array).

    Raises:
        ValueError: ``preds`` and ``labels`` of different lengths.
    """
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    p, t = to_numpy(preds).astype(np.int64).ravel(), to_numpy(labels).astype(np.int64).ravel()
    if p.shape != t.shape:
        raise ValueError(f"preds {p.shape} and labels {t.shape} differ in length")
    if not len(t):
        return np.zeros((num_classes, num_classes), np.int64)
    return sk_confusion_matrix(t, p, labels=np.arange(num_classes)).astype(np.int64)


def class_accuracy(preds: Any, labels: Any, classes: Sequence[str]) -> dict[str, float | None]:
    """Accuracy of each class as a fraction 0-1: correct / test images of that class.

    Returns ``{class name: fraction}`` in label order; None for a class with no test images.
    Weighted by the per-class counts the values average to the overall accuracy.
    """
    cm = confusion_matrix(preds, labels, len(classes))
    totals = cm.sum(1)
    return {c: (float(cm[i, i] / totals[i]) if totals[i] else None) for i, c in enumerate(classes)}


def interpretation(labels: Any, preds: Any, probs: Any, classes: Sequence[str], top: int = 10,
                   names: Sequence[str] | None = None) -> dict[str, Any]:
    """fastai's ``ClassificationInterpretation`` in numbers: per-class precision, recall, F1 and
    support (scikit-learn's ``precision_recall_fscore_support``, as in ``classification_report``;
    0 where undefined), the ``top`` most-confused (true, predicted) pairs, and the ``top`` losses.

    Args:
        labels, preds: true and predicted class indices, int (N,).
        probs: softmax probabilities, float (N, C).
        names: one name per image (its file path when the data is an image folder), or None.

    Returns:
        ``{"per_class": {class: {"precision", "recall", "f1" (fractions 0-1), "support" (images)}},
        "macro_f1": fraction, "most_confused": [{"true", "predicted", "count"}] (most first, count > 0),
        "top_losses": [{"index", "path" (with ``names``), "true", "predicted", "loss" (nats,
        -ln p_true), "p_true"}] (largest first)}``.
    """
    from sklearn.metrics import precision_recall_fscore_support

    t, p = to_numpy(labels).astype(np.int64).ravel(), to_numpy(preds).astype(np.int64).ravel()
    pr = to_numpy(probs).astype(np.float64)
    c = len(classes)
    prec, rec, f1, sup = precision_recall_fscore_support(t, p, labels=np.arange(c), zero_division=0)
    per_class = {name: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                        "support": int(sup[i])} for i, name in enumerate(classes)}
    cm = confusion_matrix(p, t, c)
    off = [(int(cm[i, j]), i, j) for i in range(c) for j in range(c) if i != j and cm[i, j] > 0]
    off.sort(key=lambda v: (-v[0], v[1], v[2]))
    most_confused = [{"true": classes[i], "predicted": classes[j], "count": n} for n, i, j in off[:top]]
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
    """Indices (int64 (k,), k = min(count, mistakes)) of misclassified images.

    ``order="confident"``: highest predicted-class probability first (the model's most confident
    mistakes; ties by index, so the choice is deterministic). ``order="random"``: a uniform draw
    seeded with ``seed`` (NumPy PCG64), same seed -> same images. ``probs`` is float (N, C).

    Raises:
        ConfigError: unknown ``order``.
    """
    p, t, pr = to_numpy(preds).ravel(), to_numpy(labels).ravel(), to_numpy(probs)
    wrong = np.flatnonzero(p != t)
    if order == "confident":
        conf = pr[wrong, p[wrong]]
        return wrong[np.argsort(-conf, kind="stable")][:count].astype(np.int64)
    if order == "random":
        rng = np.random.default_rng(seed)
        return rng.choice(wrong, size=min(count, len(wrong)), replace=False).astype(np.int64)
    raise ConfigError(f"order={order!r} is not allowed: one of {', '.join(ORDERS)}")


def class_accuracy_table(class_acc: Mapping[str, float | None], confusion: np.ndarray) -> Table:
    """A rich table: class, test images, correct, accuracy (percent), and an ``all`` row."""
    cm = np.asarray(confusion)
    table = Table(title="class-wise test accuracy")
    table.add_column("class")
    table.add_column("images", justify="right")
    table.add_column("correct", justify="right")
    table.add_column("accuracy", justify="right")
    for i, (name, acc) in enumerate(class_acc.items()):
        table.add_row(name, str(int(cm[i].sum())), str(int(cm[i, i])), "-" if acc is None else f"{100 * acc:.2f}%")
    total = int(cm.sum())
    table.add_row("all", str(total), str(int(np.trace(cm))), f"{100 * np.trace(cm) / max(total, 1):.2f}%", style="bold")
    return table


def top_predictions(names: Sequence[str], probs: Any, classes: Sequence[str],
                    k: int = 3) -> tuple[list[dict[str, Any]], Table]:
    """The ``k`` most probable classes of each image, as records and as a rich table.

    Args:
        names: one name per image (e.g. its file path).
        probs: softmax probabilities float (N, C).
        classes: class names in label order.

    Returns:
        ``([{"image": name, "top3": [{"class": name, "p": fraction 0-1}, ...]}, ...], table)``
        (the key is ``top3`` whatever ``k``), most probable first.
    """
    pr = to_numpy(probs).astype(np.float64)
    k = min(k, len(classes))
    top = np.argsort(-pr, axis=1, kind="stable")[:, :k]
    table = Table(title="top-3 predictions")
    table.add_column("image")
    for j in range(k):
        table.add_column(f"#{j + 1}")
    records = []
    for name, row, ix in zip(names, pr, top):
        table.add_row(str(name), *[f"{classes[i]} ({row[i]:.2f})" for i in ix])
        records.append({"image": str(name), "top3": [{"class": classes[i], "p": float(row[i])} for i in ix]})
    return records, table
