"""Retention: delete what nobody needs any more, in small batches (`flask purge`, and Celery
beat's purge task).

What may go is decided here and only here, one query per table (`purgeable_*`), each keeping
whatever an invariant of `flask audit` or an open request still reads:

- a booking request goes once it was decided longer ago than its retention, holds no confirmed
  booking (bookings point at their request: the audit adds their seats up per request, and a
  cancellation updates it) and none cancelled within the retention, no waitlist entry still
  waiting and none changed within the retention: nothing left to decide, promote or cancel.
  Its cancelled bookings stay, their request link emptied (a booking's request is optional);
  pending requests always stay. Retention is at least RETENTION_DAYS_MIN days, longer
  than the 24 h in which a retry with the same Idempotency-Key must find its request;
- an outbox row goes once it is delivered: published to booking-events and, for an e-mail,
  sent, both longer ago than its retention; an e-mail still pending or failed stays, and so
  does the decision e-mail of a request that is still there (the audit's invariant 7);
- a login session goes once it expired or was revoked longer ago than its retention.

Each batch is one short transaction of at most PURGE_BATCH_SIZE_MAX rows, so the allocator
and the API never wait behind a purge for long; a run does at most PURGE_BATCHES_PER_RUN_MAX
batches per table and the next run goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Select, delete, exists, func, or_, select

from atomicseats.domain import allocator, limits
from atomicseats.domain.states import BookingStatus, OutboxStatus, RequestStatus, WaitlistStatus
from atomicseats.extensions import db
from atomicseats.models import AuthSession, Booking, BookingRequest, OutboxMessage, WaitlistEntry, utcnow
from atomicseats.services._notification_rows import subject_key_of
from atomicseats.services.unit_of_work import database_errors_as_busy, unit_of_work

log = logging.getLogger(__name__)

RETENTION_DAYS_MAX = 3650
DECISION_KINDS = tuple(f"booking.{outcome.value}" for outcome in allocator.Outcome)


@dataclass(frozen=True)
class RetentionPolicy:
    requests_days: int
    outbox_days: int
    sessions_days: int

    def __post_init__(self) -> None:
        for days in (self.requests_days, self.outbox_days, self.sessions_days):
            assert limits.RETENTION_DAYS_MIN <= days <= RETENTION_DAYS_MAX, days


def configured_policy() -> RetentionPolicy:
    """The policy of config.py's RETENTION_*_DAYS settings."""
    config = current_app.config
    return RetentionPolicy(
        requests_days=config["RETENTION_REQUESTS_DAYS"],
        outbox_days=config["RETENTION_OUTBOX_DAYS"],
        sessions_days=config["RETENTION_SESSIONS_DAYS"],
    )


@dataclass(frozen=True)
class PurgeReport:
    requests: int
    outbox: int
    sessions: int
    batches: int
    is_complete: bool  # False: a table had more than a run's batches; the next run goes on

    @property
    def total(self) -> int:
        return self.requests + self.outbox + self.sessions


def purgeable_requests(cutoff: datetime) -> Select[tuple[int]]:
    """The ids of the booking requests that may go: decided before `cutoff`, nothing of theirs
    needed any more (see the module's docstring)."""
    has_live_booking = exists().where(
        Booking.booking_request_id == BookingRequest.id,
        or_(Booking.status == BookingStatus.CONFIRMED, Booking.cancelled_at.is_(None), Booking.cancelled_at >= cutoff),
    )
    has_live_entry = exists().where(
        WaitlistEntry.booking_request_id == BookingRequest.id,
        or_(WaitlistEntry.status == WaitlistStatus.WAITING, WaitlistEntry.updated_at >= cutoff),
    )
    return select(BookingRequest.id).where(
        BookingRequest.status != RequestStatus.PENDING,
        BookingRequest.decided_at.is_not(None),
        BookingRequest.decided_at < cutoff,
        ~has_live_booking,
        ~has_live_entry,
    )


def purgeable_outbox(cutoff: datetime) -> Select[tuple[int]]:
    """The ids of the outbox rows that may go: delivered before `cutoff`, and not the decision
    e-mail of a request that is still there."""
    request_still_there = or_(
        *(
            (OutboxMessage.kind == kind)
            & exists().where(BookingRequest.request_id == subject_key_of(kind, OutboxMessage.message_id))
            for kind in DECISION_KINDS
        )
    )
    is_sent = or_(
        OutboxMessage.channel != "email",
        (OutboxMessage.status == OutboxStatus.SENT) & (OutboxMessage.sent_at < cutoff),
    )
    return select(OutboxMessage.id).where(
        OutboxMessage.published_at.is_not(None),
        OutboxMessage.published_at < cutoff,
        is_sent,
        ~request_still_there,
    )


def purgeable_sessions(cutoff: datetime) -> Select[tuple[str]]:
    """The ids of the login sessions that ended (expired or revoked) before `cutoff`."""
    return select(AuthSession.id).where(
        or_(AuthSession.expires_at < cutoff, AuthSession.revoked_at < cutoff),
    )


def purge(
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    batch_size: int = limits.PURGE_BATCH_SIZE_MAX,
    batches_max: int = limits.PURGE_BATCHES_PER_RUN_MAX,
) -> PurgeReport:
    """Delete what `purgeable_*` select, batch by batch: requests first (their decision e-mails
    become purgeable with them), then outbox rows, then sessions."""
    assert 1 <= batch_size <= limits.PURGE_BATCH_SIZE_MAX
    assert batches_max >= 1
    now = now or utcnow()
    counts: dict[str, int] = {}
    batches = 0
    is_complete = True
    for table, days, purge_batch in (
        ("requests", policy.requests_days, _purge_requests),
        ("outbox", policy.outbox_days, _purge_outbox),
        ("sessions", policy.sessions_days, _purge_sessions),
    ):
        cutoff = now - timedelta(days=days)
        counts[table] = 0
        for _ in range(batches_max):
            deleted = purge_batch(cutoff, batch_size)
            batches += 1
            counts[table] += deleted
            if deleted < batch_size:
                break
        else:
            is_complete = False
    report = PurgeReport(counts["requests"], counts["outbox"], counts["sessions"], batches, is_complete)
    if report.total:
        log.info(
            "retention.purged",
            extra={"requests": report.requests, "outbox": report.outbox, "sessions": report.sessions},
        )
    return report


def purgeable_counts(policy: RetentionPolicy, *, now: datetime | None = None) -> dict[str, int]:
    """What `purge` would delete now (`flask purge --dry-run`)."""
    now = now or utcnow()
    queries: dict[str, Select[tuple[int]] | Select[tuple[str]]] = {
        "requests": purgeable_requests(now - timedelta(days=policy.requests_days)),
        "outbox": purgeable_outbox(now - timedelta(days=policy.outbox_days)),
        "sessions": purgeable_sessions(now - timedelta(days=policy.sessions_days)),
    }
    with database_errors_as_busy():
        session = db.session()
        return {
            table: int(session.execute(select(func.count()).select_from(query.subquery())).scalar_one())
            for table, query in queries.items()
        }


def _purge_requests(cutoff: datetime, batch_size: int) -> int:
    with unit_of_work() as work:
        ids = list(
            work.session.execute(purgeable_requests(cutoff).order_by(BookingRequest.id).limit(batch_size)).scalars()
        )
        if not ids:
            return 0
        # Their waitlist entries (served, cancelled or expired) go with them; the rule is asked
        # again in the delete, so a row that changed since the select stays.
        still_purgeable = BookingRequest.id.in_(purgeable_requests(cutoff).where(BookingRequest.id.in_(ids)))
        doomed = list(
            work.session.execute(select(BookingRequest.id).where(still_purgeable).with_for_update()).scalars()
        )
        if not doomed:
            return 0
        work.session.execute(delete(WaitlistEntry).where(WaitlistEntry.booking_request_id.in_(doomed)))
        work.session.execute(delete(BookingRequest).where(BookingRequest.id.in_(doomed)))
        return len(doomed)


def _purge_outbox(cutoff: datetime, batch_size: int) -> int:
    with unit_of_work() as work:
        ids = list(
            work.session.execute(purgeable_outbox(cutoff).order_by(OutboxMessage.id).limit(batch_size)).scalars()
        )
        if ids:
            work.session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids)))
        return len(ids)


def _purge_sessions(cutoff: datetime, batch_size: int) -> int:
    with unit_of_work() as work:
        ids = list(
            work.session.execute(purgeable_sessions(cutoff).order_by(AuthSession.id).limit(batch_size)).scalars()
        )
        if ids:
            work.session.execute(delete(AuthSession).where(AuthSession.id.in_(ids)))
        return len(ids)
