"""A host in the browser: sign up as a host, create an event through the form, close and
reopen its waitlist, raise its capacity and see the waiting guests promoted; the dashboard,
the create form and the management page checked by axe-core and photographed (desktop and
phone); the same management with JavaScript off."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from tests.browser.conftest import NON_BLANK_PIXELS, PAINTED_PIXELS_MIN, check_page, on_both_servers, register, unique

MANAGE_PATH = re.compile(r"/host/events/\d+$")


def guests_book(live_server, event_id: int, count: int) -> None:
    """`count` guests ask for one seat each (on either live server); decided on return."""
    live_server.guests_ask_for_a_seat(event_id, count)


def fill_event_form(page: Page, name: str, capacity: int) -> None:
    starts = (datetime.now(UTC) + timedelta(days=30)).replace(hour=19, minute=30)
    page.get_by_label("Name").fill(name)
    page.get_by_label("Venue").fill("Riverside Hall")
    page.get_by_label("Description").fill("Strings and a harpsichord.")
    page.get_by_label("Time zone").select_option("Europe/Paris")
    page.get_by_label("Starts").fill(starts.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Ends").fill((starts + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Capacity (seats)").fill(str(capacity))
    page.get_by_label("Price per seat (€)").fill("18.50")


def test_a_host_creates_an_event_closes_and_reopens_the_waitlist_and_raising_capacity_promotes(
    page, new_page, live_server
):
    page.emulate_media(reduced_motion="reduce")  # charts drawn at once: still for the camera
    register(page, role="host")
    page.get_by_role("link", name="Host", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your events")
    expect(page.get_by_text("You have no events yet.")).to_be_visible()
    page.get_by_role("link", name="New event").click()

    # A mistake first: the end before the start is the service's rule, shown next to "Ends".
    name = unique("Baroque evening ")
    fill_event_form(page, name, capacity=2)
    page.get_by_label("Ends").fill("2020-01-01T10:00")
    page.get_by_role("button", name="Publish event").click()
    expect(page.locator("#ends_at-error")).to_contain_text("Must be after the start")
    expect(page.get_by_label("Ends")).to_have_attribute("aria-invalid", "true")
    check_page(page, "host-event-form-error")
    fill_event_form(page, name, capacity=2)
    page.get_by_role("button", name="Publish event").click()

    page.wait_for_url(MANAGE_PATH)
    expect(page.get_by_role("status").first).to_contain_text("is published")
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    expect(page.locator(".meta").first).to_contain_text("€18.50")
    event_id = int(page.url.rsplit("/", 1)[1])

    page.get_by_role("button", name="Close the waitlist").click()
    expect(page.get_by_test_id("waitlist-state")).to_have_text("Waitlist: closed")
    page.get_by_role("button", name="Reopen the waitlist").click()
    expect(page.get_by_test_id("waitlist-state")).to_have_text("Waitlist: open")

    # Four guests ask for one seat each: two get seats, two wait. The numbers follow without a reload.
    page.evaluate("() => { window.notReloaded = true; }")
    guests_book(live_server, event_id, 4)
    expect(page.get_by_test_id("seats-sold")).to_have_text("2", timeout=10_000)
    expect(page.get_by_test_id("waitlist-length")).to_have_text("2", timeout=10_000)
    assert page.evaluate("() => window.notReloaded") is True

    page.reload()
    expect(page.locator("#waitlist-caption")).to_be_attached()
    page.get_by_label("New capacity (seats)").fill("4")
    page.get_by_role("button", name="Change capacity").click()
    expect(page.get_by_role("status").first).to_contain_text(
        "Capacity is now 4 seats. 2 waiting guests got their seats."
    )
    expect(page.get_by_test_id("seats-sold")).to_have_text("4")
    expect(page.get_by_test_id("waitlist-length")).to_have_text("0")
    expect(page.locator("table", has=page.locator("#bookings-caption")).locator("tbody tr")).to_have_count(4)
    expect(page.get_by_text("Nobody is waiting.")).to_be_visible()
    assert live_server.seats_left(event_id) == 0

    # The bookings-over-time chart is drawn, with its table for screen readers.
    chart = page.locator("#timeline")
    expect(chart).to_have_class("chart is-drawn")
    assert chart.locator("canvas").evaluate(NON_BLANK_PIXELS) > PAINTED_PIXELS_MIN
    expect(chart.get_by_role("table")).to_contain_text("4")
    check_page(page, "host-event")

    page.get_by_role("link", name="← Your events").click()
    row = page.locator("table.host-events").get_by_role("row", name=re.compile(name))
    expect(row).to_contain_text("4 / 4")
    expect(row).to_contain_text("100%")
    expect(page.locator("#fill-rate")).to_have_class("chart is-drawn")
    check_page(page, "host-dashboard")

    page.get_by_role("link", name="New event").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New event")
    check_page(page, "host-event-form")


def test_a_guest_is_told_the_host_pages_are_not_theirs(page, live_server):
    register(page)
    expect(page.get_by_role("link", name="Host", exact=True)).to_have_count(0)
    response = page.goto("/host")
    assert response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    expect(page.locator("main")).to_contain_text("Only hosts have a dashboard of their events")


@on_both_servers
def test_with_javascript_off_a_host_manages_an_event(new_page, live_server):
    page = new_page(javascript=False)
    register(page, role="host")
    page.goto("/host/events/new")
    fill_event_form(page, unique("Quiet recital "), capacity=1)
    page.get_by_role("button", name="Publish event").click()
    page.wait_for_url(MANAGE_PATH)
    event_id = int(page.url.rsplit("/", 1)[1])
    guests_book(live_server, event_id, 2)
    page.reload()
    expect(page.get_by_test_id("waitlist-length")).to_have_text("1")
    expect(page.locator("#timeline").get_by_role("table")).to_be_visible()  # the chart is its table
    page.get_by_role("button", name="Close the waitlist").click()
    expect(page.get_by_test_id("waitlist-state")).to_have_text("Waitlist: closed")
    page.get_by_label("New capacity (seats)").fill("2")
    page.get_by_role("button", name="Change capacity").click()
    expect(page.get_by_test_id("seats-sold")).to_have_text("2")
    expect(page.get_by_test_id("waitlist-length")).to_have_text("0")


def test_a_new_events_time_zone_starts_as_the_browsers(browser, live_server):
    context = browser.new_context(base_url=live_server.url, timezone_id="Asia/Tokyo")
    try:
        page = context.new_page()
        register(page, role="host")
        page.goto("/host/events/new")
        expect(page.get_by_label("Time zone")).to_have_value("Asia/Tokyo")
    finally:
        context.close()
