"""A booking recorded and not decided at once is accepted, never refused, on real PostgreSQL.

With EMBEDDED_GROUP_COMMIT=false the embedded pipeline records a booking, then decides its
event, in two transactions. When the event's row is held past the lock timeout, the second
fails after the first committed: a 503 then told the client "not booked" about a booking that
was recorded, and its retry was a second request (the flash sale of tests/concurrency saw 201
requests for 200 bookings on a slow machine). The booking is answered `pending`; the embedded
beat's sweep decides it.
"""

from __future__ import annotations

import threading

from sqlalchemy import select

from atomicseats import tasks
from atomicseats.domain import limits
from atomicseats.extensions import db
from atomicseats.models import BookingRequest
from atomicseats.services import audit
from atomicseats.services._allocation import lock_event
from atomicseats.services.unit_of_work import unit_of_work
from atomicseats.wiring import embedded_beat_rounds
from tests.conftest import fresh_app
from tests.helpers import account, book, create_event

HELD_FOR_S = limits.LOCK_TIMEOUT_MS / 1000 + 1.5  # past the booking's wait for the row


def test_a_booking_whose_event_is_held_past_the_lock_timeout_is_pending_then_swept(postgres_url, monkeypatch):
    with fresh_app(postgres_url, EMBEDDED_GROUP_COMMIT=False) as app:
        client = app.test_client()
        host, guest = account(client, "host"), account(client, "guest")
        event_id = create_event(client, host, capacity=5)["id"]
        holding, booked = threading.Event(), threading.Event()

        def hold_the_event() -> None:
            with app.app_context(), unit_of_work() as work:
                lock_event(work, event_id)
                holding.set()
                booked.wait(HELD_FOR_S)

        holder = threading.Thread(target=hold_the_event)
        holder.start()
        try:
            assert holding.wait(5)
            answer = book(client, guest, event_id, 2)  # 202, not the lock timeout's 503
        finally:
            booked.set()
            holder.join(10)
        assert answer["status"] == "pending"

        def requests() -> list[tuple[str, str]]:
            db.session.rollback()
            rows = select(BookingRequest.request_id, BookingRequest.status).where(BookingRequest.event_id == event_id)
            return [tuple(row) for row in db.session.execute(rows)]

        assert requests() == [(answer["requestId"], "pending")]  # recorded once: nothing to send again

        monkeypatch.setattr(tasks, "STRANDED_AFTER_S", 0.0)  # the sweep takes what waits longer than this
        sweep = dict(embedded_beat_rounds())["sweep_pending"]
        with app.app_context():
            assert sweep() == 1
        assert requests() == [(answer["requestId"], "confirmed")]
        assert audit.run_audit().violations == []
