"""Place in line in the browser (issue 13 point 1), on the full-mode pipeline: the request
page says how many people are ahead, and the count changes as they are decided, without a
reload; then the decision replaces it."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import check_page, on_the_pipeline, register
from tests.browser.test_guest_pages import STATUS_PATH
from tests.e2e.test_place_in_line import decide_oldest


@on_the_pipeline
def test_the_request_page_counts_the_people_ahead_live(page, live_server):
    platform = live_server.platform
    event_id = live_server.seed_event(capacity=10)
    register(page)
    platform.pause("worker")  # allocation held back: requests are recorded, nobody decides
    try:
        for _ in range(3):
            platform.book_accepted(platform.register("guest"), event_id, 1)
        page.goto(f"/events/{event_id}")
        page.get_by_role("button", name="Book").click()
        page.wait_for_url(STATUS_PATH)
        status = page.locator("#request-status")
        expect(status).to_contain_text("3 people ahead of you", timeout=15_000)
        page.evaluate("() => { window.notReloaded = true; }")
        decide_oldest(platform, event_id, 2)  # two of the three ahead are decided
        expect(status).to_contain_text("1 person ahead of you", timeout=5_000)
        assert page.evaluate("() => window.notReloaded") is True
        check_page(page, "request-in-line")  # holds the page still from here on
    finally:
        platform.resume("worker")
    page.reload()
    expect(page.locator("#request-status")).to_contain_text("Confirmed: 1 seat booked", timeout=30_000)
