"""An admin in the browser: reads the analytics (charts drawn, tables behind them), finds a
user and promotes them, who then signs in again as a host on their next request; the role
change and stepping down with JavaScript off (the last-admin refusal: tests/web); axe and screenshots of the
analytics, users and role pages."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    NON_BLANK_PIXELS,
    PAINTED_PIXELS_MIN,
    PASSWORD,
    check_page,
    on_both_servers,
    register,
    unique,
)
from tests.browser.test_guest_pages import log_in
from tests.helpers import create_admin_args

DECIDED_WAIT_S_MAX = 15


def make_admin(live_server) -> str:
    """An admin (signed in with PASSWORD), made as an operator makes one: the service in
    process, `flask users create-admin` against the full pipeline's database."""
    if live_server.name == "pipeline":
        username = unique("admin")
        code, output = live_server.platform.flask(*create_admin_args(username, PASSWORD))
        assert code == 0, output
        return username
    from atomicseats.services import users

    username = unique("admin")
    with live_server.app.app_context():
        users.create_admin(username, "Ada Admin", f"{username}@example.com", PASSWORD)
    return username


def book_through_the_api(buyer: Page, event_id: int, seats: list[int]) -> None:
    """A guest registered and booking over the JSON API (quicker than the pages, same services)."""
    username = unique("buyer")
    body = {"username": username, "name": "Bo Buyer", "email": f"{username}@example.com", "password": PASSWORD}
    assert buyer.request.post("/api/user/register", data={**body, "role": "guest"}).status == 201
    login = buyer.request.post("/api/user/login", data={"username": username, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['data']['accessToken']}"}
    for count in seats:
        booked = buyer.request.post(
            "/api/events/book", data={"eventId": event_id, "numberOfSeats": count}, headers=headers
        )
        assert booked.status == 202, booked.text()


def change_role(page: Page, username: str, role: str) -> None:
    """From the user list: search, pick the role in the user's row, then the confirmation page."""
    page.goto("/admin/users")
    page.get_by_label("Search by username, name or e-mail").fill(username)
    page.get_by_role("button", name="Search").click()
    page.get_by_label(f"New role for {username}").select_option(role)
    page.get_by_role("button", name=f"Change… role of {username}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Change the role of")


@on_both_servers
def test_an_admin_reads_the_analytics_and_promotes_a_user_who_is_a_host_on_their_next_request(
    page, new_page, live_server
):
    buyer = new_page()
    for name, capacity, seats in (
        ("Harbour lights", 40, [10, 8]),
        ("Night market", 25, [10, 10, 9]),
        ("Jazz brunch", 60, [6]),
    ):
        event_id = live_server.seed_event(name=f"{name} {unique('')}", capacity=capacity, price_minor=4250)
        book_through_the_api(buyer, event_id, seats)
        decided_by = time.monotonic() + DECIDED_WAIT_S_MAX  # the pipeline decides after the 202
        while live_server.seats_left(event_id) != max(0, capacity - sum(seats)) and time.monotonic() < decided_by:
            time.sleep(0.1)
    admin = make_admin(live_server)
    page.emulate_media(reduced_motion="reduce")
    log_in(page, admin)
    page.get_by_role("link", name="Admin", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Analytics")
    expect(page.get_by_test_id("revenue")).to_contain_text("€")
    expect(page.get_by_test_id("waiting")).not_to_have_text("0")
    for chart_id in ("top-events", "utilisation", "waitlists"):
        figure = page.locator(f"#{chart_id}")
        expect(figure).to_have_class(re.compile(r"\bis-drawn\b"))
        assert figure.locator("canvas").evaluate(NON_BLANK_PIXELS) > PAINTED_PIXELS_MIN, chart_id
    expect(page.get_by_role("table", name=re.compile("Live events by id"))).to_be_visible()
    if live_server.name == "embedded":  # one set of pictures
        check_page(page, "admin-analytics")

    user = new_page()
    username = register(user)  # a guest, signed in
    expect(user.locator(".role")).to_have_text("guest")

    change_role(page, username, "host")
    if live_server.name == "embedded":
        check_page(page, "admin-role-change")
    page.get_by_role("button", name="Confirm the change").click()
    expect(page.get_by_role("status")).to_contain_text(f"({username}) is now a host")
    expect(page.get_by_role("row", name=re.compile(username))).to_contain_text("host")
    page.goto("/admin/users")  # everyone, newest first
    expect(page.get_by_role("table", name=re.compile("All users"))).to_be_visible()
    if live_server.name == "embedded":
        check_page(page, "admin-users")

    user.reload()  # the next request: the old session has ended
    expect(user.get_by_text("Signed in as")).to_have_count(0)
    log_in(user, username)
    expect(user.locator(".role")).to_have_text("host")
    user.get_by_role("link", name="Host", exact=True).click()  # the host pages are theirs now
    expect(user.get_by_role("heading", level=1)).to_be_visible()
    assert user.url.endswith("/host")


def test_with_javascript_off_an_admin_promotes_a_user_and_steps_down(new_page, live_server):
    live_server.seed_event()  # something to chart, whichever tests ran on this server before
    page = new_page(javascript=False)
    user = new_page()
    username = register(user)
    admin = make_admin(live_server)
    log_in(page, admin)

    change_role(page, username, "admin")
    page.get_by_role("button", name="Confirm the change").click()
    expect(page.get_by_role("status")).to_contain_text(f"({username}) is now an admin")

    # The analytics read with JavaScript off: the charts are their tables.
    page.goto("/admin")
    expect(page.get_by_role("table", name=re.compile("Seats sold and free"))).to_be_visible()

    # Stepping down while another admin remains works, and lands on the catalogue.
    change_role(page, admin, "guest")
    page.get_by_role("button", name="Confirm the change").click()
    expect(page.get_by_role("status")).to_contain_text(f"You ({admin}) are now a guest")
    expect(page.get_by_role("link", name="Admin", exact=True)).to_have_count(0)
    page.goto("/admin")
    expect(page.get_by_text("This page is for admins only")).to_be_visible()
