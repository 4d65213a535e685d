"""Resume: a run stopped by a real SIGINT and continued with ``resume=`` ends with exactly the
weights (and EMA) of the same run left uninterrupted (CPU, one thread, deterministic kernels)."""

from __future__ import annotations

import pytest
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import torch

from conftest import call_cli, needs_data, run_cli, script
from tinynets import tiny, tiny_env

# 400 training images / batch 50 = 8 steps an epoch, 3 epochs. TinyNet with BatchNorm (buffers to
# restore) and an EMA of the weights (trainer.ema_decay); each training step sleeps 0.1 s (wall time
# only) so the signal lands inside epoch 2.
RUN = [*tiny(train=400, epochs=3), "model._target_=tinynets.TinyNet", "+model.bn=true", "+model.delay_s=0.1",
       "trainer.ema_decay=0.9"]


def _env() -> dict[str, str]:
    env = {**os.environ, **tiny_env(), "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def _metrics(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None


def _checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _resume(tmp_path: Path, ckpt: Path, name: str) -> Path:
    run_dir = tmp_path / name
    # a process of its own, as the interrupted run: tiny_env's thread count must apply (bit-exact comparison)
    proc = run_cli("resnet-train", [f"resume={ckpt}", "trainer.device=cpu", "data.num_workers=0", "explain.count=4",
                                   f"hydra.run.dir={run_dir}"], cwd=tmp_path, env=tiny_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return run_dir


def _same_training(a: Path, b: Path) -> None:
    """Identical final weights and buffers, optimizer state, LR trace and per-epoch metrics."""
    ca, cb = _checkpoint(a / "checkpoints" / "last.pt"), _checkpoint(b / "checkpoints" / "last.pt")
    assert (cb["epoch"], cb["step"]) == (3, 0)
    assert ca["model"].keys() == cb["model"].keys()
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), f"{k} differs after resume"
    assert ca["ema"].keys() == cb["ema"].keys() and int(cb["ema"]["n_averaged"]) == 24
    for k in ca["ema"]:
        assert torch.equal(ca["ema"][k], cb["ema"][k]), f"EMA {k} differs after resume"
    for pa, pb in zip(ca["optimizer"]["state"].values(), cb["optimizer"]["state"].values(), strict=True):
        assert torch.equal(pa["momentum_buffer"], pb["momentum_buffer"])
    assert ca["step_lrs"] == cb["step_lrs"] and len(ca["step_lrs"]) == 24
    keys = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "ema_test_acc")
    assert [{k: h[k] for k in keys} for h in ca["history"]] == [{k: h[k] for k in keys} for h in cb["history"]]
    mb = _metrics(b)
    assert mb["status"] == "completed" and mb["epochs_done"] == 3 and mb["test_acc"] == _metrics(a)["test_acc"]


@pytest.mark.slow
@needs_data
def test_sigint_then_resume_ends_with_the_uninterrupted_weights(tmp_path):
    full = tmp_path / "full"
    proc = run_cli("resnet-train", [*RUN, f"hydra.run.dir={full}"], cwd=tmp_path, env=tiny_env())  # see _resume
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # the same run, interrupted by SIGINT once epoch 1 is done (while epoch 2 trains)
    stopped = tmp_path / "stopped"
    epoch1 = tmp_path / "epoch1.pt"
    p = subprocess.Popen([script("resnet-train"), *RUN, f"hydra.run.dir={stopped}"], cwd=tmp_path, env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 600
        ckpt = stopped / "checkpoints" / "last.pt"  # written atomically, just after metrics.json (issue 20)
        while (_metrics(stopped) or {}).get("epochs_done", 0) < 1 or not ckpt.is_file():
            assert p.poll() is None, f"the run ended before epoch 1 was recorded:\n{p.stdout.read()[-3000:]}"
            assert time.monotonic() < deadline, "epoch 1 took more than 10 minutes"
            time.sleep(0.02)
        shutil.copy(ckpt, epoch1)
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=600)
    finally:
        if p.poll() is None:
            p.kill()
    assert (_checkpoint(epoch1)["epoch"], _checkpoint(epoch1)["step"]) == (1, 0), "copied a later checkpoint"
    assert p.returncode == 130, out[-3000:]
    m = _metrics(stopped)
    assert m["status"] == "interrupted" and m["interrupted_at"]["signal"] == "SIGINT", m
    at = _checkpoint(stopped / "checkpoints" / "last.pt")
    assert (at["epoch"], at["step"]) != (3, 0) and at["epoch"] >= 1

    # resumed from the end of epoch 1, and from wherever SIGINT stopped it (usually inside epoch 2)
    _same_training(full, _resume(tmp_path, epoch1, "resumed_epoch1"))
    resumed = _resume(tmp_path, stopped / "checkpoints" / "last.pt", "resumed_sigint")
    _same_training(full, resumed)
    # interrupt and resume name the same point the same way (issue 15)
    where = f"epoch {at['epoch'] + 1} step {at['step']}"
    assert f"stopped at {where};" in out and "this one keeps status interrupted" in out, out[-2000:]
    assert f"at {where} into this new run folder" in (resumed / "train.log").read_text()


def test_resume_rejects_a_checkpoint_without_training_state(tmp_path):
    """A weights-only file (no optimizer state) cannot continue a schedule: exit 2, one line."""
    from resnet_cli.core.checkpoint import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "weights.pt", {"model": {}, "config": {}})
    proc = call_cli("resnet-train", [f"resume={ckpt}", "trainer.device=cpu", f"hydra.run.dir={tmp_path / 'r'}"],
                   cwd=tmp_path, env=tiny_env(), timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "optimizer" in lines[-1] and str(ckpt) in lines[-1]
