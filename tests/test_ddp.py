"""Data-parallel training with torchrun: 2 CPU processes on the gloo backend against one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import needs_data
from resnet_cli.core import distributed
from resnet_cli.errors import ConfigError
from tinynets import TinyNet, tiny, tiny_env


class _Batches:
    """A fake TrainBatches: global batch (B, 1, 1, 1) whose values encode (epoch, step, row)."""

    def __init__(self, batch: int, steps: int):
        self.batch, self.steps = batch, steps

    def __len__(self) -> int:
        return self.steps

    def epoch(self, epoch: int, start_step: int = 0):
        for s in range(start_step, self.steps):
            x = torch.arange(self.batch, dtype=torch.float32).view(-1, 1, 1, 1) + 1000 * epoch + 100 * s
            yield x, torch.arange(self.batch)


def test_ranks_split_each_global_batch_into_contiguous_slices():
    inner = _Batches(batch=12, steps=3)
    shards = [distributed.ShardedBatches(inner, r, 3, 12) for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]
    for (gx, gy), *parts in zip(inner.epoch(2, 1), *(s.epoch(2, 1) for s in shards)):
        assert all(len(x) == 4 for x, _ in parts)
        assert torch.equal(torch.cat([x for x, _ in parts]), gx) and torch.equal(torch.cat([y for _, y in parts]), gy)


def test_batch_size_must_split_evenly():
    distributed.check_batch_size(512, 4)
    with pytest.raises(ConfigError, match=r"data.batch_size=50 is not divisible by the 3 processes"):
        distributed.ShardedBatches(_Batches(50, 1), 0, 3, 50)


@pytest.mark.parametrize("n, world", [(100, 2), (101, 3), (5, 8)])
def test_test_split_blocks_cover_every_image_once(n, world):
    rows = [list(range(n))[distributed.shard_rows(n, r, world)] for r in range(world)]
    assert sum(rows, []) == list(range(n))
    assert max(map(len, rows)) - min(map(len, rows)) <= 1


def test_env_world_and_rank_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert distributed.env_world() == distributed.World() and not distributed.World().distributed
    assert distributed.hydra_overrides_for_rank() == []  # rank 0 (or no torchrun): Hydra as usual
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    world = distributed.env_world()
    assert (world.rank, world.world_size, world.is_main, world.distributed) == (1, 2, False, True)
    ov = distributed.hydra_overrides_for_rank(world)
    scratch = Path(ov[0].split("=", 1)[1])
    assert scratch.is_dir() and scratch.parent == tmp_path and not any(scratch.iterdir())
    assert ov[1:] == ["hydra.output_subdir=null", "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ConfigError, match="inconsistent torchrun environment"):
        distributed.env_world()


def test_a_sweep_job_under_torchrun_is_refused_before_joining(monkeypatch):
    """The entry point says whether the run is a sweep's job (multirun); distributed asks no one."""
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(ConfigError, match=r"for a sweep \(-m\) leave torchrun out"):
        with distributed.process_group("cpu", multirun=True):
            pass
    assert not torch.distributed.is_initialized()


def _train(tmp_path: Path, name: str, extra: list[str], nproc: int | None) -> tuple[subprocess.CompletedProcess, Path]:
    """``python -m resnet_cli.cli.train`` (nproc None) or ``torchrun --nproc_per_node=nproc -m resnet_cli.cli.train``."""
    run_dir = tmp_path / name
    scratch = tmp_path / f"tmp_{name}"  # TMPDIR of the processes: a rank > 0 leaves nothing here
    scratch.mkdir()
    launch = [sys.executable, "-m", "resnet_cli.cli.train"] if nproc is None else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "resnet_cli.cli.train"]
    env = {**os.environ, **tiny_env(), "TMPDIR": str(scratch), "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    # fp32: the comparison is of DDP's arithmetic; bf16 kernels may round a half batch differently
    proc = subprocess.run([*launch, *tiny(), "trainer.precision=fp32", *extra, f"hydra.run.dir={run_dir}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not list(scratch.glob("resnet-cli-rank*")), "a rank other than 0 wrote files"
    return proc, run_dir


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["model"]


@pytest.mark.slow
@needs_data
def test_two_gloo_processes_train_like_one(tmp_path):
    """Same global batches, gradients averaged by DDP: without BatchNorm the two runs agree to
    float rounding (weights, losses) and exactly in accuracy."""
    model = ["model._target_=tinynets.TinyNet"]
    _, one = _train(tmp_path, "one", model, None)
    _, two = _train(tmp_path, "two", model, 2)
    m1, m2 = _metrics(one), _metrics(two)
    assert not (one / "tensorboard").exists()  # logger: null by default
    assert m2["status"] == "completed" and m2["epochs_done"] == 2
    for h1, h2 in zip(m1["history"], m2["history"], strict=True):
        assert (h1["train_acc"], h1["test_acc"]) == (h2["train_acc"], h2["test_acc"])
        assert h2["train_loss"] == pytest.approx(h1["train_loss"], rel=1e-5)
        assert h2["test_loss"] == pytest.approx(h1["test_loss"], rel=1e-5)
        assert h2["lr"] == pytest.approx(h1["lr"], rel=1e-9)
    w1, w2 = _weights(one), _weights(two)
    assert w1.keys() == w2.keys()  # plain keys: the checkpoint holds the module, not the DDP wrapper
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-5, atol=1e-6, msg=k)
    log = (two / "train.log").read_text()
    assert "distributed: 2 processes, backend gloo" in log
    assert log.count("epoch  1/2") == 1  # only rank 0 logs to the file
    assert (two / "plots" / "curves.png").is_file() and (two / "history.csv").is_file()


@pytest.fixture(scope="module")
def bn_ema_run(tmp_path_factory) -> tuple[Path, dict, dict, object]:
    """One torchrun run (2 gloo processes) of TinyNet with BatchNorm and an EMA (trainer.ema_decay=0.9):
    its folder, metrics.json, checkpoint and test split, shared by the two tests below (each rank
    normalises its own slice; each rank's EMA averages its own statistics)."""
    from omegaconf import OmegaConf

    from conftest import DATA_ROOT, load_data

    if not (DATA_ROOT / "train").is_dir():
        pytest.skip(f"offline CIFAR-10 copy not found at {DATA_ROOT}")
    _, two = _train(tmp_path_factory.mktemp("ddp_bn"), "two_bn",
                    ["model._target_=tinynets.TinyNet", "+model.bn=true", "trainer.ema_decay=0.9"], 2)
    ckpt = torch.load(two / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    cfg = OmegaConf.create(ckpt["config"])
    return two, _metrics(two), ckpt, load_data(cfg.data, cfg.seed)


def _evaluate_on_the_whole_split(state: dict, ckpt: dict, data) -> dict:
    from resnet_cli.data.batches import TestBatches
    from resnet_cli.core.fit import evaluate_batches as evaluate

    net = TinyNet(num_classes=len(data.classes), bn=True, logit_scale=ckpt["config"]["model"]["logit_scale"])
    net.load_state_dict(state)
    return evaluate(net, TestBatches(data.test_images, data.test_labels, data.mean, data.std, 50, "cpu"),
                    torch.device("cpu"))


@pytest.mark.slow
@needs_data
def test_two_processes_with_batchnorm_report_the_metrics_of_the_saved_model(bn_ema_run):
    """With BatchNorm each rank normalises its own slice, so training differs slightly from one
    process; but the test metrics, computed on two halves of the test split and reduced, are
    exactly those of the checkpointed model (rank 0's weights and statistics) on the whole split."""
    two, m, ckpt, data = bn_ema_run
    assert m["status"] == "completed" and m["epochs_done"] == 2
    ev = _evaluate_on_the_whole_split(ckpt["model"], ckpt, data)
    assert ev["n"] == 100
    assert m["test_acc"] == ev["acc"]
    assert m["test_loss"] == pytest.approx(ev["loss"], rel=1e-5)
    assert 0.0 < m["train_loss"] < 10.0 and 0.0 <= m["train_acc"] <= 1.0


@pytest.mark.slow
@needs_data
def test_under_torchrun_ema_test_acc_is_the_saved_emas(bn_ema_run):
    """2 gloo processes with BatchNorm and an EMA: the reported ema_test_loss/ema_test_acc (each rank
    evaluates half the test split) are those of the EMA the checkpoint holds, on the whole split.
    (Moved from test_records.py: it shares the torchrun run above.)"""
    two, m, ckpt, data = bn_ema_run
    ev = _evaluate_on_the_whole_split({k.removeprefix("module."): v for k, v in ckpt["ema"].items()
                                       if k != "n_averaged"}, ckpt, data)
    assert ev["n"] == 100 and m["ema_test_acc"] == ev["acc"]
    assert m["ema_test_loss"] == pytest.approx(ev["loss"], rel=1e-5)
