"""Price tiers in the browser (the embedded server): the guest's event page lists the tiers,
passes axe and is photographed, and the tier chosen in the form is the one booked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, check_page, register, unique


def seed_tiered_event(live_server) -> int:
    from atomicseats.services import events, users

    with live_server.app.app_context():
        host = users.register_user(unique("host"), "Hedda Host", f"{unique('h')}@example.com", PASSWORD, "host")
        starts_at = datetime.now(UTC) + timedelta(days=7)
        view = events.create_event(
            host,
            {
                "name": f"Tiered night {unique('')}",
                "venue": "Town Hall",
                "starts_at": starts_at,
                "ends_at": starts_at + timedelta(hours=2),
                "capacity_seats": 10,
                "description": "Early birds sing cheaper.",
                "tiers": [
                    {"name": "Early bird", "price_minor": 1000, "quota_seats": 2},
                    {"name": "Standard", "price_minor": 2500, "quota_seats": 4},
                    {
                        "name": "Door",
                        "price_minor": 3000,
                        "quota_seats": 4,
                        "sales_starts_at": starts_at - timedelta(hours=1),
                    },
                ],
            },
        )
        return view.event.id


def test_a_guest_chooses_a_price_tier_and_books_in_it(page, live_server):
    event_id = seed_tiered_event(live_server)
    register(page)
    page.goto(f"/events/{event_id}")
    tiers = page.get_by_test_id("tiers")
    expect(tiers).to_contain_text("Early bird")
    expect(tiers).to_contain_text("From ")  # the door tier is not on sale yet
    check_page(page, "event-tiers")
    page.get_by_label("Seats").fill("2")
    page.get_by_label("Price tier", exact=True).select_option(label="Standard (€25.00)")
    page.get_by_role("button", name="Book").click()
    expect(page.locator("#request-status")).to_contain_text("Confirmed", timeout=10_000)
    page.goto(f"/events/{event_id}")
    standard = page.get_by_test_id("tiers").get_by_role("row", name="Standard")
    expect(standard).to_contain_text("2 of 4")  # the standard tier's seats, not the early bird's
    expect(page.get_by_test_id("tiers").get_by_role("row", name="Early bird")).to_contain_text("2 of 2")
