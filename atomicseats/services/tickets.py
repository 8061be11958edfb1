"""Tickets and check-in: the tickets of a booking (codes, QR, calendar entry), and letting a
ticket in at the door, once, however many doors scan it at the same moment.

A ticket is a seat of a confirmed booking; its code is derived (domain/tickets.py), never
stored, so the allocation writes nothing per seat. Only a check-in is a row: the insert
`ON CONFLICT DO NOTHING RETURNING` on the (booking id, seat no) key decides which of several
doors admits the seat; the others read the row that won and answer "already checked in".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from flask import current_app
from sqlalchemy import Select, select
from sqlalchemy.dialects import postgresql, sqlite

from atomicseats.domain import limits
from atomicseats.domain.accounts import may_manage_event
from atomicseats.domain.states import BookingStatus, EventStatus
from atomicseats.domain.tickets import (
    BookingFacts,
    CheckInOutcome,
    CheckInRecord,
    Ticket,
    check_in_outcome,
    check_in_refusal,
    parse_ticket_code,
    ticket_code,
    tickets_of,
)
from atomicseats.errors import Forbidden, NotFound
from atomicseats.extensions import db
from atomicseats.models import Booking, Event, TicketCheckIn, User, utcnow
from atomicseats.services._check_ins import checked_in_by_event
from atomicseats.services._ticket_media import (
    CalendarEntry,
    booking_calendar_entry,
    calendar_bytes,
    current_code_key,
    qr_png,
    qr_svg,
)
from atomicseats.services.unit_of_work import unit_of_work

log = logging.getLogger(__name__)

# Re-exported: the pages and the API take the outcomes, the key and the QR drawings from here.
__all__ = ["CheckInOutcome", "current_code_key", "qr_png", "qr_svg"]


@dataclass(frozen=True)
class TicketView:
    booking_id: int
    seat_no: int
    code: str
    checked_in_at: datetime | None


@dataclass(frozen=True)
class BookingTickets:
    booking_id: int
    event_id: int
    event_name: str
    venue: str
    starts_at: datetime
    ends_at: datetime
    status: str  # the booking's: confirmed or cancelled
    is_cancelled: bool  # the booking cancelled or its event withdrawn: no ticket is valid
    created_at: datetime
    tickets: list[TicketView]


@dataclass(frozen=True)
class CheckInResult:
    outcome: CheckInOutcome
    event_id: int
    code: str  # as it was typed, for the page to show back
    ticket: Ticket | None  # the ticket the code names, when it is one of this event's
    seats: int | None  # seats of its booking (for "seat 2 of 3")
    holder_name: str | None  # whose booking: the door checks a name against an ID if it wants
    record: CheckInRecord | None  # the check-in: this one (admitted) or the earlier one (already)
    checked_in_by_name: str | None


@dataclass(frozen=True)
class CheckInCounts:
    checked_in: int
    tickets: int


# --- codes -----------------------------------------------------------------------------


def codes_of(key: bytes, booking_id: int, seats: int) -> list[str]:
    """The codes of a booking's seats 1..seats, under `key` (current_code_key() for this app's)."""
    return [ticket_code(key, ticket) for ticket in tickets_of(booking_id, seats)]


# --- a guest's tickets -------------------------------------------------------------------


def booking_tickets(actor_id: int, is_admin: bool, booking_id: int) -> BookingTickets:
    """The tickets of one booking, for its owner or an admin (anyone else: 404, as if it did
    not exist: a booking id is no secret, but whose it is is)."""
    rows = _read_bookings(_booking_rows().where(Booking.id == booking_id))
    if not rows or (rows[0].user_id != actor_id and not is_admin):
        raise NotFound("Booking not found")
    return _with_tickets(rows)[0]


def user_tickets(user_id: int, limit: int = limits.GUEST_BOOKINGS_SHOWN_MAX) -> dict[int, BookingTickets]:
    """The tickets of a user's confirmed bookings, newest first, by booking id (My bookings)."""
    assert 1 <= limit <= limits.GUEST_BOOKINGS_SHOWN_MAX
    rows = _read_bookings(
        _booking_rows()
        .where(Booking.user_id == user_id, Booking.status == BookingStatus.CONFIRMED)
        .order_by(Booking.id.desc())
        .limit(limit)
    )
    return {view.booking_id: view for view in _with_tickets(rows)}


def booking_calendar(actor_id: int, is_admin: bool, booking_id: int) -> tuple[str, bytes]:
    """(file name, .ics bytes) of a booking's event, for its owner or an admin."""
    view = booking_tickets(actor_id, is_admin, booking_id)
    return f"booking-{booking_id}.ics", calendar_bytes(calendar_entry(view, current_app.config["PUBLIC_BASE_URL"]))


def calendar_entry(view: BookingTickets, base_url: str) -> CalendarEntry:
    return booking_calendar_entry(
        view.booking_id,
        view.event_id,
        view.event_name,
        view.venue,
        view.starts_at,
        view.ends_at,
        view.created_at,
        [ticket.code for ticket in view.tickets],
        base_url,
    )


class _BookingRow(NamedTuple):
    id: int
    user_id: int
    event_id: int
    seats: int
    status: str
    created_at: datetime
    name: str
    venue: str
    starts_at: datetime
    ends_at: datetime
    event_status: str


def _booking_rows() -> Select[tuple[int, int, int, int, str, datetime, str, str, datetime, datetime, str]]:
    return select(
        Booking.id,
        Booking.user_id,
        Booking.event_id,
        Booking.seats,
        Booking.status,
        Booking.created_at,
        Event.name,
        Event.venue,
        Event.starts_at,
        Event.ends_at,
        Event.status,
    ).join(Event, Event.id == Booking.event_id)


def _read_bookings(
    statement: Select[tuple[int, int, int, int, str, datetime, str, str, datetime, datetime, str]],
) -> list[_BookingRow]:
    return [_BookingRow(*row) for row in db.session.execute(statement).tuples()]


def _with_tickets(rows: Sequence[_BookingRow]) -> list[BookingTickets]:
    """Each booking with its tickets' codes and check-in times (one query for all of them)."""
    key = current_code_key()
    checked_in: dict[tuple[int, int], datetime] = {}
    if rows:
        statement = select(TicketCheckIn.booking_id, TicketCheckIn.seat_no, TicketCheckIn.checked_in_at).where(
            TicketCheckIn.booking_id.in_([row.id for row in rows])
        )
        for booking_id, seat_no, at in db.session.execute(statement).tuples():
            checked_in[(booking_id, seat_no)] = at
    return [
        BookingTickets(
            booking_id=row.id,
            event_id=row.event_id,
            event_name=row.name,
            venue=row.venue,
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            status=row.status,
            is_cancelled=row.status != BookingStatus.CONFIRMED or row.event_status == EventStatus.DELETED,
            created_at=row.created_at,
            tickets=[
                TicketView(
                    ticket.booking_id,
                    ticket.seat_no,
                    ticket_code(key, ticket),
                    checked_in.get((ticket.booking_id, ticket.seat_no)),
                )
                for ticket in tickets_of(row.id, row.seats)
            ],
        )
        for row in rows
    ]


# --- check-in ----------------------------------------------------------------------------


def check_in(actor: User, event_id: int, code: str, door: str | None) -> CheckInResult:
    """Let the ticket `code` in at `event_id`, at most once (the event's host or an admin).

    One short transaction: read the ticket's booking (shared-locked on Postgres, so a
    cancellation cannot slip between this read and the insert), decide the refusals
    (domain), and INSERT ... ON CONFLICT DO NOTHING RETURNING: the door whose insert
    returns a row admits the seat; every other one reads that row back: already checked in."""
    key = current_code_key()
    ticket = parse_ticket_code(key, code)
    with unit_of_work() as work:
        host_id = work.session.execute(select(Event.host_id).where(Event.id == event_id)).scalar_one_or_none()
        if host_id is None:
            raise NotFound("Event not found")
        if not may_manage_event(actor.role, actor.id, host_id):
            raise Forbidden("Only the event's host can check tickets in")
        facts, holder_name = _booking_facts(ticket, work.is_postgres)
        refusal = check_in_refusal(event_id, ticket, facts)
        record: CheckInRecord | None = None
        was_inserted = False
        if refusal is None:
            assert ticket is not None and facts is not None
            record = CheckInRecord(checked_in_at=utcnow(), checked_in_by=actor.id, door=door)
            if current_app.config.get("TESTING_CHECK_IN_SELECT_THEN_INSERT"):
                was_inserted = _select_then_insert(work.is_postgres, event_id, ticket, record)
            else:
                was_inserted = _insert_check_in(work.is_postgres, event_id, ticket, record)
            if not was_inserted:
                record = _check_in_record(ticket)
        outcome = check_in_outcome(event_id, ticket, facts, was_inserted)
        by_name = _user_name(record.checked_in_by) if record is not None else None
    is_of_event = facts is not None and facts.event_id == event_id
    log.info(
        "ticket.check_in",
        extra={"event_id": event_id, "outcome": outcome.value, "door": door, "by": actor.id},
    )
    return CheckInResult(
        outcome=outcome,
        event_id=event_id,
        code=code,
        ticket=ticket if is_of_event else None,
        seats=facts.seats if is_of_event and facts is not None else None,
        holder_name=holder_name if is_of_event else None,
        record=record,
        checked_in_by_name=by_name,
    )


def _booking_facts(ticket: Ticket | None, is_postgres: bool) -> tuple[BookingFacts | None, str | None]:
    if ticket is None:
        return None, None
    statement = (
        select(Booking.event_id, Booking.seats, Booking.status, Event.status, User.name)
        .join(Event, Event.id == Booking.event_id)
        .join(User, User.id == Booking.user_id)
        .where(Booking.id == ticket.booking_id)
    )
    if is_postgres:
        statement = statement.with_for_update(read=True, of=Booking)
    row = db.session.execute(statement).one_or_none()
    if row is None:
        return None, None
    event_id, seats, status, event_status, holder_name = row
    is_cancelled = status != BookingStatus.CONFIRMED or event_status == EventStatus.DELETED
    return BookingFacts(event_id=event_id, seats=seats, is_cancelled=is_cancelled), holder_name


def _insert_check_in(is_postgres: bool, event_id: int, ticket: Ticket, record: CheckInRecord) -> bool:
    values = {
        "booking_id": ticket.booking_id,
        "seat_no": ticket.seat_no,
        "event_id": event_id,
        "checked_in_at": record.checked_in_at,
        "checked_in_by": record.checked_in_by,
        "door": record.door,
    }
    table = TicketCheckIn.__table__
    dialect = postgresql if is_postgres else sqlite
    statement = (
        dialect.insert(table)
        .values(values)
        .on_conflict_do_nothing(index_elements=["booking_id", "seat_no"])
        .returning(table.c.booking_id)
    )
    return db.session.execute(statement).first() is not None


def _select_then_insert(is_postgres: bool, event_id: int, ticket: Ticket, record: CheckInRecord) -> bool:
    """The negative control of the concurrency test, never used otherwise: decide from a read
    ("no row yet: admitted"), then write, as a check-in without the insert's verdict would."""
    is_checked_in = db.session.execute(
        select(TicketCheckIn.seat_no).where(
            TicketCheckIn.booking_id == ticket.booking_id, TicketCheckIn.seat_no == ticket.seat_no
        )
    ).first()
    time.sleep(current_app.config.get("TESTING_PAUSE_AFTER_READ_S", 0))
    if is_checked_in is not None:
        return False
    _insert_check_in(is_postgres, event_id, ticket, record)
    return True


def _check_in_record(ticket: Ticket) -> CheckInRecord:
    at, by, door = db.session.execute(
        select(TicketCheckIn.checked_in_at, TicketCheckIn.checked_in_by, TicketCheckIn.door).where(
            TicketCheckIn.booking_id == ticket.booking_id, TicketCheckIn.seat_no == ticket.seat_no
        )
    ).one()
    return CheckInRecord(checked_in_at=at, checked_in_by=by, door=door)


def _user_name(user_id: int | None) -> str | None:
    if user_id is None:
        return None
    name: str | None = db.session.execute(select(User.name).where(User.id == user_id)).scalar_one_or_none()
    return name


# --- counts --------------------------------------------------------------------------------


def check_in_counts(event_ids: Sequence[int]) -> dict[int, CheckInCounts]:
    """Checked in / tickets for each event: tickets are the seats of its confirmed bookings
    (its reserved seats), checked in those of them let in (a check-in of a booking cancelled
    afterwards no longer counts). One grouped query each, over the events asked for."""
    ids = list(dict.fromkeys(event_ids))
    if not ids:
        return {}
    tickets = dict(db.session.execute(select(Event.id, Event.reserved_seats).where(Event.id.in_(ids))).tuples().all())
    checked_in = checked_in_by_event(db.session(), ids)
    return {
        event_id: CheckInCounts(checked_in=checked_in.get(event_id, 0), tickets=int(seats))
        for event_id, seats in tickets.items()
    }


def event_check_in_counts(actor: User, event_id: int) -> CheckInCounts:
    """One event's counts, for its host or an admin (the check-in page)."""
    host_id = db.session.execute(select(Event.host_id).where(Event.id == event_id)).scalar_one_or_none()
    if host_id is None:
        raise NotFound("Event not found")
    if not may_manage_event(actor.role, actor.id, host_id):
        raise Forbidden("Only the event's host can check tickets in")
    return check_in_counts([event_id])[event_id]
