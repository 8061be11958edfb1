"""Tickets on the pages: My bookings shows each upcoming confirmed booking's tickets (code, QR
code as inline SVG that a reader decodes, the .ics to download); the host's check-in page lets
a typed code in once (green), then says already (amber, with when and where), and a cancelled
or unknown code in red; the counts on the check-in page, the host dashboard and the analytics."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET

import icalendar

from atomicseats.services import tickets
from tests.helpers import account, admin_account, book, create_event
from tests.web.test_pages import form_token, sign_in

SVG = re.compile(r"<svg [^>]*class=\"ticket-qr\".*?</svg>", re.S)


def check_in(client, event_id: int, code: str, door: str = "") -> tuple[int, str]:
    path = f"/host/events/{event_id}/check-in"
    response = client.post(path, data={"csrf_token": form_token(client, path), "code": code, "door": door})
    return response.status_code, html.unescape(response.get_data(as_text=True))


def codes_of(client, guest, booking_id: int) -> list[str]:
    with client.application.app_context():
        return [ticket.code for ticket in tickets.booking_tickets(guest.id, False, booking_id).tickets]


def counts_of(client, event_id: int) -> tickets.CheckInCounts:
    with client.application.app_context():
        return tickets.check_in_counts([event_id])[event_id]


def outcome_of(page: str) -> str | None:
    found = re.search(r'data-outcome="([a-z_]+)"', page)
    return found.group(1) if found else None


def test_my_bookings_shows_each_seats_code_and_qr_and_the_calendar_file(client):
    host = account(client, "host")
    guest = account(client)
    event_id = create_event(client, host, name="Jazz night")["id"]
    booking_id = book(client, guest, event_id, 2)["bookingIds"][0]
    codes = codes_of(client, guest, booking_id)
    sign_in(client, guest.username)

    page = client.get("/bookings").get_data(as_text=True)
    for code in codes:
        assert f'data-code="{code}"' in page and f"<code>{code}</code>" in page
    svgs = SVG.findall(page)
    assert len(svgs) == 2
    for number, svg in enumerate(svgs, start=1):
        root = ET.fromstring(svg)
        assert root.get("role") == "img"
        assert root.get("aria-label") == f"QR code of ticket {number} of booking #{booking_id}"
    assert page.count('id="barcode"') == 0  # ids stay unique on the page

    response = client.get(f"/bookings/{booking_id}/tickets.ics")
    assert response.status_code == 200 and response.mimetype == "text/calendar"
    (entry,) = icalendar.Calendar.from_ical(response.data).walk("VEVENT")
    assert str(entry["SUMMARY"]) == "Jazz night"
    sign_in(client, account(client).username)
    assert client.get(f"/bookings/{booking_id}/tickets.ics").status_code == 404  # not theirs


def test_a_cancelled_booking_shows_no_tickets(client):
    host = account(client, "host")
    guest = account(client)
    event_id = create_event(client, host)["id"]
    booking_id = book(client, guest, event_id, 1)["bookingIds"][0]
    code = codes_of(client, guest, booking_id)[0]
    client.delete("/api/events/book", json={"eventId": event_id, "bookingId": booking_id}, headers=guest.headers)
    sign_in(client, guest.username)
    assert code not in client.get("/bookings").get_data(as_text=True)


def test_the_host_checks_a_typed_code_in_once_and_sees_every_outcome(client):
    host = account(client, "host")
    guest = account(client)
    event_id = create_event(client, host, capacity=10)["id"]
    booking_id = book(client, guest, event_id, 2)["bookingIds"][0]
    first, second = codes_of(client, guest, booking_id)
    sign_in(client, host.username)

    page = client.get(f"/host/events/{event_id}/check-in").get_data(as_text=True)
    (code_input,) = re.findall(r'<input[^>]*name="code"[^>]*>', page)
    assert "autofocus" in code_input
    assert "0</strong> of 2 tickets checked in" in page

    status, page = check_in(client, event_id, first.lower(), door="North door")
    assert (status, outcome_of(page)) == (200, "admitted")
    assert "Admitted" in page and "Seat 1 of 2" in page
    assert "1</strong> of 2 tickets checked in" in page
    status, page = check_in(client, event_id, first)
    assert (status, outcome_of(page)) == (200, "already_checked_in")
    assert "Already checked in" in page and "at North door" in page
    assert "outcome-warn" in page
    status, page = check_in(client, event_id, "NOT-A-CODE")
    assert outcome_of(page) == "unknown" and "outcome-error" in page

    client.delete("/api/events/book", json={"eventId": event_id, "bookingId": booking_id}, headers=guest.headers)
    status, page = check_in(client, event_id, second)
    assert outcome_of(page) == "cancelled" and "do not admit" in page

    dashboard = client.get("/host").get_data(as_text=True)
    assert re.search(r'data-label="Checked in"><a [^>]*>0 / 0<span', dashboard)  # the checked-in booking was cancelled


def test_check_in_counts_on_the_dashboard_and_in_the_analytics(client):
    host = account(client, "host")
    guest = account(client)
    event_id = create_event(client, host, capacity=10)["id"]
    booking_id = book(client, guest, event_id, 3)["bookingIds"][0]
    code = codes_of(client, guest, booking_id)[2]
    sign_in(client, host.username)
    assert check_in(client, event_id, code)[0] == 200
    dashboard = client.get("/host").get_data(as_text=True)
    assert re.search(r'data-label="Checked in"><a [^>]*>1 / 3<span', dashboard)
    with client.application.app_context():
        admin = admin_account(client)
    sign_in(client, admin.username)
    analytics = client.get("/admin").get_data(as_text=True)
    assert '<td class="num" data-label="Checked in">1 of 3</td>' in analytics


def test_only_the_host_or_an_admin_has_the_check_in_page_and_a_form_needs_its_token(client):
    host = account(client, "host")
    guest = account(client)
    event_id = create_event(client, host)["id"]
    booking_id = book(client, guest, event_id, 1)["bookingIds"][0]
    code = codes_of(client, guest, booking_id)[0]
    sign_in(client, guest.username)
    assert client.get(f"/host/events/{event_id}/check-in").status_code == 403
    sign_in(client, host.username)
    response = client.post(f"/host/events/{event_id}/check-in", data={"code": code})
    assert response.status_code == 400
    assert "This form expired" in response.get_data(as_text=True)
    assert counts_of(client, event_id).checked_in == 0
