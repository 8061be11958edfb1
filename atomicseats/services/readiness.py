"""Readiness: can this process serve now? The database, and whatever servers the adapters
depend on (their Probe ports: Redis when it is configured)."""

from __future__ import annotations

from sqlalchemy import text

from atomicseats.extensions import db
from atomicseats.services.ports import adapters


def checks() -> dict[str, bool]:
    """Each dependency by name, True when it answers. Never raises: a probe reports."""
    results = {"database": _database_ok()}
    for probe in adapters().probes:
        results[probe.name] = probe.ping()
    return results


def _database_ok() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except Exception:  # a probe reports, it never raises
        db.session.rollback()
        return False
