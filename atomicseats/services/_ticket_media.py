"""A ticket's QR code (PNG for e-mails, SVG for pages) and an event's calendar entry (.ics).

Maintained libraries do the encoding: segno (QR, pure Python) and icalendar (RFC 5545). No
I/O and no clock: a calendar's DTSTAMP is given (the booking's decision time), so the same
booking always gives the same bytes, and a resent e-mail carries the same attachment.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime

import icalendar
import segno

QR_ERROR_LEVEL = "m"  # 15% of the symbol may be smudged or glared and still read
QR_PNG_SCALE = 6  # pixels a module: a version-2 symbol with its quiet zone is 198 px, sharp on a phone
QR_SVG_SCALE = 5
QR_BORDER_MODULES = 4  # the quiet zone the standard asks for
CALENDAR_PRODUCT_ID = "-//AtomicSeats//Tickets//EN"
CALENDAR_UID_DOMAIN = "atomicseats.local"


def qr_symbol(code: str) -> segno.QRCode:
    # A regular QR code (never a Micro QR, which phones' cameras do not read).
    return segno.make(code, error=QR_ERROR_LEVEL, micro=False)


def qr_png(code: str) -> bytes:
    """The ticket's QR code as a small black-on-white PNG (a few hundred bytes)."""
    output = io.BytesIO()
    qr_symbol(code).save(output, kind="png", scale=QR_PNG_SCALE, border=QR_BORDER_MODULES)
    return output.getvalue()


def qr_svg(code: str, title: str) -> str:
    """The QR code as an inline <svg> element for a page (no XML declaration)."""
    output = io.BytesIO()
    qr_symbol(code).save(
        output,
        kind="svg",
        scale=QR_SVG_SCALE,
        border=QR_BORDER_MODULES,
        xmldecl=False,
        svgns=True,
        title=title,
        svgclass="ticket-qr",
        lineclass=None,
        omitsize=False,
        nl=False,
    )
    return output.getvalue().decode("utf-8")


@dataclass(frozen=True)
class CalendarEntry:
    booking_id: int
    event_name: str
    venue: str
    starts_at: datetime
    ends_at: datetime | None
    stamped_at: datetime  # the booking's decision: DTSTAMP, so the bytes never change
    description: str
    url: str


def calendar_uid(booking_id: int) -> str:
    """Stable per booking: a calendar that imports the entry twice keeps one."""
    return f"booking-{booking_id}@{CALENDAR_UID_DOMAIN}"


def calendar_bytes(entry: CalendarEntry) -> bytes:
    """One VEVENT in a VCALENDAR (METHOD:PUBLISH), UTC times, CRLF lines folded at 75 octets."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", CALENDAR_PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    event = icalendar.Event()
    event.add("uid", calendar_uid(entry.booking_id))
    event.add("dtstamp", entry.stamped_at)
    event.add("dtstart", entry.starts_at)
    if entry.ends_at is not None:
        event.add("dtend", entry.ends_at)
    event.add("summary", entry.event_name)
    event.add("location", entry.venue)
    event.add("description", entry.description)
    event.add("url", entry.url)
    calendar.add_component(event)
    data: bytes = calendar.to_ical()
    return data
