"""Waitlist offers answered twice at once, while cancellations make new offers, on real PostgreSQL.

Five guests hold open offers. Each answers twice at the same moment (accept and decline, as a
guest clicking in the e-mail and on the page), while five holders cancel (each cancel offers
its seat to the next in line) and the expiry beat runs. Every change locks the event row, so:
each offer is answered once (the other answer finds it closed), no seat is both offered and
sold, and the audit is clean.

The negative control takes the lock away and widens the race: then both answers of some
offer go through (a seat accepted and released at once), or the state breaks (the audit, or
the database's own checks refusing a write). The control requires one of these findings.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from atomicseats.errors import Conflict, NotFound
from atomicseats.extensions import db
from atomicseats.models import Event
from atomicseats.services import audit, offers, reconcile
from tests.conftest import fresh_app
from tests.helpers import account, book, create_event

OFFERED = 5
HOLDERS = 10
WAITERS = 10
THREADS = 2 * OFFERED + (HOLDERS - OFFERED) + 1


def race(postgres_url: str, **overrides) -> tuple[list[str], list[str]]:
    """(offers answered twice, broken states); both empty when every rule held."""
    pool = {"pool_size": THREADS + 5, "max_overflow": 10}
    with fresh_app(postgres_url, SQLALCHEMY_ENGINE_OPTIONS=pool, **overrides) as app:
        setup = app.test_client()
        host = account(setup, "host")
        holders = [account(setup, "guest") for _ in range(HOLDERS)]
        waiters = [account(setup, "guest") for _ in range(WAITERS)]
        event_id = create_event(setup, host, capacity=HOLDERS)["id"]
        for holder in holders:
            book(setup, holder, event_id, 1)
        requests = {waiter.id: book(setup, waiter, event_id, 1)["requestId"] for waiter in waiters}
        db.session.execute(sa.update(Event).where(Event.id == event_id).values(waitlist_mode="offer"))
        db.session.commit()

        def cancel(holder) -> int:
            response = app.test_client().delete(
                "/api/events/book", json={"eventId": event_id, "cancelAll": True}, headers=holder.headers
            )
            return response.status_code

        for holder in holders[:OFFERED]:  # five open offers, to the first five in line
            assert cancel(holder) == 200
        start = threading.Barrier(THREADS)
        outcomes: dict[int, list[str]] = {waiter.id: [] for waiter in waiters[:OFFERED]}
        broken: list[str] = []

        def answer(waiter, how: str) -> None:
            with app.app_context():
                start.wait()
                try:
                    offers.answer_by_owner(waiter.id, requests[waiter.id], how)
                    outcomes[waiter.id].append(how)
                except (NotFound, Conflict):
                    pass  # answered already: the offer is closed
                except Exception as error:  # noqa: BLE001 - a write the database refused: broken
                    broken.append(f"{how} of waiter {waiter.id}: {type(error).__name__}")

        def cancel_later(holder) -> None:
            start.wait()
            status = cancel(holder)
            if status != 200:
                broken.append(f"cancel answered {status}")

        def beat() -> None:
            with app.app_context():
                start.wait()
                offers.expire_due_offers()

        jobs = [
            lambda waiter=waiter, how=how: answer(waiter, how)
            for waiter in waiters[:OFFERED]
            for how in (
                "accepted",
                "declined",
            )
        ]
        jobs += [lambda holder=holder: cancel_later(holder) for holder in holders[OFFERED:]]
        jobs.append(beat)
        with ThreadPoolExecutor(THREADS) as executor:
            list(executor.map(lambda job: job(), jobs))
        twice = [f"waiter {waiter_id}: {answers}" for waiter_id, answers in outcomes.items() if len(answers) > 1]
        never = [f"waiter {waiter_id}: no answer taken" for waiter_id, answers in outcomes.items() if not answers]
        db.session.rollback()
        reconcile.reconcile()
        broken += never + [str(violation) for violation in audit.run_audit().violations]
    return twice, broken


@pytest.mark.slow
def test_each_offer_is_answered_once_and_no_seat_is_both_offered_and_sold(postgres_url):
    assert race(postgres_url) == ([], [])


@pytest.mark.slow
def test_negative_control_without_the_row_lock_an_offer_is_answered_twice_or_the_state_breaks(postgres_url):
    twice, broken = race(postgres_url, TESTING_SKIP_EVENT_LOCK=True, TESTING_PAUSE_AFTER_READ_S=0.2)
    assert twice or broken
