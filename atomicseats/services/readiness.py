"""Readiness: can this process serve now? The database at the schema's head migration, and
whatever servers the adapters depend on (their Probe ports: Redis when it is configured,
Kafka in Kafka mode)."""

from __future__ import annotations

from functools import cache

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy import text

from atomicseats.extensions import db
from atomicseats.services.ports import adapters
from atomicseats.services.unit_of_work import release_session


def checks() -> dict[str, bool]:
    """Each dependency by name, True when it answers. Never raises: a probe reports."""
    results = {"database": _database_ok()}
    results["migrations"] = results["database"] and _migrations_at_head()
    for probe in adapters().probes:
        results[probe.name] = probe.ping()
    return results


def _database_ok() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except Exception:  # a probe reports, it never raises
        release_session()
        return False


def _migrations_at_head() -> bool:
    """The database's revision is the newest migration this code ships (`flask db upgrade` ran)."""
    try:
        current = MigrationContext.configure(db.session.connection()).get_current_heads()
        return set(current) == set(head_revisions(current_app.extensions["migrate"].directory))
    except Exception:  # a probe reports, it never raises
        release_session()
        return False


@cache
def head_revisions(directory: str) -> tuple[str, ...]:
    """The head revision(s) of the migration scripts (read once: they ship with the code)."""
    return tuple(ScriptDirectory(directory).get_heads())
