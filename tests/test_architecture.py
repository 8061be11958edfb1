"""Imports go one way: edges → services → domain. Checked on the source, with ast."""

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


def modules_under(folder: str):
    return sorted((PACKAGE / folder).rglob("*.py"))


def test_services_never_import_adapters():
    """Services use the outside world through their own ports (`services/ports.py`)."""
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            module for module in imported_modules(path) if module.startswith("atomicseats.adapters")
        )
        for path in modules_under("services")
    }
    assert {name: modules for name, modules in offenders.items() if modules} == {}


ADAPTERS_MAY_IMPORT_FROM_SERVICES = {"atomicseats.services.ports", "atomicseats.services.contracts"}


def test_adapters_import_of_the_services_only_their_ports_and_value_types():
    offenders = {}
    for path in modules_under("adapters"):
        bad = sorted(
            module
            for module in imported_modules(path)
            if module.startswith(("atomicseats.services", "atomicseats.api", "atomicseats.web"))
            and module not in ADAPTERS_MAY_IMPORT_FROM_SERVICES
        )
        if bad:
            offenders[str(path.relative_to(PACKAGE))] = bad
    assert offenders == {}


def test_blueprints_never_import_adapters():
    offenders = {}
    for folder in ("api", "web"):
        for path in modules_under(folder) if (PACKAGE / folder).is_dir() else []:
            bad = sorted(module for module in imported_modules(path) if module.startswith("atomicseats.adapters"))
            if bad:
                offenders[str(path.relative_to(PACKAGE))] = bad
    assert offenders == {}


def test_services_and_domain_never_import_the_edges():
    edges = (
        "atomicseats.api",
        "atomicseats.web",
        "atomicseats.cli",
        "atomicseats.tasks",
        "atomicseats.http",
        "atomicseats.waiting",
    )
    offenders = {}
    for folder in ("services", "domain"):
        for path in (PACKAGE / folder).glob("*.py"):
            bad = sorted(module for module in imported_modules(path) if module.startswith(edges))
            if bad:
                offenders[str(path.relative_to(PACKAGE))] = bad
    assert offenders == {}


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
