"""Booking use cases: accept a request, record it, allocate, cancel, report outcomes.

The API accepts a request (`submit_request`) and hands it to the pipeline adapter.
Whatever the pipeline (in-process, or Kafka → bridge → Celery), the request is
recorded by `record_requests` and decided by `allocate_pending`, so both modes run
the same transactions and the same pure allocator.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql, sqlite

from atomicseats.adapters import adapters
from atomicseats.domain import allocator, limits
from atomicseats.errors import Conflict, InvalidInput, NotFound
from atomicseats.extensions import db
from atomicseats.models import Booking, BookingRequest, Event, WaitlistEntry, utcnow
from atomicseats.services._allocation import availability_of, lock_event, settle_event, waitlist_totals
from atomicseats.services._outbox import Notification, outbox_row
from atomicseats.services._work import unit_of_work
from atomicseats.services.contracts import AcceptedRequest, AllocationSummary

log = logging.getLogger(__name__)

# Request ids derived from (user, Idempotency-Key) are the same on every retry, so a
# retried request can never become a second request anywhere in the pipeline.
IDEMPOTENCY_NAMESPACE = uuid.UUID("5d6c43f0-8a3e-4f0b-9d59-3f1c2b7a9e10")
WAIT_POLL_INTERVAL_S = 0.05
ARRIVAL_LOCK_NAMESPACE = 0x5EA7  # advisory-lock namespace for "recording arrivals of an event"
ADVISORY_KEY_MODULUS = 2**31 - 1  # the two-key form takes int4 keys; a collision only over-serializes


@dataclass(frozen=True)
class RequestStatus:
    request_id: str
    event_id: int
    status: str
    seats_requested: int
    seats_confirmed: int
    seats_waitlisted: int
    booking_ids: list[int]
    waitlist_position: int | None
    reason: str | None
    created_at: datetime | None
    decided_at: datetime | None


@dataclass(frozen=True)
class CancelResult:
    event_id: int
    seats_freed: int
    bookings_cancelled: int
    waitlist_entries_cancelled: int


@dataclass(frozen=True)
class HistoryPage:
    items: list
    has_more: bool
    next_cursor: str | None


# --- accepting -------------------------------------------------------------------------


def submit_request(
    user_id: int, event_id: int, seats: int, idempotency_key: str | None, correlation_id: str | None
) -> RequestStatus:
    """Accept a request for seats and hand it to the pipeline; refuse what can never succeed."""
    seats_max = current_app.config["SEATS_PER_REQUEST_MAX"]
    if not 1 <= seats <= seats_max:
        raise InvalidInput("Invalid number of seats", {"numberOfSeats": [f"Must be between 1 and {seats_max}."]})
    if idempotency_key is not None:
        earlier = _request_for_key(user_id, idempotency_key)
        if earlier is not None:
            _check_same_request(earlier, event_id, seats)
            return _status_of(earlier)
    event = db.session.get(Event, event_id)
    if event is None or event.is_deleted:
        raise NotFound("Event not found")
    accepted = AcceptedRequest(
        request_id=_request_id_for(user_id, idempotency_key),
        user_id=user_id,
        event_id=event_id,
        seats=seats,
        idempotency_key=idempotency_key,
        correlation_id=correlation_id,
    )
    adapters().pipeline.submit(accepted)
    log.info("booking.request.accepted", extra={"request_id": accepted.request_id, "event_id": event_id})
    return _status_after_submit(accepted)


def _request_id_for(user_id: int, idempotency_key: str | None) -> str:
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{user_id}:{idempotency_key}"))


def _request_for_key(user_id: int, idempotency_key: str) -> BookingRequest | None:
    statement = select(BookingRequest).where(
        BookingRequest.user_id == user_id, BookingRequest.idempotency_key == idempotency_key
    )
    return db.session.execute(statement).scalar_one_or_none()


def _check_same_request(earlier: BookingRequest, event_id: int, seats: int) -> None:
    if earlier.event_id != event_id or earlier.seats_requested != seats:
        raise Conflict("This Idempotency-Key was already used for a different booking request")


def _status_after_submit(accepted: AcceptedRequest) -> RequestStatus:
    db.session.rollback()  # see what the pipeline committed
    request = _find_request(accepted.request_id)
    if request is None:  # still travelling through Kafka: known, not yet recorded
        return RequestStatus(
            request_id=accepted.request_id,
            event_id=accepted.event_id,
            status="pending",
            seats_requested=accepted.seats,
            seats_confirmed=0,
            seats_waitlisted=0,
            booking_ids=[],
            waitlist_position=None,
            reason=None,
            created_at=None,
            decided_at=None,
        )
    return _status_of(request)


# --- recording and allocating (called by the pipeline) ---------------------------------


def record_requests(accepted_requests: list[AcceptedRequest]) -> list[int]:
    """Persist accepted requests as pending, in the given order; duplicates are ignored.

    Returns the ids of the events that got new pending requests. Idempotent on
    request id, so a redelivered message records nothing twice.
    """
    assert len(accepted_requests) <= limits.ALLOCATION_BATCH_SIZE_MAX
    if not accepted_requests:
        return []
    now = utcnow()
    rows = [
        {
            "request_id": accepted.request_id,
            "idempotency_key": accepted.idempotency_key,
            "user_id": accepted.user_id,
            "event_id": accepted.event_id,
            "seats_requested": accepted.seats,
            "status": "pending",
            "seats_confirmed": 0,
            "seats_waitlisted": 0,
            "correlation_id": accepted.correlation_id,
            "created_at": now,
        }
        for accepted in accepted_requests
    ]
    with unit_of_work() as work:
        if work.is_postgres:
            _serialize_arrivals(work, sorted({accepted.event_id for accepted in accepted_requests}))
        dialect = postgresql if work.is_postgres else sqlite
        statement = dialect.insert(BookingRequest).on_conflict_do_nothing().returning(BookingRequest.event_id)
        inserted_event_ids = [row.event_id for row in work.session.execute(statement, rows)]
    return sorted(set(inserted_event_ids))


def _serialize_arrivals(work, event_ids: list[int]) -> None:
    """Make arrival order (the id sequence) equal commit order for each event.

    Ids are drawn at insert time but become visible at commit; two concurrent
    recorders could commit ids 58 before 54, and the allocator would decide 58
    first. A transaction-scoped advisory lock per event serializes recorders of the
    same event (not the allocator, which holds the event row lock). Taken in event
    id order, so two recorders never wait on each other crosswise. SQLite needs none:
    BEGIN IMMEDIATE already serializes writers.
    """
    for event_id in event_ids:
        work.session.execute(
            text("SELECT pg_advisory_xact_lock(:namespace, :key)"),
            {"namespace": ARRIVAL_LOCK_NAMESPACE, "key": event_id % ADVISORY_KEY_MODULUS},
        )


def allocate_pending(event_id: int) -> AllocationSummary:
    """Decide one batch of an event's pending requests in arrival order, in one transaction."""
    with unit_of_work() as work:
        event = lock_event(work, event_id)
        pending = _pending_requests(work.session, event_id, limits.ALLOCATION_BATCH_SIZE_MAX)
        if event.is_deleted:
            _reject_for_deleted_event(work, event, pending)
            pending = []
        reserved_before = event.reserved_seats
        allocation = settle_event(work, event, pending)
        totals = waitlist_totals(work.session, [event.id]).get(event.id, (0, 0))
        availability = availability_of(event, totals[0])
        work.after_commit(adapters().availability.store, [availability])
    seats_decided = sum(decision.seats_confirmed for decision in allocation.decisions)
    return AllocationSummary(
        event_id=event_id,
        requests_decided=len(allocation.decisions),
        seats_confirmed=seats_decided,
        seats_promoted=allocation.reserved_seats - reserved_before - seats_decided,
        reserved_seats=allocation.reserved_seats,
    )


def events_with_pending_requests(limit: int = limits.ALLOCATION_BATCH_SIZE_MAX) -> list[int]:
    statement = (
        select(BookingRequest.event_id)
        .where(BookingRequest.status == "pending")
        .group_by(BookingRequest.event_id)
        .order_by(func.min(BookingRequest.id))
        .limit(limit)
    )
    return list(db.session.execute(statement).scalars())


def _pending_requests(session, event_id: int, limit: int) -> list[BookingRequest]:
    statement = (
        select(BookingRequest)
        .where(BookingRequest.event_id == event_id, BookingRequest.status == "pending")
        .order_by(BookingRequest.id)
        .limit(limit)
    )
    return list(session.execute(statement).scalars())


def _reject_for_deleted_event(work, event: Event, pending: list[BookingRequest]) -> None:
    now = utcnow()
    for request in pending:
        request.status = "rejected"
        request.reason = "event_deleted"
        request.decided_at = now
        fields = {"requestId": request.request_id, "seatsRequested": request.seats_requested, "reason": "event_deleted"}
        work.session.add(
            outbox_row(Notification("booking.rejected", request.user_id, event, request.request_id, fields))
        )


# --- cancelling ------------------------------------------------------------------------


def cancel_bookings(user_id: int, event_id: int, booking_id: int | None, cancel_all: bool) -> CancelResult:
    """Cancel one booking, the latest, or all of a user's holdings for an event.

    Freed seats go to the waitlist head in the same transaction. Cancelling what is
    already cancelled is a 409 and frees nothing.
    """
    with unit_of_work() as work:
        event = lock_event(work, event_id)
        bookings = _bookings_to_cancel(work.session, user_id, event_id, booking_id, cancel_all)
        entries = _waitlist_entries_of(work.session, user_id, event_id) if cancel_all else []
        if not bookings and not entries:
            raise Conflict("Nothing to cancel: no active booking or waitlist place for this event")
        now = utcnow()
        seats_freed = sum(booking.seats for booking in bookings)
        for booking in bookings:
            _cancel_one(work, event, booking, now)
        for entry in entries:
            entry.status = "cancelled"
            entry.updated_at = now
        state = event.to_state()
        if seats_freed:
            state = allocator.release_seats(state, seats_freed)
        event.reserved_seats = state.reserved_seats
        settle_event(work, event, [])
        totals = waitlist_totals(work.session, [event.id]).get(event.id, (0, 0))
        work.after_commit(adapters().availability.store, [availability_of(event, totals[0])])
    log.info("booking.cancelled", extra={"event_id": event_id, "seats_freed": seats_freed})
    return CancelResult(event_id, seats_freed, len(bookings), len(entries))


def _bookings_to_cancel(session, user_id: int, event_id: int, booking_id: int | None, cancel_all: bool):
    if booking_id is not None:
        booking = session.get(Booking, booking_id)
        if booking is None or booking.user_id != user_id or booking.event_id != event_id:
            raise NotFound("Booking not found")
        if booking.status != "confirmed":
            raise Conflict("This booking is already cancelled")
        return [booking]
    statement = (
        select(Booking)
        .where(Booking.user_id == user_id, Booking.event_id == event_id, Booking.status == "confirmed")
        .order_by(Booking.id.desc())
    )
    bookings = list(session.execute(statement).scalars())
    return bookings if cancel_all else bookings[:1]


def _waitlist_entries_of(session, user_id: int, event_id: int) -> list[WaitlistEntry]:
    statement = select(WaitlistEntry).where(
        WaitlistEntry.user_id == user_id, WaitlistEntry.event_id == event_id, WaitlistEntry.status == "waiting"
    )
    return list(session.execute(statement).scalars())


def _cancel_one(work, event: Event, booking: Booking, now: datetime) -> None:
    assert booking.status == "confirmed"
    booking.status = "cancelled"
    booking.cancelled_at = now
    fields = {"bookingId": booking.id, "seatsFreed": booking.seats}
    work.session.add(
        outbox_row(Notification("booking.cancelled", booking.user_id, event, f"booking-{booking.id}", fields))
    )


# --- reading ---------------------------------------------------------------------------


def request_status(request_id: str, viewer_id: int, viewer_is_admin: bool, wait_s: float = 0) -> RequestStatus:
    """The outcome of a request; with `wait_s`, wait up to that long for a final one."""
    assert 0 <= wait_s <= limits.LONG_POLL_WAIT_S_MAX
    deadline = time.monotonic() + wait_s
    while True:
        request = _find_request(request_id)
        if request is None or (request.user_id != viewer_id and not viewer_is_admin):
            raise NotFound("Booking request not found")
        if request.is_final or time.monotonic() >= deadline:
            return _status_of(request)
        db.session.rollback()  # end this read so the next poll sees new commits
        time.sleep(min(WAIT_POLL_INTERVAL_S, max(0.0, deadline - time.monotonic())))


def _find_request(request_id: str) -> BookingRequest | None:
    try:
        canonical = str(uuid.UUID(request_id))
    except ValueError:
        return None
    return db.session.execute(select(BookingRequest).where(BookingRequest.request_id == canonical)).scalar_one_or_none()


def _status_of(request: BookingRequest) -> RequestStatus:
    booking_ids = list(
        db.session.execute(
            select(Booking.id).where(Booking.booking_request_id == request.id).order_by(Booking.id)
        ).scalars()
    )
    return RequestStatus(
        request_id=request.request_id,
        event_id=request.event_id,
        status=request.status,
        seats_requested=request.seats_requested,
        seats_confirmed=request.seats_confirmed,
        seats_waitlisted=request.seats_waitlisted,
        booking_ids=booking_ids,
        waitlist_position=_waitlist_position(request),
        reason=request.reason,
        created_at=request.created_at,
        decided_at=request.decided_at,
    )


def _waitlist_position(request: BookingRequest) -> int | None:
    entry = db.session.execute(
        select(WaitlistEntry).where(WaitlistEntry.booking_request_id == request.id)
    ).scalar_one_or_none()
    if entry is None or entry.status != "waiting":
        return None
    ahead = db.session.execute(
        select(func.count(WaitlistEntry.id)).where(
            WaitlistEntry.event_id == entry.event_id,
            WaitlistEntry.status == "waiting",
            WaitlistEntry.id < entry.id,
        )
    ).scalar_one()
    return int(ahead) + 1


def booking_history(
    user_id: int,
    view: str,
    limit: int,
    cursor: str | None,
    event_id: int | None,
    status: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
) -> HistoryPage:
    """A user's bookings, newest first, keyset-paginated on booking id."""
    assert 1 <= limit <= limits.HISTORY_PAGE_SIZE_MAX
    statement = select(Booking).where(Booking.user_id == user_id)
    if event_id is not None:
        statement = statement.where(Booking.event_id == event_id)
    if status is not None:
        statement = statement.where(Booking.status == status)
    if created_from is not None:
        statement = statement.where(Booking.created_at >= created_from)
    if created_to is not None:
        statement = statement.where(Booking.created_at <= created_to)
    before_id = decode_cursor(cursor) if cursor else None
    if before_id is not None:
        statement = statement.where(Booking.id < before_id)
    rows = list(db.session.execute(statement.order_by(Booking.id.desc()).limit(limit + 1)).scalars())
    has_more = len(rows) > limit
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].id) if has_more else None
    items = summarize_by_event(page) if view == "summary" else page
    return HistoryPage(items=items, has_more=has_more, next_cursor=next_cursor)


def summarize_by_event(bookings: list[Booking]) -> list[dict]:
    summaries: dict[int, dict] = {}
    for booking in bookings:
        summary = summaries.setdefault(
            booking.event_id,
            {
                "event": booking.event,
                "total_tickets": 0,
                "active_tickets": 0,
                "cancelled_tickets": 0,
                "total_cost": 0,
                "first_booked_at": booking.created_at,
                "last_booked_at": booking.created_at,
            },
        )
        summary["total_tickets"] += booking.seats
        summary["total_cost"] += booking.cost_minor if booking.status == "confirmed" else 0
        summary["active_tickets" if booking.status == "confirmed" else "cancelled_tickets"] += booking.seats
        summary["first_booked_at"] = min(summary["first_booked_at"], booking.created_at)
        summary["last_booked_at"] = max(summary["last_booked_at"], booking.created_at)
    return list(summaries.values())


def encode_cursor(booking_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"id": booking_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
        booking_id = value["id"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        raise InvalidInput("Invalid cursor", {"cursor": ["Not a cursor this API issued."]}) from error
    if not isinstance(booking_id, int) or isinstance(booking_id, bool) or booking_id < 1:
        raise InvalidInput("Invalid cursor", {"cursor": ["Not a cursor this API issued."]})
    return booking_id
