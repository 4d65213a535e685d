"""The YAML config tree (``conf/``): where it is, and what it names; a checkpoint's stored config is
checked against it (:func:`check_stored_config`) before anything is built from it. The front ends
compose from it."""

from __future__ import annotations

import functools
import os
from collections.abc import MutableMapping, MutableSequence
from importlib import resources
from pathlib import Path
from typing import Any

from .moved import MOVED_MODULES
from ..errors import CheckpointError

LAST = "checkpoints/last.pt"  # a run's checkpoint, relative to its folder; rank 0 rewrites it after every epoch
OURS = f"use a {LAST} written by resnet-train"


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
    (the allow-list of :func:`check_stored_config`), and every key's dotted path (``trainer.epochs``).
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


TRUSTED_ENV = "RESNET_CLI_TRUSTED_TARGETS"
"""Environment variable: extra ``model._target_`` names (comma- or space-separated, e.g.
``mypkg.nets.Net``) a stored config may name: your own network classes, trusted by you."""
_HYDRA_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")  # keys hydra.utils.instantiate obeys


def migrate_targets(node: Any) -> None:
    """Rewrite, in place, ``_target_`` strings of a config (plain dicts and lists, or OmegaConf's
    DictConfig and ListConfig) that name a module of the earlier flat layout
    (:data:`~resnet_cli.core.moved.MOVED_MODULES`), so configs saved before the move still load."""
    if isinstance(node, MutableSequence):
        for item in node:
            migrate_targets(item)
    elif isinstance(node, MutableMapping):
        target = node.get("_target_")
        if isinstance(target, str):
            module = max((m for m in MOVED_MODULES if target.startswith(m + ".")), key=len, default=None)
            if module:
                node["_target_"] = MOVED_MODULES[module] + target[len(module):]
        for value in node.values():
            migrate_targets(value)


@functools.lru_cache(maxsize=1)
def group_defaults() -> dict[str, list[dict]]:
    """Each config node's defaults as ``conf/`` writes them: ``trainer``, ``optimizer`` and ``explain``
    from train.yaml, and one entry per option file of the ``data``, ``augment``, ``scheduler`` and
    ``lr_finder`` groups."""
    import yaml

    root = Path(config_dir())
    top = yaml.safe_load((root / "train.yaml").read_text())
    out = {key: [top[key]] for key in ("trainer", "optimizer", "explain")}
    for group in ("data", "augment", "scheduler", "lr_finder"):
        out[group] = [yaml.safe_load(f.read_text()) for f in sorted((root / group).glob("*.yaml"))]
    return out


def migrate_config(config: dict) -> dict:
    """Bring a stored run config (plain values) up to today's keys, in place, and return it: moved
    ``_target_`` modules (:func:`migrate_targets`), and each key added since the checkpoint was
    written set to ``conf/``'s default (of the option with the same ``_target_``, else the one sharing
    most values; ``trainer``, ``optimizer`` and ``explain`` are created if absent), which is the
    behaviour the run had before the key existed. Deprecated names are
    rewritten by the front ends' checks."""
    migrate_targets(config)
    for group, options in group_defaults().items():
        node = config.setdefault(group, {}) if group in ("trainer", "optimizer", "explain") else config.get(group)
        if isinstance(node, dict):
            best = max(options, key=lambda o: (o.get("_target_") == node.get("_target_"),
                                               sum(node.get(k) == v for k, v in o.items())))
            for key, value in best.items():
                node.setdefault(key, value)
    return config


def check_stored_config(config: Any, path: str | Path) -> None:
    """Refuse a checkpoint's stored run config that could make Hydra build something other than the
    tool's own parts, then migrate it in place (:func:`migrate_config`): every dict is walked at every
    depth (after moved ``_target_``s are renamed), ``_target_`` is allowed only at a config
    path where ``conf/`` has one and only with a value ``conf/`` names there (:func:`config_tree`),
    (or, for ``model``, one listed in :data:`TRUSTED_ENV`), ``_partial_`` only beside such a
    ``_target_``, ``_args_``/``_recursive_``/``_convert_`` nowhere, and
    every key must be one ``conf/`` has (the schema's keys; a model may take other plain arguments),
    and no string may hold an OmegaConf interpolation (``${oc.env:...}``; stored configs are resolved).

    Raises:
        CheckpointError: one line naming the file, the key and its value; nothing is built or run.
    """
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: its stored config is a {type(config).__name__}, not a run config; {OURS}")
    migrate_targets(config)
    allowed, known = config_tree()
    places = {where for where, _ in allowed}
    trusted = os.environ.get(TRUSTED_ENV, "").replace(",", " ").split()  # the user's own networks, by name
    allowed = allowed | {("model", target) for target in trusted}

    def walk(node: Any, where: str) -> None:
        if isinstance(node, str) and "${" in node:  # the tool stores resolved configs: no resolver calls
            raise CheckpointError(f"{path}: stored config has {where}={node!r}, an interpolation the tool never "
                                  f"writes; refused before anything is resolved; {OURS}")
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{where}[{i}]")
            return
        if not isinstance(node, dict):
            return
        for key in node:
            if not isinstance(key, str):
                raise CheckpointError(f"{path}: stored config key {where}.{key!r} is not a name; {OURS}")
            at = f"{where}.{key}" if where else key
            free = where == "model" and not isinstance(node[key], (dict, list))  # a network's own plain argument
            if at not in known and "[" not in where and not free:
                raise CheckpointError(f"{path}: stored config has the unknown key {at}; {OURS}")
            if key in _HYDRA_KEYS and not (key in ("_target_", "_partial_") and where in places):
                raise CheckpointError(f"{path}: stored config has {at}={node[key]!r}, which the tool never writes "
                                      f"there; refused before anything is built (it could run code); {OURS}")
        target = node.get("_target_")
        if target is not None and (where, target) not in allowed:
            ours = sorted(t for w, t in allowed if w == where) or ["none at this key"]
            raise CheckpointError(f"{path}: stored config has {where}._target_={target!r}, not one of the tool's "
                                  f"({', '.join(ours)}); refused before anything is built; {OURS}")
        for key, value in node.items():
            walk(value, f"{where}.{key}" if where else key)

    walk(config, "")
    migrate_config(config)
