"""A guest in the browser: sign up, find an event, book, follow the request; sessions;
the same flows with JavaScript off; every page checked by axe-core and photographed."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, check_page, on_both_servers, register, unique

BOOK_PATH = re.compile(r"/events/\d+/book$")
STATUS_PATH = re.compile(r"/requests/[0-9a-f-]{36}$")


@on_both_servers
def test_a_guest_signs_up_books_and_the_status_follows_to_confirmed(page, live_server):
    event_id = live_server.seed_event(name=unique("Jazz night "), capacity=40, price_minor=2550)
    register(page)
    expect(page.get_by_text("Signed in as")).to_be_visible()

    page.goto(f"/events/{event_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Jazz night")
    expect(page.locator(".facts")).to_contain_text("€25.50")
    expect(page.get_by_test_id("seats-left")).to_have_text("40")
    book_posts = []
    page.on(
        "request", lambda request: request.method == "POST" and BOOK_PATH.search(request.url) and book_posts.append(1)
    )
    page.get_by_label("Seats").fill("3")
    page.get_by_role("button", name="Book").dblclick()  # a double-click sends one request

    page.wait_for_url(STATUS_PATH)
    expect(page.locator("#request-status")).to_contain_text("Confirmed: 3 seats booked", timeout=10_000)
    assert len(book_posts) == 1
    assert live_server.seats_left(event_id) == 37


def test_the_event_page_shows_a_change_within_two_seconds_without_reloading(page, new_page, live_server):
    event_id = live_server.seed_event(capacity=10)
    page.goto(f"/events/{event_id}")
    expect(page.get_by_test_id("seats-left")).to_have_text("10")
    page.evaluate("() => { window.notReloaded = true; }")

    other = new_page()
    register(other)
    other.goto(f"/events/{event_id}")
    other.get_by_label("Seats").fill("4")
    other.get_by_role("button", name="Book").click()
    expect(other.locator("#request-status")).to_contain_text("Confirmed", timeout=10_000)

    expect(page.get_by_test_id("seats-left")).to_have_text("6", timeout=2_000)
    assert page.evaluate("() => window.notReloaded") is True


def test_a_waitlisted_request_is_followed_until_promoted(page, new_page, live_server):
    event_id = live_server.seed_event(capacity=1)
    first = new_page()
    register(first)
    first.goto(f"/events/{event_id}")
    first.get_by_role("button", name="Book").click()
    expect(first.locator("#request-status")).to_contain_text("Confirmed", timeout=10_000)

    register(page)
    page.goto(f"/events/{event_id}")
    expect(page.locator(".availability")).to_contain_text("Sold out")
    page.get_by_role("button", name="Book").click()
    expect(page.locator("#request-status")).to_contain_text("Waitlisted: place 1 in line", timeout=10_000)

    live_server.raise_capacity(event_id, 2)  # the host frees a seat: the waitlist's head gets it
    expect(page.locator("#request-status")).to_contain_text("Confirmed: 1 seat booked", timeout=10_000)


def test_errors_are_shown_next_to_their_field(page, live_server):
    page.goto("/register")
    page.get_by_label("Username").fill("no spaces allowed")
    page.get_by_label("Your name").fill("Eve")
    page.get_by_label("E-mail").fill("not-an-address")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#email-error")).to_contain_text("e-mail address")
    page.get_by_label("E-mail").fill("eve@example.com")
    page.get_by_label("Password").fill("short")  # a password is never sent back to the page
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#username-error")).to_contain_text("letters, digits")
    expect(page.locator("#password-error")).to_contain_text("characters")
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")

    page.goto("/login")
    page.get_by_label("Username or e-mail").fill("nobody-here")
    page.get_by_label("Password").fill("wrong password!")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#password-error")).to_contain_text("do not match")


@on_both_servers
def test_logout_ends_the_session_server_side_and_a_copied_cookie_dies_with_it(page, new_page, live_server):
    username = register(page)
    context = page.context
    session_cookie = next(cookie for cookie in context.cookies() if cookie["name"] == "session")
    assert session_cookie["httpOnly"] is True
    assert session_cookie["sameSite"] == "Lax"
    assert session_cookie["secure"] is False  # plain http here; production sets COOKIE_SECURE

    thief = new_page()
    thief.context.add_cookies([session_cookie])
    thief.goto("/")
    expect(thief.get_by_text("Signed in as")).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("link", name="Log in")).to_be_visible()

    thief.reload()
    expect(thief.get_by_text("Signed in as")).to_have_count(0)
    event_id = live_server.seed_event()
    thief.goto(f"/events/{event_id}")
    thief.get_by_role("button", name="Log in to book").click()
    thief.wait_for_url(re.compile(r"/login"))

    # Logging in again opens a new session: a new id, and the copied cookie stays dead.
    page.goto("/login")
    page.get_by_label("Username or e-mail").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Signed in as")).to_be_visible()
    new_cookie = next(cookie for cookie in context.cookies() if cookie["name"] == "session")
    old_id = live_server.cookie_session(session_cookie["value"])["_user_id"]
    new_id = live_server.cookie_session(new_cookie["value"])["_user_id"]
    assert old_id.split(":")[0] == new_id.split(":")[0] and old_id != new_id
    thief.reload()
    expect(thief.get_by_text("Signed in as")).to_have_count(0)


def test_pages_send_security_headers(page, live_server):
    response = page.goto("/")
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert page.locator("script:not([src])").count() == 0


@on_both_servers
def test_with_javascript_off_a_guest_lists_logs_in_and_books(new_page, live_server):
    name = unique("Quiet recital ")
    event_id = live_server.seed_event(name=name, capacity=5, venue="Chapel of Rest")
    signup = new_page()
    username = register(signup)
    signup.get_by_role("button", name="Log out").click()

    page = new_page(javascript=False)
    page.goto("/")
    page.get_by_label("Search by name or venue").fill(name.split()[-1])
    page.get_by_role("button", name="Search").click()
    expect(page.locator(".cards .card")).to_have_count(1)
    page.get_by_role("link", name=name).click()
    expect(page.get_by_test_id("seats-left")).to_have_text("5")

    page.get_by_role("button", name="Log in to book").click()
    page.get_by_label("Username or e-mail").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(rf"/events/{event_id}$"))
    page.get_by_label("Seats").fill("2")
    page.get_by_role("button", name="Book").click()
    page.wait_for_url(STATUS_PATH)
    expect(page.locator("#request-status")).to_contain_text("Confirmed: 2 seats booked", timeout=10_000)
    page.goto(f"/events/{event_id}")
    expect(page.get_by_test_id("seats-left")).to_have_text("3")


def test_every_page_is_accessible_and_photographed(page, new_page, live_server):
    for index in range(3):
        live_server.seed_event(name=f"Showcase {index + 1} {unique('')}", capacity=3 - index, price_minor=1500 * index)
    visitor = new_page()
    visitor.goto("/")
    check_page(visitor, "catalogue")
    visitor.goto("/login")
    check_page(visitor, "login")
    visitor.goto("/register")
    check_page(visitor, "register")
    visitor.goto("/events/999999999")
    check_page(visitor, "not-found")

    event_id = live_server.seed_event(name="Midsummer strings", capacity=20, price_minor=4200)
    register(page)
    page.goto(f"/events/{event_id}")
    check_page(page, "event")
    page.get_by_label("Seats").fill("11")
    page.get_by_role("button", name="Book").click()
    expect(page.locator("#seats-error")).to_be_visible()
    check_page(page, "event-field-error")
    page.get_by_label("Seats").fill("2")
    page.get_by_role("button", name="Book").click()
    expect(page.locator("#request-status")).to_contain_text("Confirmed", timeout=10_000)
    check_page(page, "request-status")


def log_in(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("Username or e-mail").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Signed in as")).to_be_visible()


def test_a_password_change_signs_out_every_other_session(page, new_page, live_server):
    username = register(page)
    laptop = new_page()
    log_in(laptop, username)

    page.goto("/account/password")
    page.get_by_label("Current password").fill("not my password")
    page.get_by_label("New password").fill("a brand new passphrase")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#current_password-error")).to_contain_text("not your password")
    laptop.reload()
    expect(laptop.get_by_text("Signed in as")).to_be_visible()  # a failed change ends nothing

    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password").fill("a brand new passphrase")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("signed out everywhere else (1 other session)")
    check_page(page, "change-password")

    laptop.reload()
    expect(laptop.get_by_text("Signed in as")).to_have_count(0)
    page.goto("/")
    expect(page.get_by_text("Signed in as")).to_be_visible()  # the session that made the change stays
    log_in(laptop, username, "a brand new passphrase")
