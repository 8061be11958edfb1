"""Postgres connections and transactions (services/unit_of_work.py): a write transaction bounds
its waits (lock_timeout and statement_timeout set for it alone, sent with its first statement, ending
with it); a pooled connection is checked before use, with a round trip only after it sat idle."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

from atomicseats.domain import limits
from atomicseats.extensions import db
from atomicseats.services import unit_of_work as unit_of_work_module
from atomicseats.services.unit_of_work import UnitOfWork, install_connection_check, release_session, unit_of_work
from tests.conftest import fresh_app

TIMEOUTS = text(  # in milliseconds, the unit both settings are kept in
    "SELECT max(setting) FILTER (WHERE name = 'lock_timeout'),"
    " max(setting) FILTER (WHERE name = 'statement_timeout') FROM pg_settings"
)


def test_a_write_transaction_bounds_its_waits_and_only_its_own(postgres_url):
    with fresh_app(postgres_url):
        defaults = db.session.execute(TIMEOUTS).one()
        with unit_of_work() as work:
            inside = work.session.execute(TIMEOUTS).one()
        after = db.session.execute(TIMEOUTS).one()
    assert tuple(inside) == (str(limits.LOCK_TIMEOUT_MS), str(limits.STATEMENT_TIMEOUT_MS))
    assert tuple(after) == tuple(defaults) != tuple(inside)  # SET LOCAL: the next transaction has the server's own


def _sent(engine, statements: list[str]):
    """Remember each statement as it went to the server."""

    def remember(_connection, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(engine, "after_cursor_execute", remember)
    return lambda: event.remove(engine, "after_cursor_execute", remember)


def test_the_timeouts_ride_on_the_transactions_first_statement_no_round_trip_of_their_own(postgres_url):
    statements: list[str] = []
    with fresh_app(postgres_url):
        stop = _sent(db.engine, statements)
        try:
            with unit_of_work() as work:
                work.session.execute(text("SELECT 1"))
                inside = work.session.execute(TIMEOUTS).one()
        finally:
            stop()
    first, second = statements  # two statements, two round trips
    assert first.startswith("SELECT set_config('lock_timeout'") and first.endswith("; SELECT 1")
    assert "set_config" not in second
    assert tuple(inside) == (str(limits.LOCK_TIMEOUT_MS), str(limits.STATEMENT_TIMEOUT_MS))


def test_a_first_statement_sent_in_batches_gets_the_timeouts_sent_alone_before_it(postgres_url):
    with fresh_app(postgres_url):
        defaults = db.session.execute(TIMEOUTS).one()
        with unit_of_work() as work:
            work.session.execute(text("SELECT CAST(:x AS int)"), [{"x": 1}, {"x": 2}])  # an executemany
            inside = work.session.execute(TIMEOUTS).one()
    assert tuple(inside) == (str(limits.LOCK_TIMEOUT_MS), str(limits.STATEMENT_TIMEOUT_MS)) != tuple(defaults)


def test_a_unit_of_work_without_statements_leaves_no_timeouts_to_the_next_read(postgres_url):
    with fresh_app(postgres_url):
        defaults = db.session.execute(TIMEOUTS).one()
        release_session()
        with unit_of_work():
            pass
        after = db.session.execute(TIMEOUTS).one()
    assert tuple(after) == tuple(defaults)


def _backend_pid(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _pool_of_one(postgres_url: str, idle_s: float):
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0)
    install_connection_check(engine, idle_s)
    pings = []
    ping = engine.dialect.do_ping

    def counted_ping(dbapi_connection):
        pings.append(dbapi_connection)
        return ping(dbapi_connection)

    engine.dialect.do_ping = counted_ping  # the real ping, counted
    return engine, pings


def test_a_connection_in_use_a_moment_ago_is_not_pinged(postgres_url):
    engine, pings = _pool_of_one(postgres_url, idle_s=60)
    try:
        first = _backend_pid(engine)
        assert [_backend_pid(engine) for _ in range(5)] == [first] * 5  # the same connection each time
        assert pings == []  # and no round trip before any of its transactions
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("idle_s", "idle_for_s"),
    [(0.2, 0.3), (60, 0)],
    ids=["idle-long-enough-to-be-pinged", "in-use-a-moment-ago"],
)
def test_a_connection_the_server_dropped_is_replaced_before_use_without_a_round_trip(postgres_url, idle_s, idle_for_s):
    engine, pings = _pool_of_one(postgres_url, idle_s=idle_s)
    try:
        dropped = _backend_pid(engine)
        _terminate(postgres_url, dropped)  # as a database restart does to every connection
        time.sleep(idle_for_s)
        assert _backend_pid(engine) != dropped  # found dead, replaced: the use case never saw it
        assert pings == []  # the server's goodbye was on the socket: no ping was needed to find out
    finally:
        engine.dispose()


def test_an_idle_connection_is_pinged_and_a_fresh_one_is_not(postgres_url):
    engine, pings = _pool_of_one(postgres_url, idle_s=0.2)
    try:
        first = _backend_pid(engine)
        assert pings == []  # just connected
        time.sleep(0.3)
        assert _backend_pid(engine) == first  # alive: kept
        assert len(pings) == 1
    finally:
        engine.dispose()


def test_negative_control_without_the_check_the_dropped_connection_fails_its_next_use(postgres_url, monkeypatch):
    engine, pings = _pool_of_one(postgres_url, idle_s=60)  # not idle long enough to be pinged
    monkeypatch.setattr(unit_of_work_module, "server_hung_up", lambda _connection: False)  # the socket unread
    try:
        dropped = _backend_pid(engine)
        _terminate(postgres_url, dropped)
        with pytest.raises(OperationalError):
            _backend_pid(engine)
        assert _backend_pid(engine) != dropped  # the failure invalidated it: the next use reconnects
        assert pings == []
    finally:
        engine.dispose()


def _terminate(postgres_url: str, backend_pid: int) -> None:
    admin = create_engine(postgres_url, poolclass=NullPool)
    try:
        with admin.connect() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_pid}).scalar_one()
        deadline = time.monotonic() + 5
        with admin.connect() as connection:
            while connection.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": backend_pid}
            ).scalar_one():
                assert time.monotonic() < deadline, "the backend did not end"
                time.sleep(0.02)
    finally:
        admin.dispose()


def test_every_process_checks_its_connections_without_pinging_each_use(postgres_url):
    """The API, the bridge and the Celery workers alike: no ping before each transaction (a
    round trip per keyed booking at the API), yet a connection dropped between two requests is
    replaced, not answered with a 503 (tests/api/test_database_outage.py)."""
    with fresh_app(postgres_url):
        assert db.engine.pool._pre_ping is False
        dropped = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        release_session()
        _terminate(postgres_url, dropped)
        assert db.session.execute(text("SELECT pg_backend_pid()")).scalar_one() != dropped


# --- a statement executed while Python builds the next one (UnitOfWork.meanwhile) -------------

SLOW_SEVEN = text("SELECT 7 FROM pg_sleep(0.3)")


def test_a_statement_runs_in_the_background_while_the_block_runs_and_is_done_after_it(postgres_url):
    with fresh_app(postgres_url), unit_of_work() as work:
        with work.meanwhile(SLOW_SEVEN, {}, in_background=True) as aside:
            running_meanwhile = aside.is_alive()
        assert not aside.is_alive()
        assert aside.result().scalar_one() == 7
        work.session.execute(text("SELECT 1"))  # the session is the unit of work's again
    assert running_meanwhile


def test_the_background_statements_error_is_raised_on_leaving_the_block_and_rolls_back_the_unit(postgres_url):
    with fresh_app(postgres_url):
        with pytest.raises(DBAPIError, match="division by zero"), unit_of_work() as work:
            work.session.execute(text("CREATE TABLE written_before (x integer)"))
            with work.meanwhile(text("SELECT 1 / 0 FROM pg_sleep(0.1)"), {}, in_background=True):
                pass  # result() is never asked for: the error comes all the same
        with unit_of_work() as work:  # nothing of the failed unit stayed, and the session works
            assert work.session.execute(text("SELECT to_regclass('written_before')")).scalar_one() is None


def test_an_error_in_the_block_waits_for_the_statement_before_the_unit_rolls_back(postgres_url):
    with fresh_app(postgres_url):
        with (
            pytest.raises(RuntimeError, match="building the rows failed"),
            unit_of_work() as work,
            work.meanwhile(SLOW_SEVEN, {}, in_background=True) as aside,
        ):
            raise RuntimeError("building the rows failed")
        assert not aside.is_alive()
        with unit_of_work() as work:
            assert work.session.execute(text("SELECT 1")).scalar_one() == 1


def test_a_small_batchs_statement_or_sqlites_runs_first_in_line(database_url):
    with fresh_app(database_url), unit_of_work() as work:
        in_line = [False] if work.is_postgres else [False, True]  # SQLite: in line even when asked
        for in_background in in_line:
            with work.meanwhile(text("SELECT 7"), {}, in_background=in_background) as aside:
                assert aside.result().scalar_one() == 7  # done before the block starts
                assert aside.ident is None  # no thread was started


def test_items_registered_for_one_callback_reach_it_in_one_call_at_the_last_ones_place():
    """`after_commit_each`: a transaction that decided several events stores their figures and
    announces their decisions in one call each, after everything registered before any of
    their items (each event's mirror is written before any outcome is announced)."""
    calls: list[tuple[str, object]] = []

    def store(items):
        calls.append(("store", list(items)))

    def mirror(event_name):
        calls.append(("mirror", event_name))

    def leave(items):
        calls.append(("leave", list(items)))

    def wake():
        calls.append(("wake", None))

    work = UnitOfWork(session=None)  # the effects alone: no statement runs
    for event_name in ("a", "b"):  # as _register_effects does for each event of a transaction
        work.after_commit_each(store, event_name)
        work.after_commit(mirror, event_name)
        work.after_commit_each(leave, event_name)
        work.after_commit(wake)  # a wake-up registered again runs once
    assert calls == []  # never before the commit
    work.run_after_commit()
    assert calls == [
        ("mirror", "a"),
        ("wake", None),
        ("store", ["a", "b"]),
        ("mirror", "b"),
        ("leave", ["a", "b"]),
    ]
