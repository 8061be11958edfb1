"""A ticket's QR code (PNG for e-mails, SVG for pages) and an event's calendar entry (.ics).

Maintained libraries do the encoding: zxing-cpp makes the QR symbol (its C++ writer picks the
mask as the standard says, in ~0.15 ms; segno, pure Python, took ~2.5 ms a symbol, most of it
choosing the mask, which the mailer would pay for every ticket it sends), Pillow writes the
PNG (1 bit a pixel, a few hundred bytes), icalendar the .ics. No I/O and no clock: a
calendar's DTSTAMP is given (the booking's decision time), so the same booking always gives the
same bytes, and a resent e-mail carries the same attachment.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import icalendar
import zxingcpp
from flask import current_app
from markupsafe import escape
from PIL import Image

from atomicseats.domain.tickets import code_key
from atomicseats.names import EVENT_PAGE_PATH, MY_BOOKINGS_PATH

QR_ERROR_LEVEL = "M"  # 15% of the symbol may be smudged or glared and still read
QR_PNG_SCALE = 6  # pixels a module: a version-2 symbol with its quiet zone is 198 px, sharp on a phone
QR_PNG_COMPRESS_LEVEL = 1  # zlib's fastest: ~480 bytes instead of ~390, a third less CPU than its default 6
QR_SVG_MODULE_PX = 5  # on a page
QR_SVGS_CACHED_MAX = 2048  # My bookings polls: a guest's tickets are drawn once, not every 5 s
QR_SYMBOL_MODULES = 33  # a ticket code's symbol: version 2 (25 modules) and a quiet zone of 4 each side
CALENDAR_PRODUCT_ID = "-//AtomicSeats//Tickets//EN"
CALENDAR_UID_DOMAIN = "atomicseats.local"
CALENDAR_EVENTS_CACHED_MAX = 256  # events whose calendar lines are kept (a sale's confirmations share one)
_SVG_ROOT = re.compile(r'<svg width="(\d+)" height="(\d+)"[^>]*>')


def current_code_key() -> bytes:
    """The ticket codes' key of this app (from its SECRET_KEY)."""
    return _code_key(current_app.config["SECRET_KEY"])


@lru_cache(maxsize=4)
def _code_key(secret_key: str) -> bytes:
    return code_key(secret_key)


def qr_symbol(code: str) -> zxingcpp.Barcode:
    """A regular QR code (never a Micro QR, which phones' cameras do not read), quiet zone included."""
    return zxingcpp.create_barcode(code, zxingcpp.BarcodeFormat.QRCode, ec_level=QR_ERROR_LEVEL)


def qr_png(code: str) -> bytes:
    """The ticket's QR code as a black-on-white 1-bit PNG, QR_PNG_SCALE pixels a module. Drawn
    one pixel a module and enlarged without smoothing: the same pixels as drawing it at scale,
    for 40% less CPU (the mailer makes one for every ticket it sends)."""
    image = qr_symbol(code).to_image(scale=1, add_quiet_zones=True)
    height, width = image.shape
    grey = bytes(memoryview(image))  # type: ignore[arg-type]  # a buffer, though its stub does not say so
    modules = Image.frombuffer("L", (width, height), grey, "raw", "L", 0, 1).convert("1")
    pixels = modules.resize((width * QR_PNG_SCALE, height * QR_PNG_SCALE), Image.Resampling.NEAREST)
    output = io.BytesIO()
    pixels.save(output, format="PNG", compress_level=QR_PNG_COMPRESS_LEVEL)
    return output.getvalue()


@lru_cache(maxsize=QR_SVGS_CACHED_MAX)
def qr_svg(code: str, label: str) -> str:
    """The QR code as an inline <svg> element for a page: no XML prolog, sized by its viewBox,
    announced to screen readers as an image named `label`."""
    svg = qr_symbol(code).to_svg(scale=1, add_quiet_zones=True)
    root = _SVG_ROOT.search(svg)
    assert root is not None, "zxing-cpp's SVG changed shape"
    modules = int(root.group(1))
    size_px = modules * QR_SVG_MODULE_PX
    opening = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {modules} {modules}" width="{size_px}" '
        f'height="{size_px}" class="ticket-qr" role="img" aria-label="{escape(label)}" shape-rendering="crispEdges">'
    )
    body = svg[root.end() :]
    body = re.sub(r"\s*<desc>[^<]*</desc>", "", body).replace(
        '<g id="barcode"', "<g", 1
    )  # ids must be unique on a page
    return opening + body.strip()


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


def booking_calendar_entry(
    booking_id: int,
    event_id: int | None,
    event_name: str,
    venue: str,
    starts_at: datetime,
    ends_at: datetime | None,
    booked_at: datetime,
    codes: Sequence[str],
    base_url: str,
) -> CalendarEntry:
    """The calendar entry of a booking: the one definition, for the e-mail's attachment and the
    API's and the page's download (the same booking gives the same bytes in all three)."""
    seats = f"{len(codes)} seat" if len(codes) == 1 else f"{len(codes)} seats"
    page = base_url + (EVENT_PAGE_PATH.format(event_id=event_id) if event_id is not None else MY_BOOKINGS_PATH)
    return CalendarEntry(
        booking_id=booking_id,
        event_name=event_name,
        venue=venue,
        starts_at=starts_at,
        ends_at=ends_at,
        stamped_at=booked_at,
        description=f"AtomicSeats booking #{booking_id}, {seats}. Tickets: " + ", ".join(codes),
        url=page,
    )


def calendar_uid(booking_id: int) -> str:
    """Stable per booking: a calendar that imports the entry twice keeps one."""
    return f"booking-{booking_id}@{CALENDAR_UID_DOMAIN}"


def calendar_bytes(entry: CalendarEntry) -> bytes:
    """One VEVENT in a VCALENDAR (METHOD:PUBLISH), UTC times, CRLF lines folded at 75 octets.

    icalendar writes every line. What is the event's (its name, place, times, page) is written
    once per event and kept; what is the booking's (UID, DTSTAMP, DESCRIPTION with the codes)
    is written per booking into the event's VEVENT: 0.1 ms of CPU a calendar instead of 0.3,
    which the mailer pays for every confirmation it sends."""
    head, tail = _event_lines(entry.event_name, entry.venue, entry.starts_at, entry.ends_at, entry.url)
    booking = icalendar.Event()
    booking.add("uid", calendar_uid(entry.booking_id))
    booking.add("dtstamp", entry.stamped_at)
    booking.add("description", entry.description)
    lines: bytes = booking.to_ical()
    assert lines.startswith(_BEGIN_EVENT) and lines.endswith(_END_EVENT)
    return head + lines[len(_BEGIN_EVENT) : -len(_END_EVENT)] + tail


_BEGIN_EVENT = b"BEGIN:VEVENT\r\n"
_END_EVENT = b"END:VEVENT\r\n"


@lru_cache(maxsize=CALENDAR_EVENTS_CACHED_MAX)
def _event_lines(
    event_name: str, venue: str, starts_at: datetime, ends_at: datetime | None, url: str
) -> tuple[bytes, bytes]:
    """The calendar up to the end of the event's own properties, and its end from END:VEVENT."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", CALENDAR_PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    event = icalendar.Event()
    event.add("dtstart", starts_at)
    if ends_at is not None:
        event.add("dtend", ends_at)
    event.add("summary", event_name)
    event.add("location", venue)
    event.add("url", url)
    calendar.add_component(event)
    data: bytes = calendar.to_ical()
    head, end, tail = data.partition(_END_EVENT)
    assert end and head.count(_BEGIN_EVENT) == 1
    return head, end + tail
