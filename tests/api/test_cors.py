"""Cross-origin access to the JSON API (CORS_ALLOWED_ORIGINS, atomicseats/cors.py): none by
default; configured, only /api answers the listed origins, a preflight passes no token check
and no rate limit, and never with credentials; a bad setting stops the app at start."""

from __future__ import annotations

import pytest

from atomicseats import create_app
from atomicseats.names import CORRELATION_HEADER, IDEMPOTENCY_HEADER
from config import ConfigError
from tests.api.support import assert_error
from tests.api.test_metrics import scrape
from tests.conftest import fresh_app
from tests.helpers import PASSWORD, account, create_event, register

SHOP = "https://shop.example.com"
LOCAL_FRONT_END = "http://localhost:3000"
REQUEST_HEADERS = f"Authorization, Content-Type, {IDEMPOTENCY_HEADER}, {CORRELATION_HEADER}"
RATE_LIMIT_HEADERS = {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}


def preflight(client, path: str, method: str = "POST", origin: str = SHOP, headers: str = REQUEST_HEADERS):
    return client.options(
        path,
        headers={"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers},
    )


def cors_headers(response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name.lower().startswith("access-control-")}


def listed(value: str | None) -> set[str]:
    return {item.strip() for item in (value or "").split(",") if item.strip()}


@pytest.fixture
def cors_app(database_url, monkeypatch):
    """An app configured as an operator would (the environment variable), with the limits on."""
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", f" {SHOP} , {LOCAL_FRONT_END}")
    limits = {"RATELIMIT_ENABLED": True, "RATELIMIT_AUTH": "2 per minute", "RATELIMIT_STORAGE_URI": "memory://"}
    with fresh_app(database_url, hold_context=False, **limits) as application:
        assert application.config["CORS_ALLOWED_ORIGINS"] == (SHOP, LOCAL_FRONT_END)
        yield application


def test_by_default_no_response_carries_a_cors_header(app, client):
    assert app.config["CORS_ALLOWED_ORIGINS"] == ()

    answered = preflight(client, "/api/events/book")
    listing = client.get("/api/events/all", headers={"Origin": SHOP})

    assert listing.status_code == 200
    assert cors_headers(answered) == {}
    assert cors_headers(listing) == {}


def test_a_preflight_from_an_allowed_origin_is_answered_without_a_token_check(cors_app):
    client = cors_app.test_client()

    booking = preflight(client, "/api/events/book")
    history = preflight(client, "/api/user/bookings", method="GET")  # a signed-in route: no token asked
    role = preflight(client, "/api/admin/users/1", method="PATCH", origin=LOCAL_FRONT_END)

    for response in (booking, history, role):
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.get_data() == b""
        assert response.headers["Access-Control-Max-Age"] == "7200"
        assert listed(response.headers["Access-Control-Allow-Methods"]) == {"DELETE", "GET", "PATCH", "POST"}
        assert {name.lower() for name in listed(response.headers["Access-Control-Allow-Headers"])} == {
            name.lower() for name in listed(REQUEST_HEADERS)
        }
        assert "Access-Control-Allow-Credentials" not in response.headers  # never cookies cross-origin
        assert "Origin" in listed(response.headers.get("Vary"))
    assert booking.headers["Access-Control-Allow-Origin"] == SHOP
    assert role.headers["Access-Control-Allow-Origin"] == LOCAL_FRONT_END
    # A header the API does not read is not allowed (the browser then refuses to send the request).
    extra = preflight(client, "/api/events/book", headers="Content-Type, X-CSRF-TOKEN")
    assert listed(extra.headers["Access-Control-Allow-Headers"]) == {"Content-Type"}


def test_preflights_spend_no_rate_limit(cors_app):
    client = cors_app.test_client()
    username = register(cors_app.test_client(), "guest")["username"]
    credentials = {"username": username, "password": PASSWORD}

    preflights = [preflight(client, "/api/user/login").status_code for _ in range(5)]  # the limit is 2 a minute
    logins = [client.post("/api/user/login", json=credentials, headers={"Origin": SHOP}) for _ in range(3)]

    assert preflights == [200] * 5
    assert [response.status_code for response in logins] == [200, 200, 429]
    # Flask-Limiter's headers on the limited routes (login, register), readable cross-origin.
    assert set(logins[0].headers.keys()) >= RATE_LIMIT_HEADERS
    assert listed(logins[0].headers["Access-Control-Expose-Headers"]) >= RATE_LIMIT_HEADERS
    refused = logins[2]
    assert_error(refused, 429)
    assert refused.headers["Access-Control-Allow-Origin"] == SHOP  # the client can read why, and when to retry
    assert "Retry-After" in refused.headers
    assert "Retry-After" in listed(refused.headers["Access-Control-Expose-Headers"])


def test_the_actual_request_carries_the_origin_and_exposes_the_headers_a_client_needs(cors_app):
    client = cors_app.test_client()
    host, guest = account(client, "host"), account(client, "guest")
    event_id = create_event(client, host, capacity=5)["id"]

    booked = client.post(
        "/api/events/book",
        json={"eventId": event_id, "numberOfSeats": 1},
        headers={**guest.headers, "Origin": SHOP, IDEMPOTENCY_HEADER: "cors-1", CORRELATION_HEADER: "cors-request-1"},
    )
    # A fresh client: the first one holds the login's cookies.
    unauthenticated = cors_app.test_client().get("/api/user/bookings", headers={"Origin": LOCAL_FRONT_END})

    assert booked.status_code == 202, booked.get_json()
    assert booked.headers["Access-Control-Allow-Origin"] == SHOP
    assert booked.headers[CORRELATION_HEADER] == "cors-request-1"
    exposed = listed(booked.headers["Access-Control-Expose-Headers"])
    assert {CORRELATION_HEADER, "Retry-After"} | RATE_LIMIT_HEADERS <= exposed
    assert "Access-Control-Allow-Credentials" not in booked.headers
    assert "Origin" in listed(booked.headers.get("Vary"))
    assert_error(unauthenticated, 401)
    assert unauthenticated.headers["Access-Control-Allow-Origin"] == LOCAL_FRONT_END  # errors are readable too


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example.com",
        "http://shop.example.com",  # another scheme is another origin
        "https://shop.example.com:8443",  # and so is another port
        "https://shop.example.com.evil.example",  # an allowed origin as a prefix
        "https://evilshop.example.com",
        "null",  # sandboxed frames and file:// pages
    ],
)
def test_another_origin_gets_no_allow_origin(cors_app, origin):
    client = cors_app.test_client()

    answered = preflight(client, "/api/events/book", origin=origin)
    listing = client.get("/api/events/all", headers={"Origin": origin})

    assert listing.status_code == 200
    assert cors_headers(answered) == {}
    assert cors_headers(listing) == {}


def test_a_request_without_origin_gets_no_cors_header(cors_app):
    """Not a CORS request (a server, curl): flask-cors would otherwise list the allowed origins."""
    assert cors_headers(cors_app.test_client().get("/api/events/all")) == {}


@pytest.mark.parametrize("path", ["/", "/login", "/register", "/bookings", "/healthz", "/metrics"])
def test_pages_and_operator_routes_never_carry_cors_headers(cors_app, path):
    client = cors_app.test_client()

    answered = client.get(path, headers={"Origin": SHOP})
    preflighted = preflight(client, path, method="POST", headers="Content-Type")

    assert answered.status_code in (200, 302), answered.status_code
    assert cors_headers(answered) == {}
    assert cors_headers(preflighted) == {}


def test_a_preflight_is_counted_under_its_route_not_its_path(cors_app):
    client = cors_app.test_client()

    preflight(client, "/api/bookings/requests/preflight-12345", method="GET")
    samples = scrape(client)

    labels = [dict(labels) for name, labels in samples if name == "atomicseats_http_requests_total"]
    assert {"route": "/api/bookings/requests/<request_id>", "method": "OPTIONS", "status": "200"} in labels
    assert not any("12345" in label.get("route", "") for label in labels)


def test_any_origin_is_answered_with_a_wildcard_and_still_no_credentials(database_url, monkeypatch):
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "*")
    with fresh_app(database_url, hold_context=False) as application:
        client = application.test_client()

        answered = preflight(client, "/api/events/book", origin="https://anyone.example")
        listing = client.get("/api/events/all", headers={"Origin": "https://anyone.example"})
        page = client.get("/", headers={"Origin": "https://anyone.example"})

    assert answered.headers["Access-Control-Allow-Origin"] == "*"
    assert listing.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in answered.headers
    assert "Access-Control-Allow-Credentials" not in listing.headers
    assert cors_headers(page) == {}


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("https://shop.example.com/", "is not an origin"),  # a trailing slash is a path
        ("https://shop.example.com/app", "is not an origin"),
        ("shop.example.com", "is not an origin"),
        ("ftp://shop.example.com", "is not an origin"),
        ("https://user@shop.example.com", "is not an origin"),
        ("https://shop.example.com?x=1", "is not an origin"),
        ("https://shop.example.com:99999", "is not an origin"),
        ("https://*.example.com", "is not an origin"),  # no patterns: exact origins only
        ("null", "is not an origin"),
        ("https://Shop.Example.com", "lower case"),
        ("https://shop.example.com:443", "default port"),
        (f"*, {SHOP}", "stands alone"),
    ],
)
def test_a_bad_setting_stops_the_app_at_start_with_a_clear_message(monkeypatch, value, says):
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", value)

    with pytest.raises(ConfigError, match="CORS_ALLOWED_ORIGINS") as refused:
        create_app("testing")

    assert says in str(refused.value)
