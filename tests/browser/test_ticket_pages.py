"""Tickets in the browser: a guest books and finds each seat's QR code on My bookings (decoded
from a screenshot of the page by a QR reader); the host types the code on the check-in page
as a handheld scanner would (the code, then Enter) and sees it admitted, then already checked
in. Each new page passes axe and is photographed at desktop and phone width."""

from __future__ import annotations

import re

import zxingcpp
from playwright.sync_api import Page, expect

from tests.browser.conftest import check_page, on_both_servers, register, unique
from tests.browser.test_host_pages import MANAGE_PATH, fill_event_form


def qr_text(page: Page, selector: str) -> str:
    """What a QR reader reads in a screenshot of the element."""
    import io

    from PIL import Image

    shot = page.locator(selector).screenshot()
    (found,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(shot)))
    return found.text


@on_both_servers
def test_a_guest_shows_a_ticket_and_the_host_checks_it_in_once(page, new_page, live_server):
    register(page, role="host")
    page.goto("/host/events/new")
    fill_event_form(page, unique("Quartet night "), capacity=10)
    page.get_by_role("button", name="Publish event").click()
    page.wait_for_url(MANAGE_PATH)
    event_id = int(page.url.rsplit("/", 1)[1])

    guest = new_page()
    register(guest)
    guest.goto(f"/events/{event_id}")
    guest.get_by_label("Seats").fill("2")
    guest.get_by_role("button", name="Book").click()
    expect(guest.locator("#request-status")).to_contain_text("Confirmed", timeout=10_000)
    guest.goto("/bookings")
    tickets = guest.locator(".ticket")
    expect(tickets).to_have_count(2)
    codes = [code.strip() for code in guest.locator(".ticket code").all_inner_texts()]
    assert all(re.fullmatch(r"([0-9A-Z]{5}-){4}[0-9A-Z]{5}", code) for code in codes), codes
    assert qr_text(guest, ".ticket:nth-child(1) svg") == codes[0]
    expect(guest.get_by_role("link", name=re.compile("Add to calendar"))).to_be_visible()
    check_page(guest, f"my-bookings-tickets-{live_server.name}")

    page.get_by_role("link", name="Check-in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check-in")
    expect(page.get_by_label("Ticket code")).to_be_focused()
    check_page(page, f"check-in-{live_server.name}")
    page.get_by_label("Door (optional)").fill("North door")
    page.get_by_label("Ticket code").fill(codes[1].lower())
    page.keyboard.press("Enter")  # what a handheld scanner sends after the code
    outcome = page.get_by_test_id("check-in-outcome")
    expect(outcome).to_contain_text("Admitted")
    expect(outcome).to_contain_text("Seat 2 of 2")
    expect(page.locator(".outcome-ok")).to_be_visible()
    expect(page.get_by_test_id("check-in-count")).to_contain_text("1 of 2 tickets checked in")
    expect(page.get_by_label("Ticket code")).to_be_focused()  # ready for the next scan
    expect(page.get_by_label("Door (optional)")).to_have_value("North door")
    check_page(page, f"check-in-admitted-{live_server.name}")

    page.get_by_label("Ticket code").fill(codes[1])
    page.keyboard.press("Enter")
    expect(outcome).to_contain_text("Already checked in")
    expect(outcome).to_contain_text("at North door")
    expect(page.locator(".outcome-warn")).to_be_visible()
    check_page(page, f"check-in-already-{live_server.name}")

    page.get_by_label("Ticket code").fill("ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ")
    page.keyboard.press("Enter")
    expect(outcome).to_contain_text("Not a valid ticket")
    expect(page.locator(".outcome-error")).to_be_visible()
    check_page(page, f"check-in-refused-{live_server.name}")
