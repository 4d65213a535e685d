"""Interpretation (issue 23, item 4): per-class precision/recall/F1 and the confusion matrix from
scikit-learn, most-confused pairs, top losses with names, and the figure."""

from __future__ import annotations

import numpy as np
import pytest

from resnet_cli.diagnostics.interpretation import class_accuracy, confusion_matrix, interpretation

CLASSES = ["cat", "dog", "ship"]
LABELS = np.array([0, 0, 0, 1, 1, 2, 2, 2])
PREDS = np.array([0, 1, 1, 1, 0, 2, 2, 1])


def _probs() -> np.ndarray:
    pr = np.full((len(LABELS), 3), 0.1)
    pr[np.arange(len(LABELS)), PREDS] = 0.8
    pr[6] = [0.05, 0.05, 0.9]
    return pr


def test_confusion_matrix_and_class_accuracy_agree_with_a_hand_count():
    cm = confusion_matrix(PREDS, LABELS, 3)
    assert cm.tolist() == [[1, 2, 0], [1, 1, 0], [0, 1, 2]]
    assert class_accuracy(PREDS, LABELS, CLASSES) == pytest.approx({"cat": 1 / 3, "dog": 0.5, "ship": 2 / 3})
    assert confusion_matrix([], [], 2).tolist() == [[0, 0], [0, 0]]


def test_interpretation_pairs_prf_and_top_losses():
    names = [f"img{i}.png" for i in range(len(LABELS))]
    out = interpretation(LABELS, PREDS, _probs(), CLASSES, top=3, names=names)
    dog = out["per_class"]["dog"]  # predicted dog 4 times, 1 right; 2 dogs, 1 found
    assert (dog["precision"], dog["recall"], dog["support"]) == (0.25, 0.5, 2)
    assert dog["f1"] == pytest.approx(2 * 0.25 * 0.5 / 0.75)
    assert out["per_class"]["ship"]["precision"] == 1.0
    assert out["most_confused"][0] == {"true": "cat", "predicted": "dog", "count": 2}
    assert [(p["true"], p["predicted"]) for p in out["most_confused"]] == [("cat", "dog"), ("dog", "cat"), ("ship", "dog")]
    worst = out["top_losses"][0]
    assert worst["loss"] == pytest.approx(-np.log(0.1)) and worst["path"] == f"img{worst['index']}.png"
    assert worst["true"] != worst["predicted"]
    assert [t["loss"] for t in out["top_losses"]] == sorted((t["loss"] for t in out["top_losses"]), reverse=True)
    assert "path" not in interpretation(LABELS, PREDS, _probs(), CLASSES)["top_losses"][0]


def test_interpretation_figure(tmp_path):
    from resnet_cli.diagnostics.plots import plot_interpretation, save_figure

    out = interpretation(LABELS, PREDS, _probs(), CLASSES)
    save_figure(plot_interpretation(out, CLASSES), tmp_path / "interpretation.png")
    assert (tmp_path / "interpretation.png").stat().st_size > 1000


def test_write_diagnostics_adds_the_interpretation_to_metrics_and_plots(tmp_path):
    import torch

    from resnet_cli.diagnostics.report import write_diagnostics
    from tinynets import TinyNet

    torch.manual_seed(0)
    model = TinyNet(num_classes=3).eval()
    x = torch.randn(len(LABELS), 3, 32, 32)
    paths = [f"test/{CLASSES[t]}/{i}.jpg" for i, t in enumerate(LABELS)]
    out = write_diagnostics(model, x, LABELS, PREDS, _probs(), CLASSES, [0.5] * 3, [0.25] * 3, tmp_path, count=2,
                            layers=["conv"], target="predicted", paths=paths)
    assert out["confusion"] == confusion_matrix(PREDS, LABELS, 3).tolist()
    assert out["interpretation"]["most_confused"][0] == {"true": "cat", "predicted": "dog", "count": 2}
    assert out["interpretation"]["top_losses"][0]["path"] in paths
    assert (tmp_path / "plots" / "interpretation.png").is_file()
