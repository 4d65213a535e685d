"""The device-resident augmentation path (augment.backend=batched), on CPU tensors.

It must be the albumentations path's distribution, batched: crop offsets uniform over the
(2*pad+1)^2 positions, flips with probability flip_p, one cutout_size square of the mean colour
fully inside the image with its corner placed as CoarseDropout places it; deterministic in
(seed, epoch) and exactly restartable mid-epoch. Also the engine's fast-path knobs (fused SGD,
trainer.compile) and one tiny resnet-train run with the gpu backend.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from scipy import stats

from resnet_cli.data.batches.albumentations_backend import AlbumentationsBatches, build_train_transform, seed_transform
from resnet_cli.cli.build import build_train_batches
from resnet_cli.data.batches import epoch_permutation, mean_fill, normalize, resolve_backend
from resnet_cli.cli.checks import resolve_fused
from resnet_cli.data import DataBundle
from resnet_cli.errors import ConfigError
from resnet_cli.data.batches.batched import EpochParams, GpuBatches, pad_index

from conftest import DATA_ROOT, call_cli, needs_data

# mean_fill(MEAN) == (100, 100, 100); _images() never contain 100, so a pixel equal to the fill
# in all three channels is a cutout pixel and nothing else.
MEAN, STD = (100 / 255,) * 3, (0.25, 0.2, 0.3)
FILL = np.array([100, 100, 100], np.uint8)
P_MIN = 1e-4  # statistical tests: fixed seeds, so deterministic; a correct sampler passes with margin
# CPU and CUDA generators give different streams: the distribution tests run on both where there is a GPU
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU"))]


def _images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    img = np.random.default_rng(seed).integers(0, 255, (n, size, size, 3), dtype=np.uint8)
    return np.where(img >= 100, img + 1, img).astype(np.uint8)


def _batches(n=100, batch=32, size=32, seed=1, device="cpu", **kw) -> GpuBatches:
    return GpuBatches(_images(n, size), np.arange(n) % 10, MEAN, STD, batch, seed, device, **kw)


def _reference(img: np.ndarray, pad: int, mode: str, dy: int, dx: int, flip: bool, holes, size: int) -> np.ndarray:
    """numpy/OpenCV-convention reference of one augmented image, uint8 (3, H, W)."""
    if mode == "reflect":
        padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")  # == BORDER_REFLECT_101
    else:
        padded = np.broadcast_to(FILL, (img.shape[0] + 2 * pad, img.shape[1] + 2 * pad, 3)).copy()
        padded[pad:pad + img.shape[0], pad:pad + img.shape[1]] = img
    out = padded[dy:dy + img.shape[0], dx:dx + img.shape[1]]
    out = (out[:, ::-1] if flip else out).copy()
    for hy, hx in holes:
        out[hy:hy + size, hx:hx + size] = FILL
    return out.transpose(2, 0, 1)


def _cpu(p: EpochParams) -> EpochParams:
    return EpochParams(**{f.name: getattr(p, f.name).cpu() for f in dataclasses.fields(p)})


# -- shapes, order, reference equality ----------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
def test_shapes_dtypes_drop_last_and_epoch_permutation_order(device):
    g = _batches(n=100, batch=32, device=device)
    assert len(g) == 3
    batches = list(g.epoch(5))
    assert len(batches) == 3
    for x, y in batches:
        assert x.shape == (32, 3, 32, 32) and x.dtype == torch.float32 and x.device.type == device
        assert y.device.type == device
        assert y.shape == (32,) and y.dtype == torch.int64
    order = epoch_permutation(100, 1, 5)[:96]
    assert torch.equal(torch.cat([y for _, y in batches]).cpu(), order % 10)
    assert g.data.shape == (100, 3, 40, 40) and g.data.dtype == torch.uint8


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["reflect", "constant"])
def test_batches_equal_the_numpy_reference_for_their_draws(mode, device):
    images = _images(64)
    g = GpuBatches(images, np.zeros(64, dtype=np.int64), MEAN, STD, 16, 3, device, pad=4, pad_mode=mode,
                   flip_p=0.5, cutout_holes=2, cutout_size=8, cutout_p=0.5)
    p = g.epoch_params(2)
    x_all = [x.cpu() for x, _ in g.epoch(2)]
    g.mean, g.std = g.mean.cpu(), g.std.cpu()
    p = _cpu(p)
    assert p.flip.any() and not p.flip.all() and p.cutout.any() and not p.cutout.all()
    for step, x in enumerate(x_all):
        for j in range(16):
            i = step * 16 + j
            holes = list(zip(p.hole_y[i].tolist(), p.hole_x[i].tolist())) if p.cutout[i] else []
            ref = _reference(images[p.order[i]], 4, mode, int(p.dy[i]), int(p.dx[i]), bool(p.flip[i]), holes, 8)
            want = normalize(torch.from_numpy(ref)[None], g.mean, g.std)[0]
            torch.testing.assert_close(x[j], want, rtol=0, atol=1e-6, msg=f"step {step} image {j}")


def test_pad_index_is_reflect_101():
    assert pad_index(5, 2).tolist() == [2, 1, 0, 1, 2, 3, 4, 3, 2]
    with pytest.raises(ConfigError, match="augment.pad"):
        pad_index(4, 4)


def test_no_augmentation_is_identity_normalisation():
    images = _images(40)
    g = GpuBatches(images, np.zeros(40, dtype=np.int64), MEAN, STD, 8, 0, "cpu", pad=0, flip_p=0.0,
                   cutout_holes=0, cutout_size=0, cutout_p=0.0)
    x = torch.cat([x for x, _ in g.epoch(0)])
    order = epoch_permutation(40, 0, 0)
    assert torch.equal(x, normalize(torch.from_numpy(images)[order], g.mean, g.std))


# -- distributions ------------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
def test_crop_offsets_uniform_over_the_81_positions(device):
    g = GpuBatches(_images(40_000, size=8), np.zeros(40_000, dtype=np.int64), MEAN, STD, 1000, 7, device,
                   pad=4, cutout_size=4)
    p = g.epoch_params(0)
    p = _cpu(p)
    assert int(p.dy.min()) == 0 and int(p.dy.max()) == 8 and int(p.dx.min()) == 0 and int(p.dx.max()) == 8
    counts = torch.bincount(p.dy * 9 + p.dx, minlength=81).numpy()
    assert len(counts) == 81
    assert stats.chisquare(counts).pvalue > P_MIN, counts
    # dy and dx independent: 9 x 9 contingency table
    assert stats.chi2_contingency(counts.reshape(9, 9)).pvalue > P_MIN


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("flip_p", [0.5, 0.2])
def test_flip_probability(flip_p, device):
    g = _batches(n=20_000, size=8, batch=500, pad=2, cutout_size=4, flip_p=flip_p, device=device)
    flips = g.epoch_params(1).flip.cpu()
    assert stats.binomtest(int(flips.sum()), len(flips), flip_p).pvalue > P_MIN


def test_flip_extremes_and_cutout_probability():
    g = _batches(n=2000, size=8, batch=500, pad=2, cutout_size=4, flip_p=0.0, cutout_p=0.3)
    p = g.epoch_params(0)
    assert not p.flip.any()
    assert stats.binomtest(int(p.cutout.sum()), len(p.cutout), 0.3).pvalue > P_MIN
    assert _batches(n=100, flip_p=1.0).epoch_params(0).flip.all()


def _hole_corners(x_uint8: np.ndarray) -> list[tuple[int, int]]:
    """Top-left of the single 8x8 mean-coloured square of each uint8 image (3, H, W); asserts it."""
    out = []
    for img in x_uint8:
        hole = (img == FILL[:, None, None]).all(0)
        ys, xs = np.nonzero(hole)
        assert hole.sum() == 64, hole.sum()
        assert ys.max() - ys.min() == 7 and xs.max() - xs.min() == 7
        assert 0 <= ys.min() and ys.max() < img.shape[1] and 0 <= xs.min() and xs.max() < img.shape[2]
        out.append((int(ys.min()), int(xs.min())))
    return out


def test_exactly_one_mean_square_fully_inside_each_image():
    g = _batches(n=256, batch=64)
    p = g.epoch_params(3)
    for step in range(len(g)):
        x = g.render_uint8(p, step * 64, (step + 1) * 64).numpy()
        corners = _hole_corners(x)
        assert corners == list(zip(p.hole_y[step * 64:(step + 1) * 64, 0].tolist(),
                                   p.hole_x[step * 64:(step + 1) * 64, 0].tolist()))
    # after normalisation the hole holds the mean: the same value in both paths
    x, _ = next(g.epoch(3))
    hole = torch.from_numpy((g.render_uint8(p, 0, 64).numpy() == FILL[:, None, None]).all(1))
    want = (torch.tensor(mean_fill(MEAN), dtype=torch.float32) / 255 - g.mean) / g.std
    assert torch.equal(x.permute(0, 2, 3, 1)[hole], want.expand(int(hole.sum()), 3))


def test_hole_placement_matches_the_albumentations_path():
    n = 3000
    acfg = OmegaConf.create({"pad": 4, "pad_mode": "reflect", "flip_p": 0.5, "cutout_holes": 1,
                             "cutout_size": 8, "cutout_p": 1.0})
    tf = build_train_transform(acfg, MEAN, STD, 32)
    img = _images(1)[0]
    fill_norm = normalize(torch.from_numpy(FILL).view(1, 3, 1, 1), torch.tensor(MEAN), torch.tensor(STD))
    cpu = []
    for seed in range(n):
        seed_transform(tf, seed)
        out = tf(image=img)["image"]
        hole = ((out - fill_norm[0]).abs() < 1e-4).all(0).numpy()
        ys, xs = np.nonzero(hole)
        assert hole.sum() == 64 and ys.max() - ys.min() == 7 and xs.max() - xs.min() == 7
        cpu.append((ys.min(), xs.min()))
    cpu = np.array(cpu)
    g = _batches(n=n, batch=500)
    gpu = np.array(_hole_corners(torch.cat([g.render_uint8(g.epoch_params(0), s * 500, (s + 1) * 500)
                                            for s in range(len(g))]).numpy()))
    for axis in (0, 1):
        a = np.bincount(cpu[:, axis], minlength=25)
        b = np.bincount(gpu[:, axis], minlength=25)
        assert len(a) == len(b) == 25  # corners in 0..24: the hole never leaves the 32-pixel image
        assert stats.chi2_contingency(np.stack([a, b])).pvalue > P_MIN, (a, b)
        assert stats.chisquare(a).pvalue > P_MIN and stats.chisquare(b).pvalue > P_MIN


# -- determinism and restart --------------------------------------------------------------------

def _same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))


@pytest.mark.parametrize("device", DEVICES)
def test_deterministic_in_seed_and_epoch(device):
    a, b = _batches(seed=4, device=device), _batches(seed=4, device=device)
    assert _same(list(a.epoch(2)), list(b.epoch(2)))
    assert not torch.equal(next(a.epoch(2))[0], next(a.epoch(3))[0])
    assert not torch.equal(next(a.epoch(2))[0], next(_batches(seed=5, device=device).epoch(2))[0])


@pytest.mark.parametrize("device", DEVICES)
def test_mid_epoch_restart_is_exact(device):
    g = _batches(n=100, batch=20, device=device)
    full = list(g.epoch(7))
    for k in range(len(g) + 1):
        assert _same(list(_batches(n=100, batch=20, device=device).epoch(7, start_step=k)), full[k:]), k
    with pytest.raises(ValueError):
        next(g.epoch(7, start_step=len(g) + 1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_no_host_sync_while_batches_are_produced_on_cuda():
    g = _batches(n=2048, batch=256, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any synchronising CUDA call raises
    try:
        out = [x.sum() for x, _ in g.epoch(1, start_step=2)]
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert len(out) == len(g) - 2


def test_bad_inputs():
    with pytest.raises(ConfigError, match="batch_size"):
        _batches(n=10, batch=11)
    with pytest.raises(ConfigError, match="augment.pad"):
        _batches(size=8, pad=8)
    with pytest.raises(ValueError, match="uint8"):
        GpuBatches(_images(4).astype(np.float32), np.zeros(4), MEAN, STD, 2, 0, "cpu")
    _batches(size=8, pad=8, pad_mode="constant")  # constant padding has no size limit


# -- backend selection and engine knobs ---------------------------------------------------------

def _bundle(n=64) -> DataBundle:
    return DataBundle("synthetic", "/nowhere", [str(i) for i in range(10)], _images(n), np.arange(n) % 10,
                      _images(16, seed=1), np.arange(16) % 10, MEAN, STD)


def _cfg(backend: str):
    return OmegaConf.create({
        "seed": 0, "data": {"batch_size": 16, "num_workers": 0, "image_size": 32},
        "augment": {"_target_": "resnet_cli.data.batches.train_batches", "_partial_": True, "backend": backend,
                    "pad": 4, "pad_mode": "reflect", "flip_p": 0.5, "cutout_holes": 1, "cutout_size": 8,
                    "cutout_p": 1.0},
    })


def test_backend_selection():
    assert resolve_backend("auto", torch.device("cpu")) == "albumentations"
    assert resolve_backend("auto", torch.device("cuda")) == "batched"
    assert resolve_backend("batched", "cpu") == "batched" and resolve_backend("albumentations", "cuda") == "albumentations"
    with pytest.raises(ConfigError, match="augment.backend"):
        resolve_backend("dali", "cpu")
    dev = torch.device("cpu")
    assert isinstance(build_train_batches(_bundle(), _cfg("auto"), dev), AlbumentationsBatches)
    g = build_train_batches(_bundle(), _cfg("batched"), dev)
    assert isinstance(g, GpuBatches) and len(g) == 4 and g.holes == 1 and g.pad == 4


def test_resolve_fused():
    cpu = torch.device("cpu")
    assert resolve_fused(None, cpu) is None  # auto: torch's default on the CPU
    assert resolve_fused(False, cpu) is False
    assert resolve_fused(True, cpu) is True  # this torch has a fused CPU SGD kernel
    assert resolve_fused(False, torch.device("cuda")) is False


@needs_data
def test_compile_wraps_only_the_training_forward(tmp_path, monkeypatch):
    """trainer.compile=true trains through torch.compile (dynamo, eager backend here to spare the
    CPU a C++ build); checkpoints keep the plain module's keys."""
    from hydra import compose, initialize_config_dir
    from rich.console import Console

    from resnet_cli.cli.build import build_recipe
    from resnet_cli.core import distributed
    from resnet_cli.cli.composition import config_dir
    from resnet_cli.cli.schema import register_configs
    from conftest import load_data
    from resnet_cli.engine import build_batches, build_model, build_optimizer, distribute, prepare, resolve_run_lrs
    from resnet_cli.core.fit import fit
    from resnet_cli.tracking import NullLogger
    from resnet_cli.core.run_folder import Records, RunState, Stop, Timings

    calls = []
    real_compile = torch.compile

    def spy(model, **kw):
        calls.append(model)
        return real_compile(model, backend="eager")

    monkeypatch.setattr(torch, "compile", spy)
    register_configs()
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[
            "data=image_folder", f"data.root={DATA_ROOT}", "data.train_subset=100", "data.test_subset=50",
            "data.batch_size=50", "data.num_workers=0", "trainer.epochs=2", "trainer.device=cpu",
            "scheduler.max_epoch=1", "scheduler.max_lr=0.05", "scheduler.min_lr=0.005", "trainer.compile=true",
            "augment.backend=batched"])
    world, recipe = distributed.current(), build_recipe(cfg)
    prepare(recipe.config, tmp_path / "run", world, recipe.device)
    data = load_data(cfg.data, cfg.seed)
    train_batches, test_batches = build_batches(recipe, data)
    model = build_model(recipe, len(data.classes))
    records = Records(tmp_path / "run", world, recipe.config, data, recipe.device, Timings(started=0.0), Console(),
                      NullLogger())
    r = RunState(model, resolve_run_lrs(model, train_batches, records, recipe.optimizer))
    feed = distribute(model, train_batches, test_batches, records)
    r.optimizer, r.scheduler = build_optimizer(recipe, model, r.lr, len(feed.train))
    assert calls == [r.model] and feed.module is not r.model
    assert isinstance(feed.train, GpuBatches)
    fit(r, feed, records, Stop(immediate=False))
    assert [h["epoch"] for h in r.history] == [1, 2] and len(r.step_lrs) == 4
    ckpt = torch.load(records.checkpoint_path, map_location="cpu", weights_only=False)
    assert set(ckpt["model"]) == set(r.model.state_dict()) and not any("_orig_mod" in k for k in ckpt["model"])
    assert set(records.metrics_json(r)["setup_seconds"]) == {"data", "batches", "lr_finder"}


@needs_data
def test_resnet_train_with_gpu_backend_on_cpu(tmp_path):
    run_dir = tmp_path / "run"
    proc = call_cli("resnet-train", [
        "data=image_folder", f"data.root={DATA_ROOT}", "data.train_subset=100", "data.test_subset=50",
        "data.batch_size=50", "data.num_workers=0", "trainer.epochs=2", "trainer.device=cpu",
        "scheduler.max_epoch=1", "scheduler.max_lr=0.05", "scheduler.min_lr=0.005", "augment.backend=batched",
        "optimizer.fused=true", "model._target_=tinynets.TinyNet", "explain.count=2",  # the backend is checked, not the network
        f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["status"] == "completed" and [h["epoch"] for h in m["history"]] == [1, 2]
    assert 0.0 <= m["test_acc"] <= 1.0 and m["train_seconds"] > 0
    assert m["setup_seconds"]["data"] > 0 and m["cuda_memory"] == []
    saved = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert saved.augment.backend == "batched" and saved.optimizer.fused is True
