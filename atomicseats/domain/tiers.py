"""Price tiers: each event's seats are sold in one or more tiers, each with its own price,
quota and optional sales window inside the event's sales. Pure: no I/O, no clock.

The allocator (domain/allocator.py) stays the single home of the seat rules: a tier is
decided as its own allocation, its state being the tier's quota as capacity, its reserved
seats, the event's waitlist switch and "sales open" = the event's sales are open and the
decision time is inside the tier's window (`tier_state`). The tier's waitlist is its own
and FIFO within it. An event created without tiers has exactly one (the default tier:
quota = capacity, the event's price, no window), so today's behaviour is the one-tier case.

Invariants (`tier_violations`, also checked by `flask audit` from the rows):
- each tier's reserved seats <= its quota;
- the sum of the quotas <= the event's capacity;
- the event's reserved seats = the sum of its tiers' reserved seats.

A request that names no tier gets `tier_for_request`: among the tiers on sale at its
acceptance time, the cheapest with seats free for the whole request at its decision; else
the one with the most seats free (the cheapest on a tie); else the cheapest (where it waits
or is rejected like a sold-out event). A guest who wants a given tier names it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from atomicseats.domain import allocator
from atomicseats.domain.limits import CAPACITY_SEATS_MAX, PRICE_MINOR_MAX, TIERS_PER_EVENT_MAX

REASON_TIER_NOT_ON_SALE = "tier_not_on_sale"  # the request's tier (or every tier) was not on sale
DEFAULT_TIER_NAME = "Standard"


@dataclass(frozen=True)
class Tier:
    tier_id: int
    price_minor: int
    quota_seats: int
    reserved_seats: int
    sales_starts_at: datetime | None = None  # None: from the event's sales start (publication)
    sales_ends_at: datetime | None = None  # None: until the event's sales end
    seats_offered: int = 0  # held by open waitlist offers (offer mode): neither free nor sold

    def __post_init__(self) -> None:
        # Not `reserved <= quota`: the audit builds tiers from rows to find that broken
        # (`tier_violations`); the allocator asserts it of every state it decides on.
        assert 0 <= self.price_minor <= PRICE_MINOR_MAX
        assert self.reserved_seats >= 0
        assert self.quota_seats <= CAPACITY_SEATS_MAX
        assert self.sales_starts_at is None or self.sales_ends_at is None or self.sales_starts_at < self.sales_ends_at

    @property
    def seats_free(self) -> int:
        return self.quota_seats - self.reserved_seats - self.seats_offered


@dataclass(frozen=True)
class TierRequest:
    """A pending request as tiers see it: the tier it named (None: let the rule choose) and
    when the API accepted it (the moment "on sale" is judged at for the choice)."""

    request_id: str
    seats: int
    tier_id: int | None
    accepted_at: datetime


@dataclass(frozen=True)
class TierDecision:
    tier_id: int | None  # None only when no tier was on sale (rejected, REASON_TIER_NOT_ON_SALE)
    decision: allocator.Decision


@dataclass(frozen=True)
class TierAllocation:
    decisions: tuple[TierDecision, ...]  # in arrival order
    reserved_by_tier: dict[int, int]  # each tier's reserved seats after the batch


def is_on_sale(tier: Tier, is_event_sales_open: bool, now: datetime) -> bool:
    """On sale at `now`: the event's sales are open and `now` is inside the tier's window."""
    if not is_event_sales_open:
        return False
    if tier.sales_starts_at is not None and now < tier.sales_starts_at:
        return False
    return tier.sales_ends_at is None or now < tier.sales_ends_at


def tier_state(event: allocator.EventState, tier: Tier, now: datetime) -> allocator.EventState:
    """The allocator's view of one tier at `now`: its quota is the capacity decided over."""
    return allocator.EventState(
        capacity_seats=tier.quota_seats,
        reserved_seats=tier.reserved_seats,
        is_waitlist_open=event.is_waitlist_open,
        is_sales_open=is_on_sale(tier, event.is_sales_open, now),
        seats_offered=tier.seats_offered,
        waitlist_mode=event.waitlist_mode,
    )


def cheapest_on_sale(tiers: Sequence[Tier], is_event_sales_open: bool, now: datetime) -> Tier | None:
    """The cheapest tier on sale at `now` (the first made on a tie), or None."""
    on_sale = [tier for tier in tiers if is_on_sale(tier, is_event_sales_open, now)]
    return min(on_sale, key=lambda tier: (tier.price_minor, tier.tier_id), default=None)


def tier_for_request(
    tiers: Sequence[Tier], seats: int, is_event_sales_open: bool, accepted_at: datetime
) -> Tier | None:
    """The tier a request that names none gets (see the module's doc); None: none on sale."""
    on_sale = sorted(
        (tier for tier in tiers if is_on_sale(tier, is_event_sales_open, accepted_at)),
        key=lambda tier: (tier.price_minor, tier.tier_id),
    )
    if not on_sale:
        return None
    for tier in on_sale:
        if tier.seats_free >= seats:
            return tier
    return max(on_sale, key=lambda tier: (tier.seats_free, -tier.price_minor, -tier.tier_id))


def allocate_tiers(
    event: allocator.EventState, tiers: Sequence[Tier], requests: Sequence[TierRequest], now: datetime
) -> TierAllocation:
    """Decide new requests in arrival order, each in its tier through `allocator.allocate`.

    The caller has served each tier's waitlist first (`allocator.promote_round` on
    `tier_state`), so `tiers` carry the reserved seats promotion left. Requests that named
    their tier are decided per tier in one call each; a request that names none is decided
    alone on the tiers as the requests before it left them (its choice depends on them).
    """
    assert 1 <= len(tiers) <= TIERS_PER_EVENT_MAX
    by_id = {tier.tier_id: tier for tier in tiers}
    assert len(by_id) == len(tiers)
    states = {tier.tier_id: tier_state(event, tier, now) for tier in tiers}
    if all(request.tier_id is not None for request in requests) or len(tiers) == 1:
        return _allocate_grouped(event, by_id, states, requests)
    decisions: list[TierDecision] = []
    for request in requests:
        current = [
            dataclasses.replace(by_id[tier_id], reserved_seats=state.reserved_seats)
            for tier_id, state in states.items()
        ]
        tier_id = request.tier_id
        if tier_id is None:
            chosen = tier_for_request(current, request.seats, event.is_sales_open, request.accepted_at)
            tier_id = None if chosen is None else chosen.tier_id
        decision, states = _decide_in_tier(event, states, tier_id, request)
        decisions.append(decision)
    return TierAllocation(tuple(decisions), {tier_id: state.reserved_seats for tier_id, state in states.items()})


def _allocate_grouped(
    event: allocator.EventState,
    by_id: dict[int, Tier],
    states: dict[int, allocator.EventState],
    requests: Sequence[TierRequest],
) -> TierAllocation:
    """Every request's tier is known before deciding: one `allocate` a tier (the hot path of
    an untiered event is exactly one call, as before tiers)."""
    only_tier = next(iter(by_id)) if len(by_id) == 1 else None
    groups: dict[int | None, list[int]] = {}
    for index, request in enumerate(requests):
        tier_id = only_tier if request.tier_id is None else request.tier_id
        groups.setdefault(tier_id if tier_id in by_id else None, []).append(index)
    decided: list[TierDecision | None] = [None] * len(requests)
    reserved_by_tier = {tier_id: state.reserved_seats for tier_id, state in states.items()}
    for tier_id, indices in groups.items():
        seat_requests = [allocator.SeatRequest(requests[i].request_id, requests[i].seats) for i in indices]
        if tier_id is None:
            for i, seat_request in zip(indices, seat_requests, strict=True):
                decided[i] = TierDecision(None, _not_on_sale(seat_request, event))
            continue
        allocation = allocator.allocate(states[tier_id], [], seat_requests)
        reserved_by_tier[tier_id] = allocation.reserved_seats
        is_window_closed = event.is_sales_open and not states[tier_id].is_sales_open
        for i, decision in zip(indices, allocation.decisions, strict=True):
            decided[i] = TierDecision(tier_id, _relabel(decision) if is_window_closed else decision)
    decisions = tuple(decision for decision in decided if decision is not None)
    assert len(decisions) == len(requests)
    return TierAllocation(decisions, reserved_by_tier)


def _decide_in_tier(
    event: allocator.EventState,
    states: dict[int, allocator.EventState],
    tier_id: int | None,
    request: TierRequest,
) -> tuple[TierDecision, dict[int, allocator.EventState]]:
    seat_request = allocator.SeatRequest(request.request_id, request.seats)
    if tier_id is None or tier_id not in states:
        return TierDecision(None, _not_on_sale(seat_request, event)), states
    state = states[tier_id]
    allocation = allocator.allocate(state, [], [seat_request])
    (decision,) = allocation.decisions
    if event.is_sales_open and not state.is_sales_open:
        decision = _relabel(decision)
    states = {**states, tier_id: dataclasses.replace(state, reserved_seats=allocation.reserved_seats)}
    return TierDecision(tier_id, decision), states


def _relabel(decision: allocator.Decision) -> allocator.Decision:
    """The event's sales are open but the tier's window is not: say so, not "event started"."""
    assert decision.outcome == allocator.Outcome.REJECTED
    return dataclasses.replace(decision, reason=REASON_TIER_NOT_ON_SALE)


def _not_on_sale(request: allocator.SeatRequest, event: allocator.EventState) -> allocator.Decision:
    """No tier to decide in: none on sale (or an unknown one named); after the sales end the
    reason is the event's."""
    reason = REASON_TIER_NOT_ON_SALE if event.is_sales_open else allocator.REASON_EVENT_STARTED
    return allocator.Decision(
        request_id=request.request_id,
        seats_requested=request.seats,
        seats_confirmed=0,
        seats_waitlisted=0,
        outcome=allocator.Outcome.REJECTED,
        reason=reason,
    )


# --- invariants and changes ------------------------------------------------------------------


def tier_violations(capacity_seats: int, reserved_seats: int, tiers: Sequence[Tier]) -> list[str]:
    """The tier invariants an event breaks (empty: none)."""
    violations = [
        f"tier {tier.tier_id} oversold: {tier.reserved_seats} reserved + {tier.seats_offered} offered"
        f" > quota {tier.quota_seats}"
        for tier in tiers
        if tier.reserved_seats + tier.seats_offered > tier.quota_seats
    ]
    quotas_total = sum(tier.quota_seats for tier in tiers)
    if quotas_total > capacity_seats:
        violations.append(f"tier quotas total {quotas_total} > capacity {capacity_seats}")
    tiers_reserved = sum(tier.reserved_seats for tier in tiers)
    if tiers and tiers_reserved != reserved_seats:
        violations.append(f"event reserved {reserved_seats} != tiers' reserved {tiers_reserved}")
    return violations


def follows_capacity(capacity_seats: int, tiers: Sequence[Tier]) -> bool:
    """A single tier whose quota is the whole capacity (the default tier, or one made so)
    follows the capacity when it changes; any other tiering keeps its quotas."""
    return len(tiers) == 1 and tiers[0].quota_seats == capacity_seats


@dataclass(frozen=True)
class QuotaProblem:
    message: str
    is_below_confirmed: bool  # True: a quota under its tier's confirmed seats (a conflict with sales)


def quota_problem(capacity_seats: int, quotas: dict[int, int], tiers: Sequence[Tier]) -> QuotaProblem | None:
    """Why new quotas (by tier id; tiers not named keep theirs; an id no tier has is a new
    tier) cannot be set, or None: a quota below its tier's confirmed (or offered) seats, or
    quotas totalling more than the capacity."""
    for tier in tiers:
        quota = quotas.get(tier.tier_id, tier.quota_seats)
        held = tier.reserved_seats + tier.seats_offered
        if quota < held:
            return QuotaProblem(
                f"Tier {tier.tier_id} has {held} seats confirmed or offered; its quota cannot be {quota}.", True
            )
    known = {tier.tier_id for tier in tiers}
    total = sum(quotas.get(tier.tier_id, tier.quota_seats) for tier in tiers)
    total += sum(quota for tier_id, quota in quotas.items() if tier_id not in known)
    if total > capacity_seats:
        return QuotaProblem(f"The tiers' quotas total {total}, more than the capacity {capacity_seats}.", False)
    return None
