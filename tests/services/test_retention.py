"""Retention (issue 11 point 7): `flask purge` and beat's purge task delete old decided
requests, delivered outbox rows and ended sessions, in bounded batches, and keep whatever an
invariant or an open request still needs. On SQLite and PostgreSQL.

Age is made the way the clock would: the rows' timestamps are moved into the past.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from atomicseats.domain import limits
from atomicseats.domain.states import OutboxStatus, RequestStatus
from atomicseats.extensions import db
from atomicseats.models import AuthSession, Booking, BookingRequest, OutboxMessage, WaitlistEntry, utcnow
from atomicseats.services import audit, retention
from atomicseats.services._notification_rows import message_id
from tests.helpers import account, book, create_event

LONG_AGO = timedelta(days=400)  # older than every retention's default
POLICY = retention.RetentionPolicy(requests_days=180, outbox_days=30, sessions_days=30)


def request_of(request_id: str) -> BookingRequest | None:
    db.session.rollback()
    return db.session.execute(
        select(BookingRequest).where(BookingRequest.request_id == request_id)
    ).scalar_one_or_none()


def age(*request_ids: str) -> None:
    """As if these requests had been decided (and cancelled or withdrawn) long ago, and every
    outbox row delivered then."""
    then = utcnow() - LONG_AGO
    rows = select(BookingRequest.id).where(BookingRequest.request_id.in_(request_ids))
    db.session.execute(
        sa.update(BookingRequest).where(BookingRequest.request_id.in_(request_ids)).values(decided_at=then)
    )
    db.session.execute(
        sa.update(WaitlistEntry).where(WaitlistEntry.booking_request_id.in_(rows)).values(updated_at=then)
    )
    db.session.execute(
        sa.update(Booking)
        .where(Booking.booking_request_id.in_(rows), Booking.cancelled_at.is_not(None))
        .values(cancelled_at=then)
    )
    db.session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.status != OutboxStatus.FAILED)
        .values(status=OutboxStatus.SENT, sent_at=then, published_at=then)
    )
    db.session.commit()


def decision_email(request_id: str, kind: str) -> OutboxMessage | None:
    db.session.rollback()
    return db.session.execute(
        select(OutboxMessage).where(OutboxMessage.message_id == message_id(kind, request_id))
    ).scalar_one_or_none()


def finished_requests(client, host, guests) -> list[str]:
    """Requests with nothing left to do: half the guests book a seat and cancel it, the other
    half wait on the waitlist and leave it (first, so nobody is promoted). Returned in turns:
    cancelled, withdrawn, cancelled, withdrawn..."""
    event_id = create_event(client, host, capacity=len(guests) // 2)["id"]
    booked = [(guest, book(client, guest, event_id, 1)["requestId"]) for guest in guests]
    confirmed = [(g, r) for g, r in booked if request_of(r).status == RequestStatus.CONFIRMED]
    waiting = [(g, r) for g, r in booked if request_of(r).status == RequestStatus.WAITLISTED]
    assert len(confirmed) == len(waiting) == len(guests) // 2
    for guest, request_id in waiting:
        response = client.delete(f"/api/bookings/requests/{request_id}/waitlist", headers=guest.headers)
        assert response.status_code == 200, response.get_json()
    for guest, _request_id in confirmed:
        response = client.delete("/api/events/book", json={"eventId": event_id}, headers=guest.headers)
        assert response.status_code == 200, response.get_json()
    ids = [request_id for pair in zip(confirmed, waiting, strict=True) for _guest, request_id in pair]
    assert {request_of(request_id).status for request_id in ids} == {RequestStatus.CANCELLED}
    return ids


@pytest.fixture
def people(client):
    return account(client, "host"), [account(client, "guest") for _ in range(5)]


def test_old_decided_requests_go_and_everything_still_needed_stays(app, client, people):
    host, guests = people
    event_id = create_event(client, host, capacity=2)["id"]
    confirmed = book(client, guests[0], event_id, 2)["requestId"]  # has bookings
    waiting = book(client, guests[1], event_id, 1)["requestId"]  # a live waitlist entry
    cancelled_old, withdrawn_old, cancelled_recent, withdrawn_recent = finished_requests(client, host, guests[1:5])
    lonely = create_event(client, host)["id"]  # a pending request has an event to itself
    pending = str(uuid.uuid4())
    db.session.add(BookingRequest(request_id=pending, user_id=guests[4].id, event_id=lonely, seats_requested=1))
    db.session.commit()
    assert request_of(waiting).status == RequestStatus.WAITLISTED
    age(confirmed, waiting, cancelled_old, withdrawn_old)
    failed_email = decision_email(cancelled_recent, "booking.confirmed")  # a failed e-mail stays, however old
    db.session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.id == failed_email.id)
        .values(status=OutboxStatus.FAILED, sent_at=None, published_at=utcnow() - LONG_AGO)
    )
    db.session.commit()

    assert retention.purgeable_counts(POLICY)["requests"] == 2
    report = retention.purge(POLICY)

    assert (report.requests, report.is_complete) == (2, True)
    assert request_of(cancelled_old) is None and request_of(withdrawn_old) is None
    assert decision_email(cancelled_old, "booking.confirmed") is None  # went with its request
    assert decision_email(withdrawn_old, "booking.waitlisted") is None
    assert report.outbox >= 2
    for kept in (confirmed, waiting, cancelled_recent, withdrawn_recent, pending):
        assert request_of(kept) is not None, kept
    assert decision_email(confirmed, "booking.confirmed") is not None  # its request still needs it
    assert decision_email(waiting, "booking.waitlisted") is not None
    assert decision_email(cancelled_recent, "booking.confirmed").status == OutboxStatus.FAILED
    db.session.rollback()  # the cancelled booking stays, its request link emptied
    assert (
        db.session.execute(select(func.count(Booking.id)).where(Booking.booking_request_id.is_(None))).scalar_one() == 1
    )
    db.session.execute(sa.delete(BookingRequest).where(BookingRequest.request_id == pending))  # not stranded
    db.session.commit()
    assert audit.run_audit().is_clean, audit.run_audit().violations
    assert retention.purgeable_counts(POLICY) == {"requests": 0, "outbox": 0, "sessions": 0}


def test_ended_sessions_go_live_ones_stay(app, client, people):
    _host, guests = people
    now = utcnow()
    user_id = guests[0].id

    def session_row(expires_in: timedelta, revoked_ago: timedelta | None = None) -> str:
        row = AuthSession(
            id=str(uuid.uuid4()),
            user_id=user_id,
            refresh_jti=str(uuid.uuid4()),
            expires_at=now + expires_in,
            revoked_at=None if revoked_ago is None else now - revoked_ago,
        )
        db.session.add(row)
        db.session.commit()
        return row.id

    expired_long_ago = session_row(-LONG_AGO)
    revoked_long_ago = session_row(timedelta(days=1), revoked_ago=LONG_AGO)
    expired_lately = session_row(-timedelta(days=1))
    revoked_lately = session_row(timedelta(days=1), revoked_ago=timedelta(hours=1))
    live = session_row(timedelta(days=7))

    report = retention.purge(POLICY)

    db.session.rollback()
    remaining = set(db.session.execute(select(AuthSession.id)).scalars())
    assert report.sessions == 2
    assert {expired_long_ago, revoked_long_ago} & remaining == set()
    assert {expired_lately, revoked_lately, live} <= remaining
    assert client.get("/api/user/bookings", headers=guests[0].headers).status_code == 200  # the login still works


def test_batches_are_bounded_and_a_run_leaves_the_rest_to_the_next(app, client, people):
    host, guests = people
    ids = []
    for _ in range(2):
        ids += finished_requests(client, host, guests[:4])  # 4 each
    age(*ids)
    deleted: dict[str, list[int]] = {"booking_requests": [], "outbox": []}

    def count_deletes(conn, cursor, statement, parameters, context, executemany):
        words = statement.split()
        if words[:2] == ["DELETE", "FROM"] and words[2] in deleted:
            deleted[words[2]].append(cursor.rowcount)

    engine = db.engine
    sa.event.listen(engine, "after_cursor_execute", count_deletes)
    try:
        first = retention.purge(POLICY, batch_size=3, batches_max=2)
        second = retention.purge(POLICY, batch_size=3, batches_max=2)
        runs = 2
        while not retention.purge(POLICY, batch_size=3, batches_max=2).is_complete:
            runs += 1
            assert runs < 20
    finally:
        sa.event.remove(engine, "after_cursor_execute", count_deletes)

    assert (first.requests, first.is_complete) == (6, False)  # a run stops after its batches
    assert second.requests == 2
    assert deleted["booking_requests"] == [3, 3, 2]  # one statement per batch, each within the bound
    assert len(deleted["outbox"]) >= 3 and max(deleted["outbox"]) == 3
    db.session.rollback()
    assert db.session.execute(select(func.count()).where(BookingRequest.request_id.in_(ids))).scalar_one() == 0
    assert retention.purgeable_counts(POLICY) == {"requests": 0, "outbox": 0, "sessions": 0}
    assert audit.run_audit().is_clean, audit.run_audit().violations


def test_flask_purge_prints_what_it_removed_and_dry_run_removes_nothing(app, client, people):
    host, guests = people
    ids = finished_requests(client, host, guests[:2])
    age(*ids)
    runner = app.test_cli_runner()

    dry = runner.invoke(args=["purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "retention: requests 180 days, outbox 30 days, sessions 30 days" in dry.output
    assert "dry run, would remove: 2 booking requests, " in dry.output
    assert all(request_of(request_id) is not None for request_id in ids)

    real = runner.invoke(args=["purge", "--batch-size", "1"])
    assert real.exit_code == 0, real.output
    assert "removed: 2 booking requests, " in real.output
    assert "batches of at most 1)" in real.output
    assert all(request_of(request_id) is None for request_id in ids)
    again = runner.invoke(args=["purge"])
    assert "removed: 0 booking requests, 0 outbox rows, 0 sessions" in again.output
    assert audit.run_audit().is_clean


def test_the_retention_settings_are_bounded(monkeypatch):
    from config import ConfigError, load_config

    monkeypatch.setenv("RETENTION_REQUESTS_DAYS", str(limits.RETENTION_DAYS_MIN - 1))
    with pytest.raises(ConfigError, match="RETENTION_REQUESTS_DAYS"):
        load_config("testing")
    monkeypatch.setenv("RETENTION_REQUESTS_DAYS", "90")
    assert load_config("testing").RETENTION_REQUESTS_DAYS == 90
    with pytest.raises(AssertionError):
        retention.RetentionPolicy(requests_days=1, outbox_days=30, sessions_days=30)


def test_beat_runs_the_purge_task_hourly(app, client, people):
    from atomicseats import tasks
    from atomicseats.adapters.celery_app import celery_config
    from atomicseats.names import PURGE_TASK

    schedule = {entry["task"]: entry["schedule"] for entry in celery_config(app)["beat_schedule"].values()}
    assert schedule[PURGE_TASK] == 3600.0
    host, guests = people
    ids = finished_requests(client, host, guests[:2])
    age(*ids)

    assert tasks.purge() >= len(ids)  # the task body, as a worker runs it
    assert all(request_of(request_id) is None for request_id in ids)
    assert audit.run_audit().is_clean
