"""The pages over Flask's test client (both backends): CSRF, 429/503 in words with a retry
offer, the catalogue at /, the API docs where they were. The browser flows: tests/browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask

from tests.conftest import fresh_app
from tests.helpers import PASSWORD, account, create_event

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
IDEMPOTENCY_KEY = re.compile(r'name="idempotency_key" type="hidden" value="([^"]+)"')


def form_token(client, path: str) -> str:
    return CSRF.search(client.get(path).get_data(as_text=True)).group(1)


def sign_in(client, username: str) -> None:
    token = form_token(client, "/login")
    response = client.post("/login", data={"csrf_token": token, "login": username, "password": PASSWORD})
    assert response.status_code == 303, response.get_data(as_text=True)


@pytest.fixture
def limited_app(database_url) -> Iterator[Flask]:
    """Rate limits on, as in production: one booking and two logins a minute per user/address
    (counted in the limiter's memory: the embedded default without Redis). No app context is
    held around the requests: Flask-WTF keeps a request's CSRF token in `g`."""
    overrides = {
        "REDIS_URL": "",
        "RATELIMIT_STORAGE_URI": "memory://",
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_BOOKING": "1 per minute",
        "RATELIMIT_AUTH": "2 per minute",
    }
    with fresh_app(database_url, hold_context=False, **overrides) as application:
        yield application


def test_the_catalogue_is_at_the_root_and_the_api_docs_stay_where_they_were(client):
    host = account(client, "host")
    create_event(client, host, name="Harbour lights", price=123456)
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Harbour lights" in html and "€1,234.56" in html
    assert client.get("/api/docs").status_code == 200


def test_a_form_without_its_csrf_token_is_refused_in_words(client):
    guest = account(client)
    response = client.post("/login", data={"login": guest.username, "password": PASSWORD})
    assert response.status_code == 400
    assert "This form expired" in response.get_data(as_text=True)
    assert "Signed in as" not in client.get("/").get_data(as_text=True)


def test_a_booking_over_the_rate_limit_is_said_in_words_with_a_retry_that_keeps_its_key(limited_app):
    client = limited_app.test_client()
    host = account(client, "host")
    event_id = create_event(client, host, capacity=10)["id"]
    guest = account(client)
    sign_in(client, guest.username)

    for seats, expected in ((1, 303), (2, 429)):
        page = client.get(f"/events/{event_id}").get_data(as_text=True)
        key = IDEMPOTENCY_KEY.search(page).group(1)
        data = {"csrf_token": CSRF.search(page).group(1), "idempotency_key": key, "seats": str(seats)}
        response = client.post(f"/events/{event_id}/book", data=data)
        assert response.status_code == expected, re.findall(
            r'class="(?:error|alert[^"]*)"[^>]*>(.*?)</', response.get_data(as_text=True), re.S
        )
    html = response.get_data(as_text=True)
    assert "Too many requests." in html and "Try again" in html
    assert response.headers["Retry-After"]
    assert IDEMPOTENCY_KEY.search(html).group(1) == key  # the retry is the same request


def test_logging_in_too_often_is_a_page_in_words_with_a_retry(limited_app):
    client = limited_app.test_client()
    statuses = []
    for _ in range(3):
        token = form_token(client, "/login")
        response = client.post("/login", data={"csrf_token": token, "login": "nobody", "password": "wrong-wrong"})
        statuses.append(response.status_code)
    assert statuses == [400, 400, 429]
    html = response.get_data(as_text=True)
    assert "going faster than we allow" in html and "Please try again in" in html
    assert response.headers["Retry-After"]
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_a_password_change_in_the_browser_ends_the_accounts_api_sessions_too(limited_app):
    client = limited_app.test_client()
    guest = account(client)  # an API login: a token on the same session store as the pages
    assert client.get("/api/user/bookings", headers=guest.headers).status_code == 200
    sign_in(client, guest.username)

    token = form_token(client, "/account/password")
    response = client.post(
        "/account/password",
        data={"csrf_token": token, "current_password": PASSWORD, "password": "another long passphrase"},
    )
    assert response.status_code == 200
    assert "signed out everywhere else (1 other session)" in response.get_data(as_text=True)
    assert client.get("/api/user/bookings", headers=guest.headers).status_code == 401
    assert "Signed in as" in client.get("/").get_data(as_text=True)


NEXT_PAGE = re.compile(r'<a class="button secondary" rel="next" href="([^"]+)"')
CARD_NAME = re.compile(r'<h3 id="event-\d+-name"><a href="/events/\d+">([^<]+)</a>')


def test_the_catalogue_walks_pages_searches_and_filters_by_date(client):
    host = account(client, "host")
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    later = soon + timedelta(days=30)
    for number in range(14):
        starts = soon if number % 2 else later
        create_event(
            client,
            host,
            name=f"Gig {number:02d}",
            venue="Old Mill" if number == 5 else "Test Hall",
            startsAt=starts.isoformat(),
            endsAt=(starts + timedelta(hours=2)).isoformat(),
        )
    seen, url = [], "/"
    while url:
        html = client.get(url.replace("&amp;", "&")).get_data(as_text=True)
        seen += CARD_NAME.findall(html)
        match = NEXT_PAGE.search(html)
        url = match.group(1) if match else None
    assert sorted(seen) == [f"Gig {number:02d}" for number in range(14)]  # each once, over two pages

    assert CARD_NAME.findall(client.get("/?q=old+MILL").get_data(as_text=True)) == ["Gig 05"]
    day = soon.date().isoformat()
    on_the_day = CARD_NAME.findall(client.get(f"/?starts_from={day}&starts_to={day}").get_data(as_text=True))
    assert sorted(on_the_day) == [f"Gig {number:02d}" for number in range(1, 14, 2)]
    refused = client.get("/?starts_from=yesterday")
    assert refused.status_code == 200 and 'id="starts_from-error"' in refused.get_data(as_text=True)
