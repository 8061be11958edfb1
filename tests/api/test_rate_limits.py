"""Rate limits behind a proxy (TRUSTED_PROXY_HOPS) and the per-user booking limit."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
import redis
from sqlalchemy import func, select

from atomicseats.extensions import db
from atomicseats.models import BookingRequest
from tests.api.support import assert_error, assert_success
from tests.conftest import fresh_app
from tests.helpers import PASSWORD, account, create_event, register, unchanged

PROXY_ADDRESS = "10.0.0.1"


def client_at(app, address: str):
    """A test client whose requests come from `address` (the socket's peer)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


@pytest.fixture
def limited_app(database_url):
    """An app whose limits count (in its own memory: tests on the shared Redis would count
    each other's logins), with TRUSTED_PROXY_HOPS set by the test through `make`."""
    limits = {"RATELIMIT_ENABLED": True, "RATELIMIT_AUTH": "2 per minute", "RATELIMIT_STORAGE_URI": "memory://"}
    made: list = []
    with ExitStack() as stack:

        def make(**overrides):
            # The first app starts from empty tables; the next ones share what it wrote.
            app = stack.enter_context(
                fresh_app(database_url, hold_context=False, empty=not made, **limits, **overrides)
            )
            made.append(app)
            return app

        yield make


def login_status(client, username: str, forwarded_for: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    response = client.post("/api/user/login", json={"username": username, "password": PASSWORD}, headers=headers)
    return response.status_code


def test_without_trusted_proxies_a_forged_forwarded_for_never_helps(limited_app):
    app = limited_app()  # TRUSTED_PROXY_HOPS defaults to 0
    client = client_at(app, "203.0.113.7")
    with app.app_context():
        username = register(client_at(app, "198.51.100.1"), "guest")["username"]

    statuses = [login_status(client, username, forwarded_for=f"192.0.2.{n}") for n in range(3)]

    assert statuses == [200, 200, 429]  # keyed on the socket address, whatever the header says


def test_behind_one_trusted_proxy_limits_key_on_the_client_the_proxy_saw(limited_app):
    app = limited_app(TRUSTED_PROXY_HOPS=1)
    proxy = client_at(app, PROXY_ADDRESS)  # every request comes through it
    with app.app_context():
        username = register(client_at(app, "198.51.100.1"), "guest")["username"]

    first_client = [login_status(proxy, username, forwarded_for="192.0.2.10") for _ in range(3)]
    # The proxy appends the address it saw: whatever a client puts before it is ignored.
    forged = login_status(proxy, username, forwarded_for="192.0.2.99, 192.0.2.10")
    second_client = [login_status(proxy, username, forwarded_for="192.0.2.20") for _ in range(2)]

    assert first_client == [200, 200, 429]
    assert forged == 429
    assert second_client == [200, 200]  # not throttled by the first client's logins through the same proxy


def test_trusted_proxy_hops_are_checked_at_start_up(monkeypatch):
    from config import ConfigError, load_config

    monkeypatch.setenv("TRUSTED_PROXY_HOPS", "-1")
    with pytest.raises(ConfigError, match="TRUSTED_PROXY_HOPS"):
        load_config("development")


def test_a_bad_booking_rate_limit_is_refused_at_start_up(monkeypatch):
    from config import ConfigError, load_config

    monkeypatch.setenv("RATELIMIT_BOOKING", "lots")
    with pytest.raises(ConfigError, match="RATELIMIT_BOOKING"):
        load_config("development")


# --- per-user booking limit --------------------------------------------------------------


def test_booking_is_limited_per_user_across_api_processes_sharing_redis(database_url, redis_url):
    """Two app instances (two API processes) share the Redis counter; the limit follows
    the signed-in user, not the address, and a refused request records nothing."""
    settings = {"RATELIMIT_ENABLED": True, "RATELIMIT_BOOKING": "3 per minute", "REDIS_URL": redis_url}
    with ExitStack() as apps:
        first = apps.enter_context(fresh_app(database_url, hold_context=False, **settings))
        second = apps.enter_context(fresh_app(database_url, hold_context=False, empty=False, **settings))
        # Bound last: Flask-Limiter's process-wide strategy now counts in this app's memory. The
        # booking limit of the two apps above must still count in their Redis.
        elsewhere = {"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": "memory://"}
        apps.enter_context(fresh_app(database_url, hold_context=False, empty=False, **elsewhere))
        assert first.config["RATELIMIT_STORAGE_URI"] == redis_url
        with first.app_context():
            setup = first.test_client()
            host, guest, other = account(setup, "host"), account(setup, "guest"), account(setup, "guest")
            event_id = create_event(setup, host, capacity=100)["id"]

            def book(app, who, address: str):
                client = client_at(app, address)
                body = {"eventId": event_id, "numberOfSeats": 1}
                return client.post("/api/events/book", json=body, headers=who.headers)

            accepted = [
                book(first, guest, "192.0.2.1"),
                book(second, guest, "192.0.2.2"),
                book(first, guest, "192.0.2.3"),
            ]
            with unchanged(ignoring=rb"LIMITS:LIMITER/booking/.*"):  # the limiter counts the refused try
                refused = book(second, guest, "192.0.2.4")
            others = book(first, other, "192.0.2.1")

            assert [response.status_code for response in accepted] == [202, 202, 202]
            assert_error(refused, 429)
            assert 1 <= int(refused.headers["Retry-After"]) <= 60
            assert_success(others, 202)  # another user is not throttled by this one
            db.session.rollback()
            count = select(func.count()).select_from(BookingRequest).where(BookingRequest.user_id == guest.id)
            assert db.session.scalar(count) == 3
            counters = redis.Redis.from_url(redis_url).keys("LIMITS:LIMITER/booking/*")
            assert len(counters) == 2  # one per user, in the shared Redis


@pytest.mark.parametrize(
    ("with_redis", "limiter_storage", "registry_counts"),
    [(False, None, False), (True, "memory://", False), (True, None, True)],
    ids=["embedded", "limiter-elsewhere", "counted-in-the-claim"],
)
def test_the_booking_limit_holds_whoever_counts_it(
    database_url, redis_url, with_redis, limiter_storage, registry_counts
):
    """Counted in the request registry's claim when its Redis is the limiter's storage, and
    apart (one increment in the limiter's storage) otherwise: the embedded default, or a
    limiter on another storage. The same answers either way."""
    settings = {"RATELIMIT_ENABLED": True, "RATELIMIT_BOOKING": "2 per minute"}
    settings["REDIS_URL"] = redis_url if with_redis else ""
    if limiter_storage:
        settings["RATELIMIT_STORAGE_URI"] = limiter_storage
    with fresh_app(database_url, hold_context=False, **settings) as app, app.app_context():
        from atomicseats.services.ports import adapters

        assert adapters().requests.counts_quotas is registry_counts
        client = app.test_client()
        host, guest = account(client, "host"), account(client, "guest")
        event_id = create_event(client, host, capacity=100)["id"]
        body = {"eventId": event_id, "numberOfSeats": 1}
        answers = [client.post("/api/events/book", json=body, headers=guest.headers) for _ in range(3)]

        assert [answer.status_code for answer in answers] == [202, 202, 429]
        assert 1 <= int(answers[2].headers["Retry-After"]) <= 60
        assert answers[2].get_json()["message"] == "Too many requests, slow down"
        db.session.rollback()
        count = select(func.count()).select_from(BookingRequest).where(BookingRequest.user_id == guest.id)
        assert db.session.scalar(count) == 2


def test_the_booking_limit_counts_nothing_when_rate_limits_are_off(app, client):
    host, guest = account(client, "host"), account(client, "guest")
    event_id = create_event(client, host, capacity=100)["id"]
    app.config["RATELIMIT_BOOKING"] = "1 per minute"

    for _ in range(3):
        response = client.post(
            "/api/events/book", json={"eventId": event_id, "numberOfSeats": 1}, headers=guest.headers
        )
        assert_success(response, 202)
