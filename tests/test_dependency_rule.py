"""The dependency rule: nothing under ``common/`` imports ``videogen`` or any other top-level package of this repo."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "common"
# Never part of the code: tool and data folders at the repository root.
NOT_CODE = {".venv", "var", "node_modules", "htmlcov", "build", "dist"}


def repo_top_level_names(root: Path) -> set[str]:
    """Names importable from the repository root: packages/folders holding Python files, and top-level modules."""
    names = {"videogen"}  # the Django project, whatever the layout
    for entry in root.iterdir():
        if entry.name.startswith(".") or entry.name in NOT_CODE:
            continue
        if entry.is_dir() and any(entry.rglob("*.py")):
            names.add(entry.name)
        elif entry.suffix == ".py":
            names.add(entry.stem)
    names.discard(PACKAGE)
    return names


def imported_modules(path: Path, package_root: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports: ``import``/``from`` statements, relative ones resolved, and literal
    ``importlib.import_module("...")`` / ``__import__("...")`` calls."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    parts = list(path.relative_to(package_root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # "from .. import x": level 1 is the module's own package, each further dot one package up.
                package = parts if path.name == "__init__.py" else parts[:-1]
                drop = node.level - 1
                if drop >= len(package):
                    found.append((node.lineno, "<relative import above the package root>"))
                    continue
                module = ".".join([*package[: len(package) - drop], *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append((node.lineno, module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def violations(package_root: Path, forbidden: set[str]) -> list[str]:
    problems = []
    for path in sorted(package_root.rglob("*.py")):
        for line, module in imported_modules(path, package_root):
            top = module.split(".", 1)[0]
            if top in forbidden or module.startswith("<relative"):
                problems.append(f"{path.relative_to(package_root.parent)}:{line} imports {module}")
    return problems


def test_common_imports_no_other_package_of_this_repo() -> None:
    forbidden = repo_top_level_names(ROOT)
    assert {"videogen", "tests", "bench", "manage"} <= forbidden
    package_root = ROOT / PACKAGE
    files = list(package_root.rglob("*.py"))
    assert len(files) > 10  # really scanned the package
    assert violations(package_root, forbidden) == []


@pytest.mark.parametrize(
    ("relative", "source", "expected"),
    [
        ("common/bad.py", "import videogen.settings\n", "common/bad.py:1 imports videogen.settings"),
        ("common/bad.py", "from videogen import urls\n", "common/bad.py:1 imports videogen"),
        (
            "common/sub/bad.py",
            "import os\nfrom tests.envtools import x\n",
            "common/sub/bad.py:2 imports tests.envtools",
        ),
        (
            "common/sub/bad.py",
            "def f():\n    import bench.costs\n",
            "common/sub/bad.py:2 imports bench.costs",
        ),
        (
            "common/bad.py",
            "import importlib\nimportlib.import_module('videogen.urls')\n",
            "common/bad.py:2 imports videogen.urls",
        ),
        ("common/bad.py", "__import__('videogen')\n", "common/bad.py:1 imports videogen"),
        (
            "common/bad.py",
            "from .. import videogen\n",
            "common/bad.py:1 imports <relative import above the package root>",
        ),
        (
            "common/sub/__init__.py",
            "from ... import anything\n",
            "common/sub/__init__.py:1 imports <relative import above the package root>",
        ),
    ],
)
def test_the_scanner_catches_violations(tmp_path: Path, relative: str, source: str, expected: str) -> None:
    (tmp_path / "common" / "sub").mkdir(parents=True)
    (tmp_path / "common" / "__init__.py").write_text("")
    (tmp_path / "common" / "sub" / "__init__.py").write_text("")
    (tmp_path / "videogen").mkdir()
    (tmp_path / "videogen" / "settings.py").write_text("")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "envtools.py").write_text("")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "costs.py").write_text("")
    (tmp_path / relative).write_text(source)
    forbidden = repo_top_level_names(tmp_path)
    assert forbidden == {"videogen", "tests", "bench"}
    assert violations(tmp_path / "common", forbidden) == [expected]


def test_the_scanner_allows_imports_within_common_and_third_party(tmp_path: Path) -> None:
    (tmp_path / "common" / "sub").mkdir(parents=True)
    (tmp_path / "common" / "__init__.py").write_text("from . import sub\nfrom .sub import x\nimport django\n")
    (tmp_path / "common" / "sub" / "__init__.py").write_text("from .. import errors\nfrom . import y\n")
    (tmp_path / "common" / "sub" / "mod.py").write_text(
        "from .. import conf\nfrom ..errors import E\nimport importlib\nimportlib.import_module('common.log')\n"
        "import_module(name)\n"
    )
    (tmp_path / "videogen").mkdir()
    (tmp_path / "videogen" / "__init__.py").write_text("")
    assert violations(tmp_path / "common", repo_top_level_names(tmp_path)) == []
    modules = {m for _, m in imported_modules(tmp_path / "common" / "sub" / "mod.py", tmp_path / "common")}
    assert modules == {"common", "common.errors", "importlib", "common.log"}
    init = {m for _, m in imported_modules(tmp_path / "common" / "sub" / "__init__.py", tmp_path / "common")}
    assert init == {"common", "common.sub"}
