"""A request's status follows its seats (issue 8 points 4 and 5), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from atomicseats.errors import Conflict, NotFound
from atomicseats.extensions import db
from atomicseats.models import BookingRequest, Event, OutboxMessage, User, WaitlistEntry
from atomicseats.services import audit, booking, events
from atomicseats.services.ports import adapters
from tests.helpers import accepted, account, create_event, unchanged


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


# --- cancelling means giving up (point 5) -----------------------------------------------


def bookings_of(request_id: str) -> list[int]:
    db.session.rollback()
    return booking._status_of(booking._find_request(request_id)).booking_ids


def test_cancelling_a_partial_requests_booking_withdraws_its_remainder_and_serves_the_next_in_line(app, sale):
    """Today the guest is promoted back into the seats they just gave up."""
    event_id, guests = sale
    holder, guest, next_in_line = guests
    decide(event_id, (holder.id, 2))
    (partial_id,) = decide(event_id, (guest.id, 4))  # 2 confirmed, 2 waiting at the head
    (next_id,) = decide(event_id, (next_in_line.id, 2))
    assert state(partial_id) == ("partial", 2, 2, 0, None)
    assert state(next_id) == ("waitlisted", 0, 2, 0, None)

    result = booking.cancel_bookings(guest.id, event_id, bookings_of(partial_id)[0], False)

    assert (result.seats_freed, result.bookings_cancelled, result.seats_withdrawn) == (2, 1, 2)
    assert state(partial_id) == ("cancelled", 2, 0, 2, "withdrawn")
    assert len(bookings_of(partial_id)) == 1  # not promoted into the seats it gave back
    assert state(next_id) == ("confirmed", 2, 0, 0, None)
    entry = db.session.execute(
        select(WaitlistEntry).join(BookingRequest).where(BookingRequest.request_id == partial_id)
    ).scalar_one()
    assert entry.status == "cancelled"
    assert adapters().waitlist.load(event_id) == {}  # the mirror (made with the event) lost the withdrawn entry
    assert audit.run_audit().is_clean


def test_cancelling_one_of_two_bookings_keeps_the_other_and_reads_partial(app, sale):
    event_id, guests = sale
    holder, guest, next_in_line = guests
    decide(event_id, (holder.id, 1), (holder.id, 3))
    (request_id,) = decide(event_id, (guest.id, 4))  # waits for 4
    (next_id,) = decide(event_id, (next_in_line.id, 1))
    booking.cancel_bookings(holder.id, event_id, None, False)  # frees 3: promoted 3 of 4
    booking.cancel_bookings(holder.id, event_id, None, False)  # frees 1: promoted the 4th
    assert state(request_id) == ("confirmed", 4, 0, 0, None)
    assert len(bookings_of(request_id)) == 2
    decide(event_id, (holder.id, 1))  # waits behind next_in_line

    booking.cancel_bookings(guest.id, event_id, bookings_of(request_id)[1], False)  # gives 1 back

    assert state(request_id) == ("partial", 4, 0, 1, "withdrawn")
    assert state(next_id) == ("confirmed", 1, 0, 0, None)
    assert audit.run_audit().is_clean


def test_cancel_all_gives_back_every_seat_and_the_waiting_remainder(app, sale):
    event_id, guests = sale
    holder, guest, next_in_line = guests
    decide(event_id, (holder.id, 3))
    (request_id,) = decide(event_id, (guest.id, 3))  # 1 confirmed, 2 waiting
    (next_id,) = decide(event_id, (next_in_line.id, 1))

    result = booking.cancel_bookings(guest.id, event_id, None, True)

    assert (result.seats_freed, result.waitlist_entries_cancelled, result.seats_withdrawn) == (1, 1, 2)
    assert state(request_id) == ("cancelled", 1, 0, 1, "withdrawn")
    assert state(next_id) == ("confirmed", 1, 0, 0, None)
    assert audit.run_audit().is_clean


# --- leaving the waitlist ------------------------------------------------------------------


def test_leaving_the_waitlist_keeps_the_confirmed_seats(app, sale):
    event_id, guests = sale
    holder, guest, behind = guests
    decide(event_id, (holder.id, 2))
    (request_id,) = decide(event_id, (guest.id, 4))
    (behind_id,) = decide(event_id, (behind.id, 1))
    assert booking._status_of(booking._find_request(behind_id)).waitlist_position == 2

    withdrawal = booking.leave_waitlist(guest.id, request_id)

    assert withdrawal.seats_withdrawn == 2
    assert (withdrawal.request.status, withdrawal.request.seats_held, withdrawal.request.waitlist_position) == (
        "partial",
        2,
        None,
    )
    assert state(request_id) == ("partial", 2, 0, 0, "withdrawn")
    assert booking._status_of(booking._find_request(behind_id)).waitlist_position == 1
    assert db.session.get(Event, event_id).reserved_seats == 4  # nothing freed, nothing promoted
    assert list(adapters().waitlist.load(event_id)) == [entry_id_of(behind_id)]  # the mirror, made with the event
    assert audit.run_audit().is_clean


def entry_id_of(request_id: str) -> int:
    return db.session.execute(
        select(WaitlistEntry.id).join(BookingRequest).where(BookingRequest.request_id == request_id)
    ).scalar_one()


def test_leaving_with_nothing_confirmed_cancels_the_request(app, sale):
    event_id, guests = sale
    decide(event_id, (guests[0].id, 4))
    (request_id,) = decide(event_id, (guests[1].id, 2))

    assert booking.leave_waitlist(guests[1].id, request_id).seats_withdrawn == 2

    assert state(request_id) == ("cancelled", 0, 0, 0, "withdrawn")
    assert audit.run_audit().is_clean
    with unchanged(), pytest.raises(Conflict):  # nothing waits any more
        booking.leave_waitlist(guests[1].id, request_id)


def test_leaving_someone_elses_or_an_unknown_waitlist_place_is_not_found(app, sale):
    event_id, guests = sale
    decide(event_id, (guests[0].id, 4))
    (request_id,) = decide(event_id, (guests[1].id, 2))
    for user_id, some_request_id in ((guests[2].id, request_id), (guests[1].id, str(uuid.uuid4())), (1, "x")):
        with unchanged(), pytest.raises(NotFound):
            booking.leave_waitlist(user_id, some_request_id)
    assert state(request_id) == ("waitlisted", 0, 2, 0, None)


def test_a_confirmed_request_has_nothing_to_withdraw(app, sale):
    event_id, guests = sale
    (request_id,) = decide(event_id, (guests[0].id, 2))
    with unchanged(), pytest.raises(Conflict):
        booking.leave_waitlist(guests[0].id, request_id)


# --- deleting the event ------------------------------------------------------------------


def test_deleting_the_event_cancels_every_request_holding_or_waiting(app, client, sale):
    event_id, guests = sale
    confirmed_id, partial_id, waiting_id = decide(event_id, (guests[0].id, 2), (guests[1].id, 3), (guests[2].id, 1))
    pending = accepted(guests[0].id, event_id, 1)
    booking.record_requests([pending])  # recorded, not yet decided
    pending_id = pending.request_id
    host = db.session.get(User, db.session.get(Event, event_id).host_id)

    events.delete_event(host, event_id)

    assert state(confirmed_id) == ("cancelled", 2, 0, 2, "event_deleted")
    assert state(partial_id) == ("cancelled", 2, 0, 2, "event_deleted")
    assert state(waiting_id) == ("cancelled", 0, 0, 0, "event_deleted")
    booking.allocate_pending(event_id)
    assert state(pending_id) == ("rejected", 0, 0, 0, "event_deleted")
    statuses = db.session.execute(select(WaitlistEntry.status)).scalars().all()
    assert statuses == ["cancelled", "cancelled"]
    assert audit.run_audit().is_clean


# --- the e-mails say the request's state ---------------------------------------------------


def payloads(kind: str) -> list[dict]:
    db.session.rollback()
    rows = db.session.execute(
        select(OutboxMessage.payload).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)
    )
    return [json.loads(payload) for payload in rows.scalars()]


def test_the_e_mails_report_the_requests_new_state(app, sale):
    event_id, guests = sale
    holder, guest, other = guests
    decide(event_id, (holder.id, 2), (holder.id, 2))
    (request_id,) = decide(event_id, (guest.id, 3))
    (other_id,) = decide(event_id, (other.id, 1))

    booking.cancel_bookings(holder.id, event_id, None, False)  # 2 of 3 promoted
    (promoted,) = payloads("booking.promoted")
    assert (promoted["requestStatus"], promoted["seatsHeld"], promoted["seatsStillWaitlisted"]) == ("partial", 2, 1)
    assert promoted["requestStatus"] == state(request_id)[0]

    booking.cancel_bookings(guest.id, event_id, None, False)  # gives back 2, withdraws the third
    (cancelled,) = [payload for payload in payloads("booking.cancelled") if payload.get("requestId") == request_id]
    assert (cancelled["requestStatus"], cancelled["seatsHeld"], cancelled["seatsWithdrawn"]) == ("cancelled", 0, 1)
    assert state(request_id)[0] == "cancelled"
    assert state(other_id)[0] == "confirmed"  # the next in line got a freed seat
    assert payloads("booking.promoted")[-1]["requestId"] == other_id


def test_leaving_the_waitlist_sends_one_e_mail_with_the_state(app, sale):
    event_id, guests = sale
    decide(event_id, (guests[0].id, 3))
    (request_id,) = decide(event_id, (guests[1].id, 2))
    booking.leave_waitlist(guests[1].id, request_id)
    (withdrawn,) = payloads("booking.withdrawn")
    assert (
        withdrawn["requestId"],
        withdrawn["requestStatus"],
        withdrawn["seatsWithdrawn"],
        withdrawn["seatsHeld"],
    ) == (
        request_id,
        "partial",
        1,
        1,
    )


# --- audit -----------------------------------------------------------------------------------


def violations_of(invariant: str) -> list[str]:
    return [str(violation) for violation in audit.run_audit().violations if violation.invariant == invariant]


def test_audit_reports_seats_cancelled_that_disagree_with_the_cancelled_bookings(app, sale):
    event_id, guests = sale
    (request_id,) = decide(event_id, (guests[0].id, 2))
    booking.cancel_bookings(guests[0].id, event_id, None, False)
    assert violations_of("3-request-state") == []
    db.session.execute(sa.update(BookingRequest).values(seats_cancelled=1))
    db.session.commit()
    assert f"[3-request-state] request {request_id}: seats_cancelled=1 but its cancelled bookings hold 2" in (
        violations_of("3-request-state")
    )


@pytest.mark.parametrize(
    ("wrong_status", "seats_say"),
    [("waitlisted", "partial"), ("confirmed", "partial"), ("rejected", "partial")],
)
def test_audit_reports_a_status_that_does_not_follow_the_seats(app, sale, wrong_status, seats_say):
    event_id, guests = sale
    decide(event_id, (guests[0].id, 2))
    (request_id,) = decide(event_id, (guests[1].id, 4))  # partial: 2 confirmed, 2 waiting
    assert violations_of("3-request-state") == []
    db.session.execute(
        sa.update(BookingRequest).where(BookingRequest.request_id == request_id).values(status=wrong_status)
    )
    db.session.commit()
    (violation,) = violations_of("3-request-state")
    assert violation.startswith(
        f"[3-request-state] request {request_id}: status {wrong_status} but its seats say {seats_say}"
    )


def test_audit_reports_a_withdrawn_request_left_rejected(app, sale):
    event_id, guests = sale
    decide(event_id, (guests[0].id, 4))
    (request_id,) = decide(event_id, (guests[1].id, 2))
    booking.leave_waitlist(guests[1].id, request_id)
    assert violations_of("3-request-state") == []
    db.session.execute(
        sa.update(BookingRequest).where(BookingRequest.request_id == request_id).values(status="rejected")
    )
    db.session.commit()
    (violation,) = violations_of("3-request-state")
    assert "status rejected but its seats say cancelled" in violation
    assert "withdrawn=True" in violation


def test_cancel_all_tells_a_guest_whose_waiting_place_had_no_booking(app, sale):
    event_id, guests = sale
    decide(event_id, (guests[0].id, 4))
    (request_id,) = decide(event_id, (guests[1].id, 2))  # waits, holds nothing

    booking.cancel_bookings(guests[1].id, event_id, None, True)

    (withdrawn,) = payloads("booking.withdrawn")
    assert (withdrawn["requestId"], withdrawn["requestStatus"], withdrawn["seatsWithdrawn"]) == (
        request_id,
        "cancelled",
        2,
    )
    assert state(request_id) == ("cancelled", 0, 0, 0, "withdrawn")
    assert payloads("booking.cancelled") == []
