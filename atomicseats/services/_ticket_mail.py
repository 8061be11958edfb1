"""The tickets a confirmation e-mail carries: each new seat's code and QR code (an inline PNG
the HTML shows by its Content-ID), and the booking's calendar entry (.ics), for the kinds that
create a booking: booking.confirmed, booking.partial (its confirmed part) and booking.promoted.

Nothing here is per request of the e-mail's reader: the codes come from the payload's booking
id and seat count (derived, domain/tickets.py), the calendar from one query per batch of what
the bookings and their events say now, so the attachment is byte for byte the one the API and
My bookings serve for the same booking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from atomicseats.domain.tickets import ticket_code, tickets_of
from atomicseats.models import Booking, Event
from atomicseats.services._ticket_media import booking_calendar_entry, calendar_bytes, qr_png
from atomicseats.services.contracts import MailPart

# The kinds that create a booking, and the payload field with its seat count.
TICKET_SEATS_FIELDS = {
    "booking.confirmed": "seatsConfirmed",
    "booking.partial": "seatsConfirmed",
    "booking.promoted": "seatsPromoted",
}
CONTENT_ID_DOMAIN = "atomicseats.local"
CALENDAR_CONTENT_TYPE = "text/calendar; charset=utf-8; method=PUBLISH"

Payload = Mapping[str, Any]


@dataclass(frozen=True)
class TicketLine:
    """One ticket as the e-mail's text shows it."""

    seat_no: int
    seats: int
    code: str
    content_id: str  # of its QR code's PNG


@dataclass(frozen=True)
class BookingCalendar:
    """What the calendar entry says of a booking, read when the e-mail goes out."""

    event_id: int
    event_name: str
    venue: str
    starts_at: datetime
    ends_at: datetime
    booked_at: datetime


def new_booking(kind: str, payload: Payload) -> tuple[int, int] | None:
    """(booking id, seats) of the booking an e-mail of `kind` announces, or None."""
    field = TICKET_SEATS_FIELDS.get(kind)
    if field is None:
        return None
    seats = int(payload.get(field) or 0)
    booking_ids = payload.get("bookingIds") or []
    if seats < 1 or not booking_ids:
        return None
    return int(booking_ids[0]), seats


def booking_calendars(session: Session, booking_ids: Sequence[int]) -> dict[int, BookingCalendar]:
    """One query for a batch of e-mails: each booking's event and creation time."""
    if not booking_ids:
        return {}
    rows = session.execute(
        select(Booking.id, Event.id, Event.name, Event.venue, Event.starts_at, Event.ends_at, Booking.created_at)
        .join(Event, Event.id == Booking.event_id)
        .where(Booking.id.in_(list(dict.fromkeys(booking_ids))))
    ).tuples()
    return {row[0]: BookingCalendar(*row[1:]) for row in rows}


def ticket_parts(
    key: bytes,
    booking_id: int,
    seats: int,
    payload: Payload,
    calendar: BookingCalendar | None,
    written_at: datetime,
    base_url: str,
) -> tuple[list[TicketLine], tuple[MailPart, ...]]:
    """The ticket lines for the text and each ticket's QR PNG, then the booking's .ics. Without
    the booking's row (deleted since), the calendar says what the payload said, stamped when
    the e-mail was written."""
    lines: list[TicketLine] = []
    images: list[MailPart] = []
    for ticket in tickets_of(booking_id, seats):
        code = ticket_code(key, ticket)
        content_id = f"ticket-{booking_id}-{ticket.seat_no}@{CONTENT_ID_DOMAIN}"
        lines.append(TicketLine(ticket.seat_no, seats, code, content_id))
        images.append(MailPart(f"ticket-{booking_id}-{ticket.seat_no}.png", "image/png", qr_png(code), content_id))
    codes = [line.code for line in lines]
    if calendar is not None:
        entry = booking_calendar_entry(
            booking_id,
            calendar.event_id,
            calendar.event_name,
            calendar.venue,
            calendar.starts_at,
            calendar.ends_at,
            calendar.booked_at,
            codes,
            base_url,
        )
    else:
        starts_at = datetime.fromisoformat(str(payload.get("startsAt")))
        event_id = payload.get("eventId")
        entry = booking_calendar_entry(
            booking_id,
            int(event_id) if event_id is not None else None,
            str(payload.get("eventName") or ""),
            str(payload.get("venue") or ""),
            starts_at,
            None,
            written_at,
            codes,
            base_url,
        )
    calendar_part = MailPart(f"booking-{booking_id}.ics", CALENDAR_CONTENT_TYPE, calendar_bytes(entry))
    return lines, (*images, calendar_part)
