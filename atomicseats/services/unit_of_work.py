"""The unit of work: one transaction per use case, effects only after commit.

Only services enter a unit of work. On Postgres each transaction sets its own
`lock_timeout` and `statement_timeout`; on SQLite it begins with BEGIN IMMEDIATE
so writers serialize just as `SELECT ... FOR UPDATE` makes them on Postgres.
"""

from __future__ import annotations

import logging
import select
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar, TypeVarTuple

from psycopg2 import OperationalError as PostgresOperationalError
from sqlalchemy import Executable, Result, Row, text
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry

from atomicseats.domain import limits
from atomicseats.errors import ServiceBusy
from atomicseats.extensions import db

log = logging.getLogger(__name__)

CallbackArgs = TypeVarTuple("CallbackArgs")
Item = TypeVar("Item")

_sqlite_begin_immediate: ContextVar[bool] = ContextVar("sqlite_begin_immediate", default=False)
# The unit of work that units of work opened inside `one_transaction()` join (None: none).
_joined_work: ContextVar[UnitOfWork | None] = ContextVar("joined_unit_of_work", default=None)

# Postgres SQLSTATEs that mean "someone else holds it, try again": lock_not_available,
# query_canceled (statement timeout), serialization_failure, deadlock_detected.
_BUSY_SQLSTATES = frozenset({"55P03", "57014", "40001", "40P01"})


@dataclass
class UnitOfWork:
    session: Session
    _after_commit: list[tuple[Callable[..., object], tuple[object, ...]]] = field(default_factory=list)
    # after_commit_each's entries in _after_commit, by callback: (callback, (its items,))
    _each: dict[Callable[..., object], tuple[Callable[..., object], tuple[list[Any]]]] = field(default_factory=dict)

    @property
    def is_postgres(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    def after_commit(self, callback: Callable[[*CallbackArgs], object], *args: *CallbackArgs) -> None:
        """Run `callback(*args)` once the transaction has committed; never before. A wake-up
        (a callback without arguments) registered again runs once: a transaction that decided
        several events (the embedded group commit) wakes the outbox's sender once."""
        if not args and (callback, ()) in self._after_commit:
            return
        self._after_commit.append((callback, args))

    def after_commit_each(self, callback: Callable[[list[Item]], object], item: Item) -> None:
        """Run `callback(items)` once the transaction has committed, with every item registered
        for it, in their order: a transaction that decided several events caches their figures
        and announces their decisions in one call each (one round trip), not one per event.
        The call takes the place of the last item registered, so whatever was registered before
        any of its items has run by then (each event's waitlist mirror is written before the
        outcomes are announced, as with an event alone: a guest woken reads a place that is
        already right)."""
        entry = self._each.get(callback)
        if entry is None:
            entry = self._each[callback] = (callback, ([],))
        else:
            self._after_commit.remove(entry)
        self._after_commit.append(entry)
        entry[1][0].append(item)

    @contextmanager
    def meanwhile(self, statement: Executable, parameters: Any, in_background: bool) -> Iterator[StatementAside]:
        """Execute `statement` while the block builds the next statement's rows in Python alone:
        the database works while the worker does (psycopg2 lets go of the GIL while it waits for
        the server), where one after the other their times add up (a flash sale's decisions cost
        about 0.05 ms of the worker's Python and 0.08 ms of PostgreSQL each).

        The block must not use the session, nor read what its objects have not loaded: the
        statement runs on the session's connection, on a thread of its own (a Core statement:
        Connection.execute, no app context there). On leaving the block it has finished and its
        error, if any, is raised there; its result is the yielded object's `result()`.
        `in_background` false (a small batch: a thread's start and the GIL's hand-over cost a
        few rows more than they save), or SQLite (its connection stays on its own thread): the
        statement runs first, in line, on the session."""
        if not (in_background and self.is_postgres):
            aside = StatementAside(self.session.execute, statement, parameters)
            aside.run()
            aside.result()
            yield aside
            return
        aside = StatementAside(self.session.connection().execute, statement, parameters)
        aside.start()
        try:
            yield aside
        finally:
            aside.join()  # the session is the caller's again only once the statement is done
        aside.result()

    def run_after_commit(self) -> None:
        for callback, args in self._after_commit:
            try:
                callback(*args)
            except Exception:  # effects are best-effort; `flask reconcile` repairs caches
                log.exception("after_commit.failed", extra={"callback": getattr(callback, "__name__", "?")})


class StatementAside(threading.Thread):
    """One statement, executed by `execute` on a thread of its own (`UnitOfWork.meanwhile`)."""

    def __init__(self, execute: Callable[[Executable, Any], Result[Any]], statement: Executable, parameters: Any):
        super().__init__(name="statement-aside", daemon=True)
        self._execute = execute
        self._statement = statement
        self._parameters = parameters
        self._result: Result[Any] | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._result = self._execute(self._statement, self._parameters)
        except BaseException as error:  # raised again by result(), on the unit of work's thread
            self._error = error

    def result(self) -> Result[Any]:
        """The statement's result, once it has finished (or its error, raised)."""
        if self._error is not None:
            raise self._error
        assert self._result is not None, "result() before the statement finished"
        return self._result


def bound_waits_from_first_statement(session: Session) -> None:
    """As `set_transaction_timeouts`, without a round trip of its own: the settings go to the
    server with the transaction's first statement, in the same message (psycopg2 sends a
    statement's text as one simple query; Postgres runs its parts in order, in the same
    transaction, and the cursor holds the last one's result). Needs the engine's hook
    (`install_deferred_timeouts`); SQLite's unit of work has its own bound."""
    dbapi_connection = session.connection().connection.dbapi_connection  # no round trip: BEGIN waits too
    _timeouts_due.set(dbapi_connection)


def install_deferred_timeouts(engine: Engine) -> None:
    """Prefix the timeouts a unit of work asked for to its first statement on that connection.
    An executemany (psycopg2's batches repeat the statement) or a named cursor's statement (it
    becomes DECLARE ... FOR the statement) gets them sent alone first, as before."""

    @sa_event.listens_for(engine, "before_cursor_execute", retval=True)
    def _with_timeouts(
        _connection: Connection, cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool
    ) -> tuple[str, Any]:
        due = _timeouts_due.get()
        if due is None or due is not cursor.connection:
            return statement, parameters
        _timeouts_due.set(None)
        if executemany or getattr(cursor, "name", None):  # batches, or a server-side cursor (DECLARE ... FOR)
            cursor.execute(_SET_TIMEOUTS_SQL)
            return statement, parameters
        return f"{_SET_TIMEOUTS_SQL}; {statement}", parameters


# The connection whose next statement must carry the timeouts (None: no unit of work waits for them).
_timeouts_due: ContextVar[object | None] = ContextVar("transaction_timeouts_due", default=None)


def set_transaction_timeouts(session: Session) -> None:
    """Bound the current transaction's waits on Postgres: `lock_timeout` and `statement_timeout`,
    SET LOCAL (they end with it). SQLite has neither: its busy_timeout pragma bounds the wait
    for the write lock. Every write transaction (and reconcile's share lock) starts with it."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_SET_TIMEOUTS)  # one round trip for both (a write transaction's first)


# set_config(..., is_local => true) is SET LOCAL, as a function: both settings in one statement
# (no % in it: psycopg2 formats a statement with parameters, the prefix included).
_SET_TIMEOUTS_SQL = (
    f"SELECT set_config('lock_timeout', '{limits.LOCK_TIMEOUT_MS}ms', true),"
    f" set_config('statement_timeout', '{limits.STATEMENT_TIMEOUT_MS}ms', true)"
)
_SET_TIMEOUTS = text(_SET_TIMEOUTS_SQL)


def is_busy(error: DBAPIError) -> bool:
    """Someone else holds what we wait for (a lock or statement timeout, a serialization
    failure, a deadlock; SQLite's "database is locked"): try again. The one test of it."""
    sqlstate = getattr(getattr(error, "orig", None), "pgcode", None)
    if sqlstate in _BUSY_SQLSTATES:
        return True
    return isinstance(error, OperationalError) and "database is locked" in str(error.orig)


def is_database_unavailable(error: BaseException) -> bool:
    """The database cannot serve anyone right now, whatever the query: a connection refused,
    lost or killed (SQLAlchemy saw a disconnect and invalidated the pool), a server starting
    up, in recovery or shutting down (57P03, 57P01), out of connections (53300), or the pool
    exhausted. psycopg2 raises OperationalError for exactly these server-side states
    (classes 08, 53, 55, 57, 58); query mistakes are ProgrammingError or IntegrityError and
    stay a 500. SQLite's OperationalError also means "no such table", so only its
    "database is locked" counts, as busy."""
    if isinstance(error, PoolTimeout):
        return True
    if not isinstance(error, DBAPIError):
        return False
    return error.connection_invalidated or isinstance(error.orig, PostgresOperationalError)


def service_busy_for(error: BaseException) -> ServiceBusy | None:
    """The 503 a database error stands for (the one place that decides), or None for a bug."""
    if isinstance(error, DBAPIError) and is_busy(error):
        log.warning("database.busy", extra={"error": str(error.orig)[:200]})
        return ServiceBusy()
    if is_database_unavailable(error):
        log.warning("database.unavailable", extra={"error": str(getattr(error, "orig", error))[:200]})
        return ServiceBusy(
            "The database is unavailable, please retry shortly", retry_after_s=limits.DATABASE_RETRY_AFTER_S
        )
    return None


def release_session() -> None:
    """End the session's transaction even when the database dropped its connection: the
    failed rollback invalidates that connection (the pool opens a new one next time), so
    neither the next use of the session nor closing it raises. Run when an app context
    ends (every request, Celery task and bridge batch) and after a failed attempt that
    will use the same session again. Costs nothing more than the close it precedes, and
    nothing where no session was opened (a booking accepted from Redis and Kafka alone)."""
    if not db.session.registry.has():
        return
    try:
        db.session.rollback()
    except DBAPIError as error:
        log.warning("database.connection_dropped", extra={"error": str(error.orig)[:200]})


@contextmanager
def database_errors_as_busy() -> Iterator[None]:
    """For reads outside a unit of work: a database that is down or busy raises ServiceBusy,
    and the session is released so whatever uses it next starts on a fresh connection."""
    try:
        yield
    except (DBAPIError, PoolTimeout) as error:
        busy = service_busy_for(error)
        if busy is None:
            raise
        release_session()
        raise busy from error


@contextmanager
def unit_of_work() -> Iterator[UnitOfWork]:
    """Commit on success, roll back on any exception; lock waits and an unavailable database
    become ServiceBusy (503 with Retry-After at the edge, a retry in a Celery task).

    Inside `one_transaction()` it joins that transaction instead: no commit of its own, its
    after-commit effects wait for the outer commit, and an exception rolls back all of it."""
    joined = _joined_work.get()
    if joined is not None:
        yield joined
        return
    release_session()  # end any read transaction the request opened, so ours starts fresh
    session = db.session()  # the app context's session itself, not its scoped proxy
    work = UnitOfWork(session=session)
    token = _sqlite_begin_immediate.set(True)
    timeouts_token = _timeouts_due.set(None)
    try:
        if work.is_postgres:
            bound_waits_from_first_statement(session)
        else:
            session.connection()  # emits BEGIN IMMEDIATE now, under the flag
        yield work
        session.commit()
    except (DBAPIError, PoolTimeout) as error:
        release_session()
        busy = service_busy_for(error)
        if busy is not None:
            raise busy from error
        raise
    except BaseException:
        release_session()
        raise
    finally:
        _sqlite_begin_immediate.reset(token)
        _timeouts_due.reset(timeouts_token)  # a unit of work that ran no statement leaves none due
    work.run_after_commit()


@contextmanager
def one_transaction() -> Iterator[UnitOfWork]:
    """Several use cases committed as one: every `unit_of_work()` entered inside joins this
    one, so the use cases run unchanged (same statements, same rules) and all of it commits
    once, or none of it does. The embedded pipeline's group commit uses it."""
    if _joined_work.get() is not None:
        raise RuntimeError("one_transaction() inside another one")
    with unit_of_work() as work:
        token = _joined_work.set(work)
        try:
            yield work
        finally:
            _joined_work.reset(token)


def read_alone(statement: Executable) -> list[Row[Any]]:
    """Run one read outside any transaction: on Postgres one round trip (a connection of the
    pool in autocommit: no BEGIN before it, no ROLLBACK after), for a lookup on a hot path that
    needs no snapshot shared with other reads (the API's Idempotency-Key check, once per keyed
    booking). Elsewhere it is the session's read."""
    engine = db.engine
    if engine.dialect.name != "postgresql":
        return list(db.session.execute(statement).all())
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        return list(connection.execute(statement).all())


def install_connection_check(engine: Engine, idle_s: float = limits.DATABASE_PING_AFTER_IDLE_S) -> None:
    """Check a pooled Postgres connection before each use: without a round trip, and with one
    (a ping) only when it sat idle for `idle_s` or more.

    SQLAlchemy's pool_pre_ping pings before every use: one more round trip per transaction
    (per keyed booking at the API, per batch in the bridge and the worker), paid even by
    connections handed back a millisecond ago. A server that ends a connection (a restart, a
    crash recovery, pg_terminate_backend, an idle timeout) tells the client so, a FATAL
    message and then the end of the stream, and either makes the idle socket readable: a
    look at the socket (poll, no wait) finds it at once. What it cannot see (a host gone
    silently) a connection idle that long is pinged for. One that fails either check is
    replaced (DisconnectionError makes the pool connect afresh); one in use when the server
    went away fails its next statement, which invalidates the pool's connections, and its use
    case answers 503 or retries as for any other database error."""

    @sa_event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: object, record: ConnectionPoolEntry) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @sa_event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, _proxy: object) -> None:
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        if checked_in_at is None:
            return  # just connected
        if server_hung_up(dbapi_connection):
            raise DisconnectionError("the server ended this idle connection")
        if time.monotonic() - checked_in_at < idle_s:
            return  # in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)  # as pool_pre_ping does (outside a transaction)
        except Exception as error:  # any failure: the pool replaces this connection
            raise DisconnectionError("idle connection no longer usable") from error


def server_hung_up(dbapi_connection: DBAPIConnection) -> bool:
    """The server wrote to, or closed, a connection nobody is using: between transactions a
    live Postgres backend sends nothing (this app never LISTENs), so anything there is its
    goodbye. A look, not a wait: poll with a zero timeout."""
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


_CHECKED_IN_AT = "atomicseats_checked_in_at"


def install_sqlite_pragmas(engine: Engine) -> None:
    """Make pysqlite leave transactions to us, then BEGIN IMMEDIATE for units of work.

    WAL with synchronous=FULL: every commit waits for the WAL to reach the disk (fsync).
    NORMAL (WAL's usual partner) skips that wait and stays consistent, but a power cut can
    then take back the last commits, and a booking the guest was told is confirmed must
    survive one. Its price (one fsync per commit) is what the embedded pipeline's group
    commit shares among every booking of a batch."""

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {limits.STATEMENT_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @sa_event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if _sqlite_begin_immediate.get() else "BEGIN")
