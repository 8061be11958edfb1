"""Redis holds caches that can vanish at any time (real Redis from `make test`)."""

from __future__ import annotations

from contextlib import ExitStack

import redis

from atomicseats.adapters.redis_cache import availability_key
from atomicseats.services import audit
from atomicseats.services.ports import adapters
from tests.conftest import fresh_app
from tests.helpers import PASSWORD, account, book, create_event, register


def test_availability_is_mirrored_after_each_commit(app, client, redis_url):
    assert app.config["REDIS_URL"] == redis_url
    host = account(client, "host")
    guest = account(client, "guest")
    event_id = create_event(client, host, capacity=4)["id"]
    book(client, guest, event_id, 3)
    book(client, guest, event_id, 3)
    cached = adapters().availability.load(event_id)
    assert (cached.reserved_seats, cached.seats_left, cached.waitlist_length) == (4, 0, 1)
    assert audit.run_audit().is_clean


def test_losing_redis_changes_no_outcome(app, client, redis_url):
    host = account(client, "host")
    guest = account(client, "guest")
    event_id = create_event(client, host, capacity=2)["id"]
    book(client, guest, event_id, 1)
    redis.Redis.from_url(redis_url).flushdb()
    assert book(client, guest, event_id, 2)["status"] == "partial"
    assert adapters().availability.load(event_id).seats_left == 0
    assert audit.run_audit().is_clean


def test_a_damaged_cache_entry_is_a_miss_and_audit_reports_drift(app, client, redis_url):
    host = account(client, "host")
    event_id = create_event(client, host, capacity=2)["id"]
    connection = redis.Redis.from_url(redis_url)
    connection.hset(availability_key(event_id), "reserved_seats", "not-a-number")
    assert adapters().availability.load(event_id) is None
    connection.hset(availability_key(event_id), "reserved_seats", "1")
    assert [violation.invariant for violation in audit.run_audit().violations] == ["6-cache-agrees"]


def test_login_rate_limit_is_shared_through_redis_by_every_api_process(database_url, redis_url):
    """Two app instances (two API processes) count against one limit stored in Redis."""
    limits = {"RATELIMIT_ENABLED": True, "RATELIMIT_AUTH": "3 per minute", "RATELIMIT_STORAGE_URI": redis_url}
    with ExitStack() as apps:
        first = apps.enter_context(fresh_app(database_url, hold_context=False, **limits))  # empties the Redis
        second = apps.enter_context(fresh_app(database_url, hold_context=False, empty=False, **limits))
        with first.app_context():
            username = register(first.test_client())["username"]
        statuses = []
        for app in (first, second, first, second):
            with app.app_context():
                response = app.test_client().post("/api/user/login", json={"username": username, "password": PASSWORD})
                statuses.append(response.status_code)
        assert statuses == [200, 200, 200, 429]
        assert "Retry-After" in response.headers
