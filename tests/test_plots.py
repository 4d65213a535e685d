"""Every public plotting function returns a matplotlib Figure with the expected axes and images.

Synthetic data (no dataset needed): random uint8 images, an untrained CustomResNet, a
hand-made checkpoint for the One Cycle plot.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

import resnet_cli
from resnet_cli.cli.build import build_train_batches
from resnet_cli.data.batches import normalize
from resnet_cli.core.checkpoint import save_checkpoint
from resnet_cli.data import DataBundle, channel_stats
from resnet_cli.core.schedule import one_cycle
from resnet_cli.diagnostics.plots import denormalize

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def bundle() -> DataBundle:
    train, test = _images(40, 1), _images(20, 2)
    mean, std = channel_stats(train)
    return DataBundle(name="synthetic", root="/nowhere", classes=CLASSES,
                      train_images=train, train_labels=np.arange(40, dtype=np.int64) % 10,
                      test_images=test, test_labels=np.arange(20, dtype=np.int64) % 10, mean=mean, std=std)


@pytest.fixture(scope="module")
def cfg():
    return resnet_cli.compose(["trainer.device=cpu", "trainer.epochs=2", "scheduler.max_epoch=1", "data.batch_size=8"])


def _n_images(fig: Figure) -> int:
    return sum(len(ax.images) for ax in fig.axes)


def _legend(fig: Figure) -> list[str]:
    return [t.get_text() for leg in fig.legends for t in leg.get_texts()]


def test_lr_finder_schedule_and_curves():
    from resnet_cli.cli.checks import LR_RULES

    lrs = list(np.geomspace(1e-4, 1.0, 20))
    fig = resnet_cli.plot_lr_finder(lrs, list(np.linspace(2.3, 1.5, 20)), 0.01, 0.001, "min_loss_div10")
    whole, near = fig.axes
    assert whole.get_xscale() == near.get_xscale() == "log"
    assert all(ax.get_legend() is None for ax in fig.axes) and fig.legends  # below the panels: covers nothing
    # the warm-up test: linear x axis, batch accuracy on a second axis, a diverged tail
    lin = list(np.linspace(1e-4, 1.0, 40))
    losses = list(np.linspace(4.5, 1.2, 30)) + [1.5, 3, 8, 20, 50, 115, 200, 300, 400, 500]
    accs = list(np.linspace(0.1, 0.3, 30)) + [0.1] * 10
    fig = resnet_cli.plot_lr_finder(lin, losses, 0.7, 0.01, "min_loss", accs=accs, step_mode="linear")
    whole, near, ax_acc = fig.axes
    assert near.get_xscale() == "log" and len(ax_acc.lines) == 1  # zoomed on the picks: min_lr off the y axis
    lo, hi = whole.get_ylim()
    assert lo <= 1.2 and hi >= 500  # the whole curve, diverging tail included (log axis)
    lo, hi = near.get_ylim()
    assert lo < 1.2 and 4.5 < hi <= 1.6 * 4.5  # the picks and the start in view, not flattened by 500
    assert near.get_xlim()[0] < 0.01 < 0.7 < near.get_xlim()[1]  # min_lr and max_lr in view
    top_acc = max(ax_acc.lines[0].get_ydata())
    assert top_acc == pytest.approx(100 * max(resnet_cli.core.schedule.smooth(accs, 0.05)))
    assert ax_acc.get_ylim()[1] >= 2 * top_acc - 1e-6  # the accuracy curve stays in the lower half
    legend = _legend(fig)
    assert any("max_lr = 0.7 (min_loss, used)" in t for t in legend) and any("min_lr = 0.01" in t for t in legend)
    for rule in LR_RULES:  # every rule's pick marked, the alternatives at a glance
        assert any(t.startswith(f"{rule}: ") for t in legend), (rule, legend)
    # a zoomed test: the earlier ramps are drawn too, the deciding one named
    earlier = [{"lrs": [1e-4, 0.5, 1.0], "losses": [4.4, 5.0, 30.0]}, {"lrs": [1e-4, 0.05, 0.1], "losses": [4.4, 4.3, 25.0]}]
    fig = resnet_cli.plot_lr_finder(lin[:10], losses[:10], 0.2, 0.02, "min_loss", step_mode="linear", earlier=earlier)
    whole = fig.axes[0]
    assert whole.get_xscale() == "log" and len(whole.lines) == 3 + 1  # three ramps + max_lr
    legend = _legend(fig)
    assert sum("too steep, repeated lower" in t for t in legend) == 2 and any("ramp 3 of 3" in t and "decided" in t
                                                                               for t in legend)

    fig = resnet_cli.plot_lr_schedule([0.1, 0.2, 0.3, 0.2], 2, 1)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert list(fig.axes[0].lines[0].get_ydata()) == [0.1, 0.2, 0.3, 0.2]

    history = [{"epoch": e, "train_loss": 2.0 / e, "test_loss": 2.1 / e, "train_acc": 0.3 * e, "test_acc": 0.25 * e}
               for e in (1, 2, 3)]
    for fig in (resnet_cli.plot_curves(history), resnet_cli.plot_history(history),
                resnet_cli.plot_history({"history": history})):
        assert isinstance(fig, Figure) and len(fig.axes) == 2
        loss, acc = fig.axes
        assert len(loss.lines) == len(acc.lines) == 2  # train, test
        assert list(acc.lines[1].get_ydata()) == pytest.approx([25.0, 50.0, 75.0])  # percent
        assert all(float(t).is_integer() for t in loss.get_xticks())  # whole epochs only


def test_one_cycle_from_a_checkpoint(tmp_path):
    """plot_one_cycle reads the per-step LRs of a run (RunResult, run folder or checkpoint)."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
    sched = one_cycle(opt, max_lr=0.1, min_lr=0.01, epochs=3, steps_per_epoch=4, max_epoch=1, anneal_strategy="linear",
                      final_div_factor=1.0, cycle_momentum=True, base_momentum=0.85, max_momentum=0.95)
    lrs = []
    for _ in range(12):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoints" / "last.pt", {
        "epoch": 3, "step": 0, "step_lrs": lrs, "config": {"scheduler": {"max_epoch": 1}}})
    for source in (run, run / "checkpoints" / "last.pt", str(run)):
        fig = resnet_cli.plot_one_cycle(source)
        assert isinstance(fig, Figure) and len(fig.axes) == 1
        line = fig.axes[0].lines[0]
        assert list(line.get_ydata()) == lrs
        assert line.get_xdata()[3] == pytest.approx(1.0)  # 4 steps per epoch: x in epochs
        assert max(lrs) == pytest.approx(0.1) and lrs[3] == pytest.approx(0.1)  # peak at the end of epoch 1
    save_checkpoint(tmp_path / "empty.pt", {"epoch": 0, "step": 0, "step_lrs": [], "config": {}})
    with pytest.raises(resnet_cli.CheckpointError, match="no completed epoch"):
        resnet_cli.plot_one_cycle(tmp_path / "empty.pt")


def test_samples_grid(bundle):
    fig = resnet_cli.plot_samples(bundle.train_images, bundle.train_labels, bundle.classes, n=12, seed=3, ncols=4)
    assert isinstance(fig, Figure) and len(fig.axes) == 12 and _n_images(fig) == 12
    # every tile is one of the training images, titled with that image's class
    for ax in fig.axes:
        shown = ax.images[0].get_array()
        hits = [i for i in range(len(bundle.train_images)) if np.array_equal(bundle.train_images[i], shown)]
        assert len(hits) == 1 and ax.get_title() == CLASSES[bundle.train_labels[hits[0]]]
    again = resnet_cli.plot_samples(bundle.train_images, bundle.train_labels, bundle.classes, n=12, seed=3)
    assert [a.get_title() for a in again.axes] == [a.get_title() for a in fig.axes]  # seeded
    assert len(resnet_cli.plot_samples(bundle.train_images, bundle.train_labels, bundle.classes, n=500).axes) == 40
    with pytest.raises(ValueError):
        resnet_cli.plot_samples(bundle.train_images[:0], bundle.train_labels[:0], bundle.classes)


def test_augmentations_show_the_training_transform(bundle, cfg):
    image = bundle.train_images[5]
    _, draws = build_train_batches(bundle, cfg, "cpu").draws(5, 7)
    fig = resnet_cli.plot_augmentations(image, draws, bundle.mean, bundle.std, label="deer")
    assert isinstance(fig, Figure) and len(fig.axes) == 8 and _n_images(fig) == 8
    assert np.array_equal(fig.axes[0].images[0].get_array(), image) and "deer" in fig.axes[0].get_title()
    shown = [np.asarray(ax.images[0].get_array()) for ax in fig.axes[1:]]
    # what is shown is the training batches' output de-normalised, draw by draw
    for s, x in zip(shown, draws):
        assert np.array_equal(s, denormalize(x, bundle.mean, bundle.std))
    assert len({s.tobytes() for s in shown}) == 7  # crop/flip/cutout differ between draws
    # a cutout square (8x8, filled with the mean colour) is visible in every draw
    fill = np.round(np.asarray(bundle.mean) * 255)
    for s in shown:
        same = np.all(np.abs(s.astype(float) * 255 - fill) <= 1, axis=-1)
        assert same.sum() >= 32, "no cutout hole visible"


def test_denormalize_inverts_normalize(bundle):
    x = normalize(torch.from_numpy(bundle.test_images), torch.tensor(bundle.mean, dtype=torch.float32),
                  torch.tensor(bundle.std, dtype=torch.float32))
    rgb = denormalize(x, bundle.mean, bundle.std)
    assert rgb.dtype == np.float32 and rgb.min() >= 0 and rgb.max() <= 1
    back = np.round(rgb * 255).astype(np.uint8)
    assert back.shape == bundle.test_images.shape
    assert np.abs(back.astype(int) - bundle.test_images.astype(int)).max() <= 1
    with pytest.raises(ValueError):
        denormalize(np.zeros((32, 32, 3)), bundle.mean, bundle.std)


def test_previews_leave_global_rngs_alone(bundle, cfg, tmp_path):
    """Writing the previews (engine.preview) must not change the training run's randomness."""
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    paths = resnet_cli.diagnostics.previews.write_previews(bundle, build_train_batches(bundle, cfg, "cpu"), tmp_path / "plots",
                                               cfg.seed)
    assert random.getstate() == before[0]
    assert np.array_equal(np.random.get_state()[1], before[1])
    assert torch.equal(torch.get_rng_state(), before[2])
    assert sorted(p.name for p in paths.values()) == ["augmentations.png", "samples.png"]
    assert all(p.stat().st_size > 1000 for p in paths.values())
    samples, augs = resnet_cli.data_previews(bundle, cfg)
    assert len(samples.axes) == 32 and len(augs.axes) == 1 + min(11, cfg.trainer.epochs)  # original + the run's epochs


@pytest.fixture(scope="module")
def evaluation(bundle):
    torch.manual_seed(0)
    model = resnet_cli.CustomResNet(num_classes=10)
    with torch.no_grad():  # a biased head: most images are predicted as class 3, so many mistakes
        model.fc.bias.copy_(torch.eye(10)[3] * 5)
    return resnet_cli.evaluate(model, bundle, device="cpu", batch_size=8)


def test_evaluation_of_a_bare_model(evaluation, bundle):
    ev = evaluation
    assert ev.n == 20 and ev.preds.shape == (20,) and ev.probs.shape == (20, 10)
    assert torch.allclose(ev.probs.sum(1), torch.ones(20), atol=1e-5)
    assert ev.acc == pytest.approx((ev.preds == ev.labels).float().mean().item())
    assert 0.0 <= ev.acc <= 1.0 and ev.loss > 0
    acc = ev.class_accuracy()
    assert list(acc) == CLASSES
    assert sum(a * 2 for a in acc.values()) / 20 == pytest.approx(ev.acc)  # 2 test images per class
    assert ev.confusion_matrix().sum() == 20


def test_misclassified_and_confusion_figures(evaluation):
    ev = evaluation
    wrong = int((ev.preds != ev.labels).sum())
    assert wrong >= 6
    idx = ev.misclassified(count=6)
    assert len(idx) == 6 and all(ev.preds[i] != ev.labels[i] for i in idx)
    fig = ev.plot_misclassified(count=6, ncols=3)
    assert isinstance(fig, Figure) and len(fig.axes) == 6 and _n_images(fig) == 6
    for ax, i in zip(fig.axes, idx):
        assert ax.get_title().startswith(f"{CLASSES[ev.labels[i]]} -> {CLASSES[ev.preds[i]]} (p=")
    # the low-level function, as re-exported
    fig = resnet_cli.plot_misclassified(ev.images(idx[:2]), ev.labels[idx[:2]], ev.preds[idx[:2]], [0.5, 0.4], CLASSES)
    assert len(fig.axes) == 2 and _n_images(fig) == 2

    fig = ev.plot_confusion_matrix()
    assert isinstance(fig, Figure) and len(fig.axes) == 2  # matrix + colour bar
    assert _n_images(fig) == 1 and fig.axes[0].images[0].get_array().shape == (10, 10)
    fig = resnet_cli.plot_confusion_matrix(resnet_cli.confusion_matrix(ev.preds, ev.labels, 10), CLASSES)
    assert len(fig.axes) == 2


def test_gradcam_grid(evaluation):
    ev = evaluation
    cams = ev.gradcam([0, 1, 2], layers=["layer3"], target="both")
    assert list(cams) == ["layer3 | predicted", "layer3 | true"]
    for maps in cams.values():
        assert maps.shape == (3, 32, 32) and maps.dtype == np.float32
        assert maps.min() >= 0.0 and maps.max() <= 1.0
    fig = ev.plot_gradcam(idx=[0, 1, 2], layers=["layer3", "layer2"], target="both")
    # + 1 axes: the colour bar of the CAM scale
    assert isinstance(fig, Figure) and len(fig.axes) == 3 * (1 + 2 * 2) + 1 and _n_images(fig) == 15
    assert "Grad-CAM" in fig.axes[-1].get_ylabel()
    fig = ev.plot_gradcam(count=2, target="predicted")  # default layers of CustomResNet: layer3, layer2
    assert len(fig.axes) == 2 * (1 + 2) + 1
    first = CLASSES[int(ev.preds[ev.misclassified(2)[0]])]
    assert [ax.get_title() for ax in fig.axes[1:3]] == [f"layer3 | predicted: {first}", f"layer2 | predicted: {first}"]
    fig = resnet_cli.plot_gradcam_grid(ev.images([0]), {"a": cams["layer3 | true"][:1]}, ["t"])
    assert len(fig.axes) == 3 and _n_images(fig) == 2
    fig = ev.plot_gradcam(idx=[0], layers=["layer3"], target="both")  # panels name the class they explain
    assert [ax.get_title() for ax in fig.axes[1:3]] == [f"layer3 | predicted: {CLASSES[int(ev.preds[0])]}",
                                                        f"layer3 | true: {CLASSES[int(ev.labels[0])]}"]
    with pytest.raises(resnet_cli.ConfigError, match="nope"):
        ev.gradcam([0], layers=["nope"])
    with pytest.raises(resnet_cli.ConfigError, match="target"):
        ev.gradcam([0], target="both-ways")


def test_a_blank_gradcam_map_says_so():
    """Issue 21: a map that is zero everywhere carries a note; a map with heat does not."""
    from resnet_cli.diagnostics.plots import BLANK_CAM

    images = np.full((2, 8, 8, 3), 0.5, np.float32)
    maps = np.zeros((2, 8, 8), np.float32)
    maps[1, 2:4, 2:4] = 1.0
    fig = resnet_cli.plot_gradcam_grid(images, {"layer3 | predicted": maps}, ["a", "b"],
                                       {"predicted": ["cat", "dog"]})
    panels = [fig.axes[1], fig.axes[3]]
    assert [ax.get_title() for ax in panels] == ["layer3 | predicted: cat", "layer3 | predicted: dog"]
    assert [t.get_text() for t in panels[0].texts] == [BLANK_CAM]
    assert len(panels[1].texts) == 0
