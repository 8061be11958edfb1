"""Taking the test PostgreSQL database away and giving it back, for the outage tests.

The database stops taking connections (ALLOW_CONNECTIONS false) and every open connection
of it is terminated, as a crash or a restart would leave them: whoever uses it meets a
refused or a dropped connection until it is allowed again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import sqlalchemy as sa


def _admin_engine(database_url: str) -> tuple[sa.Engine, str]:
    url = sa.engine.make_url(database_url)
    return sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT"), url.database


def take_down(database_url: str) -> None:
    admin, name = _admin_engine(database_url)
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            connection.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": name},
            )
    finally:
        admin.dispose()


def bring_back(database_url: str) -> None:
    admin, name = _admin_engine(database_url)
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
    finally:
        admin.dispose()


@contextmanager
def database_down(database_url: str) -> Iterator[None]:
    """The database refuses new connections and loses every open one, until the block ends."""
    take_down(database_url)
    try:
        yield
    finally:
        bring_back(database_url)


@contextmanager
def database_back_after(database_url: str, delay_s: float) -> Iterator[None]:
    """The database is down now and comes back `delay_s` later, while the block runs."""
    take_down(database_url)
    timer = threading.Timer(delay_s, bring_back, args=(database_url,))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        bring_back(database_url)


class DownAtFirstCall:
    """For a fault at an exact point of a service: calling it takes the database down, back
    `delay_s` later (the first call only; `calls` counts them all). The `with` block it
    belongs to brings the database back whatever happened in it."""

    def __init__(self, database_url: str, delay_s: float = 1.0) -> None:
        self.database_url = database_url
        self.delay_s = delay_s
        self.calls = 0
        self._outages = ExitStack()

    def __call__(self) -> None:
        if not self.calls:
            self._outages.enter_context(database_back_after(self.database_url, self.delay_s))
        self.calls += 1

    def __enter__(self) -> DownAtFirstCall:
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self._outages.close()
