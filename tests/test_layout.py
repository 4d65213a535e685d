"""The package's size: no module much over 350 lines. Which module may import which (the layers, and
no Hydra, OmegaConf or CLI below the front ends) is ``.importlinter``'s, checked by tests/test_imports.py."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "resnet_cli"
MAX_LINES = 360


def test_no_module_is_much_over_350_lines():
    sizes = {str(p.relative_to(PACKAGE.parent)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}
