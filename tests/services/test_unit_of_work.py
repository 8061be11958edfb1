"""Postgres connections and transactions (services/unit_of_work.py): a write transaction bounds
its waits (lock_timeout and statement_timeout set for it alone, in its first statement, ending
with it); a pooled connection is checked before use only after it sat idle."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from atomicseats import PIPELINE_PROCESS
from atomicseats.domain import limits
from atomicseats.extensions import db
from atomicseats.services.unit_of_work import install_idle_ping, release_session, unit_of_work
from tests.conftest import fresh_app


def test_a_write_transaction_bounds_its_waits_and_only_its_own(postgres_url):
    timeouts = text(  # in milliseconds, the unit both settings are kept in
        "SELECT max(setting) FILTER (WHERE name = 'lock_timeout'),"
        " max(setting) FILTER (WHERE name = 'statement_timeout') FROM pg_settings"
    )
    with fresh_app(postgres_url):
        defaults = db.session.execute(timeouts).one()
        with unit_of_work() as work:
            inside = work.session.execute(timeouts).one()
        after = db.session.execute(timeouts).one()
    assert tuple(inside) == (str(limits.LOCK_TIMEOUT_MS), str(limits.STATEMENT_TIMEOUT_MS))
    assert tuple(after) == tuple(defaults) != tuple(inside)  # SET LOCAL: the next transaction has the server's own


def _backend_pid(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _pool_of_one(postgres_url: str, idle_s: float):
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0)
    install_idle_ping(engine, idle_s)
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


def test_an_idle_connection_the_server_dropped_is_replaced_before_use(postgres_url):
    engine, pings = _pool_of_one(postgres_url, idle_s=0.2)
    try:
        dropped = _backend_pid(engine)
        _terminate(postgres_url, dropped)  # as a database restart does to every connection
        time.sleep(0.3)  # idle longer than idle_s
        assert _backend_pid(engine) != dropped  # checked, found dead, replaced: the use case never saw it
        assert len(pings) == 1
    finally:
        engine.dispose()


def test_negative_control_without_the_check_the_dropped_connection_fails_its_next_use(postgres_url):
    engine, pings = _pool_of_one(postgres_url, idle_s=60)  # not idle long enough to be checked
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


def test_a_pipeline_process_checks_only_idle_connections_and_the_api_every_one(postgres_url):
    """The bridge and the Celery workers (PIPELINE_PROCESS) retry whatever fails: no ping before
    each batch. The API pings before every use: a connection dropped between two requests is
    replaced (tests/api/test_database_outage.py)."""
    with fresh_app(postgres_url):
        assert db.engine.pool._pre_ping is True
    with fresh_app(postgres_url, **PIPELINE_PROCESS):
        assert db.engine.pool._pre_ping is False
        dropped = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        release_session()
        _terminate(postgres_url, dropped)
        time.sleep(limits.DATABASE_PING_AFTER_IDLE_S + 0.1)
        assert db.session.execute(text("SELECT pg_backend_pid()")).scalar_one() != dropped
