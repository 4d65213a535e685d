"""`resnet-gradcam` on the checkpoint of the session's real `resnet-train` run, and its bad input
(on the session's untrained checkpoint, shared with the resnet-predict and resnet-export tests)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image

from conftest import DATA_ROOT, call_cli


def _ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_gradcam_writes_every_file(trained_run, tmp_path):
    ckpt = trained_run / "checkpoints" / "last.pt"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = _ok(call_cli("resnet-gradcam", [f"ckpt={ckpt}", "count=5"], cwd=elsewhere))
    runs = list((elsewhere / "outputs" / "gradcam").glob("*/*"))
    assert len(runs) == 1, runs  # its own Hydra run folder under the current directory
    run = runs[0]
    for name in ("metrics.json", "model_summary.txt", "gradcam.log", "plots/misclassified.png",
                 "plots/confusion_matrix.png", "plots/gradcam/grid.png"):
        assert (run / name).is_file(), name
    m = json.loads((run / "metrics.json").read_text())
    trained = json.loads((trained_run / "metrics.json").read_text())
    assert m["status"] == "completed" and m["mode"] == "test"
    # rebuilt from the checkpoint alone: same model, same test subset, same predictions
    assert m["test_size"] == trained["dataset"]["test_size"]
    assert m["test_acc"] == pytest.approx(trained["test_acc"], abs=1e-9)
    assert m["confusion"] == trained["confusion"] and m["class_acc"] == trained["class_acc"]
    assert m["layers"] == ["layer3", "layer2"]
    per_image = sorted(p.name for p in (run / "plots" / "gradcam").glob("*.png") if p.name != "grid.png")
    assert len(per_image) == 5 and per_image[0].startswith("01_")
    assert "class-wise test accuracy" in proc.stdout


def test_gradcam_own_images_top3(trained_run, tmp_path):
    if not (DATA_ROOT / "test").is_dir():
        pytest.skip(f"offline CIFAR-10 copy not found at {DATA_ROOT}")
    src = sorted((DATA_ROOT / "test" / "ship").glob("*.jpg"))[0]
    shutil.copy(src, tmp_path / "ship.jpg")
    Image.open(src).resize((80, 60)).save(tmp_path / "big.png")  # another size: resized to 32x32
    run = tmp_path / "out"
    proc = _ok(call_cli("resnet-gradcam", [f"ckpt={trained_run / 'checkpoints' / 'last.pt'}",
                                          "images=[ship.jpg,big.png]", "method=gradcam++", "layers=[layer3]",
                                          f"hydra.run.dir={run}"], cwd=tmp_path))
    preds = json.loads((run / "predictions.json").read_text())
    assert [p["image"] for p in preds] == ["ship.jpg", "big.png"]
    classes = json.loads((trained_run / "metrics.json").read_text())["dataset"]["classes"]
    for p in preds:
        probs = [t["p"] for t in p["top3"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
        assert all(t["class"] in classes for t in p["top3"])
        assert f"{p['top3'][0]['class']} ({probs[0]:.2f})" in proc.stdout  # printed
    assert "top-3 predictions" in proc.stdout
    assert sorted(f.name for f in (run / "plots" / "gradcam").glob("*.png")) == ["01_ship.png", "02_big.png", "grid.png"]
    assert json.loads((run / "metrics.json").read_text())["mode"] == "images"


def _bad_inputs(tmp_path, ckpt):
    (tmp_path / "truncated.pt").write_bytes(ckpt.read_bytes()[:4096])
    torch.save({"model": {}, "epoch": 3}, tmp_path / "foreign.pt")
    (tmp_path / "bad.png").write_text("this is text, not an image")
    return {
        "no ckpt": ([], "error: ckpt is required: resnet-gradcam ckpt=<run folder>/checkpoints/last.pt"),
        "missing": (["ckpt=nope/last.pt"], "error: ckpt=nope/last.pt: checkpoint not found (pass ckpt=<run folder>/"),
        "unreadable": (["ckpt=truncated.pt"], "error: ckpt=truncated.pt is truncated (an incomplete zip archive"),
        "readme": (["ckpt=bad.png"], "error: ckpt=bad.png is not a checkpoint but a text file;"),
        "foreign": (["ckpt=foreign.pt"], "error: foreign.pt is not a resnet-cli checkpoint"),
        "layer": ([f"ckpt={ckpt}", "layers=[layer3,block9]"],
                  "error: layers: 'block9' is not a feature-map layer of CustomResNet; use one of: prep, layer1, "
                  "layer2, layer3, pool (or a dotted sub-module of them)"),
        "image": ([f"ckpt={ckpt}", "images=[bad.png]"],
                  "error: cannot decode image bad.png (UnidentifiedImageError): pass a PNG or JPEG file in images=[...]"),
        "no image": ([f"ckpt={ckpt}", "images=[gone.png]"], "error: image not found: gone.png (check the path in images=[...])"),
        "method": ([f"ckpt={ckpt}", "method=gradcam+++"], "error: method='gradcam+++' is not allowed: one of gradcam, "
                   "gradcam++, scorecam, eigencam, layercam"),
    }


@pytest.mark.parametrize("case", ["no ckpt", "missing", "unreadable", "readme", "foreign", "layer", "image", "no image", "method"])
def test_gradcam_bad_input_one_line_exit_2(run_checkpoint, tmp_path, case):
    """In-process through the console script's own entry point (resnet_cli.cli.gradcam:main)."""
    args, message = _bad_inputs(tmp_path, run_checkpoint)[case]
    proc = call_cli("resnet-gradcam", [*args, f"hydra.run.dir={tmp_path / 'out'}"], cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip().splitlines() == [message] if case == "layer" else \
        proc.stderr.strip().splitlines()[-1].startswith(message), proc.stderr
    assert not (tmp_path / "out").exists()  # a resnet-gradcam error leaves no run folder (issue 20)


def test_checkpoint_with_foreign_model_target_is_refused(run_checkpoint, tmp_path):
    """A checkpoint must not name an arbitrary callable to instantiate (weights_only stays safe)."""
    from resnet_cli.errors import CheckpointError
    from resnet_cli.core.checkpoint import model_from_checkpoint

    ckpt = torch.load(run_checkpoint, map_location="cpu", weights_only=True)
    ckpt["config"]["model"]["_target_"] = "os.system"
    torch.save(ckpt, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"stored config has model\._target_='os\.system'"):
        model_from_checkpoint(tmp_path / "evil.pt")
    ckpt["config"]["model"]["_target_"] = "resnet_cli.models.CustomResNet"
    ckpt["config"]["data"]["_target_"] = "os.system"  # would be called to read the test split
    torch.save(ckpt, tmp_path / "evil-data.pt")
    with pytest.raises(CheckpointError, match=r"stored config has data\._target_='os\.system'"):
        model_from_checkpoint(tmp_path / "evil-data.pt")


def test_gradcam_unknown_key_is_one_line(tmp_path):
    proc = call_cli("resnet-gradcam", ["ckpt=x.pt", "countt=3", f"hydra.run.dir={tmp_path / 'out'}"],
                   cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "countt" in lines[0], proc.stderr
