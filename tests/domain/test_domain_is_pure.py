"""atomicseats/domain imports the stdlib only: no Flask, SQLAlchemy, clock, I/O or randomness."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

DOMAIN_DIR = Path(__file__).resolve().parents[2] / "atomicseats" / "domain"
DOMAIN_PACKAGE = "atomicseats.domain"

# Stdlib, but against the domain's rules: clock, randomness, I/O, processes, dynamic import.
IMPURE_STDLIB_MODULES = frozenset(
    {
        "asyncio",
        "http",
        "importlib",
        "io",
        "multiprocessing",
        "os",
        "pathlib",
        "random",
        "secrets",
        "shutil",
        "socket",
        "sqlite3",
        "subprocess",
        "tempfile",
        "threading",
        "time",
        "urllib",
    }
)


def domain_modules() -> list[Path]:
    return sorted(DOMAIN_DIR.rglob("*.py"))


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import; relative imports come back as '.'."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, "." if node.level > 0 else node.module or ""))
    return found


def is_allowed(module: str) -> bool:
    if module == "." or module == DOMAIN_PACKAGE or module.startswith(DOMAIN_PACKAGE + "."):
        return True
    top_level = module.partition(".")[0]
    return top_level in sys.stdlib_module_names and top_level not in IMPURE_STDLIB_MODULES


def test_the_walk_finds_the_domain_modules() -> None:
    names = {path.name for path in domain_modules()}
    assert {"__init__.py", "allocator.py", "limits.py"} <= names


@pytest.mark.parametrize("path", domain_modules(), ids=lambda path: path.name)
def test_domain_module_imports_only_pure_stdlib(path: Path) -> None:
    offending = [
        f"{path.name}:{line} imports {module}" for line, module in imported_modules(path) if not is_allowed(module)
    ]
    assert offending == []


def test_the_check_catches_impure_imports(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import flask\nfrom sqlalchemy import text\nimport time\nfrom . import limits\n")
    modules = [module for _, module in imported_modules(bad)]
    assert modules == ["flask", "sqlalchemy", "time", "."]
    assert [is_allowed(module) for module in modules] == [False, False, False, True]
    assert is_allowed("atomicseats.domain.limits")
    assert not is_allowed("atomicseats.services.booking")
    assert not is_allowed("atomicseats")
