"""Fixtures: apps from the factory on SQLite and on the real PostgreSQL that `make test` starts.

Backends come from ATOMICSEATS_TEST_BACKENDS (default "sqlite,postgres"). A backend
that is asked for but not reachable FAILS the tests that use it: a skipped suite
is a failed suite. Redis is likewise required where a test asks for it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


def require_env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        pytest.fail(f"{name} is not set: run the suite with `make test`, which starts the real services")
    return value


def make_app(database_url: str, **overrides) -> Flask:
    config = {"SQLALCHEMY_DATABASE_URI": database_url, **FAST_HASHING, **overrides}
    return create_app("testing", overrides=config)


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
