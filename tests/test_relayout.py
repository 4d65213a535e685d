# relayout: written for the new layout (tools/relayout.py leaves this file as it is)
"""tools/relayout.py on a small flat tree: modules move with git mv, relative and absolute imports follow
them (split where one statement's modules now live apart), dotted strings and _target_s are mapped,
the API's resnet_cli.train() is left alone, and an unmapped module stops it before any change."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = {
    "resnet_cli/__init__.py": '_EXPORTS = {\n    "compose": "composition", "train": "api",\n}\n',
    "resnet_cli/api.py": "from .config import validate\n\n\ndef train():\n    return validate\n",
    "resnet_cli/composition.py": "def compose():\n    return 1\n",
    "resnet_cli/config.py": "from . import plots, schedule  # noqa: F401\n\n\ndef validate():\n    return 1\n",
    "resnet_cli/plots.py": "X = 1\n",
    "resnet_cli/schedule.py": "def one_cycle():\n    return 1\n",
    "resnet_cli/train.py": "from .config import validate  # noqa: E402\n\n\ndef main():\n    return validate()\n",
    "resnet_cli/batches/__init__.py": "from ..errors import E  # noqa: F401\n",
    "resnet_cli/errors.py": "E = 1\n",
    "conf/scheduler/one_cycle.yaml": "_target_: resnet_cli.schedule.one_cycle\n",
    "pyproject.toml": ('[project.scripts]\nresnet-train = "resnet_cli.train:main"\n\n[tool.setuptools]\n'
                       'packages = [\n    "resnet_cli",\n    "resnet_cli.batches",\n]\n'),
    "tests/test_x.py": ('import resnet_cli\nfrom resnet_cli import config, plots\n\n\n'
                        'def test_x(monkeypatch):\n    monkeypatch.setattr("resnet_cli.config.validate", None)\n'
                        '    resnet_cli.train()\n    cmd = ["-m", "resnet_cli.train"]\n'),
    "README.md": "See `resnet_cli/config.py`, `batches/` and the run folder's `plots/`.\n",
}


def _git(tree: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tree, check=True,
                   capture_output=True)


@pytest.fixture
def flat_tree(tmp_path) -> Path:
    for rel, text in FILES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "tools").mkdir()
    shutil.copy(ROOT / "tools" / "relayout.py", tmp_path / "tools" / "relayout.py")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "flat")
    return tmp_path


def _relayout(tree: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "tools/relayout.py", *args], cwd=tree, capture_output=True, text=True,
                          timeout=120)


def test_the_flat_tree_moves_and_every_reference_follows(flat_tree):
    proc = _relayout(flat_tree)
    assert proc.returncode == 0, proc.stderr
    pkg = flat_tree / "resnet_cli"
    assert not (pkg / "config.py").exists() and not (pkg / "batches").exists()
    assert (pkg / "cli" / "checks.py").read_text().startswith(
        "from ..diagnostics import plots  # noqa: F401\nfrom ..core import schedule\n")
    assert (pkg / "cli" / "train.py").read_text().startswith("from .checks import validate  # noqa: E402\n")
    assert (pkg / "api.py").read_text().startswith("from .cli.checks import validate\n")
    assert (pkg / "data" / "batches" / "__init__.py").read_text() == "from ...errors import E  # noqa: F401\n"
    assert '"compose": "cli.composition", "train": "api"' in (pkg / "__init__.py").read_text()
    assert (flat_tree / "conf/scheduler/one_cycle.yaml").read_text() == "_target_: resnet_cli.core.schedule.one_cycle\n"
    toml = (flat_tree / "pyproject.toml").read_text()
    assert 'resnet-train = "resnet_cli.cli.train:main"' in toml
    assert all(f'"resnet_cli.{p}",' in toml for p in ("cli", "core", "data", "data.batches", "diagnostics"))
    test = (flat_tree / "tests/test_x.py").read_text()
    assert "from resnet_cli.cli import checks as config\nfrom resnet_cli.diagnostics import plots\n" in test
    assert '"resnet_cli.cli.checks.validate"' in test and "resnet_cli.train()" in test
    assert '"-m", "resnet_cli.cli.train"' in test
    readme = (flat_tree / "README.md").read_text()
    assert readme == "See `resnet_cli/cli/checks.py`, `data/batches/` and the run folder's `plots/`.\n"
    assert (pkg / "core" / "moved.py").read_text().count('"resnet_cli.config": "resnet_cli.cli.checks"') == 1
    assert "resnet_cli.core" in (flat_tree / ".importlinter").read_text()
    again = _relayout(flat_tree)
    assert again.returncode == 0 and "already in the new layout" in again.stdout


def test_an_unmapped_module_changes_nothing(flat_tree):
    (flat_tree / "resnet_cli" / "mystery.py").write_text("X = 1\n")
    proc = _relayout(flat_tree)
    assert proc.returncode == 2 and "resnet_cli.mystery" in proc.stderr
    assert (flat_tree / "resnet_cli" / "config.py").exists() and not (flat_tree / "resnet_cli" / "cli").exists()
