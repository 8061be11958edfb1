"""What Redis should hold for an event, computed from Postgres: shared by reconcile and audit.

Services that change a waitlist can also use `waiting_entries` to hand the whole
queue to `adapters().waitlist.replace` after commit. Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atomicseats.domain import limits
from atomicseats.domain.states import RequestStatus, WaitlistStatus
from atomicseats.models import BookingRequest, Event, WaitlistEntry
from atomicseats.services._availability import availability_of, waitlist_totals
from atomicseats.services.contracts import EventAvailability
from atomicseats.services.ports import MirroredEntry


@dataclass(frozen=True)
class MirrorTruth:
    """The availability entry and the waitlist mirror one event should have.

    `waiting` (entry id -> seats and tier, FIFO order) is None when the waitlist is too long
    to mirror: then no mirror is the right state, and callers ask Postgres.
    """

    availability: EventAvailability
    waiting: dict[int, MirroredEntry] | None

    @property
    def event_id(self) -> int:
        return self.availability.event_id

    @property
    def waiting_tiers(self) -> dict[int, int | None] | None:
        """What the mirror's `load` should return."""
        return None if self.waiting is None else {entry_id: entry.tier_id for entry_id, entry in self.waiting.items()}


def mirror_truths(session: Session, events: list[Event]) -> list[MirrorTruth]:
    """One grouped count for all `events`, then one query per event that has a waitlist."""
    totals = waitlist_totals(session, [event.id for event in events])
    truths = []
    for event in events:
        entries_waiting = totals.get(event.id, (0, 0))[0]
        truths.append(
            MirrorTruth(availability_of(event, entries_waiting), expected_entries(session, event.id, entries_waiting))
        )
    return truths


def expected_entries(session: Session, event_id: int, entries_waiting: int) -> dict[int, MirroredEntry] | None:
    """What the mirror should hold, given the count `waitlist_totals` found (saves a query at
    0, and at more than the mirror holds); None when too many to mirror."""
    if entries_waiting == 0:
        return {}
    if entries_waiting > limits.WAITLIST_MIRROR_ENTRIES_MAX:
        return None
    return waiting_entries(session, event_id)


def waiting_entries(session: Session, event_id: int) -> dict[int, MirroredEntry] | None:
    """The event's waiting entries in FIFO (id) order, each with the seats it still waits for
    and its tier, or None if too many to mirror."""
    statement = (
        select(WaitlistEntry.id, WaitlistEntry.seats_remaining, WaitlistEntry.tier_id)
        .where(WaitlistEntry.event_id == event_id, WaitlistEntry.status == WaitlistStatus.WAITING)
        .order_by(WaitlistEntry.id)
        .limit(limits.WAITLIST_MIRROR_ENTRIES_MAX + 1)
    )
    entries = {entry_id: MirroredEntry(seats, tier_id) for entry_id, seats, tier_id in session.execute(statement)}
    return None if len(entries) > limits.WAITLIST_MIRROR_ENTRIES_MAX else entries


@dataclass(frozen=True)
class LineTruth:
    """An event's pending line as Postgres has it: its oldest pending requests (row id,
    request id), at most LINE_REBUILD_ENTRIES_MAX, and the row id below which every one of
    the event's requests is decided (allocation follows arrival order)."""

    pending: list[tuple[int, str]]
    decided_below_row_id: int


def pending_counts(session: Session, event_ids: list[int]) -> dict[int, int]:
    """Pending requests per event among `event_ids` (absent: none), one grouped count."""
    if not event_ids:
        return {}
    statement = (
        select(BookingRequest.event_id, func.count(BookingRequest.id))
        .where(BookingRequest.event_id.in_(event_ids), BookingRequest.status == RequestStatus.PENDING)
        .group_by(BookingRequest.event_id)
    )
    return {event_id: int(count) for event_id, count in session.execute(statement)}


def line_truth(session: Session, event_id: int) -> LineTruth:
    statement = (
        select(BookingRequest.id, BookingRequest.request_id)
        .where(BookingRequest.event_id == event_id, BookingRequest.status == RequestStatus.PENDING)
        .order_by(BookingRequest.id)
        .limit(limits.LINE_REBUILD_ENTRIES_MAX)
    )
    pending = [(row_id, request_id) for row_id, request_id in session.execute(statement)]
    if pending:
        return LineTruth(pending, pending[0][0])
    newest = session.execute(select(func.max(BookingRequest.id)).where(BookingRequest.event_id == event_id))
    return LineTruth([], int(newest.scalar_one() or 0) + 1)
