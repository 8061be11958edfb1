"""Recompute the invariants of DESIGN.md from the rows (and Redis, when configured).

`flask audit` prints every violation and exits non-zero; the tests run it after
every concurrency and fault scenario. Each check is one query over the whole table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Row, Select, Subquery, case, exists, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.elements import SQLCoreOperations

from atomicseats.domain import allocator, limits, tiers
from atomicseats.domain.request_state import request_status
from atomicseats.domain.states import BookingStatus, RequestStatus, WaitlistStatus
from atomicseats.extensions import db
from atomicseats.models import (
    Booking,
    BookingRequest,
    Event,
    EventTier,
    OutboxMessage,
    TicketCheckIn,
    WaitlistEntry,
    utcnow,
)
from atomicseats.services._mirror import mirror_truths
from atomicseats.services._notification_rows import message_id
from atomicseats.services.ports import adapters

PENDING_GRACE_S_DEFAULT = 120
VIOLATIONS_LISTED_MAX = 200
VIOLATION_IDS_SHOWN_MAX = 10


@dataclass(frozen=True)
class Violation:
    invariant: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.invariant}] {self.subject}: {self.detail}"


@dataclass(frozen=True)
class AuditReport:
    events_checked: int
    requests_checked: int
    violations: list[Violation]

    @property
    def is_clean(self) -> bool:
        return not self.violations


def run_audit(pending_grace_s: int = PENDING_GRACE_S_DEFAULT) -> AuditReport:
    session = db.session()  # the app context's session itself, not its scoped proxy
    session.rollback()  # audit one consistent, fresh view
    violations: list[Violation] = []
    for check in (
        _check_seats,
        _check_waitlist_length,
        _check_waitlist_fifo,
        _check_requests,
        _check_request_state,
        _check_outbox,
    ):
        violations.extend(check(session))
    violations.extend(_check_pending(session, pending_grace_s))
    violations.extend(_check_sales_end(session))
    violations.extend(_check_cache(session))
    violations.extend(_check_check_ins(session))
    violations.extend(_check_tiers(session))
    violations.extend(_check_offers(session))
    events_checked = session.execute(select(func.count(Event.id))).scalar_one()
    requests_checked = session.execute(select(func.count(BookingRequest.id))).scalar_one()
    return AuditReport(int(events_checked), int(requests_checked), violations[:VIOLATIONS_LISTED_MAX])


def _confirmed_seats_by(key: InstrumentedAttribute[int] | InstrumentedAttribute[int | None]) -> Subquery:
    """The seats the confirmed bookings hold, summed per `key` (a Booking column): columns
    `key` and `seats`. What the seat counters (an event's, a tier's) must equal."""
    return (
        select(key.label("key"), func.sum(Booking.seats).label("seats"))
        .where(Booking.status == BookingStatus.CONFIRMED)
        .group_by(key)
        .subquery()
    )


def _check_seats(session: Session) -> list[Violation]:
    """Invariants 1 and 2: never oversold; reserved_seats is the sum of confirmed seats."""
    confirmed = _confirmed_seats_by(Booking.event_id)
    rows = session.execute(
        select(Event.id, Event.capacity_seats, Event.reserved_seats, func.coalesce(confirmed.c.seats, 0)).outerjoin(
            confirmed, confirmed.c.key == Event.id
        )
    ).all()
    violations = []
    for event_id, capacity_seats, reserved_seats, confirmed_seats in rows:
        if confirmed_seats > capacity_seats:
            violations.append(
                Violation(
                    "1-never-oversell",
                    f"event {event_id}",
                    f"{confirmed_seats} seats confirmed, capacity {capacity_seats}",
                )
            )
        if reserved_seats != confirmed_seats:
            violations.append(
                Violation(
                    "2-reserved-equals-confirmed",
                    f"event {event_id}",
                    f"reserved_seats={reserved_seats}, confirmed bookings={confirmed_seats}",
                )
            )
    return violations


def _check_waitlist_length(session: Session) -> list[Violation]:
    """Each event's `waitlist_length` is the number of its entries still waiting."""
    waiting = (
        select(WaitlistEntry.event_id.label("event_id"), func.count(WaitlistEntry.id).label("entries"))
        .where(WaitlistEntry.status == WaitlistStatus.WAITING)
        .group_by(WaitlistEntry.event_id)
        .subquery()
    )
    rows = session.execute(
        select(Event.id, Event.waitlist_length, func.coalesce(waiting.c.entries, 0))
        .outerjoin(waiting, waiting.c.event_id == Event.id)
        .where(Event.waitlist_length != func.coalesce(waiting.c.entries, 0))
        .order_by(Event.id)
    ).all()
    return [
        Violation(
            "2-waitlist-length-equals-waiting", f"event {event_id}", f"waitlist_length={kept}, waiting entries={count}"
        )
        for event_id, kept, count in rows
    ]


def _check_waitlist_fifo(session: Session) -> list[Violation]:
    """Invariant 4: seats are never free while someone waits; queue order is arrival order."""
    violations = _check_tier_waitlists(session)
    # The queue is sorted by arrival iff every adjacent pair is: one window pass, not a self-join
    # (a hot event's 30,000-entry queue made the pairwise join take minutes).
    previous_request_id = func.lag(WaitlistEntry.booking_request_id).over(
        partition_by=WaitlistEntry.event_id, order_by=WaitlistEntry.id
    )
    previous_entry_id = func.lag(WaitlistEntry.id).over(partition_by=WaitlistEntry.event_id, order_by=WaitlistEntry.id)
    queue = select(
        WaitlistEntry.event_id,
        WaitlistEntry.id.label("entry_id"),
        WaitlistEntry.booking_request_id.label("request_row_id"),
        previous_entry_id.label("previous_entry_id"),
        previous_request_id.label("previous_request_row_id"),
    ).subquery()
    inversions = session.execute(
        select(queue.c.event_id, queue.c.entry_id, queue.c.previous_entry_id)
        .where(queue.c.previous_request_row_id > queue.c.request_row_id)
        .limit(VIOLATIONS_LISTED_MAX)
    ).all()
    for event_id, later_id, earlier_id in inversions:
        violations.append(
            Violation(
                "4-fifo",
                f"event {event_id}",
                f"waitlist entry {earlier_id} queued before {later_id} but arrived after it",
            )
        )
    return violations


def _check_tier_waitlists(session: Session) -> list[Violation]:
    """Per tier (each tier's waitlist is its own): no seat of the tier's quota is free while
    someone waits in it and it is on sale. Past its sales end (the event's, or the tier's
    window) a tier serves nobody: its waitlist is closed out, not promoted (how long that may
    take is the time check's business). Seats held by open waitlist offers are not free, and an
    entry whose open offer covers all it waits for wants nothing more."""
    waiting = (
        select(WaitlistEntry.tier_id, func.count(WaitlistEntry.id).label("entries"))
        .where(
            WaitlistEntry.status == WaitlistStatus.WAITING,
            WaitlistEntry.seats_remaining > WaitlistEntry.seats_offered,
        )
        .group_by(WaitlistEntry.tier_id)
        .subquery()
    )
    rows = session.execute(
        select(EventTier, Event, waiting.c.entries)
        .join(waiting, waiting.c.tier_id == EventTier.id)
        .join(Event, Event.id == EventTier.event_id)
        .where(EventTier.reserved_seats + EventTier.seats_offered < EventTier.quota_seats)
    ).all()
    now = utcnow()
    return [
        Violation(
            "4-fifo",
            f"event {event.id} tier {tier.id}",
            f"{tier.seats_left} seats of the tier free while {entries} wait in it",
        )
        for tier, event, entries in rows
        if tiers.is_on_sale(tier.to_tier(), event.is_sales_open(now), now)
    ]


def _check_tiers(session: Session) -> list[Violation]:
    """Price tiers: no tier oversold; each tier's reserved seats are its confirmed bookings;
    the quotas total at most the capacity; the event's reserved seats are its tiers' sum;
    every booking and waiting entry is in a tier of its own event (and so in its FIFO)."""
    confirmed = _confirmed_seats_by(Booking.tier_id)
    rows = session.execute(
        select(EventTier, func.coalesce(confirmed.c.seats, 0))
        .outerjoin(confirmed, confirmed.c.key == EventTier.id)
        .order_by(EventTier.id)
    ).all()
    violations = []
    tiers_of: dict[int, list[tiers.Tier]] = {}
    for tier, confirmed_seats in rows:
        tiers_of.setdefault(tier.event_id, []).append(tier.to_tier())
        if confirmed_seats != tier.reserved_seats:
            violations.append(
                Violation(
                    "tier-reserved-equals-confirmed",
                    f"event {tier.event_id} tier {tier.id}",
                    f"reserved_seats={tier.reserved_seats}, confirmed bookings={confirmed_seats}",
                )
            )
    events = session.execute(
        select(Event.id, Event.capacity_seats, Event.reserved_seats).where(Event.id.in_(list(tiers_of)))
    ).all()
    for event_id, capacity_seats, reserved_seats in events:
        for detail in tiers.tier_violations(capacity_seats, reserved_seats, tiers_of[event_id]):
            violations.append(Violation("tier-invariants", f"event {event_id}", detail))
    violations += _check_rows_in_own_tier(session)
    return violations


def _check_rows_in_own_tier(session: Session) -> list[Violation]:
    violations = []
    for model, what in ((Booking, "confirmed booking"), (WaitlistEntry, "waiting entry")):
        held = (
            Booking.status == BookingStatus.CONFIRMED
            if model is Booking
            else (WaitlistEntry.status == WaitlistStatus.WAITING)
        )
        in_own_tier = exists().where(EventTier.id == model.tier_id, EventTier.event_id == model.event_id)
        tiered_event = exists().where(EventTier.event_id == model.event_id)
        strays = session.execute(
            select(model.event_id, model.id)
            .where(held, tiered_event, ~in_own_tier)
            .order_by(model.id)
            .limit(VIOLATION_IDS_SHOWN_MAX)
        ).all()
        violations += [
            Violation("tier-membership", f"event {event_id}", f"{what} {row_id} is in no tier of its event")
            for event_id, row_id in strays
        ]
    return violations


def _check_requests(session: Session) -> list[Violation]:
    """Invariants 3 and 5: outcomes add up, and no request holds more seats than it asked for."""
    booked = (
        select(Booking.booking_request_id, func.sum(Booking.seats).label("seats"))
        .where(Booking.booking_request_id.is_not(None))
        .group_by(Booking.booking_request_id)
        .subquery()
    )
    rows = session.execute(
        select(
            BookingRequest.request_id,
            BookingRequest.status,
            BookingRequest.seats_requested,
            BookingRequest.seats_confirmed,
            func.coalesce(booked.c.seats, 0),
        )
        .outerjoin(booked, booked.c.booking_request_id == BookingRequest.id)
        .where(BookingRequest.seats_confirmed != func.coalesce(booked.c.seats, 0))
        .limit(VIOLATIONS_LISTED_MAX)
    ).all()
    violations = [
        Violation(
            "5-idempotency",
            f"request {request_id}",
            f"status {status}: seats_confirmed={seats_confirmed} but bookings hold {booked_seats}",
        )
        for request_id, status, _requested, seats_confirmed, booked_seats in rows
    ]
    mismatched = session.execute(
        select(BookingRequest.request_id, BookingRequest.seats_waitlisted, WaitlistEntry.seats_remaining)
        .join(WaitlistEntry, WaitlistEntry.booking_request_id == BookingRequest.id)
        .where(
            WaitlistEntry.status != WaitlistStatus.CANCELLED,
            WaitlistEntry.seats_remaining != BookingRequest.seats_waitlisted,
        )
        .limit(VIOLATIONS_LISTED_MAX)
    ).all()
    violations += [
        Violation(
            "3-one-outcome",
            f"request {request_id}",
            f"seats_waitlisted={waitlisted} but its waitlist entry has {remaining} remaining",
        )
        for request_id, waitlisted, remaining in mismatched
    ]
    return violations


def _drifted_counters(
    session: Session,
    owner: tuple[InstrumentedAttribute[Any], InstrumentedAttribute[int], InstrumentedAttribute[int]],
    rows: tuple[InstrumentedAttribute[Any], InstrumentedAttribute[int]],
    *where: SQLCoreOperations[bool],
) -> list[Row[Any]]:
    """A kept counter against the rows it counts: (shown id, counter, the rows' sum) of every
    owner whose counter differs. `owner` is (the id shown, the counter, the key the rows name);
    `rows` is (the rows' owner key, the column summed); `where` picks the rows counted."""
    shown, counter, owner_key = owner
    row_key, summed = rows
    totals = select(row_key.label("owner_key"), func.sum(summed).label("total")).where(*where).group_by(row_key)
    sums = totals.subquery()
    total = func.coalesce(sums.c.total, 0)
    statement = select(shown, counter, total).outerjoin(sums, sums.c.owner_key == owner_key).where(counter != total)
    return list(session.execute(statement.limit(VIOLATIONS_LISTED_MAX)).all())


def _check_request_state(session: Session) -> list[Violation]:
    """Invariant 3 (a request's state): seats_cancelled is the sum of its cancelled bookings, and
    every decided request's status is the rule's (domain/request_state.py) for its seats."""
    drifted = _drifted_counters(
        session,
        (BookingRequest.request_id, BookingRequest.seats_cancelled, BookingRequest.id),
        (Booking.booking_request_id, Booking.seats),
        Booking.booking_request_id.is_not(None),
        Booking.status == BookingStatus.CANCELLED,
    )
    violations = [
        Violation(
            "3-request-state",
            f"request {request_id}",
            f"seats_cancelled={seats_cancelled} but its cancelled bookings hold {booked}",
        )
        for request_id, seats_cancelled, booked in drifted
    ]
    # The rule runs once per distinct combination of counters (a few hundred at most), not per row.
    is_withdrawn = case((WaitlistEntry.status == WaitlistStatus.CANCELLED, 1), else_=0)  # waiting seats given up
    counters = (
        BookingRequest.seats_requested,
        BookingRequest.seats_confirmed,
        BookingRequest.seats_waitlisted,
        BookingRequest.seats_cancelled,
        is_withdrawn,
        BookingRequest.status,
    )

    def decided(*columns: SQLCoreOperations[object]) -> Select[tuple[object, ...]]:
        return (
            select(*columns)
            .select_from(BookingRequest)
            .outerjoin(WaitlistEntry, WaitlistEntry.booking_request_id == BookingRequest.id)
            .where(BookingRequest.status != RequestStatus.PENDING)
        )

    combinations = session.execute(decided(*counters).distinct()).all()
    for requested, confirmed, waitlisted, seats_cancelled, withdrawn, status in combinations:
        expected = _expected_status(requested, confirmed, waitlisted, seats_cancelled, bool(withdrawn))
        if expected == status:
            continue
        matching = (
            decided(BookingRequest.request_id)
            .where(
                BookingRequest.seats_requested == requested,
                BookingRequest.seats_confirmed == confirmed,
                BookingRequest.seats_waitlisted == waitlisted,
                BookingRequest.seats_cancelled == seats_cancelled,
                is_withdrawn == withdrawn,
                BookingRequest.status == status,
            )
            .limit(VIOLATIONS_LISTED_MAX)
        )
        violations += [
            Violation(
                "3-request-state",
                f"request {request_id}",
                f"status {status} but its seats say {expected} (requested={requested}, confirmed={confirmed}, "
                f"waitlisted={waitlisted}, cancelled={seats_cancelled}, withdrawn={bool(withdrawn)})",
            )
            for request_id in session.execute(matching).scalars()
        ]
    return violations


def _expected_status(requested: int, confirmed: int, waitlisted: int, cancelled: int, is_withdrawn: bool) -> str:
    if not 0 <= cancelled <= confirmed:  # the rule's precondition; the database does not enforce it
        return "(impossible: seats_cancelled > seats_confirmed)"
    return request_status(requested, confirmed, waitlisted, cancelled, is_withdrawn)


def _check_pending(session: Session, pending_grace_s: int) -> list[Violation]:
    """Invariant 3: nothing stays pending; and decisions follow arrival order per event."""
    cutoff = utcnow() - timedelta(seconds=pending_grace_s)
    stale = session.execute(
        select(BookingRequest.request_id, BookingRequest.created_at)
        .where(BookingRequest.status == RequestStatus.PENDING, BookingRequest.created_at < cutoff)
        .limit(VIOLATIONS_LISTED_MAX)
    ).all()
    violations = [
        Violation("3-one-outcome", f"request {request_id}", f"still pending since {created_at}")
        for request_id, created_at in stale
    ]
    first_pending = (
        select(BookingRequest.event_id, func.min(BookingRequest.id).label("first_id"))
        .where(BookingRequest.status == RequestStatus.PENDING)
        .group_by(BookingRequest.event_id)
        .subquery()
    )
    overtakers = session.execute(
        select(BookingRequest.request_id, BookingRequest.event_id)
        .join(first_pending, first_pending.c.event_id == BookingRequest.event_id)
        .where(BookingRequest.status != RequestStatus.PENDING, BookingRequest.id > first_pending.c.first_id)
        .limit(VIOLATIONS_LISTED_MAX)
    ).all()
    violations += [
        Violation("4-fifo", f"request {request_id}", f"decided before an earlier request of event {event_id}")
        for request_id, event_id in overtakers
    ]
    return violations


def _check_outbox(session: Session) -> list[Violation]:
    """Invariant 7: every decided request has the notification of its decision in the outbox.

    The decision's kind is its first status (confirmed, partial, waitlisted or rejected); the
    status may have moved on since (promoted, withdrawn, cancelled), the notification stays."""
    decision_message_ids = [
        message_id(f"booking.{outcome.value}", BookingRequest.request_id) for outcome in allocator.Outcome
    ]
    has_decision_message = exists().where(OutboxMessage.message_id.in_(decision_message_ids))
    missing = (
        session.execute(
            select(BookingRequest.request_id)
            .where(BookingRequest.status != RequestStatus.PENDING, ~has_decision_message)
            .limit(VIOLATIONS_LISTED_MAX)
        )
        .scalars()
        .all()
    )
    return [
        Violation("7-no-lost-email", f"request {request_id}", "decided but no notification in the outbox")
        for request_id in missing
    ]


def _check_sales_end(session: Session) -> list[Violation]:
    """The time rule: no seat confirmed or promoted at or after the event's sales end (its
    `sales_end_at`, or its start), and nobody still waiting once the sales end is further
    back than the close-out period (CLOSE_OUT_GRACE_S)."""
    sales_end = Event.sales_end
    late = session.execute(
        select(Booking.id, Booking.event_id, Booking.created_at, sales_end)
        .join(Event, Event.id == Booking.event_id)
        .where(Booking.created_at >= sales_end)
        .order_by(Booking.id)
        .limit(VIOLATIONS_LISTED_MAX)
    ).all()
    violations = [
        Violation("8-time", f"booking {booking_id}", f"event {event_id}: decided at {created_at}, sales ended {ended}")
        for booking_id, event_id, created_at, ended in late
    ]
    cutoff = utcnow() - timedelta(seconds=limits.CLOSE_OUT_GRACE_S)
    stale = session.execute(
        select(WaitlistEntry.event_id, func.count(WaitlistEntry.id), func.min(sales_end))
        .join(Event, Event.id == WaitlistEntry.event_id)
        .where(WaitlistEntry.status == WaitlistStatus.WAITING, sales_end < cutoff)
        .group_by(WaitlistEntry.event_id)
        .order_by(WaitlistEntry.event_id)
        .limit(VIOLATIONS_LISTED_MAX)
    ).all()
    violations += [
        Violation("8-time", f"event {event_id}", f"{count} entries still waiting; sales ended {ended}, not closed out")
        for event_id, count, ended in stale
    ]
    return violations


def _check_cache(session: Session) -> list[Violation]:
    """Invariants 2 and 6 (Redis side): what Redis holds agrees with the rows it mirrors.

    A missing entry is fine (callers fall back to Postgres); a different one is not.
    """
    effects = adapters()
    events = list(session.execute(select(Event).order_by(Event.id)).scalars())
    violations = []
    for truth in mirror_truths(session, events):
        cached = effects.availability.load(truth.event_id)
        if cached is not None and cached != truth.availability:
            violations.append(
                Violation("6-cache-agrees", f"event {truth.event_id}", f"cache {cached} != truth {truth.availability}")
            )
        mirrored = effects.waitlist.load(truth.event_id)
        expected = truth.waiting_tiers
        if mirrored is None or mirrored == expected:
            continue
        entries_waiting = truth.availability.waitlist_length
        shown = "not mirrored (too long)" if expected is None else f"{_queues(expected)} ({entries_waiting})"
        violations.append(
            Violation(
                "6-cache-agrees",
                f"event {truth.event_id}",
                f"waitlist mirror {_queues(mirrored)} ({len(mirrored)}) != waiting entries {shown}",
            )
        )
    return violations


def _check_check_ins(session: Session) -> list[Violation]:
    """Tickets: every check-in names an existing booking of its own event, and a seat within
    that booking's seats (a ticket's code is derived from exactly those two)."""
    rows = session.execute(
        select(TicketCheckIn.booking_id, TicketCheckIn.seat_no, TicketCheckIn.event_id, Booking.event_id, Booking.seats)
        .outerjoin(Booking, Booking.id == TicketCheckIn.booking_id)
        .where(
            (Booking.id.is_(None))
            | (Booking.event_id != TicketCheckIn.event_id)
            | (TicketCheckIn.seat_no > Booking.seats)
        )
        .limit(VIOLATIONS_LISTED_MAX)
    ).all()
    violations = []
    for booking_id, seat_no, event_id, booking_event_id, seats in rows:
        if booking_event_id is None:
            detail = "no such booking"
        elif booking_event_id != event_id:
            detail = f"checked in at event {event_id}, but the booking is of event {booking_event_id}"
        else:
            detail = f"seat {seat_no} of a booking of {seats} seats"
        violations.append(Violation("tickets-check-in", f"booking {booking_id} seat {seat_no}", detail))
    return violations


def _queues(tier_of: dict[int, int | None]) -> str:
    """The first entries, each as "entry id (tier id)"."""
    shown = ", ".join(
        f"{entry_id} (tier {tier_id})" for entry_id, tier_id in list(tier_of.items())[:VIOLATION_IDS_SHOWN_MAX]
    )
    return f"[{shown}{', ...' if len(tier_of) > VIOLATION_IDS_SHOWN_MAX else ''}]"


def _check_offers(session: Session) -> list[Violation]:
    """Invariant 4 with waitlist offers: an event (and each tier) holds exactly the seats its open offers hold
    (a seat is offered or sold, never both: the database's checks keep sold + offered within
    the capacity and each offer within what its entry waits for), only waiting entries hold
    offers, and an offer past its deadline ends within a few beats."""
    violations = []
    for owner, key, label in ((Event, WaitlistEntry.event_id, "event"), (EventTier, WaitlistEntry.tier_id, "tier")):
        drifted = _drifted_counters(
            session,
            (owner.id, owner.seats_offered, owner.id),
            (key, WaitlistEntry.seats_offered),
            WaitlistEntry.status == WaitlistStatus.WAITING,
        )
        violations += [
            Violation("4-offers", f"{label} {owner_id}", f"seats_offered={offered} but its open offers hold {holding}")
            for owner_id, offered, holding in drifted
        ]
    stray = session.execute(
        select(WaitlistEntry.id, WaitlistEntry.status)
        .where(WaitlistEntry.status != WaitlistStatus.WAITING, WaitlistEntry.seats_offered > 0)
        .limit(VIOLATIONS_LISTED_MAX)
    ).all()
    violations += [
        Violation("4-offers", f"waitlist entry {entry_id}", f"holds an open offer while {status}")
        for entry_id, status in stray
    ]
    overdue = utcnow() - timedelta(seconds=limits.OFFER_EXPIRY_GRACE_S)
    late = session.execute(
        select(WaitlistEntry.id, WaitlistEntry.offer_expires_at)
        .where(WaitlistEntry.seats_offered > 0, WaitlistEntry.offer_expires_at < overdue)
        .limit(VIOLATIONS_LISTED_MAX)
    ).all()
    violations += [
        Violation("4-offers", f"waitlist entry {entry_id}", f"its offer ended at {deadline} and still holds seats")
        for entry_id, deadline in late
    ]
    return violations
