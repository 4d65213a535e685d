"""What a newcomer's first run found: the API's find_lr -> train runs one range test, figures that can be
read (range-test zoom and min_lr, augmentation title, interpretation legend, paged Grad-CAM grid), a
predictions table whose rows can be told apart, top losses that name the file, a test session that
keeps out of the user's cache folder, and a sweep that does not print a class table per job."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from omegaconf import OmegaConf
from PIL import Image
from rich.console import Console

import resnet_cli
from resnet_cli import engine
from resnet_cli.diagnostics import plots, previews
from conftest import load_data
from resnet_cli.data.decode import decode
from resnet_cli.diagnostics.report import save_gradcam
from resnet_cli.diagnostics.inference import predictions_table
from resnet_cli.diagnostics.interpretation import interpretation

from conftest import needs_data, run_cli
from tinynets import tiny, tiny_env

CLASSES = ["cat", "dog", "frog"]


def _folder(root: Path, train: int = 12, test: int = 6) -> Path:
    """An image folder of random 32x32 JPEGs: ``train``/``test`` images per class."""
    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("test", test)):
        for c in CLASSES:
            (root / split / c).mkdir(parents=True)
            for k in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / split / c / f"{c}_{k}.jpg")
    return root


def _rendered(fig):
    FigureCanvasAgg(fig).draw()
    return fig.canvas.get_renderer()


# -- 1. find_lr then train: one range test -----------------------------------------------------

def test_train_takes_the_lrs_find_lr_found(tmp_path, monkeypatch, capsys):
    root = _folder(tmp_path / "data")
    cfg = resnet_cli.compose(["data=image_folder", f"data.root={root}", "data.batch_size=6", "data.num_workers=0",
                              "trainer.epochs=1", "scheduler.max_epoch=1", "trainer.device=cpu", "explain.count=2",
                              "model._target_=tinynets.TinyNet", "lr_finder.num_iter=6", "lr_finder.rule=steepest"])
    calls = []
    real = engine.find_lr
    monkeypatch.setattr(engine, "find_lr", lambda *a, **k: calls.append(1) or real(*a, **k))
    found = resnet_cli.find_lr(cfg, verbose=False)
    assert len(calls) == 1
    result = resnet_cli.train(cfg, tmp_path / "run", lr=found, verbose=False)
    assert len(calls) == 1  # the range test ran once, in find_lr
    assert (result.metrics["max_lr"], result.metrics["min_lr"]) == pytest.approx((found.result.max_lr,
                                                                                 found.result.min_lr))
    saved = OmegaConf.load(tmp_path / "run" / ".hydra" / "config.yaml")  # the run's config reruns it
    assert (saved.scheduler.max_lr, saved.scheduler.min_lr) == pytest.approx((found.result.max_lr, found.result.min_lr))
    assert (tmp_path / "run" / "plots" / "lr_finder.png").stat().st_size > 5000  # the curve that chose them
    assert cfg.scheduler.max_lr == "find"  # the caller's config is not modified
    assert "class-wise test accuracy" in capsys.readouterr().err  # a single run still prints its class table

    # 7. top losses name the test image's file, of the class they say
    tops = result.metrics["interpretation"]["top_losses"]
    assert tops and all(Path(t["path"]).is_file() and Path(t["path"]).parent.name == t["true"] for t in tops)
    with pytest.raises(TypeError, match="lr= takes what resnet_cli.find_lr returned"):
        resnet_cli.train(cfg, tmp_path / "bad", lr=0.1, verbose=False)


# -- 7. DataBundle keeps the files ---------------------------------------------------------------

def test_image_folder_bundle_keeps_each_images_path(tmp_path):
    root = _folder(tmp_path / "data")
    cfg = resnet_cli.compose(["data=image_folder", f"data.root={root}", "data.train_subset=9", "data.test_subset=6",
                              "data.batch_size=3"])
    data = load_data(cfg.data, 0)
    for paths, images, labels in ((data.train_paths, data.train_images, data.train_labels),
                                  (data.test_paths, data.test_images, data.test_labels)):
        assert len(paths) == len(labels) == len(images)
        for p, image, label in zip(paths, images, labels):
            assert Path(p).parent.name == data.classes[label]
            np.testing.assert_array_equal(decode(p, 32), image)  # the row is that file
    interp = interpretation(data.test_labels, data.test_labels, np.eye(3)[data.test_labels] * 0.9 + 0.03,
                            data.classes, names=data.test_paths)
    assert all(Path(t["path"]).is_file() for t in interp["top_losses"])


# -- 2. the range-test plot ----------------------------------------------------------------------

def _near_fraction(ax, lr: float) -> float:
    """Where ``lr`` sits across ``ax`` (0 = the left edge, 1 = the right)."""
    return float(ax.transAxes.inverted().transform(ax.transData.transform((lr, 1.0)))[0])


def test_range_test_right_panel_zooms_on_the_picks_and_shows_min_lr():
    # the CPU run's warm-up ramp: linear to 2.0, max_lr 0.849, min_lr 0.029
    lrs = list(np.linspace(0.02, 2.0, 98))
    losses = list(2.3 - 0.9 * np.tanh(np.array(lrs) / 0.6) + 1.5 * np.clip(np.array(lrs) - 1.1, 0, None) ** 2)
    fig = plots.plot_lr_finder(lrs, losses, 0.849, 0.029, "steepest", step_mode="linear", smooth_f=0.1)
    near = fig.axes[1]
    assert _near_fraction(near, 0.029) > 0.05  # min_lr clear of the y axis
    assert 0.05 < _near_fraction(near, 0.849) < 0.95
    texts = [t.get_text() for t in near.texts]
    assert "min_lr" in texts and "max_lr" in texts  # each line named where it is drawn

    # an exponential test over 5 decades: the panel shows the picks' span, not all of it
    elrs = list(np.geomspace(1e-4, 10, 100))
    eloss = list(2.3 - 0.8 / (1 + np.exp(-(np.log10(elrs) + 1.5) * 3)) + 3 * np.clip(np.array(elrs) - 3, 0, None))
    fig = plots.plot_lr_finder(elrs, eloss, 0.3, 0.003, "valley")
    whole, near = fig.axes[:2]
    lo, hi = near.get_xlim()
    assert lo > 1e-4 * 3 and lo < 0.003 < 0.3 < hi
    assert np.log10(hi / lo) < 0.8 * np.log10(whole.get_xlim()[1] / whole.get_xlim()[0])


# -- 3. the augmentation preview -----------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 11])
def test_augmentation_title_is_smaller_than_its_images(n):
    image = np.zeros((32, 32, 3), np.uint8)
    epochs = ", ".join(str(e) for e in range(1, n + 1))
    fig = previews.plot_augmentations(image, torch.randn(n, 3, 32, 32), (0.5,) * 3, (0.25,) * 3, label="cat",
                                      source=f"training image 123 in epochs {epochs} of the run, augment.backend=gpu")
    r = _rendered(fig)
    image_height = fig.axes[0].get_window_extent(r).height
    text = [t for t in (fig._suptitle, fig._supxlabel) if t is not None and t.get_text()]
    assert sum(t.get_window_extent(r).height for t in text) < 0.4 * image_height
    assert "augment.backend=gpu" in " ".join(t.get_text().replace("\n", " ") for t in text)  # the facts kept


# -- 4. the interpretation legend ----------------------------------------------------------------

def test_interpretation_legend_covers_no_bar():
    rng = np.random.default_rng(0)
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    labels = np.repeat(np.arange(10), 50)
    preds = np.where(rng.random(500) < 0.85, labels, rng.integers(0, 10, 500))
    probs = np.full((500, 10), 0.02)
    probs[np.arange(500), preds] = 0.82
    fig = plots.plot_interpretation(interpretation(labels, preds, probs, classes), classes)
    r = _rendered(fig)
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(r)
    bars = [p.get_window_extent(r) for p in ax.patches]
    assert len(bars) == 30 and not any(legend.overlaps(b) for b in bars)


# -- 5. the Grad-CAM grid, paged -----------------------------------------------------------------

def _cams(n: int):
    rng = np.random.default_rng(0)
    images = rng.random((n, 32, 32, 3)).astype(np.float32)
    maps = rng.random((n, 32, 32)).astype(np.float32)
    return images, {"layer3 | predicted": maps, "layer3 | true": maps}, {"predicted": ["dog"] * n, "true": ["cat"] * n}


def test_a_long_gradcam_grid_is_paged_and_says_which_page(tmp_path, caplog):
    from resnet_cli.diagnostics.report import GRID_PAGE

    n = 20
    images, cams, explained = _cams(n)
    files = [f"{r + 1:02d}_{r}_cat_as_dog.png" for r in range(n)]
    with caplog.at_level(logging.INFO, logger="resnet_cli"):
        pages = save_gradcam(images, cams, [f"image {r}" for r in range(n)], files, tmp_path, explained)
    assert [p.name for p in pages] == ["grid_page_1_of_3.png", "grid_page_2_of_3.png", "grid_page_3_of_3.png"]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(files + [p.name for p in pages])
    heights = [Image.open(p).size[1] for p in pages]
    assert heights[0] == heights[1] > heights[2]  # 8 + 8 + 4 rows
    assert "page 1 of 3: images 1-8 of 20" in caplog.text and "page 3 of 3: images 17-20 of 20" in caplog.text
    fig = plots.plot_gradcam_grid(images[:GRID_PAGE], cams, title="page 1 of 3")
    assert fig.get_suptitle() == "page 1 of 3" and len(fig.axes) == GRID_PAGE * 3 + 1  # + the colour bar

    few = save_gradcam(images[:5], {k: v[:5] for k, v in cams.items()}, ["t"] * 5, files[:5], tmp_path / "few")
    assert [p.name for p in few] == ["grid.png"]  # one page keeps the plain name


# -- 6. resnet-predict's table -------------------------------------------------------------------

def test_predictions_table_rows_can_be_told_apart():
    base = "/home/someone/datasets/holiday-photos-2024/camera-roll/beach/"
    names = ["IMG_2024_07_01_sunset_panorama_1.jpg", "IMG_2024_07_01_sunset_panorama_2.jpg", "sub/IMG_2.jpg"]
    preds = [{"path": base + n, "top": [{"class": "ship", "p": 0.71}, {"class": "bird", "p": 0.2}]} for n in names]
    console = Console(width=60, record=True)
    console.print(predictions_table(preds, 2))
    out = console.export_text()
    assert "…" not in out  # nothing cut
    cells = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│")]
    joined = "".join(cells)
    for n in names:
        assert n.replace("/", "") in joined.replace("/", "")  # each distinguishing name shown whole
    assert f"images in {base.rstrip('/')}" in " ".join(out.split())


# -- 8. the test session's cache ------------------------------------------------------------------

def test_the_test_session_keeps_out_of_the_user_cache(private_cache_dir):
    from resnet_cli.data.cache import default_cache_dir

    cache = default_cache_dir()
    assert cache.is_relative_to(private_cache_dir)
    assert not cache.is_relative_to(Path.home() / ".cache")


# -- 9. a sweep prints no class table per job ------------------------------------------------------

@pytest.mark.slow
@needs_data
def test_sweep_jobs_do_not_print_their_class_tables(tmp_path):
    s = tmp_path / "sweep"
    proc = run_cli("resnet-train", ["-m", *tiny(train=100, test=50, epochs=1), "model._target_=tinynets.TinyNet",
                                    "scheduler.max_lr=0.02,0.05", f"hydra.sweep.dir={s}"],
                   cwd=tmp_path, env=tiny_env(), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "class-wise test accuracy" not in proc.stdout + proc.stderr
    for job in ("0", "1"):  # the numbers stay in each job's files
        assert len(json.loads((s / job / "metrics.json").read_text())["class_acc"]) == 10
        assert "class_acc: " in (s / job / "train.log").read_text()
