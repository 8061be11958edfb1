"""The seat allocator: event state + waitlist + ordered requests -> decisions.

Pure: no I/O, no clock, no randomness. Every path (inline and Kafka) calls this one.

Rules (DESIGN.md, "Allocation semantics"):
- Waitlist promotion runs first, open or closed: closing the waitlist only stops new
  people joining. Free seats go to the head; the head may be served partially and
  keeps its place with the remainder; nobody behind it is served before it.
  A caller that reads the waitlist from a database reads it in rounds: the allocator
  says how many entries to read (`waitlist_read_size`), serves them (`promote_round`)
  and says whether another round is needed, then the caller decides new requests
  (`allocate`) on the state promotion left.
- Then new requests in arrival order: confirmed if enough seats are free; otherwise
  the free seats are confirmed (partial) and the remainder waits, or is rejected
  when the waitlist is closed; with no seats free, waitlisted or rejected.

Because promotion runs first, a non-empty waitlist implies no seats are free, so a
new request can never overtake anyone already waiting (including requests that
were waitlisted earlier in the same batch).

Waitlist modes (per event): in `auto` mode freed seats are confirmed to the head at once
(a `Promotion`). In `offer` mode the head is offered them instead (an `Offer`): the seats
are held for it (`seats_offered`: neither free nor sold) until it accepts, accepts fewer,
declines or lets the offer expire (domain/offers.py); what it does not take is free again
and goes on to the next in line. Serving is the same walk head first in both modes, so the
same FIFO holds: an entry whose open offer covers fewer seats than it waits for gets the
next freed seats added to its offer, and nobody behind it is offered anything meanwhile;
the caller passes each entry with the seats it still wants beyond its open offer (entries
whose offer covers all they wait for are not passed: they want nothing more).

Time (sales close at the event's start, or its earlier sales end): the caller
passes `is_sales_open`, decided from its clock at the decision time (the domain has
none). Once sales are closed nothing is confirmed or promoted: every new request is
rejected with REASON_EVENT_STARTED, freed seats promote nobody, and whoever still
waits is expired (`expire_waitlist`).

A rejection is a decision, never an exception. Bad input (seats out of range,
oversized batches) is the caller's job to refuse; here it trips an assertion.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from atomicseats.domain.limits import (
    ALLOCATION_BACKLOG_BATCH_MAX,
    CAPACITY_SEATS_MAX,
    CLOSE_OUT_BATCH_MAX,
    SEATS_PER_REQUEST_MAX,
    WAITLIST_PROMOTION_BATCH_MAX,
)
from atomicseats.domain.states import RequestStatus

REASON_WAITLIST_CLOSED = "waitlist_closed"
REASON_EVENT_STARTED = "event_started"  # sales ended before the request (or its waiting seats) was served


class Outcome(enum.StrEnum):
    """A decision's outcome: the request's first status (domain/states.py) after `pending`."""

    CONFIRMED = RequestStatus.CONFIRMED.value
    PARTIAL = RequestStatus.PARTIAL.value
    WAITLISTED = RequestStatus.WAITLISTED.value
    REJECTED = RequestStatus.REJECTED.value


class WaitlistMode(enum.StrEnum):
    """What freed seats do for the waitlist head (see the module's docstring)."""

    AUTO = "auto"  # confirmed to it at once
    OFFER = "offer"  # offered to it for a window the host sets


@dataclass(frozen=True)
class EventState:
    capacity_seats: int
    reserved_seats: int
    is_waitlist_open: bool
    is_sales_open: bool = True  # False from the sales end on: nothing is booked or promoted
    seats_offered: int = 0  # held by open offers: neither free nor sold
    waitlist_mode: WaitlistMode = WaitlistMode.AUTO

    @property
    def seats_free(self) -> int:
        return self.capacity_seats - self.reserved_seats - self.seats_offered


@dataclass(frozen=True)
class SeatRequest:
    request_id: str
    seats: int


@dataclass(frozen=True)
class WaitlistSlot:
    """A waiting entry; a waitlist is a sequence of these, head first."""

    entry_id: int
    seats_remaining: int


@dataclass(frozen=True)
class Decision:
    request_id: str
    seats_requested: int
    seats_confirmed: int
    seats_waitlisted: int
    outcome: Outcome
    reason: str | None = None  # None, REASON_WAITLIST_CLOSED or REASON_EVENT_STARTED

    def __post_init__(self) -> None:
        assert self.seats_requested >= 1
        assert self.seats_confirmed >= 0
        assert self.seats_waitlisted >= 0
        assert self.seats_confirmed + self.seats_waitlisted <= self.seats_requested


@dataclass(frozen=True)
class Promotion:
    """Seats handed to a waiting entry; seats_remaining is what it still waits for."""

    entry_id: int
    seats_promoted: int
    seats_remaining: int  # after this promotion; 0 = fully served, leaves the waitlist

    def __post_init__(self) -> None:
        assert self.seats_promoted >= 1
        assert self.seats_remaining >= 0

    @property
    def is_served(self) -> bool:
        """Fully served: the entry leaves the waitlist."""
        return self.seats_remaining == 0


@dataclass(frozen=True)
class Offer:
    """Seats offered to a waiting entry (offer mode), added to its open offer if it has one."""

    entry_id: int
    seats_offered: int  # held for it from now on
    seats_still_wanted: int  # it waits for these beyond its open offer (0: its offer covers all)

    def __post_init__(self) -> None:
        assert self.seats_offered >= 1
        assert self.seats_still_wanted >= 0


@dataclass(frozen=True)
class PromotionRound:
    """One round of serving the waitlist head first (see `promote_round`)."""

    promotions: tuple[Promotion, ...]
    state: EventState  # after this round
    entries_to_read: int  # for the next round; 0: promotion is over, decide new requests now
    offers: tuple[Offer, ...] = ()  # offer mode: made instead of promotions

    def __post_init__(self) -> None:
        assert self.entries_to_read >= 0
        assert not (self.promotions and self.offers)


@dataclass(frozen=True)
class Allocation:
    promotions: tuple[Promotion, ...]
    decisions: tuple[Decision, ...]
    reserved_seats: int  # after this allocation
    capacity_seats: int
    offers: tuple[Offer, ...] = ()  # offer mode: made instead of promotions
    seats_offered: int = 0  # after this allocation

    def __post_init__(self) -> None:
        assert self.reserved_seats >= 0
        assert self.seats_offered >= 0
        assert self.reserved_seats + self.seats_offered <= self.capacity_seats

    @property
    def seats_free(self) -> int:
        return self.capacity_seats - self.reserved_seats - self.seats_offered


def promote_waitlist(state: EventState, waitlist: Sequence[WaitlistSlot]) -> tuple[tuple[Promotion, ...], EventState]:
    """Hand free seats to the waitlist, head first (auto mode). Runs whether it is open or
    closed, but never once sales are closed (the waitlist is then expired, not served).

    The caller passes the waitlist from its head. If it holds more entries than it
    passed (a batch of WAITLIST_PROMOTION_BATCH_MAX) and every passed entry was
    fully served, it must promote again before deciding new requests.
    """
    assert state.waitlist_mode is WaitlistMode.AUTO
    promotions, _offers, after = serve_waitlist(state, waitlist)
    return promotions, after


def serve_waitlist(
    state: EventState, waitlist: Sequence[WaitlistSlot]
) -> tuple[tuple[Promotion, ...], tuple[Offer, ...], EventState]:
    """Serve free seats to the waitlist head first, as the event's mode says: promotions
    (auto) or offers (offer), never both. In offer mode each slot's `seats_remaining` is
    what the entry still wants beyond its open offer."""
    _assert_state_valid(state)
    _assert_waitlist_valid(waitlist)
    if not state.is_sales_open:
        return (), (), state
    seats_free = state.seats_free
    served: list[Promotion] = []
    for slot in waitlist:
        if seats_free == 0:
            break
        promotion = _promote_one(slot, seats_free)
        seats_free -= promotion.seats_promoted
        served.append(promotion)
    assert seats_free >= 0
    # Nobody behind the head is served before the head is fully served (or fully offered).
    assert all(promotion.seats_remaining == 0 for promotion in served[:-1])
    seats_served = sum(promotion.seats_promoted for promotion in served)
    if state.waitlist_mode is WaitlistMode.OFFER:
        offers = tuple(Offer(p.entry_id, p.seats_promoted, p.seats_remaining) for p in served)
        return (), offers, dataclasses.replace(state, seats_offered=state.seats_offered + seats_served)
    return tuple(served), (), dataclasses.replace(state, reserved_seats=state.reserved_seats + seats_served)


def waitlist_read_size(state: EventState, batch_max: int = WAITLIST_PROMOTION_BATCH_MAX) -> int:
    """How many waiting entries, head first, the next promotion round needs to see: none
    once sales are closed or when no seat is free; else one per free seat (each entry
    served takes one seat at least), at most `batch_max` (one read)."""
    _assert_state_valid(state)
    assert 1 <= batch_max <= WAITLIST_PROMOTION_BATCH_MAX
    if not state.is_sales_open:
        return 0
    return min(state.seats_free, batch_max)


def promote_round(
    state: EventState, waitlist_head: Sequence[WaitlistSlot], batch_max: int = WAITLIST_PROMOTION_BATCH_MAX
) -> PromotionRound:
    """Serve the waitlist head first, for a caller that reads the waitlist in rounds.

    `waitlist_head` is the first `waitlist_read_size(state, batch_max)` waiting entries
    (fewer only when fewer wait). The round says how many entries the next one must
    read: more only when it read a full batch, served each entry fully and seats are
    still free; the caller writes this round's promotions (served entries leave the
    waitlist) before reading the next. With 0, promotion is over: nobody is served
    ahead of someone still waiting, and new requests may be decided on `state`.
    """
    entries_asked = waitlist_read_size(state, batch_max)
    assert len(waitlist_head) <= entries_asked
    promotions, offers, after = serve_waitlist(state, waitlist_head)
    has_read_whole_waitlist = len(waitlist_head) < entries_asked
    entries_to_read = 0 if has_read_whole_waitlist else waitlist_read_size(after, batch_max)
    assert entries_to_read == 0 or all(promotion.is_served for promotion in promotions)
    assert entries_to_read == 0 or all(offer.seats_still_wanted == 0 for offer in offers)
    return PromotionRound(promotions=promotions, state=after, entries_to_read=entries_to_read, offers=offers)


def allocate(state: EventState, waitlist: Sequence[WaitlistSlot], requests: Sequence[SeatRequest]) -> Allocation:
    """Promote the waitlist, then decide new requests in arrival order."""
    assert len(requests) <= ALLOCATION_BACKLOG_BATCH_MAX
    assert len({request.request_id for request in requests}) == len(requests)
    promotions, offers, state = serve_waitlist(state, waitlist)
    seats_free = state.seats_free
    decisions: list[Decision] = []
    for request in requests:
        assert request.seats >= 1
        assert request.seats <= SEATS_PER_REQUEST_MAX
        if state.is_sales_open:
            decision = _decide_one(request, seats_free, state.is_waitlist_open)
        else:
            decision = _reject_after_sales_end(request)
        seats_free -= decision.seats_confirmed
        assert seats_free >= 0
        decisions.append(decision)
    allocation = Allocation(
        promotions=promotions,
        decisions=tuple(decisions),
        reserved_seats=state.capacity_seats - state.seats_offered - seats_free,
        capacity_seats=state.capacity_seats,
        offers=offers,
        seats_offered=state.seats_offered,
    )
    if state.is_sales_open:  # after the sales end, seats may stay free: nobody is served
        _assert_nobody_waits_beside_free_seats(allocation, waitlist)
    return allocation


def expiry_read_size(state: EventState) -> int:
    """How many waiting entries, head first, one close-out reads: a batch once sales are
    closed, none while they are open (nobody expires)."""
    _assert_state_valid(state)
    return 0 if state.is_sales_open else CLOSE_OUT_BATCH_MAX


def expire_waitlist(state: EventState, waitlist: Sequence[WaitlistSlot]) -> tuple[WaitlistSlot, ...]:
    """Close-out at the sales end: every entry still waiting expires, unserved. While
    sales are open nobody expires."""
    _assert_state_valid(state)
    _assert_waitlist_valid(waitlist)
    if state.is_sales_open:
        return ()
    return tuple(waitlist)


def sales_end_of(starts_at: datetime, sales_end_at: datetime | None) -> datetime:
    """When sales close: the event's own sales end, or its start when it has none."""
    assert sales_end_at is None or sales_end_at <= starts_at
    return starts_at if sales_end_at is None else sales_end_at


def is_sales_open(sales_end_at: datetime, now: datetime) -> bool:
    """Sales are open strictly before their end; `now` is the caller's decision time."""
    return now < sales_end_at


def release_seats(state: EventState, seats: int) -> EventState:
    """Cancellation: free confirmed seats. The caller then promotes the waitlist."""
    _assert_state_valid(state)
    assert seats > 0
    assert seats <= state.reserved_seats
    return dataclasses.replace(state, reserved_seats=state.reserved_seats - seats)


def resize_capacity(state: EventState, capacity_seats: int) -> EventState | None:
    """New capacity, or None when it would drop below the seats already confirmed (or offered).

    After raising capacity the caller promotes the waitlist.
    """
    _assert_state_valid(state)
    assert capacity_seats >= 0
    assert capacity_seats <= CAPACITY_SEATS_MAX
    if capacity_seats < state.reserved_seats + state.seats_offered:
        return None
    return dataclasses.replace(state, capacity_seats=capacity_seats)


def _promote_one(slot: WaitlistSlot, seats_free: int) -> Promotion:
    assert seats_free > 0
    seats_promoted = min(seats_free, slot.seats_remaining)
    return Promotion(
        entry_id=slot.entry_id,
        seats_promoted=seats_promoted,
        seats_remaining=slot.seats_remaining - seats_promoted,
    )


def _decide_one(request: SeatRequest, seats_free: int, is_waitlist_open: bool) -> Decision:
    assert seats_free >= 0
    seats_confirmed = min(seats_free, request.seats)
    seats_short = request.seats - seats_confirmed
    if seats_short == 0:
        outcome = Outcome.CONFIRMED
    elif seats_confirmed > 0:
        outcome = Outcome.PARTIAL
    elif is_waitlist_open:
        outcome = Outcome.WAITLISTED
    else:
        outcome = Outcome.REJECTED
    is_short_rejected = seats_short > 0 and not is_waitlist_open
    return Decision(
        request_id=request.request_id,
        seats_requested=request.seats,
        seats_confirmed=seats_confirmed,
        seats_waitlisted=0 if is_short_rejected else seats_short,
        outcome=outcome,
        reason=REASON_WAITLIST_CLOSED if is_short_rejected else None,
    )


def _reject_after_sales_end(request: SeatRequest) -> Decision:
    return Decision(
        request_id=request.request_id,
        seats_requested=request.seats,
        seats_confirmed=0,
        seats_waitlisted=0,
        outcome=Outcome.REJECTED,
        reason=REASON_EVENT_STARTED,
    )


def _assert_state_valid(state: EventState) -> None:
    assert state.reserved_seats >= 0
    assert state.seats_offered >= 0
    assert state.reserved_seats + state.seats_offered <= state.capacity_seats  # a seat is offered or sold, not both
    assert state.capacity_seats <= CAPACITY_SEATS_MAX


def _assert_waitlist_valid(waitlist: Sequence[WaitlistSlot]) -> None:
    assert len(waitlist) <= WAITLIST_PROMOTION_BATCH_MAX
    assert len({slot.entry_id for slot in waitlist}) == len(waitlist)
    for slot in waitlist:
        assert slot.seats_remaining >= 1
        assert slot.seats_remaining <= SEATS_PER_REQUEST_MAX


def _assert_nobody_waits_beside_free_seats(allocation: Allocation, waitlist: Sequence[WaitlistSlot]) -> None:
    """If anyone (old or new in this batch) still waits, no seat may be free."""
    seats_remaining_old = sum(slot.seats_remaining for slot in waitlist)
    seats_promoted = sum(promotion.seats_promoted for promotion in allocation.promotions) + sum(
        offer.seats_offered for offer in allocation.offers
    )
    seats_waitlisted_new = sum(decision.seats_waitlisted for decision in allocation.decisions)
    assert seats_promoted <= seats_remaining_old
    if seats_remaining_old - seats_promoted + seats_waitlisted_new > 0:
        assert allocation.seats_free == 0
