"""Outbox delivery: e-mails with bounded retries, and every row's copy on `booking-events`.

Sending claims due rows in one short transaction (one SELECT ... FOR UPDATE SKIP LOCKED on
Postgres, so concurrent senders take disjoint rows, and one UPDATE) and leases them:
`next_attempt_at` moves past the end of the batch, hiding them from other senders. The batch
then goes out with no transaction open (the mailer: one SMTP session, or a few in parallel,
for the whole batch), and its results are recorded in bulk: one UPDATE marks the accepted
e-mails sent (one more each MAIL_ACCEPTED_REPORT_S while a slow batch goes out), one short
transaction gives each refused one its retry. No lock is held across SMTP: on SQLite a unit
of work holds the database's write lock, and on Postgres the publisher updates the same rows.
A sender that dies mid-batch loses the record of the sends since its last record: those rows
come back when the lease ends and go out again with the same Message-IDs, so the resends are
recognisable (DESIGN invariant 7: at least once, never lost).

Publishing is serialized (a transaction-scoped advisory lock on Postgres, BEGIN IMMEDIATE
on SQLite) and reads unpublished rows in id order. An event's rows are written under its
row lock, so their id order is their commit order, and the topic, keyed by event id,
carries them in that order. Delivery is at least once: a batch whose acknowledgement is
lost is published again, and consumers recognise it by `outboxId` / `messageId`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from atomicseats.domain import limits
from atomicseats.domain.states import OutboxStatus
from atomicseats.errors import ServiceBusy
from atomicseats.extensions import db
from atomicseats.models import OutboxMessage, User, utcnow
from atomicseats.services import notifications
from atomicseats.services._ticket_mail import (
    TICKET_SEATS_FIELDS,
    BookingCalendar,
    TicketLine,
    booking_calendars,
    new_booking,
    ticket_parts,
)
from atomicseats.services._ticket_media import current_code_key
from atomicseats.services.contracts import MailMessage, MailNotAttempted, MailPart
from atomicseats.services.ports import adapters
from atomicseats.services.unit_of_work import UnitOfWork, release_session, unit_of_work

log = logging.getLogger(__name__)

PUBLISH_LOCK_NAMESPACE = 0x5EA8  # advisory-lock namespace "publishing the outbox" (arrivals use 0x5EA7)
PUBLISH_LOCK_KEY = 1
REASON_RECIPIENT_DELETED = "recipient_deleted: the user no longer exists"
AUTO_SUBMITTED_HEADER = "Auto-Submitted"  # RFC 3834: tells auto-responders not to answer
OUTBOX_RECORD_RETRY_DELAY_S = 0.2  # first wait before recording a send again; doubles up to the cap
OUTBOX_RECORD_RETRY_DELAY_S_MAX = 2.0

Row = TypeVar("Row")  # what a recorder records: claims, or (claim, error) pairs
Recorded = TypeVar("Recorded")  # what it reports


@dataclass(frozen=True)
class SendReport:
    sent: int
    retried: int
    failed: int


@dataclass(frozen=True)
class _Claim:
    """A row this sender leased: plain data, usable after the claiming transaction ended."""

    outbox_id: int
    kind: str
    message_id: str
    payload: str
    recipient_email: str
    recipient_name: str
    lease_until: datetime
    written_at: datetime


# --- sending e-mails -------------------------------------------------------------------


def send_due_notifications(limit: int = limits.OUTBOX_BATCH_SIZE_MAX) -> SendReport:
    """Send up to `limit` due e-mails; each is marked sent, retried later, or failed."""
    assert 1 <= limit <= limits.OUTBOX_BATCH_SIZE_MAX
    claims, failed = _claim_due(limit)
    if not claims:
        return SendReport(sent=0, retried=0, failed=failed)
    deadline = time.monotonic() + limits.OUTBOX_SEND_BATCH_S_MAX
    tickets = _Tickets(current_app.config["PUBLIC_BASE_URL"], claims)
    results: list[Exception | None] = [None] * len(claims)
    messages: list[MailMessage] = []
    to_send: list[int] = []
    for index, claim in enumerate(claims):
        try:
            messages.append(_mail_message(claim, tickets))
            to_send.append(index)
        except Exception as error:  # a row that cannot be rendered fails alone, and is retried
            results[index] = error
    recorded = _RecordedAsTheyGo([claims[index] for index in to_send])
    for index, result in zip(to_send, adapters().mailer.send_all(messages, deadline, recorded), strict=True):
        results[index] = result
    sent = [
        claim
        for claim, result in zip(claims, results, strict=True)
        if result is None and claim.outbox_id not in recorded.outbox_ids
    ]
    unsent = [claim for claim, result in zip(claims, results, strict=True) if isinstance(result, MailNotAttempted)]
    errors = [
        (claim, result)
        for claim, result in zip(claims, results, strict=True)
        if result is not None and not isinstance(result, MailNotAttempted)
    ]
    sent_count = recorded.count + (_record(_record_sent, sent, 0) if sent else 0)
    retried, gave_up = _record(_record_failures, errors, (0, 0)) if errors else (0, 0)
    if unsent:  # leave the rest to the next run rather than outlive the lease
        _record(_release, unsent, None)
    adapters().metrics.notifications_sent(sent_count, retried + gave_up)
    return SendReport(sent=sent_count, retried=retried, failed=failed + gave_up)


class _RecordedAsTheyGo:
    """The mailer's `on_accepted`: marks sent what the server accepted while the batch is still
    going out (one UPDATE a report), so a sender killed mid-batch sends again only the rest. A
    report the database refuses is left for the batch's own record, with its retries."""

    def __init__(self, claims: list[_Claim]) -> None:
        self.claims = claims  # in the order of the messages given to the mailer
        self.outbox_ids: set[int] = set()
        self.count = 0

    def __call__(self, positions: list[int]) -> None:
        batch = [self.claims[position] for position in positions]
        try:
            self.count += _record_sent(batch)
        except (ServiceBusy, SQLAlchemyError) as error:
            log.warning("outbox.record.deferred", extra={"rows": len(batch), "error": type(error).__name__})
            return
        self.outbox_ids.update(claim.outbox_id for claim in batch)


def retry_delay_s(attempts: int) -> int:
    """Seconds to wait after the `attempts`-th failed attempt: exponential, capped."""
    assert 1 <= attempts <= limits.OUTBOX_SEND_ATTEMPTS_MAX
    delay_s: int = limits.OUTBOX_RETRY_DELAY_S_MIN * 2 ** (attempts - 1)  # int ** int is typed Any (negative powers)
    return min(delay_s, limits.OUTBOX_RETRY_DELAY_S_MAX)


def _claim_due(limit: int) -> tuple[list[_Claim], int]:
    """Lease due rows to this sender (one SELECT, one UPDATE); rows whose recipient is gone fail at once."""
    with unit_of_work() as work:
        now = utcnow()
        lease_until = now + timedelta(seconds=limits.OUTBOX_SEND_LEASE_S)
        statement = (
            select(
                OutboxMessage.id,
                OutboxMessage.kind,
                OutboxMessage.message_id,
                OutboxMessage.payload,
                User.email,
                User.name,
                OutboxMessage.created_at,
            )
            .outerjoin(User, User.id == OutboxMessage.user_id)
            .where(
                OutboxMessage.channel == "email",
                OutboxMessage.status == OutboxStatus.PENDING,
                OutboxMessage.next_attempt_at <= now,
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
        if work.is_postgres:
            statement = statement.with_for_update(skip_locked=True, of=OutboxMessage)
        claims: list[_Claim] = []
        orphans: list[tuple[int, str]] = []
        for outbox_id, kind, message_id, payload, email, name, written_at in work.session.execute(statement):
            if email is None:  # the user was deleted (user_id SET NULL): nobody to write to
                orphans.append((outbox_id, kind))
            else:
                claims.append(_Claim(outbox_id, kind, message_id, payload, email, name, lease_until, written_at))
        if claims:
            work.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_([claim.outbox_id for claim in claims]))
                .values(next_attempt_at=lease_until)
            )
        if orphans:
            work.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_([outbox_id for outbox_id, _ in orphans]))
                .values(status=OutboxStatus.FAILED, last_error=REASON_RECIPIENT_DELETED)
            )
    for outbox_id, kind in orphans:
        log.error("outbox.failed", extra={"outbox_id": outbox_id, "kind": kind, "reason": "recipient_deleted"})
    return claims, len(orphans)


class _Tickets:
    """What a batch's confirmation e-mails need for their tickets: the code key, and each new
    booking's calendar facts (one query for the batch, only if it has such e-mails)."""

    def __init__(self, base_url: str, claims: list[_Claim]) -> None:
        self.base_url = base_url
        self.key = current_code_key()
        booking_ids = [
            int(booking_id)
            for claim in claims
            if claim.kind in TICKET_SEATS_FIELDS
            for booking_id in json.loads(claim.payload).get("bookingIds") or ()
        ]
        self.calendars: dict[int, BookingCalendar] = {}
        if booking_ids:
            try:
                self.calendars = booking_calendars(db.session(), booking_ids)
            except SQLAlchemyError:  # the database went away since the claim: the payloads' facts will do
                log.warning("outbox.tickets.calendars_unread", extra={"rows": len(booking_ids)})
            release_session()  # no transaction open while the batch goes out, even if the database went away since


def _mail_message(claim: _Claim, tickets: _Tickets) -> MailMessage:
    payload = json.loads(claim.payload)
    booking = new_booking(claim.kind, payload)
    lines: list[TicketLine] = []
    parts: tuple[MailPart, ...] = ()
    if booking is not None:
        booking_id, seats = booking
        lines, parts = ticket_parts(
            tickets.key,
            booking_id,
            seats,
            payload,
            tickets.calendars.get(booking_id),
            claim.written_at,
            tickets.base_url,
        )
    subject, body_text, body_html = notifications.render(
        claim.kind, payload, claim.recipient_name, tickets.base_url, lines
    )
    return MailMessage(
        recipient=claim.recipient_email,
        subject=subject,
        body_text=body_text,
        body_html=body_html,
        message_id=claim.message_id,
        headers={notifications.KIND_HEADER: claim.kind, AUTO_SUBMITTED_HEADER: "auto-generated"},
        parts=parts,
    )


def _record(recorder: Callable[[list[Row]], Recorded], batch: list[Row], unrecorded: Recorded) -> Recorded:
    """Record a batch's results. The e-mails are out: only their record keeps them from going
    out again, so while the database is busy, down or recovering (a restart takes seconds) the
    record is retried with backoff for up to OUTBOX_RECORD_RETRY_S_MAX. If the database refuses
    longer, the lease runs out and the rows are sent again later (same Message-IDs): duplicates,
    never a loss. Rows given back unsent wait for the database the same way, so that their
    e-mails do not wait out the lease; a giving back that fails only costs that wait."""
    deadline = time.monotonic() + limits.OUTBOX_RECORD_RETRY_S_MAX
    delay_s = OUTBOX_RECORD_RETRY_DELAY_S
    while True:
        try:
            return recorder(batch)
        except ServiceBusy:
            if time.monotonic() + delay_s > deadline:
                break
            log.warning("outbox.record.retrying", extra={"rows": len(batch), "retry_in_s": delay_s})
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, OUTBOX_RECORD_RETRY_DELAY_S_MAX)
        except SQLAlchemyError:
            break
    log.error("outbox.record.failed", extra={"rows": len(batch)}, exc_info=True)
    return unrecorded


def _record_sent(claims: list[_Claim]) -> int:
    """One UPDATE for the batch, committed without waiting for the WAL flush: in a flash sale
    the mailer must not queue its fsyncs ahead of the booking path's. Only a crash of Postgres
    itself can forget the marks (never the mailer's: the commit is already visible), and then
    the e-mails are sent again with the same Message-IDs: duplicates, never a loss. A row no
    longer pending was taken by another sender after our lease ran out: not counted."""
    with unit_of_work() as work:
        if work.is_postgres:
            work.session.execute(text("SET LOCAL synchronous_commit TO OFF"))
        recorded = work.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id.in_([claim.outbox_id for claim in claims]),
                OutboxMessage.status == OutboxStatus.PENDING,
            )
            .values(status=OutboxStatus.SENT, sent_at=utcnow(), attempts=OutboxMessage.attempts + 1)
            .returning(OutboxMessage.id)
        ).all()
    log.info(
        "outbox.sent",
        extra={"rows": len(recorded), "stale": len(claims) - len(recorded), "first_id": claims[0].outbox_id},
    )
    if log.isEnabledFor(logging.DEBUG):
        for claim in claims:
            log.debug("outbox.sent.row", extra={"outbox_id": claim.outbox_id, "message_id": claim.message_id})
    return len(recorded)


def _record_failures(errors: list[tuple[_Claim, Exception]]) -> tuple[int, int]:
    """Each refused or undelivered row: one more attempt, its reason, and its next try after the
    backoff, or `failed` after the last attempt; one transaction for the batch. (retried, failed)."""
    by_id = {claim.outbox_id: (claim, error) for claim, error in errors}
    retried: list[dict[str, object]] = []
    failed: list[dict[str, object]] = []
    with unit_of_work() as work:
        statement = select(OutboxMessage).where(OutboxMessage.id.in_(by_id)).order_by(OutboxMessage.id)
        if work.is_postgres:
            statement = statement.with_for_update()
        now = utcnow()
        for row in work.session.execute(statement).scalars():
            claim, error = by_id[row.id]
            if row.status != OutboxStatus.PENDING or row.next_attempt_at != claim.lease_until:
                continue  # another sender has it since our lease ran out
            row.attempts += 1
            row.last_error = f"{type(error).__name__}: {error}"[: limits.OUTBOX_LAST_ERROR_CHARS_MAX]
            # The error's class only: SMTP errors can quote addresses, which stay out of logs.
            fields = {"outbox_id": row.id, "kind": row.kind, "attempts": row.attempts, "error": type(error).__name__}
            if row.attempts >= limits.OUTBOX_SEND_ATTEMPTS_MAX:
                row.status = OutboxStatus.FAILED
                failed.append(fields)
            else:
                row.next_attempt_at = now + timedelta(seconds=retry_delay_s(row.attempts))
                retried.append({**fields, "retry_in_s": retry_delay_s(row.attempts)})
    for fields in failed:
        log.error("outbox.failed", extra=fields)
    for fields in retried:
        log.warning("outbox.retry", extra=fields)
    return len(retried), len(failed)


def _release(claims: list[_Claim]) -> None:
    """Give back leased rows this run will not send, so the next run need not wait out the lease."""
    with unit_of_work() as work:
        work.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id.in_([claim.outbox_id for claim in claims]),
                OutboxMessage.status == OutboxStatus.PENDING,
                OutboxMessage.next_attempt_at == claims[0].lease_until,
            )
            .values(next_attempt_at=utcnow())
        )
    log.warning("outbox.batch.deadline", extra={"released": len(claims)})


def requeue_failed_notifications(limit: int = limits.OUTBOX_BATCH_SIZE_MAX) -> int:
    """Give failed e-mails a fresh set of attempts (after an outage longer than the retries);
    rows whose recipient is gone stay failed."""
    assert 1 <= limit <= limits.OUTBOX_BATCH_SIZE_MAX
    with unit_of_work() as work:
        statement = (
            select(OutboxMessage)
            .join(User, User.id == OutboxMessage.user_id)
            .where(OutboxMessage.channel == "email", OutboxMessage.status == OutboxStatus.FAILED)
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
        rows = list(work.session.execute(statement).scalars())
        now = utcnow()
        for row in rows:
            row.status = OutboxStatus.PENDING
            row.attempts = 0
            row.next_attempt_at = now
        if rows:
            work.after_commit(adapters().wakeups.wake_outbox)
    log.info("outbox.requeued", extra={"rows": len(rows)})
    return len(rows)


# --- publishing domain events ----------------------------------------------------------


def publish_due_domain_events(limit: int = limits.OUTBOX_BATCH_SIZE_MAX) -> int:
    """Publish up to `limit` unpublished rows to `booking-events`, in id order; the number published."""
    assert 1 <= limit <= limits.OUTBOX_BATCH_SIZE_MAX
    try:
        with unit_of_work() as work:
            if work.is_postgres and not _take_publisher_lock(work):
                return 0  # another publisher is at it; order needs one at a time
            statement = (
                select(OutboxMessage)
                .where(OutboxMessage.published_at.is_(None))
                .order_by(OutboxMessage.id)
                .limit(limit)
            )
            rows = list(work.session.execute(statement).scalars())
            if not rows:
                return 0
            outbox_ids = [row.id for row in rows]
            try:
                adapters().domain_events.publish([_domain_event(row) for row in rows])
            except Exception as error:  # not acknowledged: the rows stay for the next run
                log.warning("outbox.publish.failed", extra={"rows": len(rows), "error": type(error).__name__})
                return 0
            work.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(outbox_ids), OutboxMessage.published_at.is_(None))
                .values(published_at=utcnow())
            )
    except ServiceBusy:  # published, not marked: they go out again (consumers dedupe)
        log.warning("outbox.publish.unrecorded")
        return 0
    log.info("outbox.published", extra={"rows": len(outbox_ids), "first_id": outbox_ids[0], "last_id": outbox_ids[-1]})
    return len(outbox_ids)


def _take_publisher_lock(work: UnitOfWork) -> bool:
    statement = text("SELECT pg_try_advisory_xact_lock(:namespace, :key)")
    return bool(
        work.session.execute(statement, {"namespace": PUBLISH_LOCK_NAMESPACE, "key": PUBLISH_LOCK_KEY}).scalar()
    )


def _domain_event(row: OutboxMessage) -> tuple[str, dict[str, Any]]:
    payload = json.loads(row.payload)
    event_id = row.event_id if row.event_id is not None else payload.get("eventId")
    payload.update(
        {
            "kind": row.kind,
            "messageId": row.message_id,
            "userId": row.user_id,
            "outboxId": row.id,
            "createdAt": row.created_at.isoformat(),
        }
    )
    return str(event_id), payload


# --- reading ---------------------------------------------------------------------------


def outbox_backlog() -> dict[str, int]:
    """For operators: e-mails waiting (and due now), e-mails given up on, events not yet on Kafka."""
    now = utcnow()
    pending = (OutboxMessage.channel == "email") & (OutboxMessage.status == OutboxStatus.PENDING)
    counts = {
        "pending": select(func.count(OutboxMessage.id)).where(pending),
        "due": select(func.count(OutboxMessage.id)).where(pending, OutboxMessage.next_attempt_at <= now),
        "failed": select(func.count(OutboxMessage.id)).where(OutboxMessage.status == OutboxStatus.FAILED),
        "unpublished": select(func.count(OutboxMessage.id)).where(OutboxMessage.published_at.is_(None)),
    }
    return {name: int(db.session.execute(statement).scalar_one()) for name, statement in counts.items()}
