"""The documentation stays true: every documented command composes and validates, the generated parts
(docs/configuration.md, the README's results table, docs/python-api.md's signatures) match their
sources, every key is documented, relative links resolve, and no page speaks of issue numbers."""

from __future__ import annotations

import importlib.util
import inspect
import re
import shlex
from pathlib import Path

import pytest
import torch
import yaml

import resnet_cli
from resnet_cli.errors import ConfigError
from resnet_cli.cli.sweep import check_sweep

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "tools" / "gen_docs.py")
gen_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_docs)

PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMANDS = {"resnet-train": "train", "resnet-gradcam": "gradcam", "resnet-predict": "predict", "resnet-export": "export"}
CHECKPOINT_PLACEHOLDERS = ("outputs/<date>/<time>/checkpoints/last.pt", "<path/to/last.pt>", ".../last.pt")


def _fenced_lines(text: str) -> list[str]:
    """The logical lines (``\\`` continuations joined) of every fenced code block of a Markdown text,
    except blocks marked as ``text`` (diagrams, file trees)."""
    lines, inside, pending, skip = [], False, "", False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            inside, pending = not inside, ""
            skip = inside and line.strip().removeprefix("```").strip() == "text"
            continue
        if not inside or skip:
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        lines.append((pending + line).strip())
        pending = ""
    return lines


def documented_commands() -> list[tuple[str, str, list[str]]]:
    """(page, command, arguments) of every resnet-* command (and torchrun ... -m resnet_cli.cli.train) in a
    fenced block of README.md or docs/*.md."""
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for line in _fenced_lines(page.read_text()):
            line = line.removeprefix("$ ")
            try:
                words = shlex.split(line, comments=True)
            except ValueError as e:
                raise AssertionError(f"{page.name}: cannot split {line!r}: {e}") from None
            if words[:1] == ["torchrun"] and "resnet_cli.cli.train" in words:
                found.append((page.name, "resnet-train", words[words.index("resnet_cli.cli.train") + 1:]))
            elif words and words[0] in COMMANDS:
                found.append((page.name, words[0], words[1:]))
    return found


ALL_COMMANDS = documented_commands()


def test_the_docs_show_every_command():
    commands = {c for _, c, _ in ALL_COMMANDS}
    assert commands == set(COMMANDS), f"no documented example of {set(COMMANDS) - commands}"
    assert len(ALL_COMMANDS) >= 30


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("folder")
    for split in ("train", "test"):
        (root / split / "cat").mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from checkpoints import untrained_checkpoint

    return untrained_checkpoint(tmp_path_factory.mktemp("run") / "last.pt")


def _substitute(args: list[str], folder: Path, ckpt: Path) -> list[str]:
    out = []
    for a in args:
        for placeholder in CHECKPOINT_PLACEHOLDERS:
            a = a.replace(placeholder, str(ckpt))
        a = a.replace("<path/to/folder>", str(folder))
        if not torch.cuda.is_available():
            a = a.replace("trainer.device=cuda", "trainer.device=cpu")
        assert "<" not in a, f"unknown placeholder in {a!r}: use <path/to/folder> or {CHECKPOINT_PLACEHOLDERS[0]}"
        out.append(a)
    return out


@pytest.mark.parametrize("page, command, args", ALL_COMMANDS,
                         ids=[f"{p}:{c} {' '.join(a)}"[:90] for p, c, a in ALL_COMMANDS])
def test_documented_command_composes_and_validates(page, command, args, image_folder, checkpoint):
    """Composed as the command composes it (Hydra, the typed schema) and, for resnet-train, validated as
    it is before any data is read; a -m sweep's every job is checked as the sweep checks them."""
    args = _substitute(args, image_folder, checkpoint)
    overrides = [a for a in args if not a.startswith("-")]
    if command == "resnet-train":
        if "-m" in args and check_sweep(overrides):
            return  # every job composed and validated
        cfg = resnet_cli.compose(overrides)
        assert cfg.trainer.epochs >= 1
    else:
        cfg = resnet_cli.compose(overrides, config_name=COMMANDS[command], validate=False)
        assert cfg.ckpt == str(checkpoint), f"{page}: {command} needs ckpt=..."


def test_a_wrong_documented_key_would_fail():
    """The check above can fail: a misspelt key is refused by the same composition."""
    with pytest.raises(ConfigError):
        resnet_cli.compose(["trainer.epoch=3"])
    with pytest.raises(ConfigError):
        resnet_cli.compose(["ckpt=x.pt", "topk_=3"], config_name="predict", validate=False)


def test_generated_parts_are_current():
    stale = [str(p.relative_to(ROOT)) for p, text in gen_docs.generated().items() if p.read_text() != text]
    assert not stale, f"{stale} differ from what tools/gen_docs.py writes: run python tools/gen_docs.py"


def _keys(node, prefix=""):
    from omegaconf import DictConfig

    for k, v in node.items():
        key = f"{prefix}{k}"
        if isinstance(v, DictConfig) and len(v):
            yield from _keys(v, key + ".")
        else:
            yield key


@pytest.mark.parametrize("name, overrides", [
    ("train", ["logger=[csv,tensorboard,mlflow,wandb]"]),
    ("train", ["model=resnet18", "data=image_folder", "data.root=x", "augment=none", "lr_finder=exponential"]),
    ("gradcam", []), ("predict", []), ("export", []),
])
def test_configuration_page_documents_every_key(name, overrides):
    """The --help promise: every key of every command's composed config has a row with a meaning."""
    page = (ROOT / "docs" / "configuration.md").read_text()
    section = re.split(r"^## ", page, flags=re.M)
    section = next(s for s in section if s.startswith(f"resnet-{name}\n"))
    meanings: dict[str, list[str]] = {}
    for m in re.finditer(r"^\| `([^`]+)` \|(.*)\|$", section, re.M):
        meanings.setdefault(m[1], []).append(re.split(r"(?<!\\)\|", m[2])[-1].strip())
    cfg = resnet_cli.compose(overrides, config_name=name, validate=False)
    for key in _keys(cfg):
        assert key in meanings, f"docs/configuration.md does not document {key} (resnet-{name})"
        assert any(meanings[key]), f"docs/configuration.md: {key} has no meaning; add a comment to its YAML line"


def test_help_points_to_the_configuration_page():
    help_text = yaml.safe_load((ROOT / "conf" / "train.yaml").read_text())["hydra"]["help"]["template"]
    assert "docs/configuration.md explains every key" in help_text
    assert "README" not in help_text


def test_readme_results_table_matches_the_committed_results():
    """Each row of the README's table holds its study's figures, read here from the JSON independently."""
    import json

    readme = (ROOT / "README.md").read_text()
    assert readme.splitlines().index("<!-- results:start -->") < 15, "the results table must open the README"
    table = readme.split("<!-- results:start -->")[1].split("<!-- results:end -->")[0]
    rows = {r.split("|")[1].strip(): r for r in table.strip().splitlines()[2:]}
    full = json.loads((ROOT / "results/full-cpu/table.json").read_text())[0]
    twin = next(p for p in json.loads((ROOT / "results/twin-study/table.json").read_text()) if p["policy"] == "e2")
    quick = json.loads((ROOT / "results/quick-first-run/measure.json").read_text())["runs"]["cold"]
    for label, entry in (("full-cpu", full), ("twin-study", twin)):
        row = next(r for k, r in rows.items() if f"(results/{label})" in k)
        assert f"{100 * entry['mean_acc']:.2f} %" in row
        assert ", ".join(str(r["seed"]) for r in entry["runs"]) in row
    row = next(r for k, r in rows.items() if "(results/quick-first-run)" in k)
    assert f"{100 * quick['test_acc']:.1f} %" in row
    assert readme.count("not yet measured") == 1


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(m[1]) for m in re.finditer(r"^#+ (.+)$", path.read_text(), re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: link {target} -> {resolved} does not exist"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{page.name}: no heading #{anchor} in {resolved.name}"


@pytest.mark.parametrize("name", gen_docs.API_NAMES)
def test_documented_signature_matches_the_code(name):
    page = (ROOT / "docs" / "python-api.md").read_text().split("<!-- api:start -->")[1]
    sig = inspect.signature(gen_docs.api_object(name))
    documented = re.search(rf"^resnet_cli\.{re.escape(name)}\((.*)\)(?: -> .*)?$", page, re.M)
    assert documented, f"docs/python-api.md does not document resnet_cli.{name}"
    names = [p.name for p in sig.parameters.values() if p.name != "self"]
    shown = re.findall(r"(?:^|, )\*{0,2}(\w+)(?=[:=,]|$)", documented[1])
    assert shown == names, f"resnet_cli.{name}: documented {shown}, the code has {names}"


@pytest.mark.parametrize("page", [p for p in PAGES if p.name not in ("faults.md", "CHANGELOG.md")],
                         ids=lambda p: p.name)
def test_pages_speak_to_users(page):
    text = page.read_text()
    for pattern in (r"\bissues? \d+", r"(?<![\w/])#\d+\b", r"\bthe spec\b", r"GPU holder", r"seed 004"):
        assert not re.search(pattern, text, re.I), f"{page.name}: {re.search(pattern, text, re.I)[0]!r}"


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def test_root_files():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert {"message", "title", "authors"} <= set(cff) and cff["authors"]
    assert cff["version"] == resnet_cli.__version__ and cff["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "## [Unreleased]" in (ROOT / "CHANGELOG.md").read_text()
