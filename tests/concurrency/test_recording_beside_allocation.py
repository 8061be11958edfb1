"""Recording a hot event's requests runs beside its allocation, on real PostgreSQL.

The allocation holds the event row's lock for its whole transaction (services/_allocation.py
`lock_event`). The bridge's INSERT of a booking request checks its foreign key to that row,
which takes FOR KEY SHARE on it: under FOR UPDATE the recording waited for the allocation to
commit (and the next allocation for the recording), so a hot event's bridge and worker took
turns. FOR NO KEY UPDATE leaves the key share free, and still excludes every other seat change.
Negative control: the same recording beside a FOR UPDATE on the row waits for it.
"""

from __future__ import annotations

import threading
import time
import uuid

import sqlalchemy as sa
from sqlalchemy import select

from atomicseats.extensions import db
from atomicseats.models import BookingRequest, utcnow
from atomicseats.services import booking
from atomicseats.services._allocation import lock_event
from atomicseats.services.contracts import AcceptedRequest
from atomicseats.services.unit_of_work import unit_of_work
from tests.conftest import fresh_app
from tests.helpers import account, create_event

RECORDED_WITHIN_S = 1.0  # far below the lock timeout (3 s) the recording would otherwise wait for
HELD_FOR_S = 1.5


def recording_while_the_event_is_held(postgres_url: str, hold) -> tuple[float, bool]:
    """Hold the event row with `hold(work, event_id)` for HELD_FOR_S while another transaction
    records a request for the event; (seconds the recording took, whether it ended while held)."""
    with fresh_app(postgres_url) as app:
        setup = app.test_client()
        host, guest = account(setup, "host"), account(setup, "guest")
        event_id = create_event(setup, host, capacity=5)["id"]
        request = AcceptedRequest(str(uuid.uuid4()), guest.id, event_id, 1, None, None, utcnow())
        holding, released = threading.Event(), threading.Event()
        took: list[float] = []

        def allocate() -> None:
            with app.app_context(), unit_of_work() as work:
                hold(work, event_id)
                holding.set()
                time.sleep(HELD_FOR_S)
                released.set()

        def record() -> None:
            with app.app_context():
                holding.wait(5)
                started = time.monotonic()
                booking.record_requests([request])
                took.append(time.monotonic() - started)

        threads = [threading.Thread(target=allocate), threading.Thread(target=record)]
        for thread in threads:
            thread.start()
        recorder = threads[1]
        recorder.join(RECORDED_WITHIN_S)
        ended_while_held = not recorder.is_alive() and not released.is_set()
        for thread in threads:
            thread.join(10)
        recorded = db.session.execute(select(BookingRequest.request_id)).scalars().all()
        assert recorded == [request.request_id]  # recorded in the end either way
        return took[0], ended_while_held


def test_a_request_is_recorded_while_an_allocation_holds_its_event(postgres_url):
    took, ended_while_held = recording_while_the_event_is_held(postgres_url, lock_event)
    assert ended_while_held and took < RECORDED_WITHIN_S


def test_negative_control_beside_a_for_update_the_recording_waits_for_the_commit(postgres_url):
    def for_update(work, event_id: int) -> None:
        work.session.execute(sa.text("SELECT id FROM events WHERE id = :id FOR UPDATE"), {"id": event_id})

    took, ended_while_held = recording_while_the_event_is_held(postgres_url, for_update)
    assert not ended_while_held and took >= HELD_FOR_S - RECORDED_WITHIN_S
