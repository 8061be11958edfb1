"""Tickets through the real pipeline: a booking over the API (Kafka, the bridge, the Celery
worker, the outbox, the mailer) reaches the SMTP sink with each seat's code in the text, its
QR code as an inline PNG that a QR reader decodes to that code, and the booking's .ics; the
host checks one ticket in over the API (admitted), a second scan says already checked in, and
a cancelled booking's ticket is refused. `flask audit` is clean after."""

from __future__ import annotations

import email
import io
from email import policy

import icalendar
import pytest
import zxingcpp
from PIL import Image

from tests.e2e.support import Platform, decision_message_id, unique

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_a_booking_mails_its_tickets_and_a_ticket_is_checked_in_once(platform: Platform):
    host = platform.register("host")
    guest = platform.register("guest")
    name = unique("Ticketed night ")
    event_id = platform.create_event(host, 10, name=name)["id"]
    request_id = platform.book_accepted(guest, event_id, 2)
    (booking_id,) = platform.wait_final(request_id, token=guest.access_token)["bookingIds"]

    answer = platform.http.request("GET", f"/api/bookings/{booking_id}/tickets", token=guest.access_token)
    assert answer.status == 200, answer.body
    codes = [ticket["code"] for ticket in answer.data["tickets"]]
    assert len(codes) == 2

    message_id = decision_message_id("confirmed", request_id)
    (mail,) = platform.wait_for_mails([message_id], timeout_s=60)[message_id]
    message = email.message_from_bytes(mail.path.read_bytes(), policy=policy.default)
    for code in codes:
        assert code in mail.text
    related, calendar_part = message.get_payload()
    _, *images = related.get_payload()
    decoded = [zxingcpp.read_barcodes(Image.open(io.BytesIO(image.get_content())))[0].text for image in images]
    assert decoded == codes
    (entry,) = icalendar.Calendar.from_ical(calendar_part.get_payload(decode=True)).walk("VEVENT")
    assert str(entry["SUMMARY"]) == name
    assert str(entry["UID"]) == f"booking-{booking_id}@atomicseats.local"

    check_ins = f"/api/events/{event_id}/check-ins"
    first = platform.http.request("POST", check_ins, {"code": codes[0], "door": "East"}, token=host.access_token)
    assert (first.status, first.data["outcome"]) == (200, "admitted"), first.body
    again = platform.http.request("POST", check_ins, {"code": codes[0]}, token=host.access_token)
    assert (again.status, again.data["outcome"]) == (200, "already_checked_in"), again.body
    assert again.data["checkedInAt"] == first.data["checkedInAt"] and again.data["door"] == "East"

    platform.cancel(guest, event_id, booking_id)
    refused = platform.http.request("POST", check_ins, {"code": codes[1]}, token=host.access_token)
    assert refused.status == 409, refused.body

    code, output = platform.run_audit()
    assert code == 0, output
