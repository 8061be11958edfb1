"""Concurrent bookings on two price tiers of one event, on real PostgreSQL: neither tier is
ever oversold (each sells exactly its quota), each tier's outcomes and waitlist follow
arrival order, and the audit is clean. The capacity has seats outside both quotas, so only
the tier invariants (not the event's) can catch a tier oversold.

The negative control takes the row lock away and widens the race window (the tiers are read
before the pause): the same sale must then oversell a tier, or it no longer tests concurrency.
"""

from __future__ import annotations

import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from atomicseats.extensions import db
from atomicseats.models import Booking, BookingRequest, WaitlistEntry
from atomicseats.services import audit, booking
from tests.concurrency.test_flash_sale import BUSY_RETRIES, BUSY_RETRY_S, concurrent_app
from tests.helpers import account, event_payload

QUOTAS = {"Balcony": 13, "Stalls": 17}
CAPACITY = sum(QUOTAS.values()) + 5  # seats in no tier: an oversold tier stays under the capacity
USERS = 40
REQUESTS = 160
THREADS = 40
SALES_MAX = 3


def run_tier_sale(app) -> tuple[int, dict[str, int], list[int]]:
    setup = app.test_client()
    host = account(setup, "host")
    guests = [account(setup, "guest") for _ in range(USERS)]
    payload = {key: value for key, value in event_payload(capacity=CAPACITY).items() if key != "price"}
    payload["tiers"] = [
        {"name": name, "price": 1000 * (i + 1), "quota": q} for i, (name, q) in enumerate(QUOTAS.items())
    ]
    created = setup.post("/api/events/create", json=payload, headers=host.headers).get_json()["data"]
    tier_ids = {tier["name"]: tier["id"] for tier in created["tiers"]}
    rng = random.Random(4321)
    plan = [(guests[i % USERS], rng.randint(1, 4), rng.choice(list(tier_ids.values()))) for i in range(REQUESTS)]
    start = threading.Barrier(THREADS)
    statuses: list[int] = []

    def worker(offset: int) -> None:
        client = app.test_client()
        start.wait()
        for guest, seats, tier_id in plan[offset::THREADS]:
            body = {"eventId": created["id"], "numberOfSeats": seats, "tierId": tier_id}
            for attempt in range(BUSY_RETRIES + 1):
                response = client.post("/api/events/book", json=body, headers=guest.headers)
                if response.status_code != 503:
                    break
                time.sleep(BUSY_RETRY_S * (attempt + 1))
            statuses.append(response.status_code)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(worker, range(THREADS)))
    booking.allocate_pending(created["id"])  # what the last allocations left pending, as the sweep would
    return created["id"], tier_ids, statuses


def tier_confirmed(tier_id: int) -> int:
    db.session.rollback()
    return db.session.execute(
        select(func.coalesce(func.sum(Booking.seats), 0)).where(
            Booking.tier_id == tier_id, Booking.status == "confirmed"
        )
    ).scalar_one()


def sale_problems(event_id: int, tier_ids: dict[str, int], statuses: list[int]) -> list[str]:
    problems = []
    if statuses.count(202) != REQUESTS:
        problems.append(f"only {statuses.count(202)} of {REQUESTS} accepted: {sorted(set(statuses))}")
    for name, tier_id in tier_ids.items():
        if tier_confirmed(tier_id) != QUOTAS[name]:
            problems.append(f"tier {name}: {tier_confirmed(tier_id)} seats confirmed for quota {QUOTAS[name]}")
        requests = list(
            db.session.execute(
                select(BookingRequest).where(BookingRequest.tier_id == tier_id).order_by(BookingRequest.id)
            ).scalars()
        )
        outcomes = "".join(request.status[0] for request in requests)
        if not re.fullmatch(r"c+p?w*", outcomes):
            problems.append(f"tier {name}: outcomes not in arrival order: {outcomes}")
        queue = list(
            db.session.execute(
                select(WaitlistEntry.booking_request_id)
                .where(WaitlistEntry.tier_id == tier_id)
                .order_by(WaitlistEntry.id)
            ).scalars()
        )
        if queue != [request.id for request in requests if request.seats_waitlisted]:
            problems.append(f"tier {name}: waitlist is not its waitlisted requests in arrival order")
    problems += [str(violation) for violation in audit.run_audit().violations]
    return problems


@pytest.mark.slow
@pytest.mark.parametrize("group_commit", [True, False], ids=["group-commit", "each-alone"])
def test_concurrent_bookings_on_two_tiers_never_oversell_either(postgres_url, group_commit):
    with concurrent_app(postgres_url, EMBEDDED_GROUP_COMMIT=group_commit) as app:
        event_id, tier_ids, statuses = run_tier_sale(app)
        assert sale_problems(event_id, tier_ids, statuses) == []


@pytest.mark.slow
def test_negative_control_without_the_row_lock_a_tier_oversells(postgres_url):
    """As the flash sale's control: bookings decided alone, no row lock, a pause after the read.
    The oversell must be a tier's (its confirmed seats above its quota, found by the audit),
    while the event as a whole may well stay under its capacity."""
    sales = []
    for _ in range(SALES_MAX):
        with concurrent_app(
            postgres_url, EMBEDDED_GROUP_COMMIT=False, TESTING_SKIP_EVENT_LOCK=True, TESTING_PAUSE_AFTER_READ_S=0.02
        ) as app:
            _event_id, tier_ids, statuses = run_tier_sale(app)
            assert len(statuses) == REQUESTS
            oversold = {name: tier_confirmed(tier_id) for name, tier_id in tier_ids.items()}
            if any(oversold[name] > QUOTAS[name] for name in QUOTAS):
                invariants = {violation.invariant for violation in audit.run_audit().violations}
                assert "tier-reserved-equals-confirmed" in invariants
                return
            sales.append(f"confirmed per tier {oversold}")
    pytest.fail(
        f"without the row lock no sale of {SALES_MAX} oversold a tier: {sales}; this test no longer tests concurrency"
    )
