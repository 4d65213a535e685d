"""``resnet-export``: ONNX (checked with onnxruntime) and TorchScript files that reproduce PyTorch's
probabilities on the run's test images; a mismatch beyond the tolerance and bad input are one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import call_cli, needs_data, one_line_error

pytestmark = needs_data


@pytest.mark.parametrize("fmt, name", [("onnx", "model.onnx"), ("torchscript", "model.pt")])
def test_export_reproduces_pytorch(run_checkpoint, tmp_path, fmt, name):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install -e '.[test]'")
    from resnet_cli.core.checkpoint import model_from_checkpoint
    from resnet_cli.cli.export import run_exported

    ckpt = run_checkpoint
    out = tmp_path / "out"
    proc = call_cli("resnet-export", [f"ckpt={ckpt}", f"format={fmt}", "batch_size=8", f"hydra.run.dir={out}"],
                   cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rec = json.loads((out / "export.json").read_text())
    assert rec["status"] == "completed" and rec["file"] == str((out / name).resolve()) and rec["images"] == 8
    assert 0 <= rec["max_abs_diff"] <= 1e-4 and rec["top1_agreement"] == 1.0

    # the file runs any batch size and matches the checkpoint's network on new inputs
    model, _ = model_from_checkpoint(ckpt)
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = torch.softmax(model(x), 1)
    got = torch.softmax(run_exported(out / name, fmt, x), 1)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-4)


def test_a_difference_above_the_tolerance_fails(run_checkpoint, tmp_path, monkeypatch):
    """The exported file's logits shifted for one image: the check reports the difference and raises."""
    from omegaconf import OmegaConf

    import resnet_cli.cli.export as export
    from resnet_cli.errors import ExportMismatch

    real = export.run_exported

    def shifted(path, fmt, x):
        out = real(path, fmt, x).clone()
        out[0, 0] += 5.0
        return out

    monkeypatch.setattr(export, "run_exported", shifted)
    ckpt = run_checkpoint
    cfg = OmegaConf.create({"ckpt": str(ckpt), "format": "torchscript", "output": None, "batch_size": 4,
                            "tolerance": 1e-4, "opset": 17, "data_root": None})
    with pytest.raises(ExportMismatch, match=r"differs from PyTorch by .* in probability \(> tolerance=0.0001\)"):
        export.export_checkpoint(cfg, tmp_path / "out")
    rec = json.loads((tmp_path / "out" / "export.json").read_text())
    assert rec["status"] == "failed" and rec["max_abs_diff"] > 0.1 and (tmp_path / "out" / "model.pt").is_file()


def test_export_help_page(tmp_path):
    proc = call_cli("resnet-export", ["--help"], cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and "resnet-export: write a model" in proc.stdout and "tolerance:" in proc.stdout


@pytest.mark.parametrize("args, needle", [
    ([], "ckpt is required"),
    (["ckpt={ckpt}", "format=tflite"], "format='tflite' is not allowed: one of onnx, torchscript"),
    (["ckpt={ckpt}", "tolerance=-1"], "tolerance=-1.0 is not allowed"),
    (["ckpt={ckpt}", "data_root={tmp}/nowhere"], "test split cannot be read"),
    (["ckpt={tmp}/none.pt"], "none.pt"),
])
def test_bad_input_is_one_line(run_checkpoint, tmp_path, args, needle):
    ckpt = run_checkpoint
    args = [a.format(ckpt=ckpt, tmp=tmp_path) for a in args]
    proc = call_cli("resnet-export", [*args, f"hydra.run.dir={tmp_path / 'out'}"], cwd=tmp_path, timeout=300)
    one_line_error(proc, 2, needle)
