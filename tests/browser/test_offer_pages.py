"""Waitlist offers in the browser, on the full pipeline: a seat freed in an event in offer mode
is offered to the guest at the head of the waitlist; the guest opens the link of the
`waitlist.offered` e-mail at the SMTP sink, accepts, and finds the booking with its ticket on
My bookings. The offer page and its result pass axe and are photographed at both widths."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import PASSWORD, check_page, on_the_pipeline, register, unique
from tests.e2e.support import expected_message_id
from tests.e2e.test_offers import open_offer
from tests.helpers import Account


@on_the_pipeline
def test_a_guest_follows_the_offer_link_from_the_e_mail_and_accepts(page: Page, live_server):
    platform = live_server.platform
    name = unique("Offered recital ")
    event_id = live_server.seed_event(name=name, capacity=2, waitlistMode="offer", offerWindowMinutes=45)
    holder = platform.register("guest")
    (booking_id,) = platform.wait_final(platform.book_accepted(holder, event_id, 2), token=holder.access_token)[
        "bookingIds"
    ]
    signed_up = platform.http.request("POST", "/api/user/login", {"username": register(page), "password": PASSWORD})
    waiter = Account.from_login(signed_up.data)
    waiting = platform.book_accepted(waiter, event_id, 2)
    assert platform.wait_final(waiting, token=waiter.access_token)["status"] == "waitlisted"
    platform.cancel(holder, event_id, booking_id)  # both seats are offered to the waiting guest

    entry_id, deadline = open_offer(platform, waiting)
    message_id = expected_message_id("waitlist.offered", f"offer-{entry_id}-2-{deadline}")
    (mail,) = platform.wait_for_mails([message_id], timeout_s=60)[message_id]
    (link,) = re.findall(r"\S*/offers/\S+", mail.text)

    page.goto("/bookings")
    expect(page.get_by_test_id("offer")).to_contain_text("2 seats offered to you until")
    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Seats for {name} are offered to you")
    expect(page.get_by_test_id("seats-offered")).to_have_text("2")
    expect(page.get_by_test_id("offer-deadline")).to_contain_text("UTC")
    expect(page.get_by_label(re.compile("Seats to accept"))).to_have_value("1")
    check_page(page, "offer-pipeline")
    page.get_by_role("button", name="Accept all 2 seats").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Booked: 2 seats for {name}")
    check_page(page, "offer-accepted-pipeline")
    page.get_by_role("link", name="My bookings").last.click()
    expect(page.locator(f'[data-event-id="{event_id}"] .ticket')).to_have_count(2)
