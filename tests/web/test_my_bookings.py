"""My bookings over Flask's test client (both backends): what it lists, cancelling and leaving
the waitlist through the confirmation pages with plain forms (JavaScript off), and that
nobody reaches another guest's bookings. The browser flows: tests/browser/test_my_bookings.py."""

from __future__ import annotations

import re

import pytest
from flask import Flask, url_for

from atomicseats import names
from atomicseats.services import booking, events, users
from tests.helpers import account, book, create_event
from tests.web.test_pages import sign_in


@pytest.fixture
def browser(app):
    return app.test_client()


def text(response) -> str:
    return response.get_data(as_text=True)


def form_fields(html: str) -> dict[str, str]:
    """The hidden fields of the confirmation form (csrf_token, event_id, booking_id, scope)."""
    form = re.search(r'<form method="post"[^>]*class="confirm".*?</form>', html, re.S).group(0)
    return dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form))


def booked(client, host, guest, seats: int = 2, capacity: int = 10, **event_fields) -> tuple[int, dict]:
    event_id = create_event(client, host, capacity=capacity, **event_fields)["id"]
    return event_id, book(client, guest, event_id, seats)


def is_confirmed(app: Flask, guest_id: int, request_id: str) -> bool:
    with app.app_context():
        return booking.request_status(request_id, guest_id, False).seats_held > 0


def test_visitors_are_sent_to_log_in_and_the_nav_links_my_bookings_once_signed_in(browser):
    response = browser.get("/bookings")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    polled = browser.get("/bookings", headers={"HX-Request": "true"})  # a page polling after its session ended
    assert polled.status_code == 204 and polled.headers["HX-Redirect"] == "/login?next=/bookings"
    assert "My bookings" not in text(browser.get("/"))
    guest = account(browser)
    sign_in(browser, guest.username)
    assert 'href="/bookings">My bookings</a>' in text(browser.get("/"))


def test_the_page_lists_bookings_per_event_with_money_status_and_totals(browser, app):
    host, guest = account(browser, "host"), account(browser)
    concert, first = booked(browser, host, guest, 2, name="Harbour lights", price=123456)
    second = book(browser, guest, concert, 1)
    cancelled = browser.delete(
        "/api/events/book", json={"eventId": concert, "bookingId": second["bookingIds"][0]}, headers=guest.headers
    )
    assert cancelled.status_code == 200
    sign_in(browser, guest.username)

    html = text(browser.get("/bookings"))
    assert "Harbour lights" in html
    assert f"#{first['bookingIds'][0]}" in html and f"#{second['bookingIds'][0]}" in html
    assert "€2,469.12" in html  # two seats at €1,234.56, the one held booking and the totals
    assert "Confirmed</span>" in html and "Cancelled</span>" in html
    assert re.search(r'data-testid="seats-upcoming">2<', html)
    assert re.search(r'data-testid="events-upcoming">1<', html)
    assert f"/bookings/cancel?event_id={concert}&amp;booking_id={first['bookingIds'][0]}" in html
    assert f"booking_id={second['bookingIds'][0]}" not in html  # nothing to cancel on a cancelled booking
    assert 'hx-trigger="every 5s"' in html


def test_the_polled_part_comes_alone_and_shows_a_promotion_without_any_action(browser, app):
    host, guest, first = account(browser, "host"), account(browser), account(browser)
    event_id, _ = booked(browser, host, first, 1, capacity=1, name="Tiny room")
    waiting = book(browser, guest, event_id, 1)
    sign_in(browser, guest.username)
    html = text(browser.get("/bookings"))
    assert re.search(r'data-testid="place">1<', html)
    assert "No upcoming bookings" in html

    with app.app_context():
        host_user = users.get_user(host.id)
        events.update_event(host_user, event_id, {"capacity_seats": 2})  # the head of the line is served
    polled = browser.get("/bookings", headers={"HX-Request": "true"})
    assert text(polled).lstrip().startswith('<div id="my-bookings"')
    assert "<html" not in text(polled)
    assert "Tiny room" in text(polled) and 'data-testid="place"' not in text(polled)
    assert re.search(r'data-testid="seats-upcoming">1<', text(polled))
    assert is_confirmed(app, guest.id, waiting["requestId"])


def test_without_javascript_a_booking_is_cancelled_after_a_confirmation_page(browser, app):
    host, guest = account(browser, "host"), account(browser)
    event_id, request = booked(browser, host, guest, 3, price=1000, name="Quiet recital")
    booking_id = request["bookingIds"][0]
    sign_in(browser, guest.username)

    confirm = browser.get(f"/bookings/cancel?event_id={event_id}&booking_id={booking_id}")
    assert confirm.status_code == 200
    assert f"Cancel booking #{booking_id}?" in text(confirm) and "3 seats, €30.00" in text(confirm)
    assert is_confirmed(app, guest.id, request["requestId"])  # a GET changes nothing
    fields = form_fields(text(confirm))
    assert fields["scope"] == "one" and fields["booking_id"] == str(booking_id)

    done = browser.post("/bookings/cancel", data=fields)
    assert done.status_code == 303 and done.headers["Location"].endswith("/bookings")
    page = text(browser.get("/bookings"))
    assert f"Booking #{booking_id} is cancelled: 3 seats released." in page
    assert "Cancelled</span>" in page
    assert not is_confirmed(app, guest.id, request["requestId"])

    assert browser.get(f"/bookings/cancel?event_id={event_id}&booking_id={booking_id}").status_code == 303
    assert "This booking is already cancelled." in text(browser.get("/bookings"))
    again = browser.post("/bookings/cancel", data=fields)  # a second submit of the same form
    assert again.status_code == 303
    assert "Nothing was cancelled: this booking is already cancelled." in text(browser.get("/bookings"))


def test_cancel_all_gives_up_every_booking_and_waiting_place_for_the_event(browser, app):
    host, guest, other = account(browser, "host"), account(browser), account(browser)
    event_id, first = booked(browser, host, guest, 2, capacity=3)
    partial = book(browser, guest, event_id, 3)  # 1 held, 2 waiting
    sign_in(browser, guest.username)
    page = text(browser.get("/bookings"))
    assert f"/bookings/cancel?event_id={event_id}&amp;scope=all" in page

    confirm = browser.get(f"/bookings/cancel?event_id={event_id}&scope=all")
    assert "Cancel all your bookings" in text(confirm)
    assert "2 seats of your requests still on the waitlist (place 1) are withdrawn too." in text(confirm)
    done = browser.post("/bookings/cancel", data=form_fields(text(confirm)))
    assert done.status_code == 303
    assert "2 bookings cancelled: 3 seats released. 2 waiting seats withdrawn too." in text(browser.get("/bookings"))
    with app.app_context():
        assert events.get_event(event_id).event.seats_left == 3
        assert booking.waitlist_places(guest.id).items == []
    assert book(browser, other, event_id, 3)["status"] == "confirmed"
    assert not is_confirmed(app, guest.id, first["requestId"])
    assert not is_confirmed(app, guest.id, partial["requestId"])


def test_nobody_cancels_or_even_sees_another_guests_booking(browser, app):
    host, owner, intruder = account(browser, "host"), account(browser), account(browser)
    event_id, request = booked(browser, host, owner, 2)
    booking_id = request["bookingIds"][0]
    sign_in(browser, intruder.username)
    assert browser.get(f"/bookings/cancel?event_id={event_id}&booking_id={booking_id}").status_code == 404
    nothing = browser.get(f"/bookings/cancel?event_id={event_id}&scope=all")  # the intruder holds nothing there
    assert nothing.status_code == 303
    assert "Nothing to cancel: no active booking or waitlist place for this event." in text(browser.get("/bookings"))
    own_event, own = booked(browser, host, intruder, 1)
    token = form_fields(text(browser.get(f"/bookings/cancel?event_id={own_event}&booking_id={own['bookingIds'][0]}")))[
        "csrf_token"
    ]

    forged = {"csrf_token": token, "event_id": str(event_id), "booking_id": str(booking_id), "scope": "one"}
    refused = browser.post("/bookings/cancel", data=forged)
    assert refused.status_code == 404
    assert "Booking not found" in text(refused)
    assert is_confirmed(app, owner.id, request["requestId"])
    assert browser.get(f"/bookings/waitlist/{request['requestId']}/leave").status_code == 404
    assert (
        browser.post(f"/bookings/waitlist/{request['requestId']}/leave", data={"csrf_token": token}).status_code == 404
    )
    assert is_confirmed(app, owner.id, request["requestId"])


def test_a_cancel_without_its_csrf_token_or_with_nonsense_changes_nothing(browser, app):
    host, guest = account(browser, "host"), account(browser)
    event_id, request = booked(browser, host, guest, 2)
    booking_id = request["bookingIds"][0]
    sign_in(browser, guest.username)
    fields = form_fields(text(browser.get(f"/bookings/cancel?event_id={event_id}&booking_id={booking_id}")))

    expired = browser.post("/bookings/cancel", data={**fields, "csrf_token": "stale"})
    assert expired.status_code == 400
    assert "This form expired. Please confirm again." in text(expired)
    for nonsense in (
        {"event_id": "x"},
        {"scope": "everything"},
        {"booking_id": "2.5"},
        {"booking_id": ""},
        {"event_id": "9" * 30},
    ):
        assert browser.post("/bookings/cancel", data={**fields, **nonsense}).status_code in (400, 404)
    for query in ("event_id=abc", "event_id=1&booking_id=-1", "event_id=1&scope=nope", "", f"event_id={event_id}"):
        assert browser.get(f"/bookings/cancel?{query}").status_code == 404, query
    assert is_confirmed(app, guest.id, request["requestId"])


def test_leaving_the_waitlist_shows_the_place_asks_and_keeps_the_confirmed_seats(browser, app):
    host, first, guest = account(browser, "host"), account(browser), account(browser)
    event_id, _ = booked(browser, host, first, 2, capacity=3, name="Tiny room")
    request = book(browser, guest, event_id, 3)  # 1 confirmed, 2 waiting at place 1
    sign_in(browser, guest.username)
    page = text(browser.get("/bookings"))
    leave_url = f"/bookings/waitlist/{request['requestId']}/leave"
    assert leave_url in page and re.search(r'data-testid="place">1<', page)

    confirm = browser.get(leave_url)
    assert "You wait for 2 seats at place 1 in line." in text(confirm)
    assert "the 1 seat already confirmed for this request stays yours" in text(confirm)
    done = browser.post(leave_url, data=form_fields(text(confirm)))
    assert done.status_code == 303
    page = text(browser.get("/bookings"))
    assert "You left the waitlist: 2 waiting seats withdrawn." in page
    assert 'data-testid="place"' not in page
    assert is_confirmed(app, guest.id, request["requestId"])  # the confirmed seat stays
    assert browser.get(leave_url).status_code == 404  # nothing waits any more


def test_the_request_status_page_links_to_my_bookings(browser, app):
    host, guest = account(browser, "host"), account(browser)
    _, request = booked(browser, host, guest, 1)
    sign_in(browser, guest.username)
    assert 'href="/bookings"' in text(browser.get(f"/requests/{request['requestId']}"))


def test_the_paths_the_e_mails_link_to_are_the_pages_routes(app):
    with app.test_request_context():
        assert url_for("web.my_bookings") == names.MY_BOOKINGS_PATH
        assert url_for("web.event_page", event_id=42) == names.EVENT_PAGE_PATH.format(event_id=42)
