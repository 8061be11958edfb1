"""The sales end: close out the waitlists of events whose sales have ended.

Sales close at an event's `sales_end_at`, or its start when unset (the rule:
domain/allocator.py). From then on nothing is booked or promoted, and whoever still
waits is told so: each waiting entry expires, its request waits for nothing more
(reason `event_started`), and its guest gets one e-mail. Every seat change of an
event past its sales end closes out its waitlist first (`settle_event`: allocation,
cancellation, capacity change); this module runs the close-out for every due event:
the Celery beat task `close_sales` in full mode, `flask close-sales` in either mode
(the embedded default has no periodic runner of its own). Each batch is one
transaction holding the event row lock, like every seat change; re-running is
harmless (an expired entry no longer waits).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import exists, select

from atomicseats.domain import limits
from atomicseats.domain.states import EventStatus, WaitlistStatus
from atomicseats.extensions import db
from atomicseats.models import Event, WaitlistEntry, utcnow
from atomicseats.services._allocation import Settlement, announce_after_commit, close_out_waitlist, lock_event
from atomicseats.services.unit_of_work import unit_of_work

log = logging.getLogger(__name__)

# Batches for one event in one run (100,000 entries); a longer queue goes on in the next run.
CLOSE_OUT_BATCHES_PER_EVENT_MAX = 100
CLOSE_OUT_RUNS_MAX = 100  # runs of `flask close-sales`: events_max events each


@dataclass(frozen=True)
class CloseOutReport:
    events_closed: int
    entries_expired: int


def close_due_sales(events_max: int = limits.CLOSE_OUT_EVENTS_PER_RUN_MAX) -> CloseOutReport:
    """Close out every event (up to `events_max`) whose sales ended while someone still waits."""
    assert 1 <= events_max <= limits.CLOSE_OUT_EVENTS_PER_RUN_MAX
    event_ids = events_due_for_close_out(events_max)
    entries_expired = sum(close_out_event(event_id) for event_id in event_ids)
    if event_ids:
        log.info("sales.close_out.done", extra={"events": len(event_ids), "entries_expired": entries_expired})
    return CloseOutReport(len(event_ids), entries_expired)


def close_out_event(event_id: int) -> int:
    """Expire every waiting entry of one event past its sales end, a batch per transaction."""
    expired_total = 0
    for _ in range(CLOSE_OUT_BATCHES_PER_EVENT_MAX):
        expired = _close_out_batch(event_id)
        expired_total += expired
        if expired < limits.CLOSE_OUT_BATCH_MAX:
            break
    return expired_total


def events_due_for_close_out(events_max: int) -> list[int]:
    """Live events whose sales ended (at now) and that still have a waiting entry, oldest first."""
    now = utcnow()
    someone_waits = exists().where(WaitlistEntry.event_id == Event.id, WaitlistEntry.status == WaitlistStatus.WAITING)
    statement = (
        select(Event.id)
        .where(Event.status == EventStatus.PUBLISHED, Event.sales_end <= now, someone_waits)
        .order_by(Event.id)
        .limit(events_max)
    )
    db.session.rollback()  # a fresh view: what committed up to now
    return list(db.session.execute(statement).scalars())


def _close_out_batch(event_id: int) -> int:
    with unit_of_work() as work:
        event = lock_event(work, event_id)
        now = utcnow()
        if event.is_deleted or event.is_sales_open(now):  # deleted, or its sales end moved meanwhile
            return 0
        settlement = Settlement()
        expired = close_out_waitlist(work, event, now, settlement)
        if expired:
            event.updated_at = now
            work.session.flush()
            announce_after_commit(work, event, settlement)
    return expired
