"""Config has one home (issue 22): every default is written in ``conf/`` and nowhere in Python.
The schema (``resnet_cli/config_schema.py``) holds types only; each command composes to a
config with no unset key (but the mandatory ones)."""

from __future__ import annotations

from dataclasses import MISSING as NO_DEFAULT
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest
import yaml
from omegaconf import MISSING

import resnet_cli
from resnet_cli.config_schema import SCHEMAS, TrainConfig

CONF = Path(__file__).resolve().parent.parent / "conf"
STRUCTURAL = {("TrainConfig", "logger")}
"""Fields with a Python default that no YAML writes: ``logger`` is absent until ``logger=...`` adds it."""


def _python_defaults(schema: type, prefix: str = "") -> dict[str, object]:
    """Dotted key -> the default the dataclass writes (nested dataclasses walked)."""
    out = {}
    for f in fields(schema):
        if f.default_factory is not NO_DEFAULT:
            value = f.default_factory()
            if is_dataclass(value):
                out.update(_python_defaults(type(value), f"{prefix}{f.name}."))
                continue
        else:
            value = f.default
        out[f"{prefix}{f.name}"] = (schema.__name__, f.name, value)
    return out


def _yaml_values(path: Path, prefix: str = "") -> dict[str, object]:
    """Dotted key -> value for every leaf a YAML file sets (its ``defaults`` list and ``hydra`` node aside)."""
    def walk(node, p):
        if isinstance(node, dict):
            for k, v in node.items():
                if p == "" and k in ("defaults", "hydra"):
                    continue
                yield from walk(v, f"{p}{k}.")
        else:
            yield p[:-1], node
    return dict(walk(yaml.safe_load(path.read_text()) or {}, prefix))


def _yaml_files() -> dict[str, list[tuple[Path, str]]]:
    """Schema name -> the YAML files that fill it, each with its package prefix."""
    groups = [(p, f"{p.parent.name}.") for g in ("data", "augment", "scheduler", "lr_finder", "model")
              for p in sorted((CONF / g).glob("*.yaml"))]
    return {"train_schema": [(CONF / "train.yaml", ""), *groups], "gradcam_schema": [(CONF / "gradcam.yaml", "")],
            "predict_schema": [(CONF / "predict.yaml", "")], "export_schema": [(CONF / "export.yaml", "")]}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_schema_holds_types_only(name):
    written = {key: value for key, (cls, field_name, value) in _python_defaults(SCHEMAS[name]).items()
               if value != MISSING and (cls, field_name) not in STRUCTURAL}
    assert written == {}, f"defaults written in Python; they belong in conf/: {written}"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_no_yaml_default_is_repeated_in_python(name):
    python = {k: v for k, (_, _, v) in _python_defaults(SCHEMAS[name]).items() if v != MISSING}
    for path, prefix in _yaml_files()[name]:
        for key, value in _yaml_values(path, prefix).items():
            assert not (key in python and python[key] == value), f"{key}={value!r} is written in {path.name} and in Python"


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

        from resnet_cli.composition import config_dir
        from resnet_cli.config_schema import register_configs

        register_configs()
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            assert OmegaConf.missing_keys(compose(config_name=command)) == set(), command
