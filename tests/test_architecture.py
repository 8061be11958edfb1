"""Imports go one way: edges → services → domain. The import rules are import-linter contracts
(pyproject.toml, run by `make lint`): they follow indirect imports too, so the ast walks that said
the same here are gone. What the contracts cannot say (names, calls, installed extras) is checked
here on the source."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "atomicseats"


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_only_services_commit_database_transactions():
    """`session.commit()` appears in services only (Kafka's consumer.commit is another thing)."""
    committing = []
    for path in PACKAGE.rglob("*.py"):
        if "services" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "commit" and "session" in ast.unparse(node.value):
                committing.append(str(path.relative_to(PACKAGE)))
    assert committing == []


def test_redis_replies_are_parsed_in_c():
    """hiredis (requirements.txt) parses Redis replies; the pure-Python parser cost the booking
    hot path ~8 % of its CPU (three Redis replies a request)."""
    from redis.utils import HIREDIS_AVAILABLE

    assert HIREDIS_AVAILABLE


def test_blueprints_import_no_database_session():
    """The import contract lets api/users.py import atomicseats.extensions for the rate limiter
    (import-linter checks modules, not names): here, by name, no blueprint takes `db` from it."""
    offenders = {}
    for folder in ("api", "web"):
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    bad = [alias.name for alias in node.names if alias.name == "atomicseats.extensions"]
                elif isinstance(node, ast.ImportFrom) and node.module == "atomicseats.extensions":
                    bad = [f"{node.module}.{alias.name}" for alias in node.names if alias.name in ("db", "*")]
                else:
                    continue
                if bad:
                    offenders.setdefault(str(path.relative_to(PACKAGE)), []).extend(bad)
    assert offenders == {}


def test_the_kafka_adapter_only_publishes():
    """Submitting a request (Kafka) and waking work (Celery) are two ports with two adapters."""
    assert sorted(module for module in imported_modules(PACKAGE / "adapters" / "kafka.py") if "celery" in module) == []
