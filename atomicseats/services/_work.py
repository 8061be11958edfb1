"""The unit of work: one transaction per use case, effects only after commit.

Only services enter a unit of work. On Postgres each transaction sets its own
`lock_timeout` and `statement_timeout`; on SQLite it begins with BEGIN IMMEDIATE
so writers serialize just as `SELECT ... FOR UPDATE` makes them on Postgres.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from atomicseats.domain import limits
from atomicseats.errors import ServiceBusy
from atomicseats.extensions import db

log = logging.getLogger(__name__)

_sqlite_begin_immediate: ContextVar[bool] = ContextVar("sqlite_begin_immediate", default=False)

# Postgres SQLSTATEs that mean "someone else holds it, try again": lock_not_available,
# query_canceled (statement timeout), serialization_failure, deadlock_detected.
_BUSY_SQLSTATES = frozenset({"55P03", "57014", "40001", "40P01"})


@dataclass
class UnitOfWork:
    session: Session
    _after_commit: list[tuple[Callable, tuple]] = field(default_factory=list)

    @property
    def is_postgres(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    def after_commit(self, callback: Callable, *args) -> None:
        """Run `callback(*args)` once the transaction has committed; never before."""
        self._after_commit.append((callback, args))

    def run_after_commit(self) -> None:
        for callback, args in self._after_commit:
            try:
                callback(*args)
            except Exception:  # effects are best-effort; `flask reconcile` repairs caches
                log.exception("after_commit.failed", extra={"callback": getattr(callback, "__name__", "?")})


def _is_busy(error: DBAPIError) -> bool:
    sqlstate = getattr(getattr(error, "orig", None), "pgcode", None)
    if sqlstate in _BUSY_SQLSTATES:
        return True
    return isinstance(error, OperationalError) and "database is locked" in str(error.orig)


@contextmanager
def unit_of_work() -> Iterator[UnitOfWork]:
    """Commit on success, roll back on any exception; lock waits become ServiceBusy."""
    session = db.session
    session.rollback()  # end any read transaction the request opened, so ours starts fresh
    work = UnitOfWork(session=session)
    token = _sqlite_begin_immediate.set(True)
    try:
        if work.is_postgres:
            session.execute(text(f"SET LOCAL lock_timeout = '{limits.LOCK_TIMEOUT_MS}ms'"))
            session.execute(text(f"SET LOCAL statement_timeout = '{limits.STATEMENT_TIMEOUT_MS}ms'"))
        else:
            session.connection()  # emits BEGIN IMMEDIATE now, under the flag
        yield work
        session.commit()
    except DBAPIError as error:
        session.rollback()
        if _is_busy(error):
            log.warning("unit_of_work.busy", extra={"error": str(error.orig)[:200]})
            raise ServiceBusy() from error
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        _sqlite_begin_immediate.reset(token)
    work.run_after_commit()


def install_sqlite_pragmas(engine: Engine) -> None:
    """Make pysqlite leave transactions to us, then BEGIN IMMEDIATE for units of work."""

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {limits.STATEMENT_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @sa_event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE" if _sqlite_begin_immediate.get() else "BEGIN")
