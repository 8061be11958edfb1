"""A request's status follows its seats (issue 8 points 4 and 5), on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from atomicseats.extensions import db
from atomicseats.models import BookingRequest, OutboxMessage, utcnow
from atomicseats.services import audit, booking
from atomicseats.services.contracts import AcceptedRequest
from tests.helpers import account, create_event


def accepted(user_id: int, event_id: int, seats: int) -> AcceptedRequest:
    return AcceptedRequest(str(uuid.uuid4()), user_id, event_id, seats, None, "test-correlation", utcnow())


def decide(event_id: int, *requests: tuple[int, int]) -> list[str]:
    """Record and decide (user id, seats) requests in this order; their request ids."""
    records = [accepted(user_id, event_id, seats) for user_id, seats in requests]
    booking.record_requests(records)
    booking.allocate_pending(event_id)
    return [record.request_id for record in records]


def state(request_id: str) -> tuple:
    db.session.rollback()
    row = db.session.execute(select(BookingRequest).where(BookingRequest.request_id == request_id)).scalar_one()
    return (row.status, row.seats_confirmed, row.seats_waitlisted, row.seats_cancelled, row.reason)


@pytest.fixture
def sale(client):
    host = account(client, "host")
    guests = [account(client, "guest") for _ in range(3)]
    event_id = create_event(client, host, capacity=4)["id"]
    return event_id, guests


def test_a_promoted_request_reads_partial_then_confirmed(app, sale):
    event_id, guests = sale
    holder, waiting = guests[0], guests[1]
    _, waiting_id = decide(event_id, (holder.id, 4), (waiting.id, 3))
    assert state(waiting_id) == ("waitlisted", 0, 3, 0, None)
    bookings = booking.cancel_bookings(holder.id, event_id, None, False)
    assert bookings.seats_freed == 4
    assert state(waiting_id) == ("confirmed", 3, 0, 0, None)
    assert audit.run_audit().is_clean


def test_a_partly_promoted_request_reads_partial(app, client, sale):
    event_id, guests = sale
    holder, waiting = guests[0], guests[1]
    decide(event_id, (holder.id, 2), (holder.id, 2))
    (waiting_id,) = decide(event_id, (waiting.id, 3))
    booking.cancel_bookings(holder.id, event_id, None, False)  # frees 2 of the 3 it waits for
    assert state(waiting_id) == ("partial", 2, 1, 0, None)
    assert audit.run_audit().is_clean


def test_audit_reports_a_decided_request_without_its_decision_notification(app, sale):
    event_id, guests = sale
    request_id, waiting_id = decide(event_id, (guests[0].id, 4), (guests[1].id, 1))
    booking.cancel_bookings(guests[0].id, event_id, None, False)
    assert state(waiting_id)[0] == "confirmed"  # decided waitlisted, promoted since
    assert audit.run_audit().is_clean
    db.session.execute(
        sa.delete(OutboxMessage).where(OutboxMessage.message_id.like(f"<booking.waitlisted.{waiting_id}@%"))
    )
    db.session.commit()
    violations = [str(violation) for violation in audit.run_audit().violations]
    assert violations == [f"[7-no-lost-email] request {waiting_id}: decided but no notification in the outbox"]
    assert request_id not in " ".join(violations)
