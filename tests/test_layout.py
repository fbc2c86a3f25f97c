"""The layout guard (issue 13): no import cycle inside ``common/``, and no module there over 500 lines.

The import graph is built from the source with ``ast``: one node per module of ``common/`` (a package is
its ``__init__``; migrations are left out), one edge per ``import`` / ``from ... import`` statement and
literal ``importlib.import_module("...")`` call, wherever it stands. A function-local import counts like a
module-level one: deferring an import only hides a cycle from the interpreter, the two modules still need
each other (the resources <-> tempfiles cycle the issue names was such a deferred import). Imports under
``if TYPE_CHECKING:`` count too. ``from pkg import name`` is an edge to ``pkg.name`` when that is a module,
else to ``pkg``; the implicit import of a parent package is not an edge.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = ROOT / "common"
MAX_LINES = 500


def module_names(package_dir: Path) -> dict[str, Path]:
    """Dotted name -> file of every module under ``package_dir`` (migrations aside)."""
    found: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir.parent).with_suffix("")
        if "migrations" in relative.parts:
            continue
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        found[".".join(parts)] = path
    return found


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of ``modules`` (``None`` outside the package)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _statements(tree: ast.AST, importer: str, is_package: bool) -> Iterator[tuple[int, str, list[str]]]:
    """(line, module, names) for every import in ``tree``; relative imports made absolute."""
    here = importer.split(".") if is_package else importer.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            yield node.lineno, ".".join([*base, *filter(None, [node.module])]), [a.name for a in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if called == "import_module" and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value, []


def import_graph(package_dir: Path) -> dict[str, dict[str, int]]:
    """importer -> {imported: first line} over the modules of ``package_dir``."""
    modules = module_names(package_dir)
    graph: dict[str, dict[str, int]] = {name: {} for name in modules}
    for importer, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, module, names in _statements(tree, importer, path.name == "__init__.py"):
            targets = [f"{module}.{n}" if f"{module}.{n}" in modules else module for n in names] or [module]
            for target in filter(None, (_known(t, modules) for t in targets)):
                if target != importer:
                    graph[importer].setdefault(target, line)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                on_stack.discard(member)
                component.append(member)
            on_stack.discard(node)
            if component:
                found.append(sorted([node, *component]))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def describe(graph: dict[str, dict[str, int]], component: list[str]) -> str:
    """A cycle as the edges inside it, with the line of each import."""
    members = set(component)
    edges = [f"{a} -> {b} (line {line})" for a in component for b, line in sorted(graph[a].items()) if b in members]
    return "; ".join(edges)


def without(graph: dict[str, dict[str, int]], edges: set[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """``graph`` less ``edges``."""
    return {a: {b: line for b, line in targets.items() if (a, b) not in edges} for a, targets in graph.items()}


def line_counts(package_dir: Path) -> dict[str, int]:
    """Lines of every module under ``package_dir`` (migrations aside), by path relative to the repository."""
    return {
        str(path.relative_to(package_dir.parent)): len(path.read_text(encoding="utf-8").splitlines())
        for path in module_names(package_dir).values()
    }


# --------------------------------------------------------------------------- the guard


def test_no_import_cycle_inside_common() -> None:
    graph = import_graph(PACKAGE_DIR)
    assert len(graph) > 40  # really scanned the package
    assert "common.fs" in graph["common.tempfiles"]
    left = cycles(graph)
    assert left == [], "import cycles: " + " | ".join(describe(graph, c) for c in left)


def test_no_module_in_common_over_500_lines() -> None:
    counts = line_counts(PACKAGE_DIR)
    too_long = {path: lines for path, lines in counts.items() if lines > MAX_LINES}
    assert too_long == {}, f"over {MAX_LINES} lines"


# --------------------------------------------------------------------------- the scanner itself


def package(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, source in {"common/__init__.py": "", **files}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source)
    return tmp_path / "common"


def test_a_deferred_import_still_closes_a_cycle(tmp_path: Path) -> None:
    """The issue's cycle: resources imported tempfiles at the top, tempfiles imported resources in a function."""
    root = package(
        tmp_path,
        {
            "common/resources.py": "from common.tempfiles import temp_file_manager\n",
            "common/tempfiles.py": "import os\n\ndef f():\n    from common.resources import resource_manager\n",
            "common/other.py": "from common import resources\n",
        },
    )
    graph = import_graph(root)
    assert cycles(graph) == [["common.resources", "common.tempfiles"]]
    assert describe(graph, ["common.resources", "common.tempfiles"]) == (
        "common.resources -> common.tempfiles (line 1); common.tempfiles -> common.resources (line 4)"
    )
    assert cycles(without(graph, {("common.tempfiles", "common.resources")})) == []


@pytest.mark.parametrize(
    ("files", "edges"),
    [
        ({"common/a.py": "from . import b\n", "common/b.py": ""}, {("common.a", "common.b")}),
        (
            {"common/s/__init__.py": "from .m import x\n", "common/s/m.py": "from .. import a\n", "common/a.py": ""},
            {
                ("common.s", "common.s.m"),
                ("common.s.m", "common.a"),
            },
        ),
        (
            {"common/a.py": "import common.s.m as m\n", "common/s/__init__.py": "", "common/s/m.py": ""},
            {
                ("common.a", "common.s.m"),
            },
        ),
        (
            {"common/a.py": "from common import PipelineError, b\n", "common/b.py": ""},
            {
                ("common.a", "common"),
                ("common.a", "common.b"),
            },
        ),
        (
            {
                "common/a.py": "import importlib\nimportlib.import_module('common.b')\nimport django\n",
                "common/b.py": "",
            },
            {
                ("common.a", "common.b"),
            },
        ),
        (
            {"common/a.py": "if TYPE_CHECKING:\n    from common.b import B\n", "common/b.py": ""},
            {("common.a", "common.b")},
        ),
        ({"common/migrations/0001.py": "from common import a\n", "common/a.py": ""}, set()),
    ],
)
def test_the_scanner_resolves_each_form_of_import(tmp_path: Path, files: dict[str, str], edges: set) -> None:
    graph = import_graph(package(tmp_path, files))
    assert {(a, b) for a in graph for b in graph[a]} == edges


def test_line_counts_leave_migrations_out(tmp_path: Path) -> None:
    root = package(tmp_path, {"common/a.py": "x = 1\n" * 501, "common/migrations/0001_big.py": "y = 2\n" * 900})
    assert line_counts(root) == {"common/__init__.py": 0, "common/a.py": 501}
