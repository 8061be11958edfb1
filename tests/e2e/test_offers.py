"""Waitlist offers through the real pipeline (HTTP → Kafka → bridge → Celery → Postgres → outbox
→ SMTP): an event in offer mode sold out over the API, a cancellation offers the freed seat to
the head of the waitlist, the `waitlist.offered` e-mail at the SMTP sink carries the answer link
exactly as the service signs it, and following that link and accepting books the seat (the
`booking.promoted` e-mail with its ticket). `flask audit` is clean after."""

from __future__ import annotations

import email
import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from email import policy

import pytest
from itsdangerous import URLSafeSerializer

from atomicseats.names import OFFER_PAGE_PATH
from atomicseats.services._allocation import OFFER_TOKEN_SALT
from tests.e2e.support import HTTP_TIMEOUT_S, Platform, expected_message_id, poll, unique

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def open_offer(platform: Platform, request_id: str) -> tuple[int, int]:
    """(entry id, deadline epoch) of the request's open offer, once it is made."""

    def offered():
        rows = platform.sql(
            "SELECT w.id, w.offer_expires_at FROM waitlist_entries w JOIN booking_requests r"
            " ON r.id = w.booking_request_id WHERE r.request_id = %s AND w.seats_offered > 0",
            [request_id],
        )
        return rows[0] if rows else None

    entry_id, deadline = poll(offered, timeout_s=30, what="the offer")
    return entry_id, int(deadline.timestamp())


def test_a_cancellation_offers_the_seat_and_the_e_mail_link_accepts_it(platform: Platform):
    host = platform.register("host")
    holder, waiter = platform.register_many(2, prefix="e2eoffer")
    name = unique("Offered night ")
    event_id = platform.create_event(host, 2, name=name, waitlistMode="offer", offerWindowMinutes=60)["id"]
    held = platform.book_accepted(holder, event_id, 2)
    (booking_id,) = platform.wait_final(held, token=holder.access_token)["bookingIds"]
    waiting = platform.book_accepted(waiter, event_id, 1)
    assert platform.wait_final(waiting, token=waiter.access_token)["status"] == "waitlisted"

    platform.cancel(holder, event_id, booking_id)  # frees 2 seats: the head, waiting for 1, is offered 1
    entry_id, deadline = open_offer(platform, waiting)
    seen = platform.http.request("GET", f"/api/events/{event_id}").data
    assert (seen["reservedSeats"], seen["seatsOffered"]) == (0, 1)

    token = URLSafeSerializer(platform.env["SESSION_SECRET"], salt=OFFER_TOKEN_SALT).dumps([entry_id, deadline])
    base_url = platform.env.get("PUBLIC_BASE_URL", platform.api_url).rstrip("/")
    link = base_url + OFFER_PAGE_PATH.format(token=token)
    message_id = expected_message_id("waitlist.offered", f"offer-{entry_id}-1-{deadline}")
    (mail,) = platform.wait_for_mails([message_id], timeout_s=60)[message_id]
    assert mail.kind == "waitlist.offered" and name in mail.subject + mail.text
    offer_links = re.findall(r"\S*/offers/\S*", mail.text)
    assert offer_links == [link], (offer_links, link)
    message = email.message_from_bytes(mail.path.read_bytes(), policy=policy.default)
    html = message.get_body(preferencelist=("html",)).get_content()
    assert f"href='{link}'" in html

    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page_url = platform.api_url.rstrip("/") + OFFER_PAGE_PATH.format(token=token)
    with browser.open(page_url, timeout=HTTP_TIMEOUT_S) as page:
        assert page.status == 200
        page_html = page.read().decode()
    assert name in page_html and 'data-testid="seats-offered">1<' in page_html
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page_html).group(1)
    form = urllib.parse.urlencode({"csrf_token": csrf, "action": "all"}).encode()
    with browser.open(urllib.request.Request(page_url, data=form, method="POST"), timeout=HTTP_TIMEOUT_S) as answered:
        assert answered.status == 200
        answered_html = answered.read().decode()
    assert f"Booked: 1 seat for {name}" in answered_html
    promoted_id = int(re.search(r"Booking #(\d+) is confirmed", answered_html).group(1))

    final = platform.status(waiting, token=waiter.access_token).data
    assert final["status"] == "confirmed" and final["bookingIds"] == [promoted_id], final
    tickets = platform.http.request("GET", f"/api/bookings/{promoted_id}/tickets", token=waiter.access_token)
    assert tickets.status == 200, tickets.body
    (ticket_code,) = [ticket["code"] for ticket in tickets.data["tickets"]]
    promoted_message = expected_message_id("booking.promoted", f"booking-{promoted_id}")
    (promoted,) = platform.wait_for_mails([promoted_message], timeout_s=60)[promoted_message]
    assert ticket_code in promoted.text

    with pytest.raises(urllib.error.HTTPError) as used:  # the link opened its one offer: now nothing
        browser.open(page_url, timeout=HTTP_TIMEOUT_S)
    assert used.value.code == 404

    code, output = platform.run_audit()
    assert code == 0, output
