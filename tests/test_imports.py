"""The layers hold: ``lint-imports`` checks the contracts of ``.importlinter`` (front ends above the
engine, above diagnostics and tracking, above core, above data and models, above errors; nothing below
the front ends imports Hydra, OmegaConf or ``resnet_cli.cli`` but the listed exceptions)."""

# relayout: written for the new layout (tools/relayout.py leaves this file as it is)
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".importlinter"
LINT_IMPORTS = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    assert LINT_IMPORTS, "lint-imports not found: pip install -e '.[test]' (import-linter)"
    return subprocess.run([LINT_IMPORTS, "--config", str(root / ".importlinter"), "--no-cache"], cwd=root,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=300)


def test_the_import_contracts_hold():
    assert CONFIG.is_file(), f"{CONFIG} is missing: python tools/relayout.py writes it with the package layout"
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize("module, line", [
    ("core/ema.py", "import omegaconf  # noqa: F401"),                           # Hydra's config below the front ends
    ("data/decode.py", "from resnet_cli.diagnostics import plots  # noqa: F401"),  # a lower layer importing a higher
])
def test_a_broken_contract_fails(tmp_path, module, line):
    """The same check on a copy of the package with one forbidden import added: lint-imports refuses it."""
    assert CONFIG.is_file(), f"{CONFIG} is missing: python tools/relayout.py writes it with the package layout"
    shutil.copytree(ROOT / "resnet_cli", tmp_path / "resnet_cli", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(CONFIG, tmp_path / ".importlinter")
    target = tmp_path / "resnet_cli" / module
    target.write_text(target.read_text() + f"\n{line}\n")
    proc = _lint(tmp_path)
    assert proc.returncode == 1 and "BROKEN" in proc.stdout, proc.stdout[-3000:]
    assert f"resnet_cli.{module[:-3].replace('/', '.')}" in proc.stdout
