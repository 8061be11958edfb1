"""Time: sales close at the event's sales end (or start). On SQLite and PostgreSQL, with the
real Redis adapters of `make test` (availability cache, waitlist mirror).

Time passes for real: an event's sales end is set a little ahead and the test waits, or
the row's `sales_end_at` is moved into the past directly (what the clock would do).
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from atomicseats.domain import limits
from atomicseats.errors import Conflict
from atomicseats.extensions import db
from atomicseats.models import Booking, BookingRequest, Event, OutboxMessage, WaitlistEntry, utcnow
from atomicseats.services import audit, booking, sales
from atomicseats.services.ports import adapters
from tests.helpers import accepted, account, book, create_event, unchanged

SALES_END_AHEAD_S = 1.5  # how far ahead a test puts a sales end it then waits for


def end_sales(event_id: int, ago: timedelta = timedelta(0)) -> None:
    """As if the clock had passed the sales end long since: the row's sales end moves into the
    past, and the cached availability (which holds the old one) is dropped, as a sales end
    never moves by itself."""
    db.session.execute(sa.update(Event).where(Event.id == event_id).values(sales_end_at=utcnow() - ago))
    db.session.commit()
    adapters().availability.forget(event_id)


def wait_until_sales_end(*event_ids: int) -> None:
    db.session.rollback()
    deadline = max(db.session.get(Event, event_id).sales_end for event_id in event_ids)
    time.sleep(max(0.0, (deadline - utcnow()).total_seconds()) + 0.05)


def requests_by_user(event_id: int) -> dict[int, BookingRequest]:
    db.session.rollback()
    statement = select(BookingRequest).where(BookingRequest.event_id == event_id)
    return {row.user_id: row for row in db.session.execute(statement).scalars()}


def outbox_kinds(kind: str) -> list[OutboxMessage]:
    db.session.rollback()
    return list(db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == kind)).scalars())


@pytest.fixture
def people(client):
    host = account(client, "host")
    guests = [account(client, "guest") for _ in range(4)]
    return host, guests


# --- admission: refused from the cached availability, nothing recorded -----------------


def test_booking_after_the_start_or_the_sales_end_is_refused_from_the_cache(app, client, people):
    host, guests = people
    soon = (utcnow() + timedelta(seconds=SALES_END_AHEAD_S)).isoformat()
    later = (utcnow() + timedelta(days=3)).isoformat()
    starting = create_event(client, host, startsAt=soon, endsAt=later)["id"]
    ending = create_event(client, host, salesEndAt=soon)["id"]
    for event_id in (starting, ending):  # the cache holds the sales end the writer stored
        assert adapters().availability.load(event_id).sales_end_at == db.session.get(Event, event_id).sales_end
    wait_until_sales_end(starting, ending)

    for event_id in (starting, ending):
        with unchanged():
            refused = book(client, guests[0], event_id, 1, expect=409)
        assert refused["message"] == "Sales for this event have ended"
        assert "eventId" in refused["errors"]
    assert db.session.execute(select(func.count(BookingRequest.id))).scalar_one() == 0
    assert db.session.execute(select(func.count(OutboxMessage.id))).scalar_one() == 0
    assert audit.run_audit().is_clean


def test_booking_after_the_sales_end_is_refused_from_postgres_on_a_cache_miss(app, client, people):
    host, guests = people
    event_id = create_event(client, host)["id"]
    end_sales(event_id)

    with unchanged():
        book(client, guests[0], event_id, 1, expect=409)

    assert db.session.execute(select(func.count(BookingRequest.id))).scalar_one() == 0
    cached = adapters().availability.load(event_id)  # the miss was filled with the new sales end
    assert cached.sales_end_at == db.session.get(Event, event_id).sales_end


def test_a_cache_entry_from_before_the_sales_end_field_is_a_miss_and_is_replaced(app, client, people):
    host, guests = people
    event_id = create_event(client, host)["id"]
    connection = adapters().availability.client
    key = f"atomicseats:event:{event_id}:availability"
    connection.hdel(key, "sales_end_us")  # as older code wrote it
    assert adapters().availability.load(event_id) is None
    end_sales(event_id)

    with unchanged():
        book(client, guests[0], event_id, 1, expect=409)

    assert adapters().availability.load(event_id).sales_end_at == db.session.get(Event, event_id).sales_end


# --- decisions in flight at the sales end ----------------------------------------------


def test_a_request_accepted_before_the_sales_end_and_decided_after_is_rejected(app, client, people):
    host, guests = people
    event_id = create_event(client, host, capacity=5)["id"]
    request = accepted(guests[0].id, event_id, 2)
    booking.record_requests([request])  # accepted and recorded while sales were open
    end_sales(event_id)

    summary = booking.allocate_pending(event_id)

    assert (summary.requests_decided, summary.seats_confirmed, summary.reserved_seats) == (1, 0, 0)
    row = requests_by_user(event_id)[guests[0].id]
    assert (row.status, row.reason, row.seats_confirmed, row.seats_waitlisted) == ("rejected", "event_started", 0, 0)
    assert db.session.execute(select(func.count(Booking.id))).scalar_one() == 0
    assert [message.message_id for message in outbox_kinds("booking.rejected")] == [
        f"<booking.rejected.{request.request_id}@atomicseats.local>"
    ]
    assert audit.run_audit().is_clean


# --- no promotion after the sales end ---------------------------------------------------


def test_a_cancellation_after_the_sales_end_promotes_nobody_and_closes_out(app, client, people):
    host, guests = people
    event_id = create_event(client, host, capacity=2)["id"]
    book(client, guests[0], event_id, 2)
    assert book(client, guests[1], event_id, 1)["status"] == "waitlisted"
    end_sales(event_id)

    cancelled = client.delete("/api/events/book", json={"eventId": event_id}, headers=guests[0].headers)

    assert cancelled.status_code == 200, cancelled.get_json()
    db.session.rollback()
    event = db.session.get(Event, event_id)
    assert (event.reserved_seats, event.seats_left) == (0, 2)  # freed, and nobody promoted into them
    waiting = requests_by_user(event_id)[guests[1].id]
    assert (waiting.status, waiting.reason, waiting.seats_confirmed, waiting.seats_waitlisted) == (
        "rejected",
        "event_started",
        0,
        0,
    )
    assert outbox_kinds("booking.promoted") == []
    assert len(outbox_kinds("waitlist.expired")) == 1
    assert adapters().availability.load(event_id).waitlist_length == 0
    assert audit.run_audit().is_clean


def test_raising_capacity_or_reopening_after_the_sales_end_promotes_nobody(app, client, people):
    host, guests = people
    event_id = create_event(client, host, capacity=1, waitlistOpen=True)["id"]
    book(client, guests[0], event_id, 1)
    book(client, guests[1], event_id, 1)
    end_sales(event_id)

    raised = client.post("/api/events/update", json={"id": event_id, "capacity": 5}, headers=host.headers)
    reopened = client.post(f"/api/events/{event_id}/waitlist/reopen", headers=host.headers)

    assert raised.status_code == 200, raised.get_json()
    assert reopened.status_code == 200, reopened.get_json()
    assert (raised.get_json()["data"]["reservedSeats"], raised.get_json()["data"]["waitlistLength"]) == (1, 0)
    assert outbox_kinds("booking.promoted") == []
    assert requests_by_user(event_id)[guests[1].id].status == "rejected"
    assert audit.run_audit().is_clean


# --- the close-out at the sales end -----------------------------------------------------


def test_the_close_out_expires_every_waiting_entry_and_mails_each_guest_once(app, client, people, monkeypatch):
    monkeypatch.setattr(limits, "CLOSE_OUT_BATCH_MAX", 2)  # three guests wait: two batches
    host, guests = people
    event_id = create_event(client, host, capacity=3)["id"]
    other_id = create_event(client, host, capacity=1)["id"]  # sales still open: left alone
    book(client, guests[0], event_id, 2)
    partial = book(client, guests[1], event_id, 3)
    assert partial["status"] == "partial"  # 1 confirmed, 2 wait
    book(client, guests[2], event_id, 1)
    book(client, guests[3], event_id, 2)
    book(client, guests[0], other_id, 1)
    book(client, guests[1], other_id, 1)
    end_sales(event_id)

    report = sales.close_due_sales()

    assert (report.events_closed, report.entries_expired) == (1, 3)
    rows = requests_by_user(event_id)
    states = [(rows[guest.id].status, rows[guest.id].seats_waitlisted, rows[guest.id].reason) for guest in guests]
    assert states == [
        ("confirmed", 0, None),
        ("partial", 0, "event_started"),  # keeps its confirmed seat
        ("rejected", 0, "event_started"),
        ("rejected", 0, "event_started"),
    ]
    entries = db.session.execute(select(WaitlistEntry).where(WaitlistEntry.event_id == event_id)).scalars().all()
    assert {(entry.status, entry.seats_remaining) for entry in entries} == {("expired", 0)}
    expired_mail = outbox_kinds("waitlist.expired")
    assert sorted(message.user_id for message in expired_mail) == sorted(guest.id for guest in guests[1:])
    booking_ids = {message.user_id: json.loads(message.payload)["bookingIds"] for message in expired_mail}
    assert booking_ids == {guests[1].id: partial["bookingIds"], guests[2].id: [], guests[3].id: []}  # what stays held
    other_waiting = db.session.execute(select(WaitlistEntry).where(WaitlistEntry.event_id == other_id)).scalar_one()
    assert other_waiting.status == "waiting"
    assert adapters().availability.load(event_id).waitlist_length == 0
    assert adapters().waitlist.load(event_id) == {}  # the mirror, made with the event, emptied
    assert audit.run_audit().is_clean

    again = sales.close_due_sales()  # idempotent: nothing waits any more

    assert (again.events_closed, again.entries_expired) == (0, 0)
    assert len(outbox_kinds("waitlist.expired")) == 3


def test_the_close_sales_command_closes_out_due_events(app, client, people):
    host, guests = people
    event_id = create_event(client, host, capacity=1)["id"]
    book(client, guests[0], event_id, 1)
    book(client, guests[1], event_id, 1)
    end_sales(event_id)

    result = app.test_cli_runner().invoke(args=["close-sales"])

    assert result.exit_code == 0, result.output
    assert "closed out 1 event(s): 1 waiting entries expired" in result.output
    assert requests_by_user(event_id)[guests[1].id].status == "rejected"
    assert audit.run_audit().is_clean


def test_a_sales_end_moved_into_the_future_meanwhile_closes_nothing(app, client, people):
    host, guests = people
    event_id = create_event(client, host, capacity=1)["id"]
    book(client, guests[0], event_id, 1)
    book(client, guests[1], event_id, 1)

    assert sales.close_out_event(event_id) == 0

    assert requests_by_user(event_id)[guests[1].id].status == "waitlisted"


# --- the audit's time invariant ---------------------------------------------------------


def test_audit_reports_a_booking_decided_after_the_sales_end(app, client, people):
    host, guests = people
    event_id = create_event(client, host, capacity=3)["id"]
    book(client, guests[0], event_id, 1)
    created_at = db.session.execute(select(Booking.created_at)).scalar_one()
    db.session.execute(
        sa.update(Event).where(Event.id == event_id).values(sales_end_at=created_at - timedelta(seconds=1))
    )
    db.session.commit()
    adapters().availability.forget(event_id)

    invariants = [violation.invariant for violation in audit.run_audit().violations]

    assert invariants == ["8-time"]


def test_audit_reports_a_guest_still_waiting_long_after_the_sales_end(app, client, people):
    host, guests = people
    event_id = create_event(client, host, capacity=1)["id"]
    book(client, guests[0], event_id, 1)
    book(client, guests[1], event_id, 1)
    long_ago = timedelta(seconds=limits.CLOSE_OUT_GRACE_S + 120)
    db.session.execute(sa.update(Booking).values(created_at=utcnow() - long_ago))  # booked before it all
    end_sales(event_id, ago=timedelta(seconds=limits.CLOSE_OUT_GRACE_S - 60))
    assert audit.run_audit().is_clean  # within the close-out period
    end_sales(event_id, ago=timedelta(seconds=limits.CLOSE_OUT_GRACE_S + 60))

    violations = audit.run_audit().violations

    assert [violation.invariant for violation in violations] == ["8-time"]
    assert "still waiting" in violations[0].detail


def test_admission_never_reaches_the_pipeline_after_the_sales_end(app, client, people):
    """The service itself refuses (the API maps it to 409): no path records a request."""
    host, guests = people
    event_id = create_event(client, host)["id"]
    end_sales(event_id)
    with unchanged(), pytest.raises(Conflict):
        booking.submit_request(guests[0].id, event_id, 1, None, None)
    assert db.session.execute(select(func.count(BookingRequest.id))).scalar_one() == 0


def test_the_beat_task_closes_out_due_events(app, client, people):
    from atomicseats import tasks

    host, guests = people
    event_id = create_event(client, host, capacity=1)["id"]
    book(client, guests[0], event_id, 1)
    book(client, guests[1], event_id, 1)
    book(client, guests[2], event_id, 1)
    end_sales(event_id)

    assert tasks.close_sales() == 2
    assert tasks.close_sales() == 0

    assert len(outbox_kinds("waitlist.expired")) == 2
    assert audit.run_audit().is_clean


def test_admission_decides_the_sales_end_from_the_cache_alone(app, client, people):
    """The hot path reads no row: a cached sales end in the past refuses, whatever the row says
    (here the row still says next week; a real cache entry only ever holds what a commit wrote)."""
    host, guests = people
    event_id = create_event(client, host)["id"]
    cached = adapters().availability.load(event_id)
    adapters().availability.store([dataclasses.replace(cached, sales_end_at=utcnow() - timedelta(seconds=1))])

    with unchanged():
        book(client, guests[0], event_id, 1, expect=409)

    assert db.session.execute(select(func.count(BookingRequest.id))).scalar_one() == 0
    adapters().availability.store([cached])
    assert book(client, guests[0], event_id, 1)["status"] == "confirmed"
