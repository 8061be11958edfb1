"""The embedded default's periodic work (its stand-in for Celery beat), on SQLite and PostgreSQL.

Without it, a server on the embedded default would leave the waitlist of an event that
started open until some seat change touched the event: nobody would be told.
"""

from __future__ import annotations

import time

from sqlalchemy import select

from atomicseats.adapters.embedded import EmbeddedBeat
from atomicseats.extensions import db
from atomicseats.models import OutboxMessage, WaitlistEntry
from atomicseats.wiring import embedded_beat_rounds
from tests.conftest import fresh_app
from tests.helpers import book, create_event
from tests.services.test_sales_end import end_sales, people  # noqa: F401 (fixture)

BEAT_EXTENSION = "atomicseats.embedded_beat"
WAIT_S_MAX = 10.0


def wait_for(predicate) -> bool:
    deadline = time.monotonic() + WAIT_S_MAX
    while time.monotonic() < deadline:
        db.session.rollback()
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_the_beat_closes_out_a_started_event_and_sends_the_mail(app, client, people):  # noqa: F811
    host, guests = people
    event_id = create_event(client, host, capacity=1)["id"]
    book(client, guests[0], event_id, 1)
    assert book(client, guests[1], event_id, 2)["status"] == "waitlisted"
    end_sales(event_id)
    beat = EmbeddedBeat(app, interval_s=0.2, rounds=embedded_beat_rounds())
    beat.start_once()
    try:

        def closed_out_and_mailed() -> bool:
            entries = db.session.execute(select(WaitlistEntry).where(WaitlistEntry.event_id == event_id)).scalars()
            mail = db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == "waitlist.expired")).scalars()
            return [entry.status for entry in entries] == ["expired"] and [row.status for row in mail] == ["sent"]

        assert wait_for(closed_out_and_mailed)
    finally:
        beat.stop()
    assert not beat._thread.is_alive()


def test_a_served_request_starts_the_beat_once(database_url):
    with fresh_app(database_url, hold_context=False, EMBEDDED_BEAT_INTERVAL_S=60) as application:
        beat = application.extensions[BEAT_EXTENSION]
        try:
            assert beat._thread is None  # building the app (as every CLI command does) starts nothing
            client = application.test_client()
            client.get("/api/events/all")
            thread = beat._thread
            assert thread is not None and thread.is_alive()
            client.get("/api/events/all")
            assert beat._thread is thread
        finally:
            beat.stop()


def test_tests_and_a_zero_interval_run_no_beat(app):
    assert BEAT_EXTENSION not in app.extensions
