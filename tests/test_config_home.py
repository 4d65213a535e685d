"""Config has one home (issue 22): every group option sets every key of its group, and each
command composes to a config with no unset key (but the mandatory ones)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import yaml

import resnet_cli
from resnet_cli.cli.schema import TrainConfig

CONF = Path(__file__).resolve().parent.parent / "conf"


def test_every_group_option_sets_every_key_of_its_group():
    """A key a group's YAML leaves out would be unset (the schema gives no value)."""
    for group, schema_field in (("data", "data"), ("augment", "augment"), ("scheduler", "scheduler"),
                                ("lr_finder", "lr_finder")):
        keys = {f.name for f in fields(type(next(f for f in fields(TrainConfig) if f.name == schema_field)
                                            .default_factory()))}
        for path in sorted((CONF / group).glob("*.yaml")):
            assert set(yaml.safe_load(path.read_text())) == keys, path.name


def test_each_command_composes_with_no_unset_key(tmp_path):
    from omegaconf import OmegaConf

    cfg = resnet_cli.compose(["data=image_folder", f"data.root={tmp_path}"])
    assert OmegaConf.missing_keys(cfg) == set()
    assert resnet_cli.compose().data.download is True  # conf/data/cifar10.yaml's, not a Python default
    for command in ("gradcam", "predict", "export"):
        from hydra import compose, initialize_config_dir

        from resnet_cli.cli.composition import config_dir
        from resnet_cli.cli.schema import register_configs

        register_configs()
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            assert OmegaConf.missing_keys(compose(config_name=command)) == set(), command
