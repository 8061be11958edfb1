"""The sales end racing on one event, on real PostgreSQL.

Sales have just ended. At once: several close-outs run (two beat runs, an operator's
`flask close-sales`), holders cancel (each cancel closes out first, and must promote
nobody), and requests accepted before the end are decided. Every one of these locks the
event row, so whatever the interleaving: every waiting entry expires exactly once, with one
e-mail; no seat is confirmed or promoted after the end; in-flight requests are rejected with
`event_started`; every request's status is the rule's; the audit is clean.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from atomicseats.errors import ServiceBusy
from atomicseats.extensions import db
from atomicseats.models import Booking, BookingRequest, Event, OutboxMessage, WaitlistEntry, utcnow
from atomicseats.services import audit, booking, reconcile, sales
from atomicseats.services.contracts import AcceptedRequest
from atomicseats.services.ports import adapters
from tests.conftest import fresh_app
from tests.helpers import account, book, create_event

HOLDERS = 6
WAITING = 12
IN_FLIGHT = 6
CLOSERS = 4
THREADS = HOLDERS + CLOSERS + 2  # two allocators decide the in-flight requests


def race_problems(postgres_url: str, **overrides) -> tuple[list[str], list[str]]:
    """Run the race; what went wrong afterwards as (refused, problems), both empty when every
    rule held. Refused: an actor answered "busy, retry later" (503 / ServiceBusy) and changed
    nothing. Problems: everything else (errors, broken states, audit violations)."""
    pool = {"pool_size": THREADS + 5, "max_overflow": 10}
    with fresh_app(postgres_url, SQLALCHEMY_ENGINE_OPTIONS=pool, **overrides) as app:
        setup = app.test_client()
        host = account(setup, "host")
        holders = [account(setup, "guest") for _ in range(HOLDERS)]
        waiting = [account(setup, "guest") for _ in range(WAITING)]
        event_id = create_event(setup, host, capacity=HOLDERS)["id"]
        for holder in holders:
            book(setup, holder, event_id, 1)
        for guest in waiting:
            assert book(setup, guest, event_id, 2)["status"] == "waitlisted"
        in_flight = [
            AcceptedRequest(str(uuid.uuid4()), guest.id, event_id, 1, None, None, utcnow()) for guest in holders
        ][:IN_FLIGHT]
        booking.record_requests(in_flight)  # accepted while sales were open, not decided yet
        sales_end_at = utcnow()
        db.session.execute(sa.update(Event).where(Event.id == event_id).values(sales_end_at=sales_end_at))
        db.session.commit()
        adapters().availability.forget(event_id)
        start = threading.Barrier(THREADS)
        refused: list[str] = []  # answered "busy, retry": that actor changed nothing
        failures: list[str] = []

        def act(role: str, guest=None) -> None:
            with app.app_context():
                client = app.test_client()
                start.wait()
                try:
                    if role == "holder":
                        response = client.delete("/api/events/book", json={"eventId": event_id}, headers=guest.headers)
                        if response.status_code == 503:
                            refused.append("cancel answered 503")
                        elif response.status_code != 200:
                            failures.append(f"cancel answered {response.status_code}")
                    elif role == "closer":
                        sales.close_out_event(event_id)
                    else:
                        booking.allocate_pending(event_id)
                except ServiceBusy as error:
                    refused.append(f"{role}: {error}")
                except Exception as error:  # noqa: BLE001  every failure is a finding
                    failures.append(f"{role}: {type(error).__name__}: {str(error)[:200]}")
                finally:
                    db.session.remove()

        jobs = [("holder", guest) for guest in holders] + [("closer", None)] * CLOSERS + [("allocator", None)] * 2
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda job: act(*job), jobs))
        sales.close_out_event(event_id)  # what the next beat run would do, if anything is left

        db.session.rollback()
        problems = list(failures)
        entries = db.session.execute(select(WaitlistEntry).where(WaitlistEntry.event_id == event_id)).scalars().all()
        if sorted(entry.status for entry in entries) != ["expired"] * WAITING:
            problems.append(f"entries {sorted(entry.status for entry in entries)}")
        expired_mail = db.session.execute(
            select(OutboxMessage.user_id).where(OutboxMessage.kind == "waitlist.expired")
        ).scalars()
        if sorted(expired_mail) != sorted(guest.id for guest in waiting):
            problems.append("not exactly one waitlist.expired e-mail per waiting guest")
        promoted = db.session.execute(
            select(func.count(OutboxMessage.id)).where(OutboxMessage.kind == "booking.promoted")
        ).scalar_one()
        late_bookings = db.session.execute(
            select(func.count(Booking.id)).where(Booking.created_at >= sales_end_at)
        ).scalar_one()
        if promoted or late_bookings:
            problems.append(f"{promoted} promotions, {late_bookings} bookings after the sales end")
        decided = db.session.execute(
            select(BookingRequest.status, BookingRequest.reason).where(
                BookingRequest.request_id.in_([request.request_id for request in in_flight])
            )
        ).all()
        if sorted(decided) != [("rejected", "event_started")] * IN_FLIGHT:
            problems.append(f"in-flight requests {sorted(decided)}")
        # Redis mirrors written after concurrent commits may land out of order: reconcile, then audit.
        reconcile.reconcile()
        problems += [str(violation) for violation in audit.run_audit().violations]
    return refused, problems


@pytest.mark.slow
def test_close_outs_cancels_and_late_decisions_race_without_serving_anyone_after_the_end(postgres_url):
    assert race_problems(postgres_url) == ([], [])


@pytest.mark.slow
def test_negative_control_without_the_row_lock_the_same_checks_fail(postgres_url):
    """Take the event row lock away and widen the race: the same checks must find what the
    lock prevents, not merely a refusal: two close-outs expiring the same waiting entry (the
    second one's e-mail hits the unique Message-ID), or a lost update of the event's seats
    (reserved seats no longer those the bookings confirm)."""
    refused, problems = race_problems(postgres_url, TESTING_SKIP_EVENT_LOCK=True, TESTING_PAUSE_AFTER_READ_S=0.05)
    lock_failures = [
        problem
        for problem in problems
        if ("uq_outbox_message_id" in problem and "waitlist.expired" in problem)
        or problem.startswith("[2-reserved-equals-confirmed]")
    ]
    assert lock_failures, (
        f"without the row lock no double close-out nor lost update (problems {problems}, refused {refused}): "
        "this test no longer exercises concurrency"
    )
