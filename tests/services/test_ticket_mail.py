"""The tickets in the confirmation e-mails, byte for byte, through the real mailer and SMTP
sink on SQLite and PostgreSQL: each new seat's code in the text, its QR code as an inline PNG
(multipart/related, shown by Content-ID) that a QR reader decodes back to the code, and the
booking's .ics, the very bytes the API serves. Kinds that book nothing carry no files."""

from __future__ import annotations

import io
import re

import flask_mail
import icalendar
import pytest
import segno
import zxingcpp
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from atomicseats.adapters import mime
from atomicseats.services import outbox, tickets
from atomicseats.services._ticket_media import QR_PNG_SCALE, qr_png
from atomicseats.services.contracts import MailMessage, MailPart
from tests.helpers import account, book, create_event
from tests.services.test_outbox import NOTHING, Sink, _app_mailing_to, html, plain

QUIET_ZONE_MODULES = 4


@pytest.fixture
def sink(tmp_path):
    handle = Sink(tmp_path / "smtp")
    yield handle
    handle.stop()


@pytest.fixture
def app(database_url, sink):
    yield from _app_mailing_to(sink, database_url)


def sent(sink: Sink) -> list:
    while outbox.send_due_notifications() != NOTHING:
        pass
    return sink.take()


def modules_of(png: bytes) -> list[list[bool]]:
    """The symbol's dark modules, read back from the PNG's pixels (quiet zone dropped)."""
    image = Image.open(io.BytesIO(png)).convert("L")
    size = image.size[0] // QR_PNG_SCALE
    pixel = image.load()
    return [
        [pixel[x * QR_PNG_SCALE, y * QR_PNG_SCALE] < 128 for x in range(QUIET_ZONE_MODULES, size - QUIET_ZONE_MODULES)]
        for y in range(QUIET_ZONE_MODULES, size - QUIET_ZONE_MODULES)
    ]


def is_segnos_symbol(code: str, modules: list[list[bool]]) -> bool:
    """segno, another encoder, makes exactly these modules for the code with one of the 8 masks:
    the PNG is a standard QR code of that text, not merely something zxing reads back."""
    for mask in range(8):
        symbol = segno.make(code, error="m", micro=False, boost_error=False, mask=mask)
        if [[bool(value) for value in row] for row in symbol.matrix] == modules:
            return True
    return False


def test_a_confirmation_carries_each_seats_code_qr_and_the_calendar_entry(app, client, sink):
    host = account(client, "host")
    guest = account(client)
    event_id = create_event(client, host, capacity=10, name="Jazz night", venue="Blue Hall")["id"]
    booking_id = book(client, guest, event_id, 3)["bookingIds"][0]
    codes = [ticket.code for ticket in tickets.booking_tickets(guest.id, False, booking_id).tickets]

    (message,) = sent(sink)
    assert message.get_content_type() == "multipart/mixed"
    related, calendar_part = message.get_payload()
    assert related.get_content_type() == "multipart/related"
    alternative, *images = related.get_payload()
    assert alternative.get_content_type() == "multipart/alternative"
    for code in codes:
        assert code in plain(message) and code in html(message)
    assert [image.get_content_type() for image in images] == ["image/png"] * 3
    for seat_no, (image, code) in enumerate(zip(images, codes, strict=True), start=1):
        content_id = f"ticket-{booking_id}-{seat_no}@atomicseats.local"
        assert image["Content-ID"] == f"<{content_id}>"
        assert f"src='cid:{content_id}'" in html(message)
        png = image.get_content()
        assert png == qr_png(code)
        (decoded,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
        assert decoded.text == code
        assert decoded.format == zxingcpp.BarcodeFormat.QRCode
        assert is_segnos_symbol(code, modules_of(png))

    assert calendar_part.get_content_type() == "text/calendar"
    assert calendar_part.get_filename() == f"booking-{booking_id}.ics"
    data = calendar_part.get_payload(decode=True)
    assert data == tickets.booking_calendar(guest.id, False, booking_id)[1]  # what the API serves
    (entry,) = icalendar.Calendar.from_ical(data).walk("VEVENT")
    event = client.get(f"/api/events/{event_id}").get_json()["data"]
    assert str(entry["UID"]) == f"booking-{booking_id}@atomicseats.local"
    assert entry.decoded("DTSTART").isoformat() == event["startsAt"]
    assert (str(entry["SUMMARY"]), str(entry["LOCATION"])) == ("Jazz night", "Blue Hall")


def test_a_promotion_carries_the_promoted_seats_tickets_and_other_kinds_none(app, client, sink):
    host = account(client, "host")
    first, second = account(client), account(client)
    event_id = create_event(client, host, capacity=2)["id"]
    held = book(client, first, event_id, 2)["bookingIds"][0]
    partial = book(client, second, event_id, 3)  # all waitlisted
    assert partial["bookingIds"] == []
    (confirmed, waitlisted) = sent(sink)
    assert confirmed.is_multipart() and len(confirmed.get_payload()) == 2  # related + .ics
    assert [part.get_content_type() for part in waitlisted.get_payload()] == ["multipart/alternative"]

    cancelled = client.delete("/api/events/book", json={"eventId": event_id, "bookingId": held}, headers=first.headers)
    assert cancelled.status_code == 200
    messages = {message["X-AtomicSeats-Kind"]: message for message in sent(sink)}
    promoted = messages["booking.promoted"]
    promoted_booking = next(iter(tickets.user_tickets(second.id)))
    codes = [ticket.code for ticket in tickets.user_tickets(second.id)[promoted_booking].tickets]
    assert len(codes) == 2
    _, *images = promoted.get_payload()[0].get_payload()
    assert [zxingcpp.read_barcodes(Image.open(io.BytesIO(image.get_content())))[0].text for image in images] == codes
    assert [part.get_content_type() for part in messages["booking.cancelled"].get_payload()] == [
        "multipart/alternative"
    ]


SENDER = "AtomicSeats <no-reply@atomicseats.local>"
BOUNDARY = re.compile(rb"={15}\d{19}==")


def same_but_boundaries(data: bytes) -> bytes:
    for rank, boundary in enumerate(dict.fromkeys(BOUNDARY.findall(data))):
        data = data.replace(boundary, b"BOUNDARY-%d" % rank)
    return data


@pytest.fixture(scope="module")
def mail_context():
    application = Flask(__name__)
    application.config.update(MAIL_DEFAULT_SENDER=SENDER, MAIL_SUPPRESS_SEND=False)
    flask_mail.Mail(application)
    with application.app_context():
        yield


FILES = st.lists(
    st.tuples(st.binary(max_size=600), st.booleans(), st.sampled_from(["image/png", "text/calendar; method=PUBLISH"])),
    max_size=5,
)


@settings(max_examples=100, deadline=None)
@given(
    files=FILES,
    text=st.text(st.characters(blacklist_categories=["Cs"]), max_size=200),  # text, not lone UTF-16 halves
    subject=st.text(st.characters(blacklist_categories=["Cc", "Cs"]), max_size=60),
)
def test_with_files_the_bytes_are_flask_mails_with_the_inline_images_in_a_related_part(
    mail_context, files, text, subject
):
    parts = tuple(
        MailPart(f"file-{index}.bin", content_type, data, f"part-{index}@atomicseats.local" if is_inline else None)
        for index, (data, is_inline, content_type) in enumerate(files)
    )
    message = MailMessage("guest@example.test", subject, text, f"<p>{text}</p>", "<m.1@atomicseats.local>", {}, parts)
    fast = mime.message_bytes(message, SENDER, 1_790_000_000.0)
    assert same_but_boundaries(fast) == same_but_boundaries(mime.flask_mail_bytes(message, SENDER, 1_790_000_000.0))
