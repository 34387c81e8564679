"""The package's import graph: no cycles, and each layer imports only the layers below it.

Lazy imports inside functions count too: they hide a cycle, they do not remove it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kbpipe"

# Lower layers first. Packages on one rank are peers and stay independent of each other.
LAYERS: list[set[str]] = [
    {"kbpipe", "errors"},
    {"config"},
    {"io"},
    {"tokens", "rater", "codematch", "verify", "sample", "testing"},
    {"hub"},
    {"report"},
    {"steps", "commands"},
    {"runner"},
    {"cli"},
    {"__main__"},
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("kbpipe")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kbpipe"):
            found.add(node.module)
            # `from kbpipe.io import sql` imports the submodule kbpipe.io.sql
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {i for i in _imports(path) if i in files} - {name} for name, path in files.items()
    }


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "kbpipe"


def test_every_package_has_a_layer() -> None:
    missing = {_layer(m) for m in import_graph()} - set(RANK)
    assert not missing, f"add these packages to LAYERS: {sorted(missing)}"


def test_no_module_imports_a_layer_above_or_beside_it() -> None:
    wrong = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in targets
        if _layer(module) != _layer(target)
        and RANK.get(_layer(target), 99) >= RANK.get(_layer(module), -1)
        and _layer(target) != "kbpipe"
    ]
    assert not wrong, "upward or sideways imports:\n" + "\n".join(sorted(wrong))


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_checker_sees_a_planted_upward_import(tmp_path: Path) -> None:
    planted = tmp_path / "x.py"
    planted.write_text("def f():\n    from kbpipe.steps.dedupe import dedupe\n")
    assert "kbpipe.steps.dedupe" in _imports(planted)
