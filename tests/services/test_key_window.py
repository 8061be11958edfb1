"""An Idempotency-Key's window: the request registry answers for a fresh key alone once it holds
every key of the last 24 h (services/booking.py `_registry_vouches_for_key`).

The real app with the full mode's Redis registry (the in-process pipeline records the request,
so no broker is needed), on SQLite and PostgreSQL. What is checked: which keyed bookings look
their key up in the database (the statements the engine runs), what a retry gets when the
registry lost its claims (a Redis restart) within the window and after it, and that a key is
never two requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import redis
from sqlalchemy import event, func, select, update

from atomicseats.adapters.redis_state import KEYS_HELD_AFTER_KEY
from atomicseats.extensions import db
from atomicseats.models import BookingRequest, utcnow
from atomicseats.services.booking import NO_KEYED_REQUEST_BEFORE
from atomicseats.services.ports import adapters
from tests.conftest import fresh_app
from tests.helpers import account, create_event


@contextmanager
def key_lookups() -> Iterator[list[str]]:
    """The statements that read booking requests by their Idempotency-Key, while inside."""
    seen: list[str] = []

    def _on_execute(_connection, _cursor, statement, *_args) -> None:
        _, where, condition = statement.partition("WHERE")
        if statement.lstrip().upper().startswith("SELECT") and where and "idempotency_key" in condition:
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", _on_execute)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", _on_execute)


@contextmanager
def guest_and_event(database_url: str, capacity: int, **overrides) -> Iterator[tuple]:
    """A fresh app (with `overrides`), its test client, a guest, and an event of a host's."""
    with fresh_app(database_url, **overrides) as app:
        client = app.test_client()
        host = account(client, "host")
        guest = account(client, "guest")
        yield client, guest, create_event(client, host, capacity=capacity)["id"]


@pytest.fixture
def setup(database_url, redis_url):
    with guest_and_event(database_url, 50, REDIS_URL=redis_url) as (client, guest, event_id):
        store = redis.Redis.from_url(redis_url)
        try:
            yield client, guest, event_id, store
        finally:
            store.close()


def book(client, guest, event_id: int, seats: int, key: str):
    return client.post(
        "/api/events/book",
        json={"eventId": event_id, "numberOfSeats": seats},
        headers={**guest.headers, "Idempotency-Key": key},
    )


def test_the_database_is_asked_until_the_registry_is_marked_then_a_fresh_key_is_not(setup):
    client, guest, event_id, store = setup
    with key_lookups() as first:
        assert book(client, guest, event_id, 1, "key-1").status_code == 202
    # No mark yet: the key looked up, and the newest keyed request read for the mark (none).
    assert len(first) == 2
    assert float(store.get(KEYS_HELD_AFTER_KEY)) == NO_KEYED_REQUEST_BEFORE.timestamp()

    with key_lookups() as then:
        assert book(client, guest, event_id, 2, "key-2").status_code == 202
        assert book(client, guest, event_id, 1, "key-3").status_code == 202
    assert then == []

    with key_lookups() as retry:  # a retry is found in the registry, and its status in Postgres
        answer = book(client, guest, event_id, 1, "key-1")
    assert answer.status_code == 202
    assert len(retry) == 1


def test_within_the_window_a_registry_that_lost_its_claims_is_not_trusted(setup):
    """Redis restarted (flushed) after a keyed request was recorded: its mark is that request,
    so for 24 h the database is asked, and the key keeps its 409 and its first request."""
    client, guest, event_id, store = setup
    first = book(client, guest, event_id, 2, "order-7").get_json()["data"]
    store.flushdb()

    with key_lookups() as lookups:
        assert book(client, guest, event_id, 1, "other").status_code == 202  # marks: order-7's time
        reused = book(client, guest, event_id, 3, "order-7")
        retried = book(client, guest, event_id, 2, "order-7")
    assert lookups, "the database must be asked while the lost claims are within their window"
    assert reused.status_code == 409
    assert reused.get_json()["errors"] or reused.get_json()["message"]
    assert retried.status_code == 202
    assert retried.get_json()["data"]["requestId"] == first["requestId"]
    assert retried.get_json()["data"]["status"] != "pending"  # its recorded status, from Postgres
    assert db.session.scalar(select(func.count()).where(BookingRequest.idempotency_key == "order-7")) == 1


def test_after_the_window_a_reused_key_is_still_one_request(setup):
    """The key was recorded more than 24 h ago and Redis lost it: the registry vouches (the
    mark is older than the window), so the database is not asked; the key still names the
    first request (its id is derived from the key) and nothing is recorded twice."""
    client, guest, event_id, store = setup
    first = book(client, guest, event_id, 2, "order-8").get_json()["data"]
    long_ago = utcnow() - timedelta(hours=25)
    db.session.execute(
        update(BookingRequest).where(BookingRequest.idempotency_key == "order-8").values(created_at=long_ago)
    )
    db.session.commit()
    store.flushdb()
    assert book(client, guest, event_id, 1, "marks").status_code == 202  # the mark: order-8's time

    with key_lookups() as lookups:
        retried = book(client, guest, event_id, 2, "order-8")
    assert lookups == []
    assert retried.status_code == 202
    assert retried.get_json()["data"]["requestId"] == first["requestId"]
    assert db.session.scalar(select(func.count()).where(BookingRequest.idempotency_key == "order-8")) == 1


def test_a_hand_off_the_broker_never_confirmed_keeps_its_key(database_url, redis_url):
    """Kafka unreachable (nothing listens on port 1): librdkafka takes the message and reports it
    timed out, which does not say it never reached a broker. The booking is a 503, and its key's
    claim stays, so the key still names that request: another body is a 409 (a claim given back
    would let the registry vouch for a key whose request may yet be recorded)."""
    overrides = {"REDIS_URL": redis_url, "PIPELINE": "kafka", "KAFKA_BROKERS": "127.0.0.1:1"}
    with guest_and_event(database_url, 5, **overrides) as (client, guest, event_id):
        try:
            unconfirmed = book(client, guest, event_id, 2, "order-9")
            other_body = book(client, guest, event_id, 3, "order-9")
        finally:
            adapters().pipeline.producer.close(1.0)  # else librdkafka dials port 1 until the run ends

    assert unconfirmed.status_code == 503
    assert unconfirmed.headers["Retry-After"]
    assert other_body.status_code == 409
    assert other_body.get_json()["code"] == "idempotency_key_reused"
