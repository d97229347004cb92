"""The package's layers, read from its import statements: every import points down a layer (or
stays inside its own subpackage), the import graph has no cycles, and a first-party import
inside a function says why it waits (a heavy optional dependency)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "seg_perception"
LAYERS = {
    "core": 0,
    "model": 1, "datasets": 1,
    "inference": 2,
    "node": 3, "training": 3,
    "evaluation": 4,
    "optimize": 5,
    "app": 6,  # the top-level modules: cli, demo, doctor, __main__
}
"""Lower numbers are lower layers; subpackages on one layer do not import each other."""


@dataclass(frozen=True)
class Import:
    source: str  # importing module, e.g. seg_perception.node.node
    target: str  # imported first-party module
    line: int
    in_function: bool
    commented: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def first_party_imports() -> list[Import]:
    modules = {module_name(p) for p in PKG.rglob("*.py")}
    found = []
    for path in sorted(PKG.rglob("*.py")):
        src = path.read_text()
        lines = src.splitlines()
        tree = ast.parse(src)
        funcs = [n for n in ast.walk(tree)
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        inside = {id(n) for f in funcs for n in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}:{node.lineno}: relative import"
                names = [node.module or ""]
                names += [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name in modules and name != "seg_perception":
                    here = lines[node.lineno - 1]
                    before = lines[node.lineno - 2] if node.lineno > 1 else ""
                    end = lines[(node.end_lineno or node.lineno) - 1]
                    why = "#" in here or "#" in end or before.strip().startswith("#")
                    found.append(Import(module_name(path), name, node.lineno, id(node) in inside,
                                        why))
    return found


def area(module: str) -> str:
    """The subpackage a module belongs to; top-level modules form the ``app`` layer."""
    parts = module.split(".")
    if len(parts) == 1:
        return "app"
    return parts[1] if (PKG / parts[1]).is_dir() else "app"


IMPORTS = first_party_imports()


def test_the_package_is_read():
    assert len(IMPORTS) > 100
    assert {area(i.source) for i in IMPORTS} <= set(LAYERS)


@pytest.mark.parametrize("imp", [i for i in IMPORTS if area(i.source) != area(i.target)],
                         ids=lambda i: f"{i.source}->{i.target}")
def test_imports_point_down(imp: Import):
    src, dst = area(imp.source), area(imp.target)
    assert LAYERS[dst] < LAYERS[src], (
        f"{imp.source}:{imp.line} imports {imp.target}: layer {dst} ({LAYERS[dst]}) is not "
        f"below {src} ({LAYERS[src]})")


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for i in IMPORTS:
        graph.setdefault(i.source, set()).add(i.target)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_function_level_imports_say_why():
    silent = [f"{i.source}:{i.line} ({i.target})" for i in IMPORTS
              if i.in_function and not i.commented]
    assert not silent, "first-party imports inside functions without a comment: " + ", ".join(
        silent)


def test_every_type_ignore_says_why():
    """A silenced type error carries its reason, on its line or the one above."""
    silent = []
    for path in sorted(PKG.rglob("*.py")):
        lines = path.read_text().splitlines()
        for n, line in enumerate(lines):
            if "type: ignore" not in line or line.lstrip().startswith("#"):
                continue
            after = line.split("type: ignore", 1)[1]
            if "#" in after or (n and lines[n - 1].strip().startswith("#")):
                continue
            silent.append(f"{path.relative_to(PKG)}:{n + 1}")
    assert not silent, silent
