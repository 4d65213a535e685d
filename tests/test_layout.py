"""The package's layout: no import cycle (module- or function-level imports alike, issue 13), no
module much over 350 lines, dependencies pointing down (no library module imports an entry
module) and an import graph of at most 10 layers (issue 22)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "resnet_cli"
MAX_LINES = 360
MAX_LAYERS = 10

ENTRY_MODULES = frozenset({
    "resnet_cli",            # the package: the Python API's names
    "resnet_cli.api",        # the Python API
    "resnet_cli.entry",      # what the Hydra entry points share: --version, Hydra's runtime, failure path
    "resnet_cli.train", "resnet_cli.gradcam", "resnet_cli.predict", "resnet_cli.export",  # console scripts
    "resnet_cli.sweep",      # the sweep's Hydra callback and python -m resnet_cli.sweep
})
"""The front end: it may import anything; no other (library) module imports it."""


def _modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = p.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its code (a child's import of its own
    package is implicit in Python and not counted)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        package = m if path.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([node.module] if node.module else []))
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
                targets = subs if len(subs) == len(node.names) else [base, *subs]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[m] |= {t for t in targets if t in mods and t != m and not m.startswith(t + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(m: str, path: list[str]) -> list[str] | None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (found := visit(n, path + [n])):
                return found
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m, [m])):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def layers(graph: dict[str, set[str]]) -> dict[str, int]:
    """module -> its layer: 1 for a module that imports no package module, else one above the
    highest module it imports (the graph must have no cycle)."""
    out: dict[str, int] = {}

    def layer(m: str) -> int:
        if m not in out:
            out[m] = 1 + max((layer(n) for n in graph[m]), default=0)
        return out[m]

    for m in graph:
        layer(m)
    return out


def longest_chain(graph: dict[str, set[str]]) -> list[str]:
    """The modules from the top layer down to layer 1, each importing the next."""
    depth = layers(graph)
    chain = [max(sorted(graph), key=depth.get)]
    while graph[chain[-1]]:
        chain.append(max(sorted(graph[chain[-1]]), key=depth.get))
    return chain


def test_the_layer_count_puts_a_module_above_what_it_imports():
    graph = {"a": {"b", "c"}, "b": {"c"}, "c": set(), "d": set()}
    assert layers(graph) == {"a": 3, "b": 2, "c": 1, "d": 1}
    assert longest_chain(graph) == ["a", "b", "c"]


def test_the_entry_modules_exist():
    assert ENTRY_MODULES <= set(import_graph())


@pytest.mark.parametrize("module", sorted(set(import_graph()) - ENTRY_MODULES))
def test_no_library_module_imports_an_entry_module(module):
    """Dependencies point down: the entry points ask Hydra's runtime and pass plain values down."""
    assert import_graph()[module] & ENTRY_MODULES == set()


def test_the_import_graph_has_at_most_10_layers():
    graph = import_graph()
    assert find_cycle(graph) is None
    chain = longest_chain(graph)
    assert len(chain) <= MAX_LAYERS, " -> ".join(chain)


def test_no_import_cycle():
    graph = import_graph()
    assert graph["resnet_cli.engine"] >= {"resnet_cli.fit", "resnet_cli.schedule", "resnet_cli.batches"}
    assert find_cycle(graph) is None


def test_no_module_is_much_over_350_lines():
    sizes = {str(p.relative_to(PACKAGE.parent)): len(p.read_text().splitlines()) for p in _modules().values()}
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}
