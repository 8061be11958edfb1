"""The guest's flows on both live servers (the embedded default and the full pipeline:
Kafka -> bridge -> Celery -> PostgreSQL behind the real API process): two browsers after
the last seat, the winner's cancellation serving the waitlisted one, and a status page that
follows a request the pipeline has not decided yet, with JavaScript and without."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Page, expect

from tests.browser.conftest import on_both_servers, on_the_pipeline, register, unique

STATUS_PATH = re.compile(r"/requests/[0-9a-f-]{36}$")
DECISION_TIMEOUT_MS = 20_000  # the pipeline decides in well under a second; a busy machine is slower


@on_both_servers
def test_two_browsers_after_the_last_seat_one_gets_it_and_the_other_is_served_when_it_cancels(new_page, live_server):
    """Exactly one of two guests gets the last seat; the other is waitlisted and sees its
    place. The winner cancels from My bookings (after confirming), and the seat goes to the
    waitlisted guest, whose status page shows it without reloading."""
    event_id = live_server.seed_event(name=unique("Last seat "), capacity=1)
    guests = [new_page(), new_page()]
    for guest in guests:
        register(guest)
        guest.goto(f"/events/{event_id}")
        expect(guest.get_by_test_id("seats-left")).to_have_text("1")
    for guest in guests:  # both press Book before either request is decided
        guest.get_by_role("button", name="Book").click(no_wait_after=True)

    outcomes = []
    for guest in guests:
        guest.wait_for_url(STATUS_PATH)
        status = guest.locator("#request-status")
        expect(status).to_contain_text(re.compile(r"Confirmed|Waitlisted"), timeout=DECISION_TIMEOUT_MS)
        outcomes.append(status.locator(".status-title").inner_text())
    assert sorted(outcomes) == ["Confirmed: 1 seat booked.", "Waitlisted: place 1 in line."], outcomes
    assert live_server.seats_left(event_id) == 0
    winner, waiting = guests if outcomes[0].startswith("Confirmed") else reversed(guests)
    booking_id = re.search(r"Booking number (\d+)", winner.locator("#request-status").inner_text()).group(1)
    waiting.evaluate("() => { window.notReloaded = true; }")

    winner.get_by_role("link", name="My bookings").first.click()
    winner.get_by_role("link", name=f"Cancel booking #{booking_id}").click()
    expect(winner.get_by_role("heading", level=1)).to_have_text(f"Cancel booking #{booking_id}?")
    winner.get_by_role("button", name=f"Yes, cancel booking #{booking_id}").click()
    expect(winner.get_by_role("status").first).to_contain_text(f"Booking #{booking_id} is cancelled: 1 seat released")
    expect(winner.locator(f'tr[data-booking-id="{booking_id}"]')).to_contain_text("Cancelled")

    expect(waiting.locator("#request-status")).to_contain_text("Confirmed: 1 seat booked", timeout=DECISION_TIMEOUT_MS)
    assert waiting.evaluate("() => window.notReloaded") is True
    assert live_server.seats_left(event_id) == 0


@contextmanager
def booked_while_the_bridge_holds_still(page: Page, live_server, name: str, capacity: int, seats: int) -> Iterator[int]:
    """A fresh guest on `page` books `seats` of a new event while the bridge is paused (SIGSTOP):
    the request waits in Kafka and its status page shows it pending for as long as the block
    runs; the bridge goes on when it ends. Gives the event's id."""
    platform = live_server.platform
    event_id = live_server.seed_event(name=unique(name), capacity=capacity)
    register(page)
    page.goto(f"/events/{event_id}")
    platform.pause("bridge")
    try:
        page.get_by_label("Seats").fill(str(seats))
        page.get_by_role("button", name="Book").click()
        page.wait_for_url(STATUS_PATH)
        yield event_id
    finally:
        platform.resume("bridge")


@on_the_pipeline
def test_the_status_page_follows_a_pending_request_to_its_outcome_without_reloading(page, live_server):
    """The bridge is paused (SIGSTOP), so the request waits in Kafka: the page shows it pending,
    then the outcome once the bridge goes on, on the same page (htmx polling, no reload)."""
    with booked_while_the_bridge_holds_still(page, live_server, "Slow night ", capacity=5, seats=2) as event_id:
        status = page.locator("#request-status")
        expect(status).to_contain_text("Pending: we are deciding your request")
        page.evaluate("() => { window.notReloaded = true; }")
        with page.expect_response(STATUS_PATH):  # a poll answered while the bridge holds still
            pass
        expect(status).to_contain_text("Pending")
    expect(status).to_contain_text("Confirmed: 2 seats booked", timeout=DECISION_TIMEOUT_MS)
    assert page.evaluate("() => window.notReloaded") is True
    assert live_server.seats_left(event_id) == 3


@on_the_pipeline
def test_with_javascript_off_a_pending_request_page_reloads_itself_until_decided(new_page, live_server):
    """No htmx without JavaScript: the status page refreshes itself (a meta refresh inside
    noscript) while the request is pending, and stops once it is decided."""
    page = new_page(javascript=False)
    with booked_while_the_bridge_holds_still(page, live_server, "Unplugged ", capacity=3, seats=1) as event_id:
        expect(page.locator("#request-status")).to_contain_text("Pending")
        expect(page.locator('meta[http-equiv="refresh"]')).to_have_count(1)
        with page.expect_navigation():  # the page reloads itself while the bridge holds still
            pass
        expect(page.locator("#request-status")).to_contain_text("Pending")
    expect(page.locator("#request-status")).to_contain_text("Confirmed: 1 seat booked", timeout=DECISION_TIMEOUT_MS)
    expect(page.locator('meta[http-equiv="refresh"]')).to_have_count(0)  # decided: it stays
    assert live_server.seats_left(event_id) == 2
