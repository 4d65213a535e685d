"""Records that say what ran (precision, layout, versions, device) and what reads them back; the
experiment=best preset; trainer.checkpoint_every and the checkpoint's write; EMA statistics under
DDP; trainer.device=mps with its availability mocked. Tiny synthetic data throughout."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from PIL import Image

import resnet_cli
from conftest import call_cli, one_line_error
from resnet_cli.core import precision as prec
from resnet_cli.core.checkpoint import load_checkpoint, save_checkpoint
from resnet_cli.cli.composition import config_dir
from resnet_cli.cli.checks import validate
from resnet_cli.cli.schema import register_configs
from resnet_cli.errors import ConfigError, OutputError
from tinynets import tiny_env

register_configs()


def _compose(overrides, name="train"):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir(), version_base="1.3"):
        return compose(name, overrides=list(overrides))


def noise_folder(root: Path, classes=("cat", "dog", "frog"), n_train: int = 20, n_test: int = 10) -> Path:
    """``root/{train,test}/<class>/<i>.png``: seeded RGB noise images, 32 x 32."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root


def tiny_run(tmp_path: Path, *extra: str) -> list[str]:
    """Overrides of a run of TinyNet on 60 noise images, batch 10 (6 steps an epoch), fixed LRs."""
    root = tmp_path / "data"
    if not root.is_dir():
        noise_folder(root)
    return ["data=image_folder", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "data.batch_size=10",
            "data.num_workers=0", "trainer.device=cpu", "trainer.epochs=3", "scheduler.max_epoch=1",
            "scheduler.max_lr=0.05", "scheduler.min_lr=0.005", "model._target_=tinynets.TinyNet", "explain.count=2",
            *extra]


@pytest.fixture(autouse=True)
def _fresh_bf16_cache():
    prec.native_bf16.cache_clear()
    yield
    prec.native_bf16.cache_clear()


# -- experiment=best ------------------------------------------------------------------------------

def test_best_preset_is_the_recipe_plus_the_measured_options(tmp_path):
    base = ["data=image_folder", f"data.root={tmp_path}"]
    full, best = _compose(base), _compose(["experiment=best", *base])
    assert (best.trainer.label_smoothing, best.trainer.ema_decay, best.trainer.tta_flip) == (0.2, 0.99, True)
    for key in ("model", "data", "augment", "scheduler", "lr_finder", "optimizer", "explain"):
        assert best[key] == full[key], key
    changed = {k for k in full.trainer if full.trainer[k] != best.trainer[k]}
    assert changed == {"label_smoothing", "ema_decay", "tta_flip"}
    given = _compose(["experiment=best", *base, "scheduler.max_lr=0.849", "scheduler.min_lr=0.029"])
    validate(given)
    assert (given.scheduler.max_lr, given.scheduler.min_lr) == (0.849, 0.029)


def test_best_preset_with_lrs_that_do_not_fit_is_one_line(tmp_path):
    proc = call_cli("resnet-train", ["experiment=best", "scheduler.max_lr=0.1", "scheduler.min_lr=0.5",
                                     "trainer.device=cpu", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    one_line_error(proc, 2, "scheduler.min_lr=0.5", "scheduler.max_lr=0.1")
    assert not (tmp_path / "run").exists()


# -- the runtime record ---------------------------------------------------------------------------

def test_runtime_record_names_what_ran():
    cpu = torch.device("cpu")
    r = prec.runtime_record(cpu, "auto", True)
    assert r["precision"] in ("bf16", "fp32") and r["precision"] == prec.resolve_precision("auto", cpu)
    assert prec.runtime_record(cpu, "fp32", False)["precision"] == "fp32"
    assert r["channels_last"] is True and r["device"] == "cpu"
    assert (r["torch"], r["torchvision"]) == (torch.__version__, torchvision.__version__)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and "model name" in cpuinfo.read_text():
        assert r["device_name"] in cpuinfo.read_text()
    assert r["device_name"] and r["device_name"] != "unknown"


def _ckpt(recorded=None, asked="auto"):
    return {"config": {"trainer": {"precision": asked}}, **({"runtime": {"precision": recorded}} if recorded else {})}


@pytest.mark.parametrize("native", [True, False])
def test_checkpoint_precision_is_the_recorded_one(monkeypatch, caplog, native):
    monkeypatch.setattr(prec, "native_bf16", lambda device: native)
    cpu = torch.device("cpu")
    assert prec.checkpoint_precision(_ckpt("fp32"), cpu) == "fp32"
    assert prec.checkpoint_precision(_ckpt("fp32", asked="auto"), cpu) == "fp32"  # auto on the run's machine chose fp32
    with caplog.at_level(logging.WARNING, logger="resnet_cli"):
        got = prec.checkpoint_precision(_ckpt("bf16"), cpu)
    assert got == ("bf16" if native else "fp32")
    warned = [r.getMessage() for r in caplog.records if "bf16" in r.getMessage()]
    assert len(warned) == (0 if native else 1)
    if not native:
        assert "evaluating in fp32" in warned[0] and "\n" not in warned[0]
    # checkpoints from before the record: their trainer.precision, auto resolved here
    assert prec.checkpoint_precision(_ckpt(None, "fp32"), cpu) == "fp32"
    assert prec.checkpoint_precision(_ckpt(None, "auto"), cpu) == ("bf16" if native else "fp32")
    assert prec.checkpoint_precision(_ckpt(None, "bf16"), cpu) == ("bf16" if native else "fp32")


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory):
    """A 3-epoch TinyNet run with trainer.checkpoint_every=2, counting the checkpoint writes (a copy
    of the one after epoch 2: ``epoch2.pt`` beside the run folder)."""
    import shutil

    from resnet_cli.core import run_folder

    tmp = tmp_path_factory.mktemp("recorded")
    written = []
    real = run_folder.save_training

    def counting(path, state, *args, **kw):
        written.append((state.epoch, state.step))
        out = real(path, state, *args, **kw)
        if state.epoch == 2:
            shutil.copy(out, tmp / "epoch2.pt")
        return out

    mp = pytest.MonkeyPatch()
    mp.setattr(run_folder, "save_training", counting)
    try:
        result = resnet_cli.train(tiny_run(tmp, "trainer.checkpoint_every=2", "trainer.precision=fp32",
                                           "trainer.channels_last=false"), output_dir=tmp / "run", verbose=False)
    finally:
        mp.undo()
    return result, written


def test_metrics_and_checkpoint_record_what_ran(recorded_run):
    result, _ = recorded_run
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    ckpt = load_checkpoint(result.checkpoint)
    expected = prec.runtime_record(torch.device("cpu"), "fp32", False)
    assert metrics["runtime"] == expected == ckpt["runtime"]
    assert metrics["runtime"]["precision"] == "fp32" and metrics["runtime"]["channels_last"] is False


def test_checkpoint_every_writes_every_nth_and_the_last_epoch(recorded_run):
    result, written = recorded_run
    assert written == [(2, 0), (3, 0)]  # epoch 1 skipped; 2 by the interval; 3, the last, always
    assert load_checkpoint(result.checkpoint)["epoch"] == 3


def test_checkpoint_every_zero_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"^trainer.checkpoint_every=0 is not allowed: must be >= 1 [^\n]*$"):
        validate(_compose(tiny_run(tmp_path, "trainer.checkpoint_every=0")))


def _spy_autocast(monkeypatch, module):
    seen = []
    real = prec.autocast

    def spy(device, precision):
        seen.append(precision)
        return real(device, precision)

    monkeypatch.setattr(module, "autocast", spy)
    return seen


def test_evaluating_a_checkpoint_uses_its_recorded_precision(recorded_run, tmp_path, monkeypatch, caplog):
    """A checkpoint recorded bf16, on a device without native bf16: evaluate(), resnet-predict's
    work and resnet-gradcam's work each run fp32 and say why in one warning line."""
    from resnet_cli.core import fit
    from resnet_cli.diagnostics import evaluation, inference

    from resnet_cli.models import CustomResNet

    result, _ = recorded_run
    ckpt = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    ckpt["runtime"]["precision"] = "bf16"
    ckpt["config"]["model"] = {"_target_": "resnet_cli.models.CustomResNet", "logit_scale": 0.125}
    ckpt["model"] = CustomResNet(num_classes=3, logit_scale=0.125).state_dict()  # untrained: only its precision counts
    path = tmp_path / "bf16.pt"
    torch.save(ckpt, path)
    monkeypatch.setattr(prec, "native_bf16", lambda device: False)
    seen = _spy_autocast(monkeypatch, fit)  # the test pass, evaluate_batches
    with caplog.at_level(logging.WARNING, logger="resnet_cli"):
        ev = evaluation.evaluate(str(path), device="cpu")
    assert seen and set(seen) == {"fp32"} and ev.n == 30
    assert sum("evaluating in fp32" in r.getMessage() for r in caplog.records) == 1

    monkeypatch.setattr(prec, "native_bf16", lambda device: True)  # now the device has bf16: the run's bf16 is used
    seen.clear()
    evaluation.evaluate(str(path), device="cpu")
    assert set(seen) == {"bf16"}

    seen = _spy_autocast(monkeypatch, prec)  # inference imports autocast at call time
    image = next((Path(ckpt["config"]["data"]["root"]) / "test" / "cat").iterdir())
    out = inference.predict_checkpoint(inference.PredictRequest(ckpt=str(path), images=[str(image)], topk=2,
                                                                batch_size=4, device="cpu"), tmp_path / "predict")
    assert len(out["predictions"]) == 1 and seen == ["bf16"]

    cfg = _compose([f"ckpt={path}", "count=2", "device=cpu", "batch_size=16"], name="gradcam")
    metrics = evaluation.explain_checkpoint(evaluation.ExplainRequest(**OmegaConf.to_container(cfg)),
                                            tmp_path / "gradcam")
    assert metrics["precision"] == "bf16" and metrics["test_size"] == 30


def test_a_resumed_run_keeps_its_precision(monkeypatch):
    from resnet_cli.cli.resume import keep_precision

    cfg = OmegaConf.create({"trainer": {"device": "cpu", "precision": "auto"}})
    keep_precision(cfg, {"runtime": {"precision": "fp32"}}, "last.pt")
    assert cfg.trainer.precision == "fp32"
    old = OmegaConf.create({"trainer": {"device": "cpu", "precision": "auto"}})
    keep_precision(old, {"config": {}}, "last.pt")  # a checkpoint from before the record: as saved
    assert old.trainer.precision == "auto"
    monkeypatch.setattr(prec, "native_bf16", lambda device: True)
    keep_precision(cfg, {"runtime": {"precision": "bf16"}}, "last.pt")
    assert cfg.trainer.precision == "bf16"
    monkeypatch.setattr(prec, "native_bf16", lambda device: False)
    with pytest.raises(ConfigError, match=r"resume=last.pt: that run computed in bf16 .* has no native bf16"):
        keep_precision(cfg, {"runtime": {"precision": "bf16"}}, "last.pt")


def test_resume_through_the_engine_takes_the_recorded_precision(recorded_run, tmp_path, monkeypatch):
    """The recorded run computed in fp32: a resumed run of it does too, and records it."""
    result, _ = recorded_run
    ckpt = torch.load(result.run_dir.parent / "epoch2.pt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["runtime"]["precision"] == "fp32"
    ckpt["config"]["trainer"]["precision"] = "auto"  # as if auto had chosen fp32 on the run's machine
    path = tmp_path / "epoch2.pt"
    torch.save(ckpt, path)
    monkeypatch.setattr(prec, "native_bf16", lambda device: True)  # here auto would choose bf16
    # the recorded run's own data (a resume refuses a data node that differs from the run's)
    resumed = resnet_cli.train([*tiny_run(result.run_dir.parent), f"resume={path}"], output_dir=tmp_path / "resumed",
                               verbose=False)
    assert resumed.metrics["runtime"]["precision"] == "fp32"
    assert load_checkpoint(resumed.checkpoint)["config"]["trainer"]["precision"] == "fp32"


# -- the checkpoint's write ---------------------------------------------------------------------

def test_a_checkpoint_too_large_for_the_disk_is_one_line_and_keeps_the_previous(tmp_path):
    """The write goes straight into the temporary file (no in-memory copy); a write that fails
    (RLIMIT_FSIZE: EFBIG, as a full disk's ENOSPC) still gives the one-line OutputError."""
    import resource

    path = save_checkpoint(tmp_path / "last.pt", {"epoch": 1, "w": torch.ones(10)})
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, hard))  # Python ignores SIGXFSZ: the write fails with EFBIG
    try:
        with pytest.raises(OutputError) as failed:
            save_checkpoint(path, {"epoch": 2, "w": torch.ones(2**20)})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    line = str(failed.value)
    assert line.startswith(f"cannot write {path}: File too large (4.2 MB needed") and "\n" not in line, line
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary file left


# -- trainer.device=mps (availability mocked) -------------------------------------------------------

def test_auto_picks_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert prec.resolve_device("auto") == torch.device("mps") == prec.resolve_device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert prec.resolve_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert prec.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"trainer.device='mps' but torch sees no Apple GPU.*trainer.device=cpu"):
        prec.resolve_device("mps")


def test_mps_computes_in_fp32_and_says_so(monkeypatch):
    mps = torch.device("mps")
    assert prec.resolve_precision("auto", mps) == "fp32" and prec.resolve_precision("fp32", mps) == "fp32"
    with pytest.raises(ConfigError, match=r"trainer.precision='bf16' is not allowed: mps has no native bf16"):
        prec.resolve_precision("bf16", mps)
    r = prec.runtime_record(mps, "auto", True)
    assert r["precision"] == "fp32" and r["device"] == "mps" and r["device_name"].startswith("Apple GPU (mps)")


def test_mps_where_there_is_none_is_one_line(tmp_path):
    if torch.backends.mps.is_available():
        pytest.skip("this machine has an Apple GPU")
    proc = call_cli("resnet-train", [*tiny_run(tmp_path, "trainer.device=mps"), f"hydra.run.dir={tmp_path / 'run'}"],
                    cwd=tmp_path, env=tiny_env())
    one_line_error(proc, 2, "trainer.device='mps'", "no Apple GPU")


# -- EMA under DDP (2 gloo processes) ---------------------------------------------------------------

def _ema_rank(rank: int, world: int, init_file: str, out: str) -> None:
    """One rank: the same network, its own data (so its BatchNorm statistics and those of its EMA
    differ from the other rank's), then :func:`distributed.distribute_bn` on the EMA."""
    import torch.distributed as dist
    from torch import nn

    from resnet_cli.core import distributed
    from resnet_cli.core.ema import build_ema

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    ema = build_ema(model, 0.9)
    torch.manual_seed(100 + rank)
    for _ in range(3):
        model(torch.randn(8, 3, 8, 8) * (1 + rank) + rank)  # train mode: BN statistics of this rank's images
        ema.update_parameters(model)
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    distributed.distribute_bn(ema)
    torch.save({"before": before, "after": ema.state_dict()}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_ema_batchnorm_statistics_agree_across_two_gloo_ranks(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("fork")  # no re-import of torch in the children
    procs = [ctx.Process(target=_ema_rank, args=(r, 2, str(tmp_path / "init"), str(tmp_path))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    stats = [k for k in r0["after"] if k.endswith(("running_mean", "running_var"))]
    assert len(stats) == 2
    for k in stats:
        assert not torch.allclose(r0["before"][k], r1["before"][k]), k  # each rank's EMA had its own statistics
        torch.testing.assert_close(r0["after"][k], r1["after"][k], rtol=0, atol=0)
        torch.testing.assert_close(r0["after"][k], (r0["before"][k] + r1["before"][k]) / 2)
    for k in r0["after"]:
        if k not in stats:  # weights (identical under DDP) and counters are left as they were
            assert torch.equal(r0["after"][k], r0["before"][k]), k


# the EMA's reported test metrics under torchrun: test_ddp.py's test_under_torchrun_ema_test_acc_is_the_saved_emas
# (it shares that file's torchrun run with BatchNorm)


def test_checkpoint_cost_bench_writes_its_record(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("checkpoint_cost", Path(__file__).parents[1] / "bench" /
                                                  "checkpoint_cost.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--out", str(tmp_path), "--writes", "1", "--epoch-seconds", "10"]) == 0
    r = json.loads((tmp_path / "checkpoint_cost.json").read_text())
    assert 50 < r["checkpoint_mb"] < 56  # weights + momentum buffers of the 6.57 M-parameter network, fp32
    assert r["write_over_epoch"] == pytest.approx(r["write_seconds_median"] / 10, abs=1e-5)
    assert r["python_heap_peak_mb"]["straight"] < 10 < r["python_heap_peak_mb"]["bytesio"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_cost.json", "checkpoint_cost.log"]
    assert bench.main(["--out", str(tmp_path), "--writes", "0"]) == 2
