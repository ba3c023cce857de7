"""The package's layers, checked from the source: arrows only point down, and no cycles.

core (``tokenlib/*.py``: the RFCs, cryptography and pyjwt only) <- integrations, analysis,
probe <- lab (composes them: servers, scenarios from the probe catalogue, figures in the
analysis style) <- cli. A module-level import that points up or sideways, or a cycle among
module-level imports, fails here with the file and the import named.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "tokenlib"
LAYERS = ("core", "integrations", "analysis", "probe", "lab", "cli")
#: which layers each layer may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "integrations": {"core"},
    "analysis": {"core"},
    "probe": {"core", "integrations"},
    "lab": {"core", "integrations", "analysis", "probe"},
    "cli": {"core", "integrations", "analysis", "probe", "lab"},
}
#: third-party packages the core may import (README: "depends only on cryptography and pyjwt")
CORE_THIRD_PARTY = {"cryptography", "jwt"}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "core"


def _module_level_imports(path: Path) -> list[tuple[int, str]]:
    """Imports that run when the module is imported (not inside functions, not TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.extend((node.lineno, a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # ``from pkg import mod`` imports the submodule when there is one
                found.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
            elif isinstance(node, ast.If):
                test = node.test
                if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
                    continue
                if "__main__" in ast.unparse(test):  # runs as a script, not on import
                    continue
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(tree.body)
    return found


FILES = sorted(ROOT.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_imports_point_down(path: Path) -> None:
    here = _layer(_module(path))
    for line, name in _module_level_imports(path):
        top = name.split(".")[0]
        if top == "tokenlib":
            there = _layer(name)
            assert there == here or there in ALLOWED[here], (
                f"{path.relative_to(ROOT.parent)}:{line} imports {name}: "
                f"{here} may not import {there}"
            )
        elif here == "core":
            assert top in sys.stdlib_module_names or top in CORE_THIRD_PARTY, (
                f"{path.relative_to(ROOT.parent)}:{line} imports {name}: the core depends on "
                "cryptography and pyjwt only"
            )


def test_no_import_cycles() -> None:
    modules = {_module(p): p for p in FILES}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        for _line, name in _module_level_imports(path):
            parts = name.split(".")
            # the longest tokenlib module the import names (``from a.b import c`` names a.b)
            for k in range(len(parts), 0, -1):
                target = ".".join(parts[:k])
                if target in modules and target != mod:
                    graph[mod].add(target)
                    break
    # a package importing its own submodules (re-exports) is not a cycle of concepts
    for mod in graph:
        graph[mod] = {t for t in graph[mod] if not (t.startswith(mod + ".") or mod == "tokenlib")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod)
