"""``resnet-predict``: files, folders and globs in; top-k CSV and JSON out, batched, with the run's
normalisation; unreadable images reported per file; one-line errors for bad input."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import DATA_ROOT, call_cli, needs_data, one_line_error

pytestmark = needs_data


def _images(tmp_path: Path) -> Path:
    """photos/{a,b}/ with 3 real test images, one PNG copy, a corrupt file and a non-image text file."""
    src = sorted((DATA_ROOT / "test" / "cat").iterdir())[:2] + sorted((DATA_ROOT / "test" / "ship").iterdir())[:1]
    photos = tmp_path / "photos"
    for i, p in enumerate(src):
        d = photos / ("a" if i < 2 else "b")
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, d / p.name)
    from PIL import Image

    Image.open(src[0]).save(photos / "b" / "copy.png")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (photos / "notes.txt").write_text("not an image")
    return photos


def test_predict_files_folders_globs_with_failures_reported(run_checkpoint, tmp_path):
    from resnet_cli.core.checkpoint import model_from_checkpoint
    from resnet_cli.data.decode import decode

    payload = torch.load(run_checkpoint, map_location="cpu", weights_only=True)
    payload["runtime"] = {"precision": "fp32"}  # a run that computed in fp32: predict evaluates in fp32 too
    ckpt = tmp_path / "fp32.pt"
    torch.save(payload, ckpt)
    photos = _images(tmp_path)
    run_dir = tmp_path / "out"
    proc = call_cli("resnet-predict", [f"ckpt={ckpt}", f"images=[{photos / 'a'},'{photos}/b/*.png',{photos / 'broken.jpg'},"
                                      f"{tmp_path / 'missing.jpg'}]", "topk=5", "batch_size=2", "device=cpu",
                                      f"hydra.run.dir={run_dir}"], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((run_dir / "predictions.json").read_text())
    paths = [r["path"] for r in out["predictions"]]
    assert [Path(p).name for p in paths] == sorted(p.name for p in (photos / "a").iterdir()) + ["copy.png"]
    assert {Path(e["path"]).name: e["error"] for e in out["errors"]}.keys() == {"broken.jpg", "missing.jpg"}
    assert "cannot decode" in [e for e in out["errors"] if e["path"].endswith("broken.jpg")][0]["error"]
    logs = proc.stdout + proc.stderr
    assert "broken.jpg" in logs and "missing.jpg" in logs  # each failure is reported (warning lines)

    # the probabilities are the model's on the run's normalisation, in fp32 as the run recorded
    # (batched as 2 + 1 + ...)
    model, meta = model_from_checkpoint(ckpt)
    x = torch.from_numpy(np.stack([decode(p, 32) for p in paths])).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(meta["mean"]).view(1, 3, 1, 1)) / torch.tensor(meta["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        probs = torch.softmax(model(x), 1).numpy()
    for r, rec in enumerate(out["predictions"]):
        assert len(rec["top"]) == 5
        order = np.argsort(-probs[r], kind="stable")[:5]
        assert [t["class"] for t in rec["top"]] == [meta["classes"][i] for i in order]
        assert [t["p"] for t in rec["top"]] == pytest.approx(probs[r][order], abs=1e-5)

    with open(run_dir / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["path", *[k for j in range(1, 6) for k in (f"class_{j}", f"p_{j}")], "error"]
    assert [r["path"] for r in rows[:len(paths)]] == paths and all(r["error"] == "" for r in rows[:len(paths)])
    assert float(rows[0]["p_1"]) == pytest.approx(out["predictions"][0]["top"][0]["p"], abs=1e-6)
    assert {Path(r["path"]).name for r in rows if r["error"]} == {"broken.jpg", "missing.jpg"}


def test_predict_help_page(tmp_path):
    proc = call_cli("resnet-predict", ["--help"], cwd=tmp_path, timeout=120)
    assert proc.returncode == 0
    assert "resnet-predict: the most probable classes" in proc.stdout and "topk: 3" in proc.stdout


@pytest.mark.parametrize("args, code, needle", [
    ([], 2, "ckpt is required"),
    (["ckpt={ckpt}"], 2, "images is empty"),
    (["ckpt={ckpt}", "images=[{tmp}/nothing/*.jpg]"], 2, "no image could be predicted"),
    (["ckpt={ckpt}", "images=[x.jpg]", "topk=0"], 2, "topk=0 is not allowed"),
    (["ckpt={tmp}/none.pt", "images=[x.jpg]"], 2, "none.pt"),
    (["ckpt={ckpt}", "images=[x.jpg]", "top_k=3"], 2, "top_k"),
])
def test_bad_input_is_one_line(run_checkpoint, tmp_path, args, code, needle):
    ckpt = run_checkpoint
    args = [a.format(ckpt=ckpt, tmp=tmp_path) for a in args]
    proc = call_cli("resnet-predict", [*args, "device=cpu", f"hydra.run.dir={tmp_path / 'out'}"], cwd=tmp_path,
                   timeout=300)
    one_line_error(proc, code, needle)
