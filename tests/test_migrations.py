"""The migrations build the schema the models declare, and taking it down and up again keeps
every row and fills new columns from the rows there: SQLite and the real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import func, select

from atomicseats.extensions import db
from atomicseats.models import Booking, BookingRequest, Event, OutboxMessage, WaitlistEntry
from atomicseats.services import audit
from tests.conftest import BACKENDS, flush_test_redis, fresh_app, new_postgres_database
from tests.helpers import account, book, create_event

ROWS = (Booking, BookingRequest, WaitlistEntry, OutboxMessage)
# SQLite's reflection cannot read the expression indexes (lower(email), lower(username)): its
# schema comparison and its batch-mode table copies leave them to the migrations that made them.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index"),
    pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index"),
]


@pytest.fixture(params=BACKENDS)
def own_database_url(request, tmp_path) -> Iterator[str]:
    """An empty database of this test's own (its schema is taken down and up again)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    with new_postgres_database("atomicseats_migrations") as url:
        yield url


def test_the_migrated_schema_is_the_one_the_models_declare(app):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, db.metadata) == []


def row_counts() -> dict[str, int]:
    return {
        model.__tablename__: db.session.execute(select(func.count()).select_from(model)).scalar_one() for model in ROWS
    }


def test_migrating_an_events_table_down_and_up_keeps_every_row_that_refers_to_it(own_database_url):
    """SQLite alters `events` by copying it and dropping the old table: with foreign keys
    enforced that drop would cascade to every booking, request and waitlist entry."""
    with fresh_app(own_database_url, empty=False) as app:
        flush_test_redis(app)  # the cache entries of the other backend's run name the same event ids
        upgrade()
        client = app.test_client()
        host = account(client, "host")
        guests = [account(client, "guest") for _ in range(4)]
        busy_id = create_event(client, host, capacity=2)["id"]
        quiet_id = create_event(client, host, capacity=9)["id"]
        for guest in guests:
            book(client, guest, busy_id, 2)  # the first is confirmed, three wait
        book(client, guests[0], quiet_id, 1)
        before = row_counts()
        assert before["waitlist_entries"] == 3
        db.session.remove()
        downgrade(revision="0010")  # before the waitlist offers' columns of events
        upgrade()
        assert row_counts() == before
        # 0012 counted each event's waiting entries into its new column.
        lengths = dict(db.session.execute(select(Event.id, Event.waitlist_length)).tuples().all())
        assert lengths == {busy_id: 3, quiet_id: 0}
        assert audit.run_audit().is_clean


def test_the_keyed_requests_index_is_built_while_requests_are_still_recorded():
    """0014 builds its index on booking_requests CONCURRENTLY: an insert (the bridge recording
    requests) goes ahead while the build waits for a transaction that was open before it. A
    plain CREATE INDEX would queue its SHARE lock behind that transaction and every insert
    behind the SHARE lock: the insert here would time out."""
    with new_postgres_database("atomicseats_migrations") as url, fresh_app(url, empty=False) as app:
        upgrade(revision="0013")
        db.session.remove()
        engine = sa.create_engine(url)
        older, recorder = engine.connect(), engine.connect()
        try:
            older.execute(sa.text("LOCK TABLE booking_requests IN ROW EXCLUSIVE MODE"))  # an insert's lock, held open
            migration = threading.Thread(target=_upgrade_in_context, args=(app,))
            migration.start()
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watcher:
                _wait_for_index_build(watcher)
            recorder.execute(sa.text("SET lock_timeout = '3s'"))
            recorder.execute(sa.text("LOCK TABLE booking_requests IN ROW EXCLUSIVE MODE"))  # as an insert would
            recorder.commit()
            older.commit()
            migration.join(timeout=30)
            assert not migration.is_alive()
            validity = "SELECT indisvalid FROM pg_index WHERE indexrelid = CAST(:name AS regclass)"
            is_valid = older.execute(sa.text(validity), {"name": "ix_booking_requests_keyed_created_at"}).scalar_one()
            assert is_valid
        finally:
            older.close()
            recorder.close()
            engine.dispose()


def _upgrade_in_context(app) -> None:
    with app.app_context():
        upgrade()
        db.session.remove()


def _wait_for_index_build(connection, timeout_s: float = 15.0) -> None:
    """Until a CREATE INDEX on another connection waits for a lock (`connection` in autocommit:
    a transaction would see pg_stat_activity as it was when it first read it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        waiting = connection.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE query ILIKE 'CREATE INDEX%' AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
        if waiting:
            return
        time.sleep(0.05)
    raise AssertionError("the migration never started building its index")
