"""What Redis should hold for an event, computed from Postgres: shared by reconcile and audit.

Services that change a waitlist can also use `waiting_entry_ids` to hand the whole
queue to `adapters().waitlist.replace` after commit. Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from atomicseats.domain import limits
from atomicseats.domain.states import WaitlistStatus
from atomicseats.models import Event, WaitlistEntry
from atomicseats.services._availability import availability_of, waitlist_totals
from atomicseats.services.contracts import EventAvailability


@dataclass(frozen=True)
class MirrorTruth:
    """The availability entry and the waitlist mirror one event should have.

    `waiting_entry_ids` is None when the queue is too long to mirror: then no mirror
    is the right state, and callers ask Postgres.
    """

    availability: EventAvailability
    waiting_entry_ids: list[int] | None

    @property
    def event_id(self) -> int:
        return self.availability.event_id


def mirror_truths(session: Session, events: list[Event]) -> list[MirrorTruth]:
    """One grouped count for all `events`, then one id query per event that has a queue."""
    totals = waitlist_totals(session, [event.id for event in events])
    truths = []
    for event in events:
        entries_waiting = totals.get(event.id, (0, 0))[0]
        entry_ids = expected_entry_ids(session, event.id, entries_waiting)
        truths.append(MirrorTruth(availability_of(event, entries_waiting), entry_ids))
    return truths


def expected_entry_ids(session: Session, event_id: int, entries_waiting: int) -> list[int] | None:
    """What the mirror should hold, given the count `waitlist_totals` found (saves a query at 0)."""
    if entries_waiting == 0:
        return []
    if entries_waiting > limits.WAITLIST_MIRROR_ENTRIES_MAX:
        return None
    return waiting_entry_ids(session, event_id)


def waiting_entry_ids(session: Session, event_id: int) -> list[int] | None:
    """The event's waiting entry ids in FIFO (id) order, or None if too many to mirror."""
    statement = (
        select(WaitlistEntry.id)
        .where(WaitlistEntry.event_id == event_id, WaitlistEntry.status == WaitlistStatus.WAITING)
        .order_by(WaitlistEntry.id)
        .limit(limits.WAITLIST_MIRROR_ENTRIES_MAX + 1)
    )
    entry_ids = list(session.execute(statement).scalars())
    return None if len(entry_ids) > limits.WAITLIST_MIRROR_ENTRIES_MAX else entry_ids
