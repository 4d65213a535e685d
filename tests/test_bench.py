"""bench/bench.py: its arithmetic (FLOPs, peaks, summaries) and a 1-seed smoke run on the CPU.

No timing is asserted here; speed targets are measured by running the script on a GPU.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

from resnet_cli.models import CustomResNet

from conftest import DATA_ROOT, ROOT, needs_data
from tinynets import TinyNet, tiny_env

BENCH = ROOT / "bench" / "bench.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bench = _load_bench()


def _conv_flops(cin, cout, hw):  # 3x3 convolution, stride 1, same padding: 2 FLOPs per multiply-add
    return 2 * cin * cout * 9 * hw * hw


# ResNet-9 at 32x32 (resnet_cli/models/__init__.py): prep, layer1 conv + 2 res convs, layer2, layer3 conv + 2 res, fc
FIRST_CONV = _conv_flops(3, 64, 32)
RESNET9_FORWARD = (FIRST_CONV + _conv_flops(64, 128, 32) + 2 * _conv_flops(128, 128, 16) + _conv_flops(128, 256, 16)
                   + _conv_flops(256, 512, 8) + 2 * _conv_flops(512, 512, 4) + 2 * 512 * 10)


def test_flops_per_image_of_resnet9():
    f = bench.flops_per_image(CustomResNet(10), 32)
    assert f["forward"] == RESNET9_FORWARD == 758_523_904
    # backward: weight and input gradients (2x forward) except the input gradient of the first conv
    assert f["forward_backward"] == 3 * RESNET9_FORWARD - FIRST_CONV


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H100 NVL", 835.0),
    ("NVIDIA H200", 989.0), ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA A100-PCIE-40GB", 312.0),
    ("NVIDIA L4", 121.0), ("NVIDIA L40S", None), ("Tesla T4", None),
])
def test_peak_table(name, peak):
    assert bench.peak_bf16_tflops(name)[0] == peak


def test_stats_and_summary():
    s = bench.stats_of([1.0, 2.0, None, 4.0])
    assert s["n"] == 3 and s["mean"] == pytest.approx(7 / 3) and s["std"] == pytest.approx(math.sqrt(7 / 3))
    assert bench.stats_of([5.0])["std"] == 0.0 and bench.stats_of([None])["mean"] is None
    metrics = {"status": "completed", "epochs": 2, "epochs_done": 2, "train_seconds": 4.0,
               "history": [{"seconds": 2.5, "test_acc": 0.7}, {"seconds": 1.5, "test_acc": 0.9}],
               "setup_seconds": {"data": 1.0, "lr_finder": 3.0},
               "timings": {"data": 1.0, "lr_finder": 3.0, "train": 4.0, "total": 9.0},
               "cuda_memory": [{"epoch": 1, "allocated_mib": 100.0, "peak_mib": 900.0},
                               {"epoch": 2, "allocated_mib": 100.0, "peak_mib": 900.0}],
               "test_acc": 0.9, "dataset": {"name": "x", "root": "/x", "train_size": 1050, "test_size": 10}}
    row = bench.run_record(metrics, seed=0, batch_size=100, backend="gpu", flops={"forward_backward": 10**9},
                           peak_tflops=0.5, wall=9.0, peak_mem_mib=900.0, peak_reserved_mib=1000.0)
    assert row["steps_per_epoch"] == 10 and row["images_trained"] == 2000  # drop_last: 50 images unused
    assert row["images_per_s"] == 500.0 and row["achieved_tflops"] == pytest.approx(5e-1)
    assert row["peak_fraction"] == pytest.approx(1.0) and row["epoch_seconds_median"] == 2.0
    assert row["mem_growth_mib"] == 0.0
    failed = {"seed": 1, "status": "failed", "error": "boom"}
    summ = bench.summary([row, dict(row, seed=2, test_acc=0.8), failed])
    assert summ["runs_completed"] == 2 and summ["runs_failed"] == 1
    assert summ["test_acc"]["mean"] == pytest.approx(0.85) and summ["setup_seconds"]["lr_finder"]["mean"] == 3.0
    assert row["seconds_to_90"] == 4.0 and bench.seconds_to(metrics["history"], 0.95) is None
    assert summ["timings"]["total"]["mean"] == 9.0 and list(summ["timings"]) == ["data", "lr_finder", "train", "total"]
    text = bench.table([row], summ)
    assert "mean +- std over 2 run(s)" in text and "to 90 %: 4.00 +- 0.00 s" in text
    assert "time per phase (s, mean): data 1.00, lr_finder 3.00, train 4.00, total 9.00" in text


def test_bad_arguments_exit_2(tmp_path, capsys):
    """bench.py's main() in this process (the script's own process: test_bench_smoke_on_cpu)."""
    with pytest.raises(SystemExit) as info:  # argparse's error: exit 2
        bench.main(["--seeds", "0", "--out", str(tmp_path)])
    assert info.value.code == 2 and "--seeds" in capsys.readouterr().err
    assert bench.main(["--out", str(tmp_path), "trainer.no_such_key=1"]) == 2
    assert "no_such_key" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.json"))


@pytest.mark.slow
@needs_data
def test_bench_smoke_on_cpu(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run([
        sys.executable, str(BENCH), "--seeds", "1", "--first-seed", "3", "--warmup", "0", "--peak-tflops", "2",
        "--out", str(out), "--runs-dir", str(tmp_path / "runs"),
        "--compare", "scheduler.final_div_factor=1e4 scheduler.max_lr=0.04", "--compare-seeds", "1",
        "data=image_folder", f"data.root={DATA_ROOT}", "data.train_subset=200", "data.test_subset=100",
        "data.batch_size=50", "data.num_workers=0", "trainer.epochs=2", "trainer.device=cpu",
        "scheduler.max_epoch=1", "scheduler.max_lr=0.05", "scheduler.min_lr=0.005", "augment.backend=batched",
        "model._target_=tinynets.TinyNet", "explain.count=2",  # the script's records are checked, not the network
    ], cwd=tmp_path, capture_output=True, text=True, timeout=900, env={**os.environ, **tiny_env()})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (path,) = out.glob("bench-cpu-*.json")
    assert path.with_suffix(".log").is_file() and "mean +- std over 1 run(s)" in path.with_suffix(".log").read_text()
    rec = json.loads(path.read_text())
    assert rec["device"]["type"] == "cpu" and rec["device"]["peak_bf16_tflops"] == 2.0
    # the FLOPs of the model the runs trained (the custom ResNet's: test_flops_per_image_of_resnet9)
    assert rec["software"]["torch"] and rec["flops_per_image"] == bench.flops_per_image(TinyNet(num_classes=10), 32)
    assert rec["config"]["augment"]["backend"] == "batched" and rec["warmup_runs"] == 0
    (run,) = rec["runs"]
    assert run["seed"] == 3 and run["status"] == "completed" and run["augment_backend"] == "batched"
    assert run["epochs"] == 2 and len(run["epoch_seconds"]) == 2 and run["steps_per_epoch"] == 4
    assert run["images_trained"] == 400 and run["train_seconds"] > 0
    assert run["train_seconds"] == pytest.approx(sum(run["epoch_seconds"]), abs=0.01)
    assert run["images_per_s"] == pytest.approx(400 / run["train_seconds"])
    assert run["achieved_tflops"] == pytest.approx(rec["flops_per_image"]["forward_backward"] * run["images_per_s"] / 1e12)
    assert run["peak_fraction"] == pytest.approx(run["achieved_tflops"] / 2.0)
    assert set(run["setup_seconds"]) >= {"data", "batches", "lr_finder"} and run["setup_seconds"]["data"] > 0
    t = run["timings"]
    assert set(t) == {"startup", "data", "batches", "lr_finder", "train", "eval", "diagnostics", "other", "total"}
    assert t["total"] == pytest.approx(sum(v for k, v in t.items() if k != "total"), abs=0.01)
    assert t["train"] == pytest.approx(run["train_seconds"], abs=0.01) and t["diagnostics"] > 0
    assert run["peak_mem_mib"] is None and run["epoch_memory"] == []  # CPU: no CUDA memory
    assert 0.0 <= run["test_acc"] <= 1.0 and run["dataset"]["train_size"] == 200
    s = rec["summary"]
    assert s["runs_completed"] == 1 and s["test_acc"]["mean"] == run["test_acc"] and s["test_acc"]["std"] == 0.0
    assert (tmp_path / "runs" / "seed3" / "metrics.json").is_file()
    c = rec["compare"]  # the runner-up policy, same JSON
    assert c["overrides"] == ["scheduler.final_div_factor=1e4", "scheduler.max_lr=0.04"]
    (crun,) = c["runs"]
    assert crun["seed"] == 3 and crun["status"] == "completed" and crun["max_lr"] == 0.04
    assert c["summary"]["runs_completed"] == 1 and (tmp_path / "runs" / "compare3" / "metrics.json").is_file()
    history = json.loads((tmp_path / "runs" / "compare3" / "metrics.json").read_text())["history"]
    assert history[-1]["lr"] < 0.005 / 1000  # final_div_factor 1e4: the cycle ends near zero
