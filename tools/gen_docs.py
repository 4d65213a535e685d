"""Write the generated parts of the documentation from their one home, so they cannot drift:

* ``docs/configuration.md``: every key of ``resnet-train``, ``resnet-gradcam``, ``resnet-predict`` and
  ``resnet-export`` with its type (``resnet_cli/cli/schema.py``), default and meaning (the YAML under
  ``conf/`` and its comments);
* the results table of ``README.md`` (between ``<!-- results:start -->`` and ``<!-- results:end -->``),
  from the committed study records ``results/*/table.json`` and ``results/quick-first-run/measure.json``;
* the signatures of ``docs/python-api.md`` (between ``<!-- api:start -->`` and ``<!-- api:end -->``),
  from ``inspect.signature`` of the package's public names.

Usage, from the repository root::

    python tools/gen_docs.py            # rewrite the three parts
    python tools/gen_docs.py --check    # exit 1, naming the file, if any committed part differs

``tests/test_docs.py`` runs the check.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import sys
import typing
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
CONFIG_PAGE = ROOT / "docs" / "configuration.md"
README = ROOT / "README.md"
API_PAGE = ROOT / "docs" / "python-api.md"

# ---------------------------------------------------------------- the YAML and its comments

_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w.-]*):(?P<rest>.*)$")


def _split_comment(rest: str) -> tuple[str, str]:
    """``' 0.5   # why'`` -> (``'0.5'``, ``'why'``); a ``#`` inside quotes is part of the value."""
    quote = None
    for i, ch in enumerate(rest):
        if ch in "'\"":
            quote = None if quote == ch else (quote or ch)
        elif ch == "#" and quote is None and (i == 0 or rest[i - 1].isspace()):
            return rest[:i].strip(), rest[i + 1:].strip()
    return rest.strip(), ""


def yaml_comments(path: Path) -> tuple[str, dict[str, str]]:
    """(the file's opening comment, {dotted key: its comment}) of one YAML file under ``conf/``.

    A key's comment is the one on its line, else the comment lines just above it. The ``hydra`` and
    ``defaults`` nodes are skipped (they are not the command's keys).
    """
    header: list[str] = []
    comments: dict[str, str] = {}
    above: list[str] = []
    stack: list[tuple[int, str]] = []
    seen_key = False
    skip_indent = None
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if skip_indent is not None:
            if not stripped or len(line) - len(line.lstrip()) > skip_indent:
                continue
            skip_indent = None
        if stripped.startswith("#"):
            text = stripped.lstrip("#").strip()
            if text.startswith("@package"):
                continue
            (above if seen_key else header).append(text)
            continue
        m = _KEY.match(line)
        if not m:
            continue
        seen_key = True
        indent = len(m["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = m["key"]
        if not stack and key in ("hydra", "defaults"):
            skip_indent = indent
            above = []
            continue
        value, comment = _split_comment(m["rest"])
        dotted = ".".join([*(k for _, k in stack), key])
        comments[dotted] = comment or " ".join(t for t in above if t)
        above = []
        if not value:
            stack.append((indent, key))
    return " ".join(header), comments


def _load_yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text()) or {}


def _flatten(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict) and node:
        for k, v in node.items():
            if k in ("defaults", "hydra") and not prefix:
                continue
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, node


# ---------------------------------------------------------------- types from the schema

def _type_name(tp: Any) -> str:
    if tp is Any:
        return "any"
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return " or ".join(_type_name(a) for a in rest) + " or null"
    if origin in (list, typing.List):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin in (dict, typing.Dict):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _schema_comments(cls: type) -> dict[str, str]:
    """``{field: trailing comment}`` of a schema dataclass's source lines (``max_lr: Any = MISSING  # ...``)."""
    out = {}
    for line in inspect.getsource(cls).splitlines():
        m = re.match(r"\s*(\w+):.*=.*?#\s*(.*)$", line)
        if m:
            out[m[1]] = m[2]
    return out


def schema_types(schema: type, prefix: str = "") -> dict[str, str]:
    """``{dotted key: type}`` of a schema dataclass (nested dataclasses flattened)."""
    hints = typing.get_type_hints(schema)
    notes = _schema_comments(schema)
    out = {}
    for f in dataclasses.fields(schema):
        tp = hints[f.name]
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            out.update(schema_types(tp, key + "."))
        else:
            name = _type_name(tp)
            if name == "any" and notes.get(f.name):
                name = f"any: {notes[f.name]}"
            out[key] = name
    return out


def _value_type(v: Any) -> str:
    if v is None:
        return "any or null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, list):
        return "list"
    return type(v).__name__


def _fmt(v: Any) -> str:
    if v is None:
        return "`null`"
    if isinstance(v, bool):
        return f"`{str(v).lower()}`"
    if isinstance(v, list):
        return "`[" + ", ".join(str(x) for x in v) + "]`"
    if isinstance(v, float):
        return f"`{v!r}`"
    return f"`{v}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


# ---------------------------------------------------------------- docs/configuration.md

COMMANDS = [
    ("resnet-train", "train", "train_schema"),
    ("resnet-gradcam", "gradcam", "gradcam_schema"),
    ("resnet-predict", "predict", "predict_schema"),
    ("resnet-export", "export", "export_schema"),
]
TRAIN_GROUPS = ["model", "data", "augment", "scheduler", "lr_finder"]  # each option: keys, defaults, meaning
PLAIN_NODES = ["", "trainer", "optimizer", "explain"]  # keys set in conf/train.yaml itself


def _group_section(group: str, types: dict[str, str], chosen: str) -> list[str]:
    files = sorted((CONF / group).glob("*.yaml"))
    names = [p.stem for p in files]
    values = {p.stem: dict(_flatten(_load_yaml(p))) for p in files}
    notes = {p.stem: yaml_comments(p) for p in files}
    lines = [f"### `{group}`: " + ", ".join(f"`{group}={n}`" + (" (default)" if n == chosen else "") for n in names), ""]
    for n in names:
        if notes[n][0]:
            lines.append(f"- `{n}`: {notes[n][0]}")
    lines.append("")
    keys: list[str] = []
    for n in names:
        keys += [k for k in values[n] if k not in keys]
    lines.append("| key | type | " + " | ".join(f"`{n}`" for n in names) + " | meaning |")
    lines.append("|---|---|" + "---|" * len(names) + "---|")
    for k in keys:
        full = f"{group}.{k}"
        given = [v for n in names for v in [values[n].get(k, "-")] if v != "-"]
        typ = types.get(full) or (_value_type(given[0]) if given else "any")
        said = {n: notes[n][1][k] for n in names if notes[n][1].get(k)}
        if len(set(said.values())) > 1:
            meaning = "; ".join(f"`{n}`: {c}" for n, c in said.items())
        else:
            meaning = next(iter(said.values()), "") or HYDRA_KEYS.get(k.split(".")[-1], "")
        defaults = " | ".join(_fmt(values[n][k]) if k in values[n] else "-" for n in names)
        lines.append(f"| `{full}` | {_cell(typ)} | {defaults} | {_cell(meaning)} |")
    return lines + [""]


HYDRA_KEYS = {
    "_target_": "the Python callable this node builds (Hydra's instantiate); change it to plug in your own",
    "_partial_": "built as a partial: the run adds the remaining arguments",
}


def _meaning(key: str, comments: dict[str, str]) -> str:
    return comments.get(key) or HYDRA_KEYS.get(key.split(".")[-1], "")


def _plain_section(node: str, values: dict[str, Any], comments: dict[str, str], types: dict[str, str]) -> list[str]:
    title = f"### `{node}`" if node else "### Top-level keys"
    lines = [title, "", "| key | type | default | meaning |", "|---|---|---|---|"]
    for k, v in values.items():
        top = k.split(".")[0]
        if (node and top != node) or (not node and (top in PLAIN_NODES or "." in k)):
            continue
        lines.append(f"| `{k}` | {_cell(types.get(k, _value_type(v)))} | {_fmt(v)} | {_cell(_meaning(k, comments))} |")
    return lines + [""]


def _presets_section(group: str, intro: str) -> list[str]:
    lines = [f"### `{group}`", "", intro, ""]
    for p in sorted((CONF / group).glob("*.yaml")):
        header, comments = yaml_comments(p)
        values = dict(_flatten(_load_yaml(p)))
        lines.append(f"**`{group}={p.stem}`**: {header}")
        lines.append("")
        lines.append("| key | value | why |")
        lines.append("|---|---|---|")
        for k, v in values.items():
            lines.append(f"| `{k}` | {_fmt(v)} | {_cell(comments.get(k, ''))} |")
        lines.append("")
    return lines


def _logger_section() -> list[str]:
    lines = ["### `logger`: trackers, none by default", "",
             "Select one with `logger=csv`, several with `logger=[csv,tensorboard]`; "
             "`logger=many_loggers` is `[csv, tensorboard, mlflow]`.", ""]
    lines += ["| key | type | default | meaning |", "|---|---|---|---|",
              "| `logger` | mapping or null | `null` | the trackers chosen with `logger=...`, one node each |"]
    for p in sorted((CONF / "logger").glob("*.yaml")):
        if p.stem == "many_loggers":
            continue
        _, comments = yaml_comments(p)
        for k, v in _flatten(_load_yaml(p)):
            lines.append(f"| `logger.{k}` | {_value_type(v)} | {_fmt(v)} | {_cell(_meaning(k, comments))} |")
    return lines + [""]


def configuration_page() -> str:
    """The text of ``docs/configuration.md``."""
    sys.path.insert(0, str(ROOT))
    from resnet_cli.cli.schema import SCHEMAS

    train_defaults = {d if isinstance(d, str) else next(iter(d)): (None if isinstance(d, str) else next(iter(d.values())))
                      for d in _load_yaml(CONF / "train.yaml")["defaults"]}
    out = [
        "# Configuration: every key",
        "",
        "<!-- Generated by `python tools/gen_docs.py` from conf/ and resnet_cli/cli/schema.py; "
        "do not edit by hand: tests/test_docs.py fails when this page differs. -->",
        "",
        "Each command reads its keys from a YAML file under `conf/`; override any of them on the command",
        "line as `key=value` (`resnet-train trainer.epochs=10`), choose an option of a config group as",
        "`group=option` (`resnet-train model=resnet18`), and add `--help` to a command to print its",
        "resolved keys. A key that does not exist, a value of the wrong type or out of range stops the",
        "command at once with one line naming the key (exit 2). `null` means \"not set\"; what that",
        "implies is in the key's meaning. The syntax is Hydra's",
        "([override grammar](https://hydra.cc/docs/advanced/override_grammar/basic/)).",
        "",
        "Contents: [resnet-train](#resnet-train) · [resnet-gradcam](#resnet-gradcam) · "
        "[resnet-predict](#resnet-predict) · [resnet-export](#resnet-export)",
        "",
    ]
    for command, name, schema in COMMANDS:
        path = CONF / f"{name}.yaml"
        header, comments = yaml_comments(path)
        types = schema_types(SCHEMAS[schema])
        values = dict(_flatten(_load_yaml(path)))
        out += [f"## {command}", "", header, ""]
        if name != "train":
            out += _plain_section("", values, comments, types)
            continue
        out += ["Keys set in `conf/train.yaml` itself:", ""]
        for node in PLAIN_NODES:
            out += _plain_section(node, values, comments, types)
        for group in TRAIN_GROUPS:
            out += _group_section(group, types, train_defaults.get(group))
        out += _logger_section()
        out += _presets_section("experiment", "Presets that set several keys at once (none by default); "
                                              "combine them with a data choice and further overrides.")
        out += _presets_section("hparams_search", "A hyper-parameter search (Optuna, from the `sweep` extra); "
                                                  "it runs as a sweep (`-m` implied). See "
                                                  "[sweeps-and-tracking.md](sweeps-and-tracking.md).")
    return "\n".join(line.rstrip() for line in out).rstrip() + "\n"


# ---------------------------------------------------------------- README results table

def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def results_rows() -> list[str]:
    """The README's results table, one row per committed study (figures read from its JSON)."""
    quick = json.loads((ROOT / "results/quick-first-run/measure.json").read_text())["runs"]["cold"]
    twin = {p["policy"]: p for p in json.loads((ROOT / "results/twin-study/table.json").read_text())}["e2"]
    full = {p["policy"]: p for p in json.loads((ROOT / "results/full-cpu/table.json").read_text())}["full-default"]

    def minutes(runs):
        m = sorted(round(r["total_seconds"] / 60) for r in runs)
        return f"{m[0]}" if m[0] == m[-1] else f"{m[0]}-{m[-1]}"

    def seeds(runs):
        return ", ".join(str(r["seed"]) for r in runs)

    def acc(entry):
        runs = entry["runs"]
        if len(runs) == 1:
            return f"**{_pct(entry['mean_acc'])}**"
        return f"**{_pct(entry['mean_acc'])}** (mean; " + ", ".join(_pct(r["test_acc"]) for r in runs) + ")"

    return [
        "| run | data | hardware | seeds | minutes | test accuracy |",
        "|---|---|---|---|---|---|",
        f"| [full default job](results/full-cpu) (`resnet-train`) | 50,000 train / 10,000 test images | 2-core CPU, bf16 | "
        f"{seeds(full['runs'])} | {minutes(full['runs'])} | {acc(full)} |",
        f"| [CPU twin](results/twin-study) (`experiment=cpu_twin`) | 10,000 train / 10,000 test images | 2-core CPU, bf16 | "
        f"{seeds(twin['runs'])} | {minutes(twin['runs'])} | {acc(twin)} |",
        f"| [first run](results/quick-first-run) (`experiment=quick`) | 1,000 train / 500 test images | 2-core CPU, bf16 | "
        f"0 | {quick['wall_s'] / 60:.1f} | {100 * quick['test_acc']:.1f} % (a check of the set-up) |",
        "| any of these on a GPU | | | | not yet measured | |",
    ]


# ---------------------------------------------------------------- docs/python-api.md signatures

API_NAMES = ["compose", "train", "find_lr", "evaluate", "load_model", "load_data", "RunResult", "Evaluation",
             "Evaluation.plot_misclassified", "Evaluation.plot_gradcam", "Evaluation.plot_confusion_matrix",
             "Evaluation.class_accuracy", "LRFindResult", "plot_lr_finder", "plot_lr_schedule", "plot_one_cycle",
             "plot_curves", "plot_history", "plot_samples", "plot_augmentations", "data_previews",
             "plot_misclassified", "plot_gradcam_grid", "plot_confusion_matrix", "save_figure",
             "class_accuracy", "confusion_matrix", "find_misclassified", "gradcam_maps", "default_target_layers",
             "CustomResNet", "ResNet18"]


def api_object(name: str) -> Any:
    """``resnet_cli.<name>`` (a dotted name reaches a method)."""
    sys.path.insert(0, str(ROOT))
    import resnet_cli

    obj: Any = resnet_cli
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def signature_text(name: str) -> str:
    """``resnet_cli.train(cfg_or_overrides: Any = (), ...) -> RunResult``, as :func:`inspect.signature` gives it
    (string annotations unquoted, ``self`` dropped)."""
    sig = inspect.signature(api_object(name))
    params = [p for p in sig.parameters.values() if p.name != "self"]
    sig = sig.replace(parameters=params)
    text = re.sub(r"ForwardRef\((.*?)\)", r"\1", str(sig)).replace("'", "").replace('"', "")
    text = text.replace("PosixPath(", "Path(")
    return f"resnet_cli.{name}{text}"


def api_block() -> list[str]:
    out = []
    for name in API_NAMES:
        doc = (inspect.getdoc(api_object(name)) or "").split("\n\n")[0].replace("\n", " ")
        out += [f"#### `{name}`", "", "```python", signature_text(name), "```", "", doc, ""]
    return out


# ---------------------------------------------------------------- writing and checking

def _replace_block(text: str, tag: str, lines: list[str], path: Path) -> str:
    start, end = f"<!-- {tag}:start -->", f"<!-- {tag}:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"error: {path.relative_to(ROOT)} has no {start} ... {end} block; add the two markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return head + start + "\n" + "\n".join(lines).rstrip() + "\n" + end + tail


def generated() -> dict[Path, str]:
    """{file: its text with every generated part up to date}."""
    return {
        CONFIG_PAGE: configuration_page(),
        README: _replace_block(README.read_text(), "results", results_rows(), README),
        API_PAGE: _replace_block(API_PAGE.read_text(), "api", api_block(), API_PAGE),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="report stale files instead of writing them")
    args = parser.parse_args(argv)
    stale = []
    for path, text in generated().items():
        if not path.exists() or path.read_text() != text:
            stale.append(path)
            if not args.check:
                path.write_text(text)
    for path in stale:
        verb = "is stale" if args.check else "written"
        print(f"{path.relative_to(ROOT)} {verb}" + ("; run python tools/gen_docs.py" if args.check else ""))
    return 1 if (stale and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
