"""Rebuild what Redis mirrors (availability, waitlist FIFO, pending lines) from Postgres: `flask reconcile`.

Redis may lose anything at any moment (DESIGN invariant 6); after-commit writes are
best-effort and may land out of order. Reconcile compares every event's entries with
the rows and rewrites the ones that differ or are missing, so Redis agrees with
Postgres afterwards (invariant 2).

Read-only on Postgres. A drifted event is repaired under a share lock on its row
(Postgres), so no seat change commits between the read and the Redis write; a writer
that committed just before still writes its own (equal or later) state after us.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from atomicseats.domain import limits
from atomicseats.extensions import db
from atomicseats.models import Event
from atomicseats.services._mirror import MirrorTruth, line_truth, mirror_truths, pending_counts
from atomicseats.services.contracts import EventAvailability
from atomicseats.services.ports import adapters
from atomicseats.services.unit_of_work import is_busy, set_transaction_timeouts

RECONCILE_PAGE_SIZE = 200
RECONCILE_PAGES_MAX = 50_000  # 10 million events; a bound, not an expectation
RECONCILE_DETAILS_MAX = 200


@dataclass(frozen=True)
class ReconcileReport:
    events_checked: int
    availability_repaired: int
    waitlists_repaired: int
    details: list[str]
    repairs_failed: int = 0
    lines_repaired: int = 0  # events' pending lines (place in line) merged back from Postgres

    @property
    def is_complete(self) -> bool:
        return self.repairs_failed == 0


@dataclass
class _Tally:
    events_checked: int = 0
    availability_repaired: int = 0
    waitlists_repaired: int = 0
    lines_repaired: int = 0
    repairs_failed: int = 0
    details: list[str] = field(default_factory=list)
    details_omitted: int = 0

    def note(self, line: str) -> None:
        if len(self.details) < RECONCILE_DETAILS_MAX:
            self.details.append(line)
        else:
            self.details_omitted += 1

    def report(self) -> ReconcileReport:
        details = list(self.details)
        if self.details_omitted:
            details.append(f"... and {self.details_omitted} more")
        return ReconcileReport(
            self.events_checked,
            self.availability_repaired,
            self.waitlists_repaired,
            details,
            self.repairs_failed,
            self.lines_repaired,
        )


def reconcile() -> ReconcileReport:
    """Check every event, in id order and in pages; repair each entry that drifted."""
    session = db.session()  # the app context's session itself, not its scoped proxy
    session.rollback()  # a fresh view, not whatever this session read before
    tally = _Tally()
    after_id = 0
    for _ in range(RECONCILE_PAGES_MAX):
        events = list(
            session.execute(
                select(Event).where(Event.id > after_id).order_by(Event.id).limit(RECONCILE_PAGE_SIZE)
            ).scalars()
        )
        if not events:
            break
        tally.events_checked += len(events)
        after_id = events[-1].id
        drifted_ids = [truth.event_id for truth in mirror_truths(session, events) if _has_drifted(truth)]
        session.rollback()
        for event_id in drifted_ids:
            _repair_event(session, event_id, tally)
        _reconcile_lines(session, [event.id for event in events], tally)
    else:
        tally.note(f"stopped after {tally.events_checked} events (RECONCILE_PAGES_MAX); later events not checked")
    metrics = adapters().metrics
    metrics.drift_repaired("availability", tally.availability_repaired)
    metrics.drift_repaired("waitlist", tally.waitlists_repaired)
    metrics.drift_repaired("line", tally.lines_repaired)
    return tally.report()


def _repair_event(session: Session, event_id: int, tally: _Tally) -> None:
    """Re-read the event under a share lock, then rewrite what still differs."""
    try:
        set_transaction_timeouts(session)
        statement = (
            select(Event)
            .where(Event.id == event_id)
            .with_for_update(read=True)  # FOR SHARE; SQLite has none and needs none here
            .execution_options(populate_existing=True)
        )
        event = session.execute(statement).scalar_one_or_none()
        if event is not None:
            _repair(mirror_truths(session, [event])[0], tally)
    except OperationalError as error:  # lock timeout: a writer holds the row and refreshes Redis itself
        tally.repairs_failed += 1
        cause = "row busy" if is_busy(error) else "database error"
        tally.note(f"event {event_id}: not repaired, {cause} ({type(error.orig).__name__}); run reconcile again")
    finally:
        session.rollback()  # releases the share lock


def _repair(truth: MirrorTruth, tally: _Tally) -> None:
    effects = adapters()
    event_id = truth.event_id
    cached = effects.availability.load(event_id)
    if _availability_is_wrong(cached, truth.availability):
        effects.availability.replace([truth.availability])  # under the share lock: no newer commit
        if effects.availability.load(event_id) == truth.availability:
            tally.availability_repaired += 1
            tally.note(f"event {event_id}: availability {_describe_availability(cached, truth.availability)}, repaired")
        else:
            tally.repairs_failed += 1
            tally.note(f"event {event_id}: availability could not be written (is Redis up?)")
    mirrored = effects.waitlist.load(event_id)
    if mirrored != truth.waiting_tiers:
        if truth.waiting is None:
            # Too long to mirror: the right state is no mirror. No mirror can hold this
            # many entries, so `apply` finds the length wrong and drops it.
            effects.waitlist.apply(event_id, {}, [], truth.availability.waitlist_length)
        else:
            effects.waitlist.replace(event_id, truth.waiting)
        if effects.waitlist.load(event_id) == truth.waiting_tiers:
            tally.waitlists_repaired += 1
            tally.note(f"event {event_id}: waitlist mirror {_describe_waitlist(mirrored, truth)}, repaired")
        else:
            tally.repairs_failed += 1
            tally.note(f"event {event_id}: waitlist mirror could not be written (is Redis up?)")


def _reconcile_lines(session: Session, event_ids: list[int], tally: _Tally) -> None:
    """Each event's pending line holds as many requests as Postgres has pending, else it is
    merged back from Postgres (a lost line: Redis restarted; a lost after-commit write). The
    merge only adds requests not decided and removes decided ones, so a bridge or worker
    writing meanwhile loses nothing (and a count that differed only in passing costs a read)."""
    line = adapters().line
    if not line.keeps_entries:
        return
    try:
        expected = pending_counts(session, event_ids)
        held = line.sizes(event_ids)
        if held is None:
            tally.repairs_failed += 1
            tally.note("pending lines could not be read (is Redis up?)")
            return
        for event_id in event_ids:
            pending = expected.get(event_id, 0)
            if held[event_id] == pending or held[event_id] >= limits.LINE_REBUILD_ENTRIES_MAX <= pending:
                continue  # agrees (a rebuild would add no more than its bound anyway)
            truth = line_truth(session, event_id)
            line.rebuild(event_id, truth.pending, truth.decided_below_row_id)
            tally.lines_repaired += 1
            tally.note(f"event {event_id}: pending line held {held[event_id]} requests, {pending} pending, rebuilt")
    finally:
        session.rollback()


def _has_drifted(truth: MirrorTruth) -> bool:
    effects = adapters()
    if _availability_is_wrong(effects.availability.load(truth.event_id), truth.availability):
        return True
    return effects.waitlist.load(truth.event_id) != truth.waiting_tiers


def _availability_is_wrong(cached: EventAvailability | None, truth: EventAvailability) -> bool:
    """Other figures, or a version ahead of the database's (an entry left from before a restore,
    or from a database made anew under the same Redis: writers' stores would never replace it
    until their versions caught up). Under the row lock nothing newer than the truth exists."""
    return cached != truth or (cached is not None and cached.version > truth.version)


def _describe_availability(cached: EventAvailability | None, truth: EventAvailability) -> str:
    if cached is None:
        return "missing"
    differences = [
        f"{item.name} {getattr(cached, item.name)} (truth {getattr(truth, item.name)})"
        for item in dataclasses.fields(truth)
        if getattr(cached, item.name) != getattr(truth, item.name)
    ]
    return "had " + ", ".join(differences)


def _describe_waitlist(mirrored: dict[int, int | None] | None, truth: MirrorTruth) -> str:
    expected = truth.waiting_tiers
    if mirrored is None:
        return "missing"
    if expected is None:
        return f"present ({len(mirrored)} entries) for a queue too long to mirror"
    if mirrored.keys() == expected.keys():
        return f"had entries in the wrong tier's queue ({len(expected)} entries)"
    return f"had {len(mirrored)} entries, {len(expected)} waiting"
