"""Private helpers shared by the services that change who holds seats.

Every path that moves seats (new requests, cancellation, capacity change, reopening
the waitlist, deleting an event) locks the event row and ends in `settle_event`,
which runs the one pure allocator and writes its decisions (allocation hands them to a
`DecisionWrites` that writes several events' together). Nothing here commits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from flask import current_app
from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import CursorResult, Executable, select, text, update
from sqlalchemy.orm import object_session

from atomicseats.domain import allocator, limits, offers, tiers
from atomicseats.domain.request_state import request_status, seats_held
from atomicseats.domain.states import BookingStatus, RequestStatus, WaitlistStatus
from atomicseats.errors import NotFound
from atomicseats.models import Booking, BookingRequest, Event, EventTier, OutboxMessage, WaitlistEntry, utcnow
from atomicseats.observability import log_with_correlation
from atomicseats.services._availability import availability_of, waitlist_totals
from atomicseats.services._bulk import insert_rows, insert_statement
from atomicseats.services._notification_rows import Notification, outbox_row, outbox_values_many
from atomicseats.services.ports import LineDeparture, MirroredEntry, adapters
from atomicseats.services.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


def lock_event(work: UnitOfWork, event_id: int) -> Event:
    """SELECT ... FOR NO KEY UPDATE on the event row: every seat change for it serializes here.

    NO KEY: rows that merely reference the event go on being written meanwhile. A row inserted
    with a foreign key to the event (the bridge recording a booking request, above all) takes
    FOR KEY SHARE on it, which FOR UPDATE blocks and FOR NO KEY UPDATE does not; with FOR UPDATE
    a hot event's recording and its allocation took turns instead of running side by side
    (make bench's pipeline drain: bridge and worker each ~20 % of a core, the machine 16 % idle,
    4,568 decided/s, where the bridge alone records ~14,500/s and the worker alone decides
    ~7,200/s). The lock still excludes every other seat change (they all take it) and any
    change of the event's key or its deletion (those take FOR UPDATE)."""
    event = lock_events(work, [event_id]).get(event_id)
    if event is None:
        raise NotFound("Event not found")
    return event


def lock_events(work: UnitOfWork, event_ids: Sequence[int]) -> dict[int, Event]:
    """`lock_event` for several events in one statement, their rows locked in id order (so two
    such transactions never wait on each other in a cycle); those that do not exist are left
    out. Returns them by id, in id order."""
    config = current_app.config
    statement = select(Event).where(Event.id.in_(event_ids)).order_by(Event.id)
    if not config.get("TESTING_SKIP_EVENT_LOCK"):
        statement = statement.with_for_update(key_share=True)
    events = {event.id: event for event in work.session.execute(statement).scalars()}
    pause_s = config.get("TESTING_PAUSE_AFTER_READ_S", 0)
    if pause_s and events:  # negative control for the concurrency tests: widen the race window
        # The tiers' seats are read before the pause too, and held (the identity map keeps only
        # weak references), so settle_event decides on them: two allocations see the same seats.
        tiers_read = work.session.execute(select(EventTier).where(EventTier.event_id.in_(events))).scalars().all()
        work.session.info["tiers_read_before_pause"] = list(tiers_read)
        time.sleep(pause_s)
    return events


@dataclass
class Settlement:
    """What one settle changed, for the effects announced after commit."""

    allocation: allocator.Allocation | None = None
    decided_request_ids: list[str] = field(default_factory=list)
    promoted_request_ids: list[str] = field(default_factory=list)
    appended_entries: dict[int, MirroredEntry] = field(default_factory=dict)  # new waiting entries, FIFO order
    removed_entry_ids: list[int] = field(default_factory=list)
    expired_request_ids: list[str] = field(default_factory=list)  # their waiting seats expired at the sales end
    # The highest row id among the pending requests this settle decided (None: it decided none);
    # every pending request of the event up to it is decided: they leave the pending line.
    decided_through_row_id: int | None = None
    entry_seats: dict[int, int] = field(default_factory=dict)  # waiting entries' new seat counts, for the mirror
    offered_request_ids: list[str] = field(default_factory=list)  # offered seats (offer mode), or more of them


class PendingRequest(Protocol):
    """What deciding a pending request reads of it: a BookingRequest, or (the hot path) a Core
    row of just these columns (`PENDING_COLUMNS`), with no ORM object to build, track and expire."""

    @property
    def id(self) -> int: ...
    @property
    def request_id(self) -> str: ...
    @property
    def user_id(self) -> int: ...
    @property
    def seats_requested(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def correlation_id(self) -> str | None: ...
    @property
    def tier_id(self) -> int | None: ...
    @property
    def accepted_at(self) -> datetime | None: ...


PENDING_COLUMNS = (
    BookingRequest.id,
    BookingRequest.request_id,
    BookingRequest.user_id,
    BookingRequest.seats_requested,
    BookingRequest.status,
    BookingRequest.correlation_id,
    BookingRequest.tier_id,
    BookingRequest.accepted_at,
)


def event_tiers(work: UnitOfWork, event: Event) -> list[EventTier]:
    """The event's tiers, oldest first; the caller holds the event row lock (every change of a
    tier's seats or quota is made under it). An event none was made for (written by something
    older than tiers, such as the bench's bare-SQL reference) gets its default tier here."""
    return event_tiers_of(work, [event])[event.id]


def event_tiers_of(work: UnitOfWork, events: Sequence[Event]) -> dict[int, list[EventTier]]:
    """`event_tiers` of several events (each locked by the caller) in one statement, by event id.
    Every tier of each (at most TIERS_PER_EVENT_MAX, as creating one checks): a limit shared by
    the events could leave one of them without its tiers."""
    statement = (
        select(EventTier)
        .where(EventTier.event_id.in_([event.id for event in events]))
        .order_by(EventTier.event_id, EventTier.id)
    )
    tiers_by_event: dict[int, list[EventTier]] = {event.id: [] for event in events}
    for tier in work.session.execute(statement).scalars():
        tiers_by_event[tier.event_id].append(tier)
    untiered = [event for event in events if not tiers_by_event[event.id]]
    for event in untiered:
        tiers_by_event[event.id] = [default_tier(event)]
        work.session.add(tiers_by_event[event.id][0])
    if untiered:
        work.session.flush()
    return tiers_by_event


def default_tier(event: Event) -> EventTier:
    """The one tier of an event made without tiers: its whole capacity at its price, no window."""
    return EventTier(
        event_id=event.id,
        name=tiers.DEFAULT_TIER_NAME,
        price_minor=event.price_minor,
        quota_seats=event.capacity_seats,
        reserved_seats=event.reserved_seats,
        created_at=utcnow(),
    )


def sync_reserved(event: Event, tier_rows: Sequence[EventTier]) -> None:
    """The event's reserved (and offered) seats are its tiers' sums; check the tier invariants
    before commit."""
    event.reserved_seats = sum(tier.reserved_seats for tier in tier_rows)
    event.seats_offered = sum(tier.seats_offered for tier in tier_rows)
    violations = tiers.tier_violations(
        event.capacity_seats, event.reserved_seats, [tier.to_tier() for tier in tier_rows]
    )
    assert not violations, violations
    assert event.reserved_seats + event.seats_offered <= event.capacity_seats


def tier_names(tier_rows: Sequence[EventTier]) -> dict[int, str]:
    """The names e-mails give tiers: only for an event sold in several (one tier goes unnamed,
    so an untiered event's e-mails are as they were)."""
    return {tier.id: tier.name for tier in tier_rows} if len(tier_rows) > 1 else {}


def tier_fields(names: dict[int, str], tier_id: int | None) -> dict[str, object]:
    """The tier part of an e-mail's payload (none for an untiered event)."""
    return {"tierName": names[tier_id]} if tier_id is not None and tier_id in names else {}


def release_tier_seats(tier_rows: Sequence[EventTier], bookings: Sequence[Booking]) -> None:
    """Give cancelled bookings' seats back to their tiers (the caller then settles the event)."""
    by_id = {tier.id: tier for tier in tier_rows}
    only = tier_rows[0] if len(tier_rows) == 1 else None
    for booking in bookings:
        tier = by_id.get(booking.tier_id) if booking.tier_id is not None else only
        assert tier is not None  # a booking of a tiered event always has its tier
        tier.reserved_seats -= booking.seats
        assert tier.reserved_seats >= 0


def settle_event(
    work: UnitOfWork,
    event: Event,
    pending: Sequence[PendingRequest],
    tier_rows: Sequence[EventTier] | None = None,
    writes: DecisionWrites | None = None,
    now: datetime | None = None,
) -> Settlement:
    """Serve the waitlist head first, then decide `pending` in arrival order; write it all.

    The allocator decides (domain/allocator.py); this reads what it asks for and writes
    what it decided. After the sales end nobody is served and whoever still waits is
    told (one batch); while sales are open nobody expires.

    Events settled in one transaction by allocation (`booking._decide_batches`, for one event
    or a partition's) pass what the caller read for all of them at once (`tier_rows`), their
    decision time (`now`) and `writes`, which holds their decisions until the caller writes
    them all together (`DecisionWrites.execute`, then a flush); without `writes` (every other
    seat change) this event's are written before it returns."""
    now = utcnow() if now is None else now  # the decision time: sales are open or closed as of now
    settlement = Settlement()
    tier_rows = event_tiers(work, event) if tier_rows is None else list(tier_rows)
    close_out_waitlist(work, event, now, settlement, tier_rows)
    names = tier_names(tier_rows)
    for tier in tier_rows:  # each tier's waitlist head first, on the tier's own state
        _promote(work, event, tier, names, now, settlement)
    tier_requests = [
        tiers.TierRequest(request.request_id, request.seats_requested, request.tier_id, request.accepted_at or now)
        for request in pending
    ]
    decided = tiers.allocate_tiers(event.to_state(now), [tier.to_tier() for tier in tier_rows], tier_requests, now)
    for tier in tier_rows:
        tier.reserved_seats = decided.reserved_by_tier[tier.id]
    sync_reserved(event, tier_rows)
    settlement.allocation = allocator.Allocation(
        promotions=(),
        decisions=tuple(tier_decision.decision for tier_decision in decided.decisions),
        reserved_seats=event.reserved_seats,
        capacity_seats=event.capacity_seats,
    )
    prices = {tier.id: tier.price_minor for tier in tier_rows}
    event.updated_at = now
    target = DecisionWrites() if writes is None else writes
    target.add(event, pending, decided.decisions, prices, names, now, settlement)
    if writes is None:  # this event's alone: written now
        target.execute(work)
        work.session.flush()
    return settlement


def _promote(
    work: UnitOfWork, event: Event, tier: EventTier, names: dict[int, str], now: datetime, settlement: Settlement
) -> None:
    """Promotion rounds in one tier: read its waiting entries the allocator asks for, write its
    promotions, until it says promotion is over; the tier's reserved seats follow."""
    state = tiers.tier_state(event.to_state(now), tier.to_tier(), now)
    # Nobody waits in any tier (the event's count, kept under the lock): the read would come
    # back empty, and a round on an empty head promotes nobody. Skipped, it no longer costs
    # each batch of an event with seats left a query (~12 % of a small batch's worker CPU).
    entries_to_read = allocator.waitlist_read_size(state) if event.waitlist_length else 0
    for _ in range(limits.PROMOTION_ROUNDS_MAX):
        if entries_to_read == 0:
            break
        entries = _waiting_entries(work, event.id, tier.id, entries_to_read, wanting_only=True)
        round_ = allocator.promote_round(state, [entry.to_wanting_slot() for entry in entries])
        _write_promotions(work, event, tier, entries, round_.promotions, names, now, settlement)
        _write_offers(work, event, tier, entries, round_.offers, now, settlement)
        state, entries_to_read = round_.state, round_.entries_to_read
        tier.reserved_seats = state.reserved_seats
        tier.seats_offered = state.seats_offered
    assert entries_to_read == 0


def close_out_waitlist(
    work: UnitOfWork, event: Event, now: datetime, settlement: Settlement, tier_rows: Sequence[EventTier] | None = None
) -> int:
    """At the sales end (the event's, or a tier's window end), expire up to CLOSE_OUT_BATCH_MAX
    waiting entries in all, head first in each tier: each entry `expired`, its request waits
    for nothing more (reason `event_started`, or `tier_not_on_sale` when only its tier's
    window closed; status by the shared rule) and its guest gets one e-mail. Returns how many
    expired; the caller holds the event row lock. Idempotent: an expired entry no longer waits."""
    event_state = event.to_state(now)
    reason = allocator.REASON_EVENT_STARTED if not event_state.is_sales_open else tiers.REASON_TIER_NOT_ON_SALE
    expired_total = 0
    tier_rows = event_tiers(work, event) if tier_rows is None else tier_rows
    names = tier_names(tier_rows)
    for tier in tier_rows:
        state = tiers.tier_state(event_state, tier.to_tier(), now)
        entries_to_read = min(allocator.expiry_read_size(state), limits.CLOSE_OUT_BATCH_MAX - expired_total)
        if entries_to_read > 0:  # 0: the tier is on sale (nobody expires), or this batch is full
            expired_total += _expire_entries(
                work, event, tier, state, entries_to_read, reason, tier_fields(names, tier.id), now, settlement
            )
    if expired_total:
        log.info("sales.closed_out", extra={"event_id": event.id, "entries_expired": expired_total})
    return expired_total


def _expire_entries(
    work: UnitOfWork,
    event: Event,
    tier: EventTier,
    state: allocator.EventState,
    entries_to_read: int,
    reason: str,
    tier_part: dict[str, object],
    now: datetime,
    settlement: Settlement,
) -> int:
    entries = _waiting_entries(work, event.id, tier.id, entries_to_read)
    expired = allocator.expire_waitlist(state, [entry.to_slot() for entry in entries])
    if not expired:
        return 0
    expired_ids = {slot.entry_id for slot in expired}
    entries = [entry for entry in entries if entry.id in expired_ids]
    request_row_ids = [entry.booking_request_id for entry in entries]
    requests = {
        request.id: request
        for request in work.session.execute(
            select(BookingRequest).where(BookingRequest.id.in_(request_row_ids))
        ).scalars()
    }
    for entry in entries:
        request = requests[entry.booking_request_id]
        seats_expired = entry.seats_remaining
        assert request.seats_waitlisted == seats_expired
        release_offer(event, entry)  # the sales end: an open offer ends with the wait
        end_wait(event, entry, WaitlistStatus.EXPIRED)
        entry.seats_remaining = 0
        entry.updated_at = now
        request.seats_waitlisted = 0
        request.reason = reason
        restate_request(request)
        settlement.removed_entry_ids.append(entry.id)
        settlement.expired_request_ids.append(request.request_id)
        fields = {
            "requestId": request.request_id,
            "seatsRequested": request.seats_requested,
            "seatsConfirmed": request.seats_confirmed,
            "seatsExpired": seats_expired,
            "reason": reason,
            "bookingIds": bookings_held_by(work, request),
            **tier_part,
        }
        work.session.add(
            outbox_row(Notification("waitlist.expired", request.user_id, event, request.request_id, fields))
        )
    return len(entries)


def announce_after_commit(work: UnitOfWork, event: Event, settlement: Settlement) -> tuple[int, int]:
    """Register the after-commit effects of a seat change: caches, outcomes, outbox wake-up.

    Returns the event's waitlist totals (entries, seats) it had to read anyway."""
    totals = waitlist_totals(work.session, [event.id]).get(event.id, (0, 0))
    _register_effects(work, event, settlement, totals[0])
    return totals


def announce_decisions_after_commit(work: UnitOfWork, event: Event, settlement: Settlement) -> None:
    """`announce_after_commit` for a caller that needs no seat totals (allocation): the
    waitlist's length is the event row's (`Event.waitlist_length`), not a count over the queue,
    which made each batch of a hot event slower as its waitlist grew (12 ms a batch with 60,000
    waiting)."""
    _register_effects(work, event, settlement, event.waitlist_length)


def _register_effects(work: UnitOfWork, event: Event, settlement: Settlement, waitlist_length: int) -> None:
    effects = adapters()
    work.session.flush()  # the event's changes written, so its version (models.Event) is this commit's
    work.after_commit_each(effects.availability.store, availability_of(event, waitlist_length))
    if settlement.appended_entries or settlement.removed_entry_ids or settlement.entry_seats:
        removed = set(settlement.removed_entry_ids)
        seats = {entry_id: count for entry_id, count in settlement.entry_seats.items() if entry_id not in removed}
        work.after_commit(
            effects.waitlist.apply,
            event.id,
            settlement.appended_entries,
            settlement.removed_entry_ids,
            waitlist_length,
            seats,
        )
    announced = (
        settlement.decided_request_ids
        + settlement.promoted_request_ids
        + settlement.expired_request_ids
        + settlement.offered_request_ids
    )
    if settlement.decided_through_row_id is not None:  # announced in the same round trip as the line
        decided = len(settlement.decided_request_ids)
        departure = LineDeparture(event.id, settlement.decided_through_row_id, decided, announced)
        work.after_commit_each(effects.line.leave, departure)
    elif announced:
        work.after_commit(effects.outcomes.publish, announced)
    work.after_commit(effects.wakeups.wake_outbox)


def _waiting_entries(
    work: UnitOfWork, event_id: int, tier_id: int, limit: int, wanting_only: bool = False
) -> list[WaitlistEntry]:
    """A tier's queue, head first (the tier's waitlist is its own: FIFO within it);
    `wanting_only`: the entries that want seats beyond their open offer (what serving the
    waitlist reads: an entry whose offer covers all it waits for wants nothing more)."""
    statement = select(WaitlistEntry).where(
        WaitlistEntry.tier_id == tier_id,
        WaitlistEntry.event_id == event_id,
        WaitlistEntry.status == WaitlistStatus.WAITING,
    )
    if wanting_only:
        statement = statement.where(WaitlistEntry.seats_remaining > WaitlistEntry.seats_offered)
    return list(work.session.execute(statement.order_by(WaitlistEntry.id).limit(limit)).scalars())


def _write_offers(
    work: UnitOfWork,
    event: Event,
    tier: EventTier,
    entries: list[WaitlistEntry],
    offers_made: tuple[allocator.Offer, ...],
    now: datetime,
    settlement: Settlement,
) -> None:
    """Hold the offered seats for each entry (a new offer gets the event's window; more seats
    for an open one keep its deadline) and tell its guest, with the links to answer."""
    entries_by_id = {entry.id: entry for entry in entries}
    for made in offers_made:
        entry = entries_by_id[made.entry_id]
        if not entry.seats_offered:
            entry.offer_expires_at = offers.expires_at(now, event.offer_window_s)
        entry.seats_offered += made.seats_offered
        entry.updated_at = now
        assert entry.seats_offered <= entry.seats_remaining
        request = work.session.get(BookingRequest, entry.booking_request_id)
        assert request is not None
        settlement.offered_request_ids.append(request.request_id)
        work.session.add(outbox_row(offer_notification(event, entry, request)))


def offer_notification(event: Event, entry: WaitlistEntry, request: BookingRequest) -> Notification:
    """The e-mail of an open offer (made, or grown): its seats, its deadline, the answer link."""
    assert entry.offer_expires_at is not None
    fields = {
        "requestId": request.request_id,
        "seatsOffered": entry.seats_offered,
        "seatsWaiting": entry.seats_remaining,
        "offerExpiresAt": entry.offer_expires_at.isoformat(),
        "offerToken": offer_token(entry),
    }
    key = f"offer-{entry.id}-{entry.seats_offered}-{int(entry.offer_expires_at.timestamp())}"
    return Notification("waitlist.offered", request.user_id, event, key, fields)


def offer_token(entry: WaitlistEntry) -> str:
    """The signed, single-use key of an entry's open offer, for the answer links: it names the
    entry and the offer's deadline, so once the offer is answered (or a new one made) it opens
    nothing."""
    assert entry.offer_expires_at is not None
    return _offer_signer().dumps([entry.id, int(entry.offer_expires_at.timestamp())])


def entry_id_of_offer_token(token: str) -> tuple[int, int] | None:
    """(entry id, deadline epoch) a token names, or None when it is not one of ours."""
    try:
        entry_id, deadline = _offer_signer().loads(token)
    except BadData:
        return None
    if not isinstance(entry_id, int) or not isinstance(deadline, int):
        return None
    return entry_id, deadline


def _offer_signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=OFFER_TOKEN_SALT)


OFFER_TOKEN_SALT = "atomicseats waitlist offer v1"  # nosec B105  # a signing salt, not a password


def release_offer(event: Event, entry: WaitlistEntry) -> int:
    """End an entry's open offer without an answer (it leaves the waitlist: withdrawn, the
    event deleted, the sales ended): its seats are its tier's (and the event's) again. Returns
    them. The caller holds the event row lock, under which tiers change."""
    seats = entry.seats_offered
    if seats:
        session = object_session(entry)
        tier = session.get(EventTier, entry.tier_id) if session is not None and entry.tier_id is not None else None
        assert tier is not None  # every entry is in a tier of its event (migration 0010)
        assert seats <= tier.seats_offered <= event.seats_offered
        tier.seats_offered -= seats
        event.seats_offered -= seats
        entry.seats_offered = 0
        entry.offer_expires_at = None
    return seats


def _write_promotions(
    work: UnitOfWork,
    event: Event,
    tier: EventTier,
    entries: list[WaitlistEntry],
    promotions: tuple[allocator.Promotion, ...],
    names: dict[int, str],
    now: datetime,
    settlement: Settlement,
) -> None:
    entries_by_id = {entry.id: entry for entry in entries}
    for promotion in promotions:
        entry = entries_by_id[promotion.entry_id]
        request = work.session.get(BookingRequest, entry.booking_request_id)
        assert request is not None
        entry.seats_remaining = promotion.seats_remaining
        entry.updated_at = now
        if promotion.is_served:
            end_wait(event, entry, WaitlistStatus.SERVED)
            settlement.removed_entry_ids.append(entry.id)
        else:
            settlement.entry_seats[entry.id] = promotion.seats_remaining
        settlement.promoted_request_ids.append(request.request_id)
        request.seats_confirmed += promotion.seats_promoted
        request.seats_waitlisted -= promotion.seats_promoted
        restate_request(request)
        booking = Booking(
            **_booking_values(event.id, tier.id, tier.price_minor, request, promotion.seats_promoted, now)
        )
        work.session.add(booking)
        work.session.flush()  # the booking id goes into the notification
        fields = {
            "requestId": request.request_id,
            "bookingId": booking.id,
            "bookingIds": [booking.id],
            "seatsPromoted": promotion.seats_promoted,
            "seatsStillWaitlisted": promotion.seats_remaining,
            "requestStatus": request.status,  # the request's state after this promotion
            "seatsRequested": request.seats_requested,
            "seatsHeld": seats_held(request.seats_confirmed, request.seats_cancelled),
            **tier_fields(names, tier.id),
        }
        work.session.add(
            outbox_row(Notification("booking.promoted", request.user_id, event, f"booking-{booking.id}", fields))
        )


def bookings_held_by(work: UnitOfWork, request: BookingRequest) -> list[int]:
    """The ids of a request's confirmed bookings, oldest first (for the e-mail that reports a change)."""
    statement = (
        select(Booking.id)
        .where(Booking.booking_request_id == request.id, Booking.status == BookingStatus.CONFIRMED)
        .order_by(Booking.id)
    )
    return list(work.session.execute(statement).scalars())


def restate_request(request: BookingRequest, is_withdrawn: bool = False) -> None:
    """Set a decided request's status from its seats (domain/request_state.py), after any change.

    `is_withdrawn`: its waiting seats were given up (left the waitlist, cancelled, event deleted)."""
    request.status = request_status(
        request.seats_requested,
        request.seats_confirmed,
        request.seats_waitlisted,
        request.seats_cancelled,
        is_withdrawn,
    )


def end_wait(event: Event, entry: WaitlistEntry, status: WaitlistStatus) -> None:
    """A waiting entry leaves its event's waitlist (served, cancelled or expired): the one place
    a wait ends, so the event's `waitlist_length` follows it. The caller holds the event row lock."""
    assert entry.status == WaitlistStatus.WAITING
    assert status != WaitlistStatus.WAITING
    entry.status = status
    event.waitlist_length -= 1
    assert event.waitlist_length >= 0


def withdraw_waiting(event: Event, request: BookingRequest, entry: WaitlistEntry, reason: str, now: datetime) -> int:
    """Give up a request's waiting seats (the guest left or cancelled; the event was deleted).

    The entry leaves the queue (`cancelled`), its open offer if any with it (the seats are the
    event's again), the request waits for nothing and is restated. Returns the seats withdrawn;
    the caller lists `entry.id` in its settlement's removed ids."""
    assert entry.booking_request_id == request.id
    assert entry.status == WaitlistStatus.WAITING
    release_offer(event, entry)
    seats_withdrawn = entry.seats_remaining
    end_wait(event, entry, WaitlistStatus.CANCELLED)
    entry.updated_at = now
    request.seats_waitlisted = 0
    request.reason = reason
    restate_request(request, is_withdrawn=True)
    return seats_withdrawn


def cancel_bookings_held(
    bookings: list[Booking], requests: dict[int, BookingRequest], reason: str, now: datetime
) -> int:
    """Cancel confirmed bookings (their guest cancelled, or the event was deleted): the one way.

    Each booking is `cancelled` at `now`; the request it came from (`requests` holds each,
    by row id) counts the seats as cancelled, takes `reason` and is restated. Returns the
    seats freed: the caller gives them back to the event (or zeroes it) and tells guests."""
    seats_by_request: dict[int, int] = {}
    for booking in bookings:
        assert booking.status == BookingStatus.CONFIRMED
        booking.status = BookingStatus.CANCELLED
        booking.cancelled_at = now
        request_row_id = booking.booking_request_id
        if request_row_id is not None:  # none for a booking made without a request
            seats_by_request[request_row_id] = seats_by_request.get(request_row_id, 0) + booking.seats
    for request_row_id, seats in seats_by_request.items():
        request = requests[request_row_id]
        request.seats_cancelled += seats
        request.reason = reason
        restate_request(request)
    return sum(booking.seats for booking in bookings)


@dataclass
class _EventDecisions:
    """One event's batch as `DecisionWrites` holds it until it is written."""

    event: Event
    pending: Sequence[PendingRequest]
    tier_decisions: tuple[tiers.TierDecision, ...]
    names: dict[int, str]
    settlement: Settlement


_NEW_ENTRY_COLUMNS = ("id", "seats_remaining", "tier_id", "event_id")  # what the mirror needs of a new entry


class DecisionWrites:
    """The decisions of one or several events' batches, written with one bulk statement per
    table whatever the number of events (the hot path of a flash sale; a partition's small
    events settled in one transaction each added a statement per table before, and a round
    trip each on a busy machine is what a decision waits for at half load).

    `add` takes an event's batch as decided (the request ids it decided go into its settlement
    at once); `execute` writes all of them: the bookings first (each e-mail names its booking),
    then the requests marked decided (in bulk, by primary key: loaded objects, if any, keep
    their old state, unmodified, and expire at commit) while a big batch's waitlist entries and
    e-mails are built meanwhile (`UnitOfWork.meanwhile`), the new waitlist entries (each
    settlement gets its own, and its event's `waitlist_length` counts them) and the e-mails.
    The events' and tiers' rows are left to the caller's flush (one UPDATE per table for all of
    them where the same columns changed; an event's promotions or reads may flush earlier ones).
    One line per decision only at DEBUG (a flash sale decides thousands a second); the batch's
    INFO line is the caller's."""

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self._batches: list[_EventDecisions] = []
        self._request_updates: list[Decided] = []
        self._booking_rows: list[dict[str, object]] = []
        self._now: datetime | None = None

    def add(
        self,
        event: Event,
        pending: Sequence[PendingRequest],
        tier_decisions: tuple[tiers.TierDecision, ...],
        prices: dict[int, int],
        names: dict[int, str],
        now: datetime,
        settlement: Settlement,
    ) -> None:
        assert len(pending) == len(tier_decisions)
        assert self._now in (None, now)  # one decision time for what is written together
        self._now = now
        event_id = event.id
        log_each = log.isEnabledFor(logging.DEBUG)
        for request, tier_decision in zip(pending, tier_decisions, strict=True):
            decision, tier_id = tier_decision.decision, tier_decision.tier_id
            assert request.request_id == decision.request_id
            assert request.status == RequestStatus.PENDING
            outcome = decision.outcome.value
            tier_id_kept = request.tier_id if tier_id is None else tier_id  # the named one, when none took it
            seats_confirmed, seats_waitlisted = decision.seats_confirmed, decision.seats_waitlisted
            self._request_updates.append(
                (request.id, outcome, seats_confirmed, seats_waitlisted, decision.reason, tier_id_kept)
            )
            settlement.decided_request_ids.append(request.request_id)
            if log_each:
                log_with_correlation(
                    log,
                    "booking.request.decided",
                    request.correlation_id,
                    logging.DEBUG,
                    request_id=request.request_id,
                    event_id=event_id,
                    outcome=outcome,
                    seats_confirmed=decision.seats_confirmed,
                )
            if decision.seats_confirmed:
                assert tier_id is not None
                self._booking_rows.append(
                    _booking_values(event_id, tier_id, prices[tier_id], request, decision.seats_confirmed, now)
                )
        if pending:
            self._batches.append(_EventDecisions(event, pending, tier_decisions, names, settlement))

    def execute(self, work: UnitOfWork) -> None:
        if not self._request_updates:
            return
        now = self._now
        assert now is not None
        dialect = work.session.get_bind().dialect
        batches = self._batches
        # The events' and tiers' changes wait for the caller's flush: none of these statements
        # reads them, and the new waitlist entries change the events' rows once more below. (On
        # Postgres these are Core statements, which never flush; SQLite's bulk update by primary
        # key is an ORM statement, which would.)
        with work.session.no_autoflush:
            booking_id_of = _insert_bookings(work, self._booking_rows)  # first: each e-mail names its booking
            in_background = len(self._request_updates) >= limits.WRITES_ALONGSIDE_ROWS_MIN
            event_ids = [batch.event.id for batch in batches]
            decided_statement = _decided_statement(work, event_ids, self._request_updates, now)
            with work.meanwhile(*decided_statement, in_background) as update_:
                waitlist_rows = [  # in decision order, the queue's order
                    _waiting_values(
                        batch.event.id, tier_decision.tier_id, request, tier_decision.decision.seats_waitlisted, now
                    )
                    for batch in batches
                    for request, tier_decision in zip(batch.pending, batch.tier_decisions, strict=True)
                    if tier_decision.decision.seats_waitlisted
                ]
                notifications = [  # each e-mail names the booking its decision made (none for waitlisted or rejected)
                    _decided_notification(
                        batch.event,
                        request,
                        tier_decision,
                        batch.names,
                        booking_id_of[request.id] if tier_decision.decision.seats_confirmed else None,
                    )
                    for batch in batches
                    for request, tier_decision in zip(batch.pending, batch.tier_decisions, strict=True)
                ]
                outbox_insert = insert_statement(dialect, OutboxMessage.__table__, outbox_values_many(notifications))
                waitlist_insert = (
                    insert_statement(dialect, WaitlistEntry.__table__, waitlist_rows, _NEW_ENTRY_COLUMNS)
                    if waitlist_rows
                    else None
                )
            if work.is_postgres:  # SQLite's bulk update by primary key counts no rows
                updated = update_.result()
                assert isinstance(updated, CursorResult)  # an UPDATE's result: it counts the rows
                assert updated.rowcount == len(self._request_updates)
            # The new entries' ids (queue order too) go to the Redis mirror.
            new_entries = work.session.execute(*waitlist_insert).all() if waitlist_insert else []
            appended: dict[int, dict[int, MirroredEntry]] = {}
            for entry_id, seats, entry_tier_id, event_id in sorted(new_entries):
                appended.setdefault(event_id, {})[entry_id] = MirroredEntry(seats, entry_tier_id)
            for batch in batches:
                batch.settlement.appended_entries = appended.get(batch.event.id, {})
                batch.event.waitlist_length += len(batch.settlement.appended_entries)
            work.session.execute(*outbox_insert)
        self._clear()  # written: nothing is held any more


def _waiting_values(
    event_id: int, tier_id: int | None, request: PendingRequest, seats: int, now: datetime
) -> dict[str, object]:
    """A new waiting entry: `seats` waited for in a tier's queue."""
    return {
        "event_id": event_id,
        "tier_id": tier_id,
        "user_id": request.user_id,
        "booking_request_id": request.id,
        "seats_waitlisted": seats,
        "seats_remaining": seats,
        "status": WaitlistStatus.WAITING,
        "created_at": now,
        "updated_at": now,
    }


def _decided_notification(
    event: Event,
    request: PendingRequest,
    tier_decision: tiers.TierDecision,
    names: dict[int, str],
    booking_id: int | None,
) -> Notification:
    decision = tier_decision.decision
    return Notification(
        f"booking.{decision.outcome.value}",
        request.user_id,
        event,
        request.request_id,
        {
            "requestId": request.request_id,
            "seatsRequested": decision.seats_requested,
            "seatsConfirmed": decision.seats_confirmed,
            "seatsWaitlisted": decision.seats_waitlisted,
            "reason": decision.reason,
            "bookingIds": [booking_id] if booking_id is not None else [],
            **tier_fields(names, tier_decision.tier_id),
        },
    )


def _insert_bookings(work: UnitOfWork, booking_rows: list[dict[str, object]]) -> dict[int, int]:
    """One INSERT ... RETURNING: {booking request row id: its new booking's id}. A decision
    makes at most one booking per request."""
    returned = insert_rows(work, Booking.__table__, booking_rows, returning=("booking_request_id", "id"))
    booking_id_of = {request_row_id: booking_id for request_row_id, booking_id in returned}
    assert len(booking_id_of) == len(booking_rows)
    return booking_id_of


_DECIDED_COLUMNS = ("id", "status", "seats_confirmed", "seats_waitlisted", "reason", "tier_id")
Decided = tuple[int, str, int, int, str | None, int | None]  # one request's decision, as _DECIDED_COLUMNS
# One statement for a whole batch: the decisions travel as six arrays, side by side.
# The rows it may touch are named twice: by id (the join), and as the events' pending requests
# in the batch's id range, which ix_booking_requests_event_status_id finds directly. Joined by id
# alone, the planner (knowing the arrays' length, a big batch) hash-joined a sequential scan of
# every request ever recorded: 71 of the statement's 133 ms for a batch of 2,500 with 274,000
# rows in the table (make bench's worker-alone phase), and growing with the table. For several
# events the range is the union's: when a hot event's batch (its oldest pending) is decided
# with small events' newer requests, the scan also passes the hot event's pending entries
# between the two (its backlog beyond the batch), never another event's rows.
_UPDATE_DECIDED_SQL = text(
    """
    UPDATE booking_requests AS request
    SET status = decided.status, seats_confirmed = decided.seats_confirmed,
        seats_waitlisted = decided.seats_waitlisted, reason = decided.reason, tier_id = decided.tier_id,
        decided_at = :decided_at
    FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:confirmed AS integer[]),
                CAST(:waitlisted AS integer[]), CAST(:reasons AS text[]), CAST(:tier_ids AS bigint[]))
         AS decided (id, status, seats_confirmed, seats_waitlisted, reason, tier_id)
    WHERE request.id = decided.id
      AND request.event_id = ANY(CAST(:event_ids AS bigint[])) AND request.status = :pending
      AND request.id BETWEEN :first_id AND :last_id
    """
)


def _decided_statement(
    work: UnitOfWork, event_ids: Sequence[int], decided: list[Decided], now: datetime
) -> tuple[Executable, object]:
    """The statement that marks a batch of the events' pending requests decided, and its
    parameters: on Postgres one UPDATE ... FROM unnest(arrays) (an UPDATE per row was a third
    of a decision's cost); elsewhere the ORM's bulk update by primary key."""
    if not work.is_postgres:
        return update(BookingRequest), [
            {**dict(zip(_DECIDED_COLUMNS, row, strict=True)), "decided_at": now} for row in decided
        ]
    ids, statuses, confirmed, waitlisted, reasons, tier_ids = (list(column_) for column_ in zip(*decided, strict=True))
    return _UPDATE_DECIDED_SQL, {
        "ids": ids,
        "statuses": statuses,
        "confirmed": confirmed,
        "waitlisted": waitlisted,
        "reasons": reasons,
        "tier_ids": tier_ids,
        "decided_at": now,
        "event_ids": list(event_ids),
        "pending": RequestStatus.PENDING.value,
        "first_id": min(ids),
        "last_id": max(ids),
    }


def _booking_values(
    event_id: int, tier_id: int, price_minor: int, request: PendingRequest | BookingRequest, seats: int, now: datetime
) -> dict[str, object]:
    """A booking of `seats` in a tier: it costs seats x the tier's price."""
    assert seats > 0
    return {
        "user_id": request.user_id,
        "event_id": event_id,
        "tier_id": tier_id,
        "booking_request_id": request.id,
        "seats": seats,
        "cost_minor": seats * price_minor,
        "status": BookingStatus.CONFIRMED,
        "created_at": now,
    }


def new_booking(event: Event, tier: EventTier, request: BookingRequest, seats: int, now: datetime) -> Booking:
    """A booking of `seats` for `request` in `tier` (an accepted waitlist offer, services/offers.py)."""
    return Booking(**_booking_values(event.id, tier.id, tier.price_minor, request, seats, now))
