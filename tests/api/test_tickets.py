"""Tickets over the JSON API: GET /api/bookings/<id>/tickets and .../tickets.ics (owner or
admin), POST /api/events/<id>/check-ins (host or admin): 200 admitted then already checked in,
404 unknown or another event's, 409 cancelled; bad bodies 400; others' bookings 404."""

from __future__ import annotations

import icalendar
import pytest

from tests.helpers import account, book, create_event


@pytest.fixture
def sale(client):
    host = account(client, "host")
    guest = account(client)
    event_id = create_event(client, host, capacity=10, name="Jazz night", venue="Blue Hall")["id"]
    booking_id = book(client, guest, event_id, 2)["bookingIds"][0]
    return host, guest, event_id, booking_id


def booking_tickets(client, who, booking_id, expect=200):
    response = client.get(f"/api/bookings/{booking_id}/tickets", headers=who.headers)
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def check_in(client, who, event_id, body, expect):
    response = client.post(f"/api/events/{event_id}/check-ins", json=body, headers=who.headers)
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def test_a_guest_gets_a_ticket_a_seat_and_the_host_checks_one_in_once(client, sale):
    host, guest, event_id, booking_id = sale
    data = booking_tickets(client, guest, booking_id)["data"]
    assert (data["bookingId"], data["eventId"], data["status"], data["isValid"]) == (
        booking_id,
        event_id,
        "confirmed",
        True,
    )
    assert data["event"]["name"] == "Jazz night"
    assert [ticket["seatNo"] for ticket in data["tickets"]] == [1, 2]
    code = data["tickets"][0]["code"]

    admitted = check_in(client, host, event_id, {"code": code, "door": "North"}, 200)
    assert admitted["message"] == "Admitted"
    assert admitted["data"]["outcome"] == "admitted"
    assert (admitted["data"]["bookingId"], admitted["data"]["seatNo"], admitted["data"]["seats"]) == (booking_id, 1, 2)
    assert (admitted["data"]["checkedIn"], admitted["data"]["ticketsTotal"]) == (1, 2)
    again = check_in(client, host, event_id, {"code": code.lower()}, 200)
    assert again["data"]["outcome"] == "already_checked_in"
    assert again["data"]["checkedInAt"] == admitted["data"]["checkedInAt"]
    assert again["data"]["door"] == "North"
    assert booking_tickets(client, guest, booking_id)["data"]["tickets"][0]["checkedInAt"] is not None


def test_refusals_say_why_with_their_status(client, sale):
    host, guest, event_id, booking_id = sale
    code = booking_tickets(client, guest, booking_id)["data"]["tickets"][0]["code"]
    other_event = create_event(client, host)["id"]
    unknown = check_in(client, host, event_id, {"code": "AAAAA-AAAAA-AAAAA-AAAAA-AAAAA"}, 404)
    assert unknown["errors"]["code"][0].startswith("unknown")
    wrong = check_in(client, host, other_event, {"code": code}, 404)
    assert wrong["errors"]["code"][0].startswith("wrong_event")
    cancelled = client.delete(
        "/api/events/book", json={"eventId": event_id, "bookingId": booking_id}, headers=guest.headers
    )
    assert cancelled.status_code == 200
    refused = check_in(client, host, event_id, {"code": code}, 409)
    assert refused["errors"]["code"][0].startswith("cancelled")
    assert booking_tickets(client, guest, booking_id)["data"]["isValid"] is False


def test_only_the_host_or_an_admin_checks_in_and_only_the_owner_or_an_admin_sees_tickets(client, sale):
    host, guest, event_id, booking_id = sale
    code = booking_tickets(client, guest, booking_id)["data"]["tickets"][0]["code"]
    other_host = account(client, "host")
    check_in(client, guest, event_id, {"code": code}, 403)
    check_in(client, other_host, event_id, {"code": code}, 403)
    check_in(client, host, 999_999, {"code": code}, 404)
    booking_tickets(client, other_host, booking_id, 404)
    booking_tickets(client, host, booking_id, 404)  # the host sees the roster, not the codes
    admin = account(client, "admin")
    assert booking_tickets(client, admin, booking_id)["data"]["bookingId"] == booking_id
    assert check_in(client, admin, event_id, {"code": code}, 200)["data"]["outcome"] == "admitted"
    assert client.application.test_client().get(f"/api/bookings/{booking_id}/tickets").status_code == 401


@pytest.mark.parametrize(
    "body",
    [{}, {"code": 12}, {"code": "x" * 65}, {"code": "A\nB"}, {"code": "ABC", "door": "d" * 41}, {"code": "A", "x": 1}],
)
def test_bad_check_in_bodies_are_400(client, sale, body):
    host, _, event_id, _ = sale
    check_in(client, host, event_id, body, 400)


def test_the_calendar_file_names_the_event(client, sale):
    _, guest, event_id, booking_id = sale
    response = client.get(f"/api/bookings/{booking_id}/tickets.ics", headers=guest.headers)
    assert response.status_code == 200
    assert response.mimetype == "text/calendar"
    assert f'filename="booking-{booking_id}.ics"' in response.headers["Content-Disposition"]
    (entry,) = icalendar.Calendar.from_ical(response.data).walk("VEVENT")
    assert (str(entry["SUMMARY"]), str(entry["LOCATION"])) == ("Jazz night", "Blue Hall")
    assert str(entry["UID"]) == f"booking-{booking_id}@atomicseats.local"
    assert client.get(f"/api/bookings/{booking_id}/tickets.ics", headers=account(client).headers).status_code == 404
