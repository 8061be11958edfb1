"""My bookings in a real browser: a guest books and finds the booking there, cancels it after a
confirmation; a waitlisted guest sees its place in line and leaves; a promotion from the
waitlist appears without reloading; the same cancel with JavaScript off; axe-core and
screenshots at desktop and phone width."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import check_page, on_both_servers, register, unique

STATUS_PATH = re.compile(r"/requests/[0-9a-f-]{36}$")
MY_BOOKINGS_PATH = re.compile(r"/bookings$")


def book(page: Page, event_id: int, seats: int, outcome: str) -> None:
    page.goto(f"/events/{event_id}")
    page.get_by_label("Seats").fill(str(seats))
    page.get_by_role("button", name="Book").click()
    page.wait_for_url(STATUS_PATH)
    expect(page.locator("#request-status")).to_contain_text(outcome, timeout=10_000)


def group(page: Page, event_id: int):
    return page.locator(f'.booking-group[data-event-id="{event_id}"]')


def test_a_guest_finds_the_booking_in_my_bookings_and_cancels_it_after_confirming(page, live_server):
    name = unique("Harbour lights ")
    event_id = live_server.seed_event(name=name, capacity=10, price_minor=2550)
    register(page)
    book(page, event_id, 3, "Confirmed: 3 seats booked")
    booking_number = re.search(r"Booking number (\d+)", page.locator("#request-status").inner_text()).group(1)

    page.get_by_role("link", name="My bookings").first.click()
    page.wait_for_url(MY_BOOKINGS_PATH)
    expect(group(page, event_id)).to_contain_text(name)
    expect(group(page, event_id)).to_contain_text(f"#{booking_number}")
    expect(group(page, event_id)).to_contain_text("€76.50")
    expect(page.get_by_test_id("seats-upcoming")).to_have_text("3")
    check_page(page, "my-bookings")

    group(page, event_id).get_by_role("link", name=f"Cancel booking #{booking_number}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Cancel booking #{booking_number}?")
    check_page(page, "my-bookings-confirm-cancel")
    page.get_by_role("link", name="No, keep it").click()
    expect(group(page, event_id)).to_contain_text("Confirmed")
    assert live_server.seats_left(event_id) == 7

    group(page, event_id).get_by_role("link", name=f"Cancel booking #{booking_number}").click()
    page.get_by_role("button", name=f"Yes, cancel booking #{booking_number}").click()
    page.wait_for_url(MY_BOOKINGS_PATH)
    expect(page.get_by_role("status").first).to_contain_text(f"Booking #{booking_number} is cancelled")
    expect(group(page, event_id)).to_contain_text("Cancelled")
    expect(page.get_by_test_id("seats-upcoming")).to_have_text("0")
    assert live_server.seats_left(event_id) == 10


def test_a_waitlisted_guest_sees_its_place_and_leaves_the_waitlist(page, new_page, live_server):
    event_id = live_server.seed_event(name=unique("Tiny room "), capacity=1)
    first, second = new_page(), new_page()
    for guest in (first, second):
        register(guest)
    book(first, event_id, 1, "Confirmed")
    book(second, event_id, 2, "Waitlisted: place 1 in line")
    register(page)
    book(page, event_id, 1, "Waitlisted: place 2 in line")

    page.goto("/bookings")
    waiting = page.get_by_test_id("waitlist")
    expect(waiting.get_by_test_id("place")).to_have_text("2")
    second.goto("/bookings")
    second.get_by_role("link", name="Leave the waitlist").click()
    expect(second.get_by_role("heading", level=1)).to_contain_text("Leave the waitlist")
    check_page(second, "my-bookings-confirm-leave")
    second.get_by_role("button", name="Yes, leave the waitlist").click()
    second.wait_for_url(MY_BOOKINGS_PATH)
    expect(second.get_by_role("status").first).to_contain_text("You left the waitlist: 2 waiting seats withdrawn.")
    expect(second.get_by_test_id("waitlist")).to_have_count(0)

    expect(waiting.get_by_test_id("place")).to_have_text("1", timeout=10_000)  # moved up, no reload
    check_page(page, "my-bookings-waitlist")


def test_a_booking_promoted_from_the_waitlist_appears_without_reloading(page, new_page, live_server):
    event_id = live_server.seed_event(name=unique("Late show "), capacity=1, price_minor=1800)
    first = new_page()
    register(first)
    book(first, event_id, 1, "Confirmed")
    register(page)
    book(page, event_id, 1, "Waitlisted")
    page.goto("/bookings")
    expect(page.get_by_test_id("place")).to_have_text("1")
    expect(group(page, event_id)).to_have_count(0)
    page.evaluate("() => { window.notReloaded = true; }")

    live_server.raise_capacity(event_id, 2)  # the host adds a seat: the head of the line gets it
    expect(group(page, event_id)).to_contain_text("Confirmed", timeout=10_000)
    expect(group(page, event_id)).to_contain_text("€18.00")
    expect(page.get_by_test_id("waitlist")).to_have_count(0)
    assert page.evaluate("() => window.notReloaded") is True


@on_both_servers
def test_with_javascript_off_a_guest_cancels_through_the_confirmation_page(new_page, live_server):
    event_id = live_server.seed_event(name=unique("Quiet recital "), capacity=5)
    page = new_page(javascript=False)
    register(page)
    book(page, event_id, 2, "Confirmed: 2 seats booked")
    page.goto("/bookings")
    group(page, event_id).get_by_role("link", name=re.compile(r"Cancel booking #\d+")).click()
    page.get_by_role("button", name=re.compile(r"Yes, cancel booking")).click()
    page.wait_for_url(MY_BOOKINGS_PATH)
    expect(page.get_by_role("status").first).to_contain_text("is cancelled: 2 seats released")
    expect(group(page, event_id)).to_contain_text("Cancelled")
    assert live_server.seats_left(event_id) == 5


def test_a_polling_page_whose_session_ended_goes_to_the_login_page_whole(page, live_server):
    register(page)
    page.goto("/bookings")
    other_tab = page.context.new_page()
    other_tab.goto("/")
    other_tab.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/login\?next=/bookings$"), timeout=10_000)  # the next poll, never a page in a page
    expect(page.get_by_role("heading", level=1)).to_have_count(1)
