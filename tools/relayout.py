"""Move the ``resnet_cli`` package into subpackages by concern and rewrite every reference to a moved module.

Run from the repository root on a clean git tree (it uses ``git mv``)::

    python tools/relayout.py            # apply: git mv + rewrites + new __init__.py files + .importlinter
    python tools/relayout.py --check    # dry run: report what would move, exit 2 on anything unmapped

Everything is derived from :data:`MODULES` (old module -> new module, both relative to ``resnet_cli``)
and :data:`PACKAGES` (the new subpackages, their layer and docstring). What it rewrites:

- Python (``resnet_cli/``, ``tests/``, ``bench/``, ``tools/``, ``examples/``): ``from``-imports, relative
  (recomputed from the importing file's new place) and absolute, split where one statement imports
  modules that now live in different subpackages; dotted names anywhere in the text
  (``import resnet_cli.x``, ``"resnet_cli.engine.foo"`` monkeypatch strings, ``-m resnet_cli.train``,
  logger names); the lazy-export table ``_EXPORTS`` of ``resnet_cli/__init__.py``.
- Text (``conf/**/*.yaml`` ``_target_`` strings, ``pyproject.toml`` console scripts and the packages
  list, ``examples/*.ipynb``, ``README.md``, ``docs/*.md``, ``bench/*.md``): dotted module names,
  ``resnet_cli/<path>`` file paths, and in Markdown, back-ticked paths relative to the package
  (```batches/gpu_augment.py```).
- ``resnet_cli/core/moved.py``: the old -> new table, so configs saved before the move (a checkpoint's
  ``_target_`` strings) still resolve (``resnet_cli.cli.checks.migrate_deprecated``).

It refuses (exit 2, nothing changed) when a ``.py`` file under ``resnet_cli/`` is not in
:data:`MODULES`, or a text names ``resnet_cli.<x>`` where ``<x>`` is neither a mapped module nor a
public name of the package. A tree already in the new layout is left alone (exit 0).
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = "resnet_cli"

# old module -> new module (relative to resnet_cli; "" is the package itself). A package's own
# module is "<pkg>.__init__"-free: "data" (data.py) becomes the package data/ (its __init__.py), so
# the `_target_` strings resnet_cli.data.load_* and resnet_cli.models.* of saved runs stay valid.
MODULES: dict[str, str] = {
    "": "",
    "api": "api",            # the Python API: a front end
    "errors": "errors",      # the error types and exit codes every layer raises
    "engine": "engine",      # the recipe's run, top to bottom (data -> model -> LR -> fit -> report)
    # cli/: the four commands, the Hydra entry and its failure path, run folders, the config's
    # schema, checks and composition, resume's config merge, sweeps
    "train": "cli.train",
    "gradcam": "cli.gradcam",
    "predict": "cli.predict",
    "export": "cli.export",
    "entry": "cli.entry",
    "error_messages": "cli.error_messages",
    "run_status": "cli.run_status",
    "run_dirs": "cli.run_dirs",
    "job": "cli.job",
    "composition": "cli.composition",
    "config": "cli.checks",
    "config_schema": "cli.schema",
    "resume": "cli.resume",
    "sweep": "cli.sweep",
    "sweep_report": "cli.sweep_report",
    "sweep_results": "cli.sweep_results",
    "moved": "core.moved",
    # core/: the training loop and what it stands on
    "fit": "core.fit",
    "schedule": "core.schedule",
    "lr_finder": "core.lr_finder",
    "ema": "core.ema",
    "precision": "core.precision",
    "distributed": "core.distributed",
    "checkpoint": "core.checkpoint",
    "run_folder": "core.run_folder",
    # data/: loaders, decoding, the cache, the training batches
    "data": "data",
    "decode": "data.decode",
    "cache": "data.cache",
    "batches": "data.batches",
    "batches.base": "data.batches.base",
    "batches.albumentations_backend": "data.batches.albumentations_backend",
    "batches.gpu_augment": "data.batches.batched",
    # models/: the networks and their summary
    "models": "models",
    "layers": "models.summary",
    # diagnostics/: the test pass and evaluation, metrics, Grad-CAM, figures, previews, the report, predictions
    "evaluation": "diagnostics.evaluation",
    "interpretation": "diagnostics.interpretation",
    "cam": "diagnostics.gradcam",
    "plots": "diagnostics.plots",
    "previews": "diagnostics.previews",
    "diagnostics": "diagnostics.report",
    "inference": "diagnostics.inference",
    # tracking/: the experiment trackers
    "loggers": "tracking",
    "loggers.common": "tracking.common",
    "loggers.csv_logger": "tracking.csv_logger",
    "loggers.mlflow_logger": "tracking.mlflow_logger",
    "loggers.tensorboard_logger": "tracking.tensorboard_logger",
    "loggers.wandb_logger": "tracking.wandb_logger",
}

# new subpackage -> its docstring (a package that is an old module keeps that module's own)
PACKAGES: dict[str, str] = {
    "cli": "The front end of the four commands: Hydra entry points and failure path, run folders, the config's\n"
           "schema, checks and composition, resume's config merge, sweeps. Only this package and the Python API\n"
           "(:mod:`resnet_cli.api`) may import Hydra or OmegaConf (``.importlinter``).",
    "core": "The training loop and what it stands on: the step loop, the One Cycle and the LR range test, EMA,\n"
            "precision, DDP, checkpoints and the run folder's records.",
    "data/batches": None,
    "diagnostics": "What explains a model: the test pass, metrics, Grad-CAM, figures, previews, the diagnostics\n"
                   "report and predictions on image files.",
    "tracking": None,
}

# The layers, top to bottom, as import-linter states them (``|``: siblings that must not import each
# other; ``:``: siblings that may: the Python API uses the CLI's composition, checks and run folders).
LAYERS = ["cli : api", "engine", "diagnostics | tracking", "core", "data | models", "errors"]
FRONT_ENDS = ["cli", "api"]
FORBIDDEN_BELOW_FRONT_ENDS = ["hydra", "omegaconf", f"{PKG}.cli"]
# Imports allowed to break a contract, each (importer, imported, why): none since the typed boundary.
IGNORED: list[tuple[str, str, str]] = []
NON_MODULE_NAMES = {
    "conf",          # resnet_cli.conf: the YAML tree shipped as package data
    "failure",       # the logger "resnet_cli.failure" (cli/entry.py, conf/hydra/job_logging)
    "no_such_name",  # tests/test_api.py: the error for an unknown public name
}


NEW_LAYOUT = "relayout: written for the new layout"  # a file holding this line is left as it is
MARK = "resnet\x01cli"  # the package's name in text this script wrote (the dotted pass skips it)


class Unmapped(Exception):
    pass


def old_modules() -> dict[str, Path]:
    """Old module name (relative, "" for the package) -> its file, for the tree as it is now."""
    out = {}
    for f in sorted((ROOT / PKG).rglob("*.py")):
        rel = f.relative_to(ROOT / PKG).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def new_file(new: str, is_package: bool) -> Path:
    """The file of new module ``new``; ``is_package``: the old module was a package or becomes one."""
    base = ROOT / PKG / Path(*new.split(".")) if new else ROOT / PKG
    return base / "__init__.py" if is_package else base.with_suffix(".py")


def becomes_package(old: str, olds: set[str]) -> bool:
    new = MODULES[old]
    return old == "" or any(o.startswith(old + ".") for o in olds) or any(
        MODULES[o].startswith(new + ".") for o in MODULES if o != old)


def exported_names() -> set[str]:
    """Public names of the package (``_EXPORTS``/``__all__`` of resnet_cli/__init__.py)."""
    text = (ROOT / PKG / "__init__.py").read_text()
    m = re.search(r"_EXPORTS = \{(.*?)\n\}", text, re.S)
    return set(re.findall(r'"(\w+)":', m.group(1))) if m else set()


def map_dotted(rest: str, exports: set[str], where: str, module_hint: bool = False) -> str:
    """``resnet_cli`` + ``rest`` (``.a.b.c``) with its longest old-module prefix mapped."""
    parts = rest.lstrip(".").split(".")
    first = parts[0]
    if first.startswith("_") or first in NON_MODULE_NAMES:
        return PKG + rest
    if first in exports and not module_hint:
        return PKG + rest  # resnet_cli.train(...) is the API's function, not the module
    for k in range(len(parts), 0, -1):
        old = ".".join(parts[:k])
        if old in MODULES:
            new = MODULES[old]
            tail = parts[k:]
            return ".".join([PKG, *([new] if new else []), *tail])
    if first in exports:
        return PKG + rest
    raise Unmapped(f"{where}: {PKG}{rest} names no module in MODULES (add it to tools/relayout.py)")


DOTTED = re.compile(r"(?<![\w.])resnet_cli((?:\.[A-Za-z_]\w*)+)")
PATHS = re.compile(r"(?<![\w.])resnet_cli/((?:[A-Za-z_]\w*/)*(?:[A-Za-z_]\w*(?:\.py)?/?)?)")
MODULE_CONTEXT = re.compile(r"(from\s+|import\s+|-m\s+|[\"'])$")


def rewrite_dotted(text: str, exports: set[str], where: str, errors: list[str]) -> str:
    def sub(m: re.Match) -> str:
        rest = m.group(1)
        before = text[max(0, m.start() - 12):m.start()]
        after = text[m.end():m.end() + 1]
        hint = bool(MODULE_CONTEXT.search(before)) or after == ":"
        if rest.endswith(".py") or rest == ".conf":
            return m.group(0)
        try:
            return map_dotted(rest, exports, where, module_hint=hint)
        except Unmapped as e:
            errors.append(str(e))
            return m.group(0)
    return DOTTED.sub(sub, text)


def map_path(rel: str, where: str) -> str:
    """``resnet_cli/<rel>`` (a file, a folder or empty) with its module mapped."""
    if rel in ("", "conf", "conf/") or rel.startswith("conf/"):
        return rel
    trail = "/" if rel.endswith("/") else ""
    stem = rel.rstrip("/")
    is_py = stem.endswith(".py")
    mod = stem[:-3] if is_py else stem
    parts = mod.split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    old = ".".join(parts)
    if old not in MODULES:
        raise Unmapped(f"{where}: resnet_cli/{rel} names no module in MODULES")
    new = MODULES[old]
    olds = set(MODULES)
    pkg = becomes_package(old, olds)
    if is_py:
        return new_file(new, pkg).relative_to(ROOT / PKG).as_posix()
    return (new.replace(".", "/") + trail) if pkg or trail else new.replace(".", "/")


def rewrite_paths(text: str, where: str, errors: list[str]) -> str:
    def sub(m: re.Match) -> str:
        try:
            return "resnet_cli/" + map_path(m.group(1), where)
        except Unmapped as e:
            errors.append(str(e))
            return m.group(0)
    return PATHS.sub(sub, text)


BACKTICK = re.compile(r"`((?:[A-Za-z_]\w*/)*(?:[A-Za-z_]\w*\.py|[A-Za-z_]\w*/))`")


def rewrite_backticks(text: str, where: str) -> str:
    """Markdown: ```batches/gpu_augment.py```, ```engine.py```, ```loggers/``` (paths inside the package: a
    file that exists, or the folder of a package; ```plots/``` of a run folder is no package), and the bare
    name of a file inside an old subpackage (```gpu_augment.py``` -> ```batched.py```)."""
    nested = {Path(*o.split(".")).name + ".py": o for o in MODULES if "." in o}

    def sub(m: re.Match) -> str:
        rel = m.group(1)
        if "/" not in rel.rstrip("/") and rel in nested and not (ROOT / PKG / rel).exists():
            new = MODULES[nested[rel]]
            return f"`{new.rpartition('.')[2]}.py`"
        stem = rel.rstrip("/")
        mod = stem[:-3] if stem.endswith(".py") else stem
        old = mod.replace("/", ".")
        if old.endswith(".__init__"):
            old = old[: -len(".__init__")]
        exists = (ROOT / PKG / rel).is_dir() if rel.endswith("/") else (ROOT / PKG / rel).is_file()
        if old not in MODULES or not exists:
            return m.group(0)
        try:
            return f"`{map_path(rel, where)}`"
        except Unmapped:
            return m.group(0)
    return BACKTICK.sub(sub, text)


# -- Python imports -----------------------------------------------------------------------------

def module_of(path: Path) -> tuple[str, bool]:
    """(old module name relative to the package, is a package __init__) of a file under resnet_cli/."""
    rel = path.relative_to(ROOT / PKG).with_suffix("")
    parts = list(rel.parts)
    is_init = parts[-1] == "__init__"
    if is_init:
        parts = parts[:-1]
    return ".".join(parts), is_init


def resolve(level: int, module: str | None, here: str, here_is_pkg: bool) -> str:
    """Absolute module (relative to resnet_cli, "" for it) of ``from <level dots><module>``."""
    base = here.split(".") if here else []
    if not here_is_pkg:
        base = base[:-1]
    up = level - 1
    if up > len(base):
        raise Unmapped(f"relative import beyond the package in {here}")
    base = base[: len(base) - up] if up else base
    return ".".join([*base, *(module.split(".") if module else [])])


def relative(target: str, here_new: str, here_new_is_pkg: bool) -> str:
    """``from <this> import`` text reaching ``target`` (relative to resnet_cli) from module ``here_new``."""
    here = here_new.split(".") if here_new else []
    pkg = here if here_new_is_pkg else here[:-1]
    tgt = target.split(".") if target else []
    common = 0
    while common < len(pkg) and common < len(tgt) and pkg[common] == tgt[common]:
        common += 1
    dots = "." * (len(pkg) - common + 1)
    return dots + ".".join(tgt[common:])


def rewrite_imports(src: str, path: Path, errors: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """Rewrite ``from ... import`` statements that reach the package; returns the text and the line
    spans (0-based, end exclusive) it rewrote, which the dotted-name pass then leaves alone."""
    tree = ast.parse(src)
    in_pkg = (ROOT / PKG) in path.parents
    here, here_pkg = module_of(path) if in_pkg else ("", False)
    here_new = MODULES[here] if in_pkg else ""
    here_new_pkg = in_pkg and becomes_package(here, set(MODULES))
    lines = src.splitlines(keepends=True)
    edits: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            if not in_pkg:
                continue
            base = resolve(node.level, node.module, here, here_pkg)
        elif node.module == PKG or (node.module or "").startswith(PKG + "."):
            base = node.module[len(PKG) + 1:] if node.module != PKG else ""
        else:
            continue
        if base not in MODULES:
            errors.append(f"{path.relative_to(ROOT)}:{node.lineno}: imports {PKG}.{base}, not in MODULES")
            continue
        if not node.level and not any(f"{base}.{a.name}".lstrip(".") in MODULES for a in node.names):
            continue  # an absolute import of names: the dotted-name pass maps its module
        groups: dict[str, list[str]] = {}
        for alias in node.names:
            full = f"{base}.{alias.name}" if base else alias.name
            if full in MODULES and alias.name != "*":
                parent, _, name = MODULES[full].rpartition(".")
                local = alias.asname or alias.name
                groups.setdefault(parent, []).append(name if name == local else f"{name} as {local}")
            else:
                groups.setdefault(MODULES[base], []).append(
                    alias.name + (f" as {alias.asname}" if alias.asname else ""))
        start, end = node.lineno - 1, node.end_lineno
        indent = re.match(r"\s*", lines[start]).group(0)
        tail = lines[end - 1].rstrip("\n")
        comment = ""
        if node.end_col_offset is not None and len(tail) > node.end_col_offset:
            comment = tail[node.end_col_offset:].rstrip()
        statements = []
        for target, names in groups.items():
            spec = relative(target, here_new, here_new_pkg) if node.level else ".".join(filter(None, [MARK, target]))
            one = f"{indent}from {spec} import {', '.join(names)}"
            if len(one) > 120:
                body = "".join(f"{indent}    {n},\n" for n in names)
                one = f"{indent}from {spec} import (\n{body}{indent})"
            statements.append(one)
        statements[0] += comment
        new_text = "\n".join(statements) + "\n"
        if new_text != "".join(lines[start:end]):
            edits.append((start, end, new_text))
    spans = []
    for start, end, text in sorted(edits, reverse=True):
        lines[start:end] = [text]
        spans.append((start, end))
    return "".join(lines), spans


def rewrite_python(src: str, path: Path, exports: set[str], errors: list[str]) -> str:
    where = str(path.relative_to(ROOT))
    try:
        text, _ = rewrite_imports(src, path, errors)
    except SyntaxError as e:
        errors.append(f"{where}: cannot parse ({e})")
        return src
    # the split absolute imports carry MARK for the package's name, so the dotted pass leaves them
    text = rewrite_dotted(text, exports, where, errors)
    text = rewrite_paths(text, where, errors)
    if path == ROOT / PKG / "__init__.py":
        text = rewrite_exports(text, where, errors)
        text = PACKAGE_HACK.sub("", text)  # no entry module sits at the top any more to shadow train()
        for alias in ("_sys", "_types"):
            if f"{alias}." not in text:
                text = re.sub(rf"import \w+ as {alias}\n", "", text)
    return text.replace(MARK, PKG)


PACKAGE_HACK = re.compile(r"\n\nclass _Package\(_types\.ModuleType\):\n(?:    .*\n|\n)*?\n_sys\.modules\[__name__\]\.__class__ = _Package\n")


def rewrite_exports(text: str, where: str, errors: list[str]) -> str:
    """The lazy-export table: ``"name": "module"`` values are old module names."""
    m = re.search(r"_EXPORTS = \{(.*?)\n\}", text, re.S)
    if not m:
        errors.append(f"{where}: no _EXPORTS table found")
        return text

    def sub(v: re.Match) -> str:
        old = v.group(2)
        if old not in MODULES:
            errors.append(f"{where}: _EXPORTS names module {old!r}, not in MODULES")
            return v.group(0)
        return f'{v.group(1)}"{MODULES[old]}"'
    body = re.sub(r'("\w+": )"([\w.]+)"', sub, m.group(1))
    return text[: m.start(1)] + body + text[m.end(1):]


# -- the moves ----------------------------------------------------------------------------------

def plan_moves(olds: dict[str, Path]) -> list[tuple[Path, Path]]:
    missing = sorted(set(olds) - set(MODULES))
    if missing:
        raise Unmapped("modules not in tools/relayout.py's MODULES: " + ", ".join(f"{PKG}.{m}" for m in missing)
                       + " (add each with its new place)")
    moves = []
    for old, src in olds.items():
        dst = new_file(MODULES[old], becomes_package(old, set(olds)))
        if dst != src:
            moves.append((src, dst))
    dsts = [d for _, d in moves]
    if len(set(dsts)) != len(dsts):
        raise Unmapped("two modules map to the same file")
    return moves


def text_files() -> list[Path]:
    files = []
    for pattern in ("resnet_cli/**/*.py", "tests/**/*.py", "bench/**/*.py", "tools/**/*.py", "examples/**/*.py",
                    "conf/**/*.yaml", "examples/**/*.ipynb", "*.md", "docs/**/*.md", "bench/**/*.md",
                    "pyproject.toml", ".ci/*"):
        files += [p for p in ROOT.glob(pattern) if p.is_file()]
    skip = {Path(__file__).resolve()}
    return sorted(set(p for p in files if p.resolve() not in skip and NEW_LAYOUT not in p.read_text(encoding="utf-8")))


def rewrite_text(path: Path, text: str, exports: set[str], errors: list[str]) -> str:
    where = str(path.relative_to(ROOT))
    if path.suffix == ".py":
        return rewrite_python(text, path, exports, errors)
    text = rewrite_dotted(text, exports, where, errors)
    text = rewrite_paths(text, where, errors)
    if path.suffix == ".md":
        text = rewrite_backticks(text, where)
    if path.name == "pyproject.toml":
        text = rewrite_packages(text, where, errors)
    return text


def rewrite_packages(text: str, where: str, errors: list[str]) -> str:
    """pyproject's ``packages`` list: every package of the new layout, the conf tree kept."""
    m = re.search(r"packages = \[\n(.*?)\]", text, re.S)
    if not m:
        errors.append(f"{where}: no packages list")
        return text
    listed = re.findall(r'"([\w.]+)"', m.group(1))
    conf = [p for p in listed if p == f"{PKG}.conf" or p.startswith(f"{PKG}.conf.")]
    olds = set(MODULES)
    pkgs = {PKG} | {f"{PKG}.{MODULES[o]}" for o in olds if o and becomes_package(o, olds)}
    for new in MODULES.values():  # every folder a module sits in (cli.train -> cli, data.batches.base -> data.batches)
        parts = new.split(".")
        for k in range(1, len(parts)):
            pkgs.add(".".join([PKG, *parts[:k]]))
    body = "".join(f'    "{p}",\n' for p in sorted(pkgs | set(conf)))
    return text[: m.start(1)] + body + text[m.end(1):]


def importlinter_config() -> str:
    """The ``.importlinter`` contracts, from :data:`LAYERS`, :data:`FRONT_ENDS` and :data:`IGNORED`."""
    names = [[x.strip() for x in re.split(r"[|:]", layer)] for layer in LAYERS]
    below = [x for layer in names for x in layer if x not in FRONT_ENDS]
    layer_lines = "".join("    " + re.sub(r"(\w[\w.]*)", rf"{PKG}.\1", layer) + "\n" for layer in LAYERS)
    external = ("hydra", "omegaconf")

    def ignore(keep) -> str:
        return "".join(f"    # {why}\n    {PKG}.{a} -> {b if b in external else PKG + '.' + b}\n"
                       for a, b, why in IGNORED if keep(b))
    upward = ignore(lambda b: b not in external)
    forbidden = ignore(lambda b: b in external or b.startswith("cli."))
    return (
        "# Generated by tools/relayout.py from its LAYERS table: the package's layers, top to bottom.\n"
        "# `lint-imports` checks them (tests/test_imports.py); no exceptions.\n"
        "[importlinter]\n"
        f"root_package = {PKG}\n"
        "include_external_packages = True\n\n"
        "[importlinter:contract:layers]\n"
        "name = front ends above diagnostics and tracking, above core, above data and models, above errors\n"
        "type = layers\n"
        "layers =\n" + layer_lines
        + (f"ignore_imports =\n{upward}unmatched_ignore_imports_alerting = warn\n" if upward else "") + "\n"
        + "[importlinter:contract:no-hydra-below-front-ends]\n"
        "name = below the front ends nothing imports hydra, omegaconf or resnet_cli.cli\n"
        "type = forbidden\n"
        "source_modules =\n" + "".join(f"    {PKG}.{m}\n" for m in below) +
        "forbidden_modules =\n" + "".join(f"    {m}\n" for m in FORBIDDEN_BELOW_FRONT_ENDS)
        + (f"ignore_imports =\n{forbidden}unmatched_ignore_imports_alerting = warn\n" if forbidden else "")
    )


def moved_table() -> str:
    pairs = {f"{PKG}.{o}": f"{PKG}.{n}" for o, n in MODULES.items() if o and o != n}
    body = "".join(f'    "{o}": "{n}",\n' for o, n in sorted(pairs.items()))
    return ('"""Where each module of the flat layout went (generated by tools/relayout.py): configs saved before\n'
            'the move (a checkpoint\'s ``_target_`` strings) are migrated with it\n'
            '(:func:`resnet_cli.cli.checks.migrate_deprecated`)."""\n\n'
            "MOVED_MODULES: dict[str, str] = {\n" + body + "}\n")


def git(*args: str) -> None:
    subprocess.run(["git", *args], cwd=ROOT, check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report the plan and any unmapped name; change nothing")
    args = ap.parse_args(argv)
    if (ROOT / PKG / "cli" / "__init__.py").exists() and not (ROOT / PKG / "train.py").exists():
        print("relayout: the tree is already in the new layout; nothing to do")
        return 0
    olds = old_modules()
    errors: list[str] = []
    try:
        moves = plan_moves(olds)
    except Unmapped as e:
        print(f"relayout: {e}", file=sys.stderr)
        return 2
    exports = exported_names()
    files = text_files()
    originals = {p: p.read_text(encoding="utf-8") for p in files}
    new_texts = {p: rewrite_text(p, t, exports, errors) for p, t in originals.items()}
    if errors:
        print("relayout: nothing changed; unmapped names:\n  " + "\n  ".join(dict.fromkeys(errors)), file=sys.stderr)
        return 2
    changed = [p for p in files if new_texts[p] != originals[p]]
    print(f"relayout: {len(moves)} modules move, {len(changed)} files rewritten")
    for src, dst in moves:
        print(f"  {src.relative_to(ROOT)} -> {dst.relative_to(ROOT)}")
    if args.check:
        return 0
    if subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT).returncode != 0:
        print("relayout: the git tree has uncommitted changes; commit or stash them first", file=sys.stderr)
        return 2
    for p in changed:
        p.write_text(new_texts[p], encoding="utf-8")
    # folders first; a module that becomes a package (data.py -> data/__init__.py) moves into its own folder
    for src, dst in sorted(moves, key=lambda m: len(m[1].parts)):
        dst.parent.mkdir(parents=True, exist_ok=True)
        git("mv", str(src.relative_to(ROOT)), str(dst.relative_to(ROOT)))
    for pkg, doc in PACKAGES.items():
        init = ROOT / PKG / pkg / "__init__.py"
        if not init.exists():
            init.parent.mkdir(parents=True, exist_ok=True)
            init.write_text(f'"""{doc}\n"""\n' if doc else '"""(package)"""\n', encoding="utf-8")
            git("add", str(init.relative_to(ROOT)))
    for d in sorted((ROOT / PKG).rglob("*"), reverse=True):  # folders the moves emptied
        if d.is_dir() and not any(p.suffix == ".py" for p in d.rglob("*")):
            for junk in sorted(d.rglob("*"), reverse=True):
                junk.unlink() if junk.is_file() else junk.rmdir()
            d.rmdir()
    moved = new_file(MODULES["moved"], False)
    moved.write_text(moved_table(), encoding="utf-8")
    (ROOT / ".importlinter").write_text(importlinter_config(), encoding="utf-8")
    git("add", "-A", PKG, ".importlinter", *[str(p.relative_to(ROOT)) for p in changed if p.exists()])
    print("relayout: done; check with: lint-imports && python -m pytest -q")
    return 0


if __name__ == "__main__":
    sys.exit(main())
