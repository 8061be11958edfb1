"""Fixtures: apps from the factory on SQLite and on the real PostgreSQL that `make test` starts.

Backends come from ATOMICSEATS_TEST_BACKENDS (default "sqlite,postgres"). A backend
that is asked for but not reachable FAILS the tests that use it: a skipped suite
is a failed suite. Redis is likewise required where a test asks for it.

`make test` runs the suite in TEST_WORKERS processes (pytest-xdist, default 2): each has a
PostgreSQL database of its own (`postgres_database`) and a Redis database of its own (below);
the tests that need the full-mode stack (one per pytest process: tests/e2e/stack.py) all run
in one of them (`pytest_xdist_make_scheduler` below), so one stack starts.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask_migrate import upgrade

from atomicseats import create_app
from atomicseats.extensions import db

# The full-mode platform (session fixture `platform`): one stack per pytest process, shared by
# tests/e2e and the browser tests' "pipeline" server, started only if a test asks for it.
pytest_plugins = ("tests.e2e.stack",)

REPO_ROOT = Path(__file__).resolve().parent.parent
BACKENDS = [name.strip() for name in os.environ.get("ATOMICSEATS_TEST_BACKENDS", "sqlite,postgres").split(",")]
# Cheap hashing in tests only: production uses argon2's defaults.
FAST_HASHING = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024, "ARGON2_PARALLELISM": 1}


FULL_STACK_GROUP = "full-mode-stack"


def pytest_configure(config) -> None:
    """A test process of pytest-xdist (PYTEST_XDIST_WORKER gw0, gw1, ...) takes the Redis
    database that many after the one `make test` gave the suite: the tests flush theirs."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    url = os.environ.get("TEST_REDIS_URL", "").strip()
    if worker.startswith("gw") and url:
        os.environ["TEST_REDIS_URL"] = redis_database_after(url, int(worker[2:]))


def redis_database_after(url: str, offset: int) -> str:
    """The same Redis server's database `offset` numbers after the URL's (0 when it names none)."""
    parts = urlsplit(url)
    number = int(parts.path.strip("/") or 0) + offset
    return urlunsplit(parts._replace(path=f"/{number}"))


def needs_full_stack(nodeid: str) -> bool:
    """The end-to-end tests and the browser tests on the "pipeline" server use the stack."""
    if nodeid.startswith("tests/e2e/"):
        return True
    return nodeid.startswith("tests/browser/") and re.search(r"[\[-]pipeline[\]-]", nodeid) is not None


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # a hook of pytest-xdist's
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's load scheduling, with every test of the full-mode stack in one unit of
    work (one process). Its own `xdist_group` marks cannot do it with pytest 9: the group
    rides on a node id xdist 3.8 can no longer change."""
    from xdist.scheduler import LoadScopeScheduling

    class FullStackTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return FULL_STACK_GROUP if needs_full_stack(nodeid) else nodeid

    return FullStackTogether(config, log)


def pytest_collection_modifyitems(config, items) -> None:
    """A test that asks for the stack by fixture must be one the scheduler keeps together."""
    for item in items:
        if {"platform", "pipeline_server"} & set(getattr(item, "fixturenames", ())) and not needs_full_stack(
            item.nodeid
        ):
            raise pytest.UsageError(f"{item.nodeid} uses the full-mode stack: conftest.needs_full_stack must say so")


def require_env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        pytest.fail(f"{name} is not set: run the suite with `make test`, which starts the real services")
    return value


def make_app(database_url: str, **overrides) -> Flask:
    config = {"SQLALCHEMY_DATABASE_URI": database_url, **FAST_HASHING, **overrides}
    return create_app("testing", overrides=config)


@pytest.fixture(autouse=True)
def no_event_loop_left_running(request) -> Iterator[None]:
    """Playwright's sync API (the browser tests' driver, one per test process) runs its event
    loop in a greenlet of the main thread, and that loop stays registered as the thread's
    running loop in between: a later test of the same process that calls `asyncio.run` was
    refused ("cannot be called from a running event loop"; CI, when xdist ordered a browser
    test first). Such a test starts with no loop registered; the driver's is put back after
    it. A test that drives the browser keeps it (its calls switch into that loop)."""
    left = asyncio.events._get_running_loop()
    if left is None or "browser" in request.fixturenames:
        yield
        return
    asyncio.events._set_running_loop(None)
    try:
        yield
    finally:
        asyncio.events._set_running_loop(left)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """Migrate once into a template file; each test copies it (fast, and schema from migrations)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    app = make_app(f"sqlite:///{path}")
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return path


@contextmanager
def new_postgres_database(prefix: str) -> Iterator[str]:
    """An empty database of its own on the server `make test` started (its URL), dropped after."""
    server_url = require_env("TEST_DATABASE_URL")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh database for this test session on the server `make test` started, migrated once."""
    with new_postgres_database("atomicseats_test") as url:
        app = make_app(url)
        with app.app_context():
            upgrade()
            db.engine.dispose()
        yield url


def _truncate_postgres(app: Flask) -> None:
    with app.app_context():
        tables = ", ".join(f'"{table.name}"' for table in db.metadata.sorted_tables)
        with db.engine.begin() as connection:
            connection.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


def flush_test_redis(app: Flask) -> None:
    """Event ids restart with every test database: stale cache entries must not survive.
    Only the suite's own Redis database is flushed (an app pointed elsewhere, e.g. at a
    closed port to play an outage, has nothing of ours to lose)."""
    url = app.config.get("REDIS_URL")
    if url and url == os.environ.get("TEST_REDIS_URL", "").strip():
        client = redis.Redis.from_url(url)
        client.flushdb()
        client.close()


@contextmanager
def fresh_app(database_url: str, *, hold_context: bool = True, empty: bool = True, **overrides) -> Iterator[Flask]:
    """THE way the suite makes an app for a test (the `app` fixture and every variant use it):
    from the factory with `overrides`, on an emptied database (Postgres truncated; a SQLite
    file is a fresh copy already) and an emptied test Redis, inside an app context unless
    `hold_context=False` (then each request pushes its own, as in production). On the way
    out the session is removed and the engine's connections closed."""
    application = make_app(database_url, **overrides)
    if empty:
        if database_url.startswith("postgresql"):
            _truncate_postgres(application)
        flush_test_redis(application)
    try:
        if hold_context:
            with application.app_context():
                yield application
                db.session.remove()
        else:
            yield application
    finally:
        with application.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "atomicseats.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    if request.param == "postgres":
        return request.getfixturevalue("postgres_database")
    raise pytest.UsageError(f"unknown backend {request.param!r} in ATOMICSEATS_TEST_BACKENDS")


@pytest.fixture
def postgres_url(request) -> str:
    """For tests that only make sense on Postgres (row locks across connections)."""
    return request.getfixturevalue("postgres_database")


@pytest.fixture
def redis_url() -> str:
    return require_env("TEST_REDIS_URL")


@pytest.fixture
def app(database_url) -> Iterator[Flask]:
    with fresh_app(database_url) as application:
        yield application


@pytest.fixture
def client(app):
    return app.test_client()
