"""Every config option composes through Hydra and passes validation; bad values are named."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from resnet_cli.cli.composition import config_dir
from resnet_cli.cli.checks import validate
from resnet_cli.cli.schema import register_configs

from conftest import ROOT, call_cli

register_configs()
CONF = Path(config_dir())


def _compose(overrides, name="train"):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(name, overrides=overrides)


def _options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_every_config_folder_ships_in_the_wheel():
    """pyproject lists each conf/ sub-folder as a package: one left out would be missing from an
    installed (non-editable) resnet-cli, and its options would not compose there."""
    import tomllib

    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"resnet_cli.conf" + "".join("." + part for part in d.relative_to(CONF).parts)
               for d in [CONF, *CONF.rglob("*")] if d.is_dir() and any(d.glob("*.yaml"))}
    assert setup["package-dir"]["resnet_cli.conf"] == "conf"
    assert folders - set(setup["packages"]) == set()


@pytest.mark.parametrize("group", ["model", "data", "augment", "scheduler"])
def test_every_option_composes_and_validates(group, tmp_path):
    for option in _options(group):
        overrides = [f"{group}={option}", f"data.root={tmp_path}"]
        if group != "data":
            overrides.insert(0, "data=image_folder")
        cfg = _compose(overrides)
        validate(cfg)
        assert cfg.trainer.epochs == 24 and cfg.data.batch_size == 512
        assert cfg.scheduler.max_lr == "find" and cfg.scheduler.max_epoch == 5


def test_defaults_match_the_recipe():
    cfg = _compose([])
    assert cfg.model._target_ == "resnet_cli.models.CustomResNet"
    assert (cfg.augment.pad, cfg.augment.flip_p, cfg.augment.cutout_holes, cfg.augment.cutout_size) == (4, 0.5, 1, 8)
    assert cfg.optimizer._target_ == "torch.optim.SGD" and cfg.optimizer.weight_decay == 5e-4
    assert cfg.scheduler.anneal_strategy == "linear" and cfg.scheduler.final_div_factor == 1e4  # two-phase, chosen by the twin study
    # the warm-up range test: linear, as long as the warm-up (num_iter null), up to 1.0
    assert (cfg.lr_finder.step_mode, cfg.lr_finder.num_iter, cfg.lr_finder.end_lr) == ("linear", None, 1.0)
    assert cfg.model.logit_scale == 0.125  # Page's scaling, chosen by the twin study (results/twin-study)
    assert _compose(["model.logit_scale=1.0"]).model.logit_scale == 1.0  # the spec's logits, one override away
    old = _compose(["lr_finder=exponential"]).lr_finder
    assert (old.step_mode, old.num_iter, old.start_lr, old.end_lr) == ("exp", 200, 1e-5, 10.0)


def test_missing_data_is_one_line_and_nonzero(tmp_path):
    proc = call_cli("resnet-train", ["data.download=false", f"data.root={tmp_path / 'nowhere'}",
                                     f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: CIFAR-10 not found in"), proc.stderr
    assert str(tmp_path / "nowhere") in err[0]
    assert "data.download=true" in err[0] and "data=image_folder" in err[0]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_cpu_twin_preset_keeps_the_recipe_and_the_warmup_length(tmp_path):
    """experiment=cpu_twin (issue 19): the recipe's model, augmentation, optimizer, One Cycle shape
    and range test; 10,000 images at batch 128 so the warm-up (and range test) keeps >= 300 steps;
    24 epochs; the whole test set."""
    full = _compose(["data=image_folder", f"data.root={tmp_path}"])
    twin = _compose(["experiment=cpu_twin", "data=image_folder", f"data.root={tmp_path}"])
    validate(twin)
    for key in ("model", "optimizer", "scheduler", "lr_finder"):
        assert twin[key] == full[key], key
    assert {k: v for k, v in twin.augment.items() if k != "backend"} == \
           {k: v for k, v in full.augment.items() if k != "backend"}
    assert twin.trainer.epochs == 24 and twin.scheduler.max_epoch == 5
    assert twin.data.test_subset is None
    steps_per_epoch = twin.data.train_subset // twin.data.batch_size  # drop_last
    assert twin.scheduler.max_epoch * steps_per_epoch >= 300
    assert 1 < twin.trainer.eval_every < twin.trainer.epochs
