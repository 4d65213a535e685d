"""A checkpoint is data, not code: a stored config that names a callable outside the tool's allow-list,
at any depth, is refused by every command that reads a checkpoint before anything is built, and a
canary file the hostile config targets stays intact."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from checkpoints import untrained_checkpoint
from conftest import needs_data

CANARY = b"precious bytes\n"


def _hostile(canary: Path, copy_to: Path) -> dict[str, callable]:
    """name -> a function editing a stored config into a hostile one (each aims at ``canary``)."""
    opener = {"_target_": "builtins.open", "file": str(canary), "mode": "w"}
    copier = {"_target_": "shutil.copyfile", "src": str(canary), "dst": str(copy_to)}
    return {
        "nested target in model": lambda c: c["model"].update(opener=opener),
        "nested target in data": lambda c: c["data"].update(root=opener),
        "model target replaced": lambda c: c["model"].update(_target_="shutil.copyfile", src=str(canary),
                                                               dst=str(copy_to)),
        "loader target replaced": lambda c: c["data"].update(_target_="os.makedirs"),
        "target inside a list": lambda c: c["explain"].update(layers=[copier]),
        "positional _args_": lambda c: c["model"].update(_args_=[str(canary), "w"]),
        "tracker target replaced": lambda c: c.update(logger={"csv": {**opener, "_partial_": True}}),
        "optimizer target replaced": lambda c: c["optimizer"].update(_target_="builtins.open"),
        "unknown group with a target": lambda c: c.update(evil=opener),
        "resolver interpolation": lambda c: c["data"].update(root="${oc.env:HOME}"),
    }


@pytest.fixture(scope="module")
def clean_checkpoint(tmp_path_factory) -> dict:
    path = untrained_checkpoint(tmp_path_factory.mktemp("clean") / "last.pt")
    return torch.load(path, map_location="cpu", weights_only=True)


def _write(payload: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


def _cases(tmp_path: Path, clean: dict):
    canary, copy_to = tmp_path / "canary.txt", tmp_path / "copied.txt"
    canary.write_bytes(CANARY)
    for name, edit in _hostile(canary, copy_to).items():
        payload = copy.deepcopy(clean)
        edit(payload["config"])
        yield name, _write(payload, tmp_path / name.replace(" ", "_") / "checkpoints" / "last.pt"), canary, copy_to


def _untouched(canary: Path, copy_to: Path) -> None:
    assert canary.read_bytes() == CANARY, "the hostile checkpoint truncated the canary"
    assert not copy_to.exists(), "the hostile checkpoint copied a file"


def test_every_hostile_config_is_refused_by_the_loader_and_the_api(tmp_path, clean_checkpoint):
    from resnet_cli.core.checkpoint import load_checkpoint, model_from_checkpoint
    from resnet_cli.errors import CheckpointError

    import resnet_cli

    for name, ckpt, canary, copy_to in _cases(tmp_path, clean_checkpoint):
        with pytest.raises(CheckpointError, match="stored config has") as info:
            load_checkpoint(ckpt)
        assert str(ckpt) in str(info.value) and "\n" not in str(info.value), name
        with pytest.raises(CheckpointError, match="stored config has"):
            model_from_checkpoint(ckpt)
        with pytest.raises(CheckpointError, match="stored config has"):
            resnet_cli.evaluate(ckpt)
        _untouched(canary, copy_to)


def test_the_clean_checkpoint_still_loads(tmp_path, clean_checkpoint):
    from resnet_cli.core.checkpoint import model_from_checkpoint

    model, ckpt = model_from_checkpoint(_write(clean_checkpoint, tmp_path / "last.pt"))
    assert type(model).__name__ == "CustomResNet" and not model.training
    assert ckpt["config"]["model"]["_target_"] == "resnet_cli.models.CustomResNet"


def test_a_trusted_class_is_accepted_only_when_named(tmp_path, clean_checkpoint, monkeypatch):
    from resnet_cli.core.checkpoint import TRUSTED_ENV, load_checkpoint
    from resnet_cli.errors import CheckpointError

    payload = copy.deepcopy(clean_checkpoint)
    payload["config"]["model"]["_target_"] = "mypkg.nets.Net"
    ckpt = _write(payload, tmp_path / "own.pt")
    monkeypatch.setenv(TRUSTED_ENV, "")
    with pytest.raises(CheckpointError, match=r"model\._target_='mypkg\.nets\.Net'"):
        load_checkpoint(ckpt)
    monkeypatch.setenv(TRUSTED_ENV, "other.Net, mypkg.nets.Net")
    assert load_checkpoint(ckpt)["config"]["model"]["_target_"] == "mypkg.nets.Net"


@needs_data
@pytest.mark.parametrize("command", ["predict", "gradcam", "export", "train"])
def test_each_command_refuses_hostile_checkpoints_and_keeps_the_canary(tmp_path, clean_checkpoint, command):
    from conftest import DATA_ROOT, call_cli

    image = next((DATA_ROOT / "test").rglob("*.jpg"))
    for name, ckpt, canary, copy_to in _cases(tmp_path, clean_checkpoint):
        args = {"predict": [f"ckpt={ckpt}", f"images=[{image}]"],
                "gradcam": [f"ckpt={ckpt}", "count=2", "test_subset=20"],
                "export": [f"ckpt={ckpt}", f"output={tmp_path / 'export' / name.replace(' ', '_')}"],
                "train": [f"resume={ckpt}"]}[command]
        proc = call_cli(f"resnet-{command}", args, cwd=tmp_path)
        err = proc.stderr
        assert proc.returncode == 2, (name, err[-2000:])
        assert "stored config has" in err and "Traceback" not in err, (name, err[-2000:])
        _untouched(canary, copy_to)
