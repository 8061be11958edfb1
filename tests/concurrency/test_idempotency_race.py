"""One Idempotency-Key, many different bodies at once: one request, every other body 409.

Forty threads send the same key for forty different bodies (event × seat count), all
released by one barrier, through the real app on SQLite and PostgreSQL, with the Redis
request registry (the full mode's adapters), with that registry unreachable, and without
it (the embedded default). The
key must belong to exactly one body: that body gets 202 carrying its own numbers and is
recorded once; every other body gets 409, never a 202 carrying another body's result.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from atomicseats.extensions import db
from atomicseats.models import BookingRequest
from tests.conftest import fresh_app
from tests.helpers import account, create_event

THREADS = 40
EVENTS = 4
KEY = "order-7f3a"
UNREACHABLE_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1: every call fails fast


def idempotency_race(app) -> list[tuple[dict, int, dict]]:
    setup_client = app.test_client()
    host = account(setup_client, "host")
    guest = account(setup_client, "guest")
    event_ids = [create_event(setup_client, host, capacity=500)["id"] for _ in range(EVENTS)]
    bodies = [{"eventId": event_ids[index % EVENTS], "numberOfSeats": 1 + index // EVENTS} for index in range(THREADS)]
    assert len({(body["eventId"], body["numberOfSeats"]) for body in bodies}) == THREADS  # all different
    start = threading.Barrier(THREADS)

    def send(body: dict) -> tuple[dict, int, dict]:
        client = app.test_client()
        start.wait()
        response = client.post("/api/events/book", json=body, headers={**guest.headers, "Idempotency-Key": KEY})
        return body, response.status_code, response.get_json()

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(send, bodies))


def race_problems(results: list[tuple[dict, int, dict]]) -> list[str]:
    problems = []
    accepted = [(body, answer) for body, status, answer in results if status == 202]
    statuses = sorted(status for _, status, _ in results)
    if len(accepted) != 1 or statuses.count(409) != THREADS - 1:
        problems.append(f"{len(accepted)} accepted, statuses {statuses}: the key must belong to one body")
    for body, answer in accepted:
        data = answer["data"]
        if (data["eventId"], data["seatsRequested"]) != (body["eventId"], body["numberOfSeats"]):
            problems.append(f"a 202 for {body} carried another body's result: {data}")
    recorded = list(db.session.execute(select(BookingRequest).where(BookingRequest.idempotency_key == KEY)).scalars())
    if len(recorded) != 1:
        problems.append(f"{len(recorded)} requests recorded for the key")
    elif accepted:
        body = accepted[0][0]
        row = recorded[0]
        if (row.event_id, row.seats_requested) != (body["eventId"], body["numberOfSeats"]):
            problems.append(f"recorded {(row.event_id, row.seats_requested)}, accepted {body}")
    return problems


@pytest.mark.slow
@pytest.mark.parametrize("registry", ["redis", "redis-unreachable", "none"])
def test_the_same_key_with_racing_different_bodies_is_one_202_and_the_rest_409(database_url, redis_url, registry):
    overrides = {"SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": THREADS + 5, "max_overflow": 10}}
    overrides["REDIS_URL"] = {
        "redis": redis_url,  # the full mode's registry: an atomic claim per key
        "redis-unreachable": UNREACHABLE_REDIS_URL,  # every claim fails: Postgres must still decide
        "none": "",  # the embedded default: Postgres answers everything
    }[registry]
    if database_url.startswith("sqlite"):
        overrides["SQLALCHEMY_ENGINE_OPTIONS"] = {}
    with fresh_app(database_url, **overrides) as app:
        results = idempotency_race(app)
        db.session.rollback()
        assert race_problems(results) == []


def test_through_kafka_a_key_that_cannot_be_held_is_refused_not_raced(database_url):
    """Through Kafka nothing is recorded before the 202: with the registry unreachable, two
    bodies racing on one key would both be accepted. So a keyed request is a 503 (retry
    later) and nothing is handed on; the broker is never reached (none listens here)."""
    overrides = {"REDIS_URL": UNREACHABLE_REDIS_URL, "PIPELINE": "kafka", "KAFKA_BROKERS": "127.0.0.1:1"}
    with fresh_app(database_url, **overrides) as app:
        client = app.test_client()
        host = account(client, "host")
        guest = account(client, "guest")
        event_id = create_event(client, host, capacity=5)["id"]
        response = client.post(
            "/api/events/book",
            json={"eventId": event_id, "numberOfSeats": 1},
            headers={**guest.headers, "Idempotency-Key": KEY},
        )
        assert response.status_code == 503, response.get_json()
        assert response.headers["Retry-After"]
        assert "Idempotency-Key" in response.get_json()["message"]
        assert db.session.execute(select(BookingRequest)).first() is None
