"""The YAML config tree (``conf/``): where it is, and what it names. A checkpoint's stored config is
checked against it (:func:`resnet_cli.core.checkpoint.check_stored_config`); the front ends compose
from it."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Any


def config_dir() -> str:
    """Absolute path of the YAML config tree: ``resnet_cli/conf`` in a wheel (pyproject.toml maps it),
    else ``conf/`` beside the package (editable install, source checkout).

    Raises:
        RuntimeError: neither exists (a broken install).
    """
    packaged = Path(str(resources.files("resnet_cli"))) / "conf"
    if (packaged / "train.yaml").is_file():
        return str(packaged)
    source = packaged.parent.parent / "conf"  # beside the package folder
    if (source / "train.yaml").is_file():
        return str(source)
    raise RuntimeError(f"resnet-cli config tree not found in {packaged} or {source}; reinstall the package")


def _walk_tree(node: Any, path: str, targets: set[tuple[str, str]], keys: set[str]) -> None:
    """Add ``(path, _target_)`` for every node of a config tree that names a ``_target_``, and every
    key's dotted path; a dict's keys extend ``path`` (``logger.csv``); ``hydra`` is Hydra's own node."""
    if isinstance(node, dict):
        if isinstance(node.get("_target_"), str):
            targets.add((path, node["_target_"]))
        for key, value in node.items():
            if key not in ("defaults", "hydra"):
                at = f"{path}.{key}" if path else str(key)
                keys.add(at)
                _walk_tree(value, at, targets, keys)


@functools.lru_cache(maxsize=1)
def config_tree() -> tuple[frozenset[tuple[str, str]], frozenset[str]]:
    """What the YAML config tree (``conf/``) names: the ``(config path, _target_)`` pairs, e.g.
    ``("model", "resnet_cli.models.CustomResNet")`` or ``("logger.csv", "resnet_cli.tracking.CSVLogger")``
    (the allow-list of :func:`resnet_cli.core.checkpoint.check_stored_config`), and every key's dotted path (``trainer.epochs``).
    A group's files sit at the group's path, ``# @package _global_`` files (experiments) at the root;
    each group's name is a key (``model``, ``logger``)."""
    import yaml

    targets: set[tuple[str, str]] = set()
    keys: set[str] = set()
    root = Path(config_dir())
    for file in sorted(root.rglob("*.yaml")):
        group = file.parent.relative_to(root).as_posix()
        if group.split("/")[0] == "hydra":
            continue
        text = file.read_text()
        package = "" if group == "." or "@package _global_" in text.split("\n", 1)[0] else group.replace("/", ".")
        if package:
            keys.add(package)
        _walk_tree(yaml.safe_load(text) or {}, package, targets, keys)
    return frozenset(targets), frozenset(keys)
