"""Price tiers (domain/tiers.py): examples, the tier choice, and a stateful model of an
event's tiers built only from the domain functions (the allocator decides each tier)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from atomicseats.domain import allocator
from atomicseats.domain.allocator import EventState, WaitlistSlot
from atomicseats.domain.limits import SEATS_PER_REQUEST_MAX
from atomicseats.domain.tiers import (
    REASON_TIER_NOT_ON_SALE,
    Tier,
    TierRequest,
    allocate_tiers,
    cheapest_on_sale,
    follows_capacity,
    is_on_sale,
    quota_problem,
    tier_for_request,
    tier_state,
    tier_violations,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OPEN = EventState(capacity_seats=100, reserved_seats=0, is_waitlist_open=True)
seat_counts = st.integers(1, SEATS_PER_REQUEST_MAX)


def test_one_tier_decides_exactly_as_the_event_did() -> None:
    tier = Tier(1, price_minor=500, quota_seats=5, reserved_seats=3)
    requests = [TierRequest(f"r{i}", n, None, NOW) for i, n in enumerate([1, 3, 2])]
    result = allocate_tiers(OPEN, [tier], requests, NOW)
    expected = allocator.allocate(
        EventState(5, 3, True), [], [allocator.SeatRequest(r.request_id, r.seats) for r in requests]
    )
    assert [d.decision for d in result.decisions] == list(expected.decisions)
    assert {d.tier_id for d in result.decisions} == {1}
    assert result.reserved_by_tier == {1: 5}


def test_a_tier_outside_its_window_rejects_with_its_own_reason() -> None:
    early = Tier(1, 100, 10, 0, sales_ends_at=NOW - timedelta(minutes=1))
    late = Tier(2, 300, 10, 0, sales_starts_at=NOW + timedelta(days=1))
    result = allocate_tiers(OPEN, [early, late], [TierRequest("a", 2, 1, NOW), TierRequest("b", 2, 2, NOW)], NOW)
    assert [(d.decision.outcome, d.decision.reason) for d in result.decisions] == [
        (allocator.Outcome.REJECTED, REASON_TIER_NOT_ON_SALE)
    ] * 2
    unnamed = allocate_tiers(OPEN, [early, late], [TierRequest("c", 1, None, NOW)], NOW)
    assert unnamed.decisions[0].tier_id is None
    assert unnamed.decisions[0].decision.reason == REASON_TIER_NOT_ON_SALE


def test_after_the_sales_end_the_reason_is_the_events() -> None:
    closed = dataclasses.replace(OPEN, is_sales_open=False)
    tiers = [Tier(1, 100, 10, 0), Tier(2, 200, 10, 0)]
    result = allocate_tiers(closed, tiers, [TierRequest("a", 1, None, NOW), TierRequest("b", 1, 2, NOW)], NOW)
    assert {d.decision.reason for d in result.decisions} == {allocator.REASON_EVENT_STARTED}


def test_an_unnamed_request_gets_the_cheapest_tier_that_can_take_it_whole() -> None:
    early = Tier(1, 100, 3, 2)  # one seat left
    standard = Tier(2, 200, 10, 0)
    vip = Tier(3, 900, 10, 0)
    assert tier_for_request([vip, standard, early], 1, True, NOW) == early
    assert tier_for_request([vip, standard, early], 2, True, NOW) == standard
    full = [Tier(1, 100, 3, 3), Tier(2, 200, 3, 1), Tier(3, 300, 3, 2)]
    assert tier_for_request(full, 5, True, NOW) == full[1]  # most seats free
    sold_out = [Tier(1, 100, 3, 3), Tier(2, 200, 3, 3)]
    assert tier_for_request(sold_out, 1, True, NOW) == sold_out[0]  # the cheapest, to wait in
    assert cheapest_on_sale(sold_out, False, NOW) is None


def test_unnamed_requests_in_one_batch_see_what_earlier_ones_took() -> None:
    tiers = [Tier(1, 100, 2, 0), Tier(2, 200, 10, 0)]
    requests = [TierRequest(f"r{i}", 2, None, NOW) for i in range(3)]
    result = allocate_tiers(OPEN, tiers, requests, NOW)
    assert [d.tier_id for d in result.decisions] == [1, 2, 2]
    assert all(d.decision.outcome == allocator.Outcome.CONFIRMED for d in result.decisions)
    assert result.reserved_by_tier == {1: 2, 2: 4}


def test_invariants_and_quota_changes() -> None:
    tiers = [Tier(1, 100, 4, 4), Tier(2, 200, 6, 1)]
    assert tier_violations(10, 5, tiers) == []
    assert len(tier_violations(9, 5, tiers)) == 1
    assert len(tier_violations(10, 6, tiers)) == 1
    assert len(tier_violations(10, 5, [Tier(1, 100, 4, 5)])) == 1
    assert quota_problem(10, {1: 3}, tiers) is not None  # below its confirmed seats
    assert quota_problem(10, {2: 7}, tiers) is not None  # past the capacity
    assert quota_problem(12, {2: 7, -1: 1}, tiers) is None  # a new tier (negative key) fits
    assert follows_capacity(10, [Tier(1, 100, 10, 0)])
    assert not follows_capacity(10, tiers)


@given(
    st.lists(st.tuples(st.integers(0, 500), st.integers(0, 8), st.integers(0, 8)), min_size=1, max_size=4),
    st.lists(st.tuples(seat_counts, st.integers(0, 4)), max_size=20),
    st.booleans(),
)
def test_allocate_tiers_agrees_with_deciding_one_request_at_a_time(
    shapes: list[tuple[int, int, int]], asks: list[tuple[int, int]], is_waitlist_open: bool
) -> None:
    """The grouped path (every tier known up front) equals deciding each request alone in its
    tier in arrival order, and nothing is oversold in any tier."""
    tiers = [Tier(i + 1, price, quota + taken, taken) for i, (price, quota, taken) in enumerate(shapes)]
    event = EventState(1000, sum(t.reserved_seats for t in tiers), is_waitlist_open)
    requests = [TierRequest(f"r{i}", seats, tier_no or None, NOW) for i, (seats, tier_no) in enumerate(asks)]
    result = allocate_tiers(event, tiers, requests, NOW)
    reserved = {tier.tier_id: tier.reserved_seats for tier in tiers}
    by_id = {tier.tier_id: tier for tier in tiers}
    for request, decided in zip(requests, result.decisions, strict=True):
        current = [dataclasses.replace(by_id[t], reserved_seats=r) for t, r in reserved.items()]
        expected_tier = request.tier_id if request.tier_id in by_id else None
        if request.tier_id is None:
            chosen = tier_for_request(current, request.seats, True, NOW)
            expected_tier = None if chosen is None else chosen.tier_id
        assert decided.tier_id == expected_tier
        if expected_tier is None:
            assert decided.decision.outcome == allocator.Outcome.REJECTED
            continue
        state = tier_state(
            event, dataclasses.replace(by_id[expected_tier], reserved_seats=reserved[expected_tier]), NOW
        )
        (alone,) = allocator.allocate(state, [], [allocator.SeatRequest(request.request_id, request.seats)]).decisions
        assert decided.decision == alone
        reserved[expected_tier] += alone.seats_confirmed
    assert result.reserved_by_tier == reserved
    assert all(reserved[t.tier_id] <= t.quota_seats for t in tiers)


@given(
    st.lists(st.tuples(st.integers(0, 500), st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=5), seat_counts
)
def test_the_chosen_tier_is_on_sale_and_the_cheapest_that_fits(shapes: list[tuple[int, int, int]], seats: int) -> None:
    tiers = [Tier(i + 1, price, quota + taken, taken) for i, (price, quota, taken) in enumerate(shapes)]
    chosen = tier_for_request(tiers, seats, True, NOW)
    assert chosen is not None
    assert is_on_sale(chosen, True, NOW)
    fitting = [tier for tier in tiers if tier.seats_free >= seats]
    if fitting:
        assert chosen.seats_free >= seats
        assert chosen.price_minor == min(tier.price_minor for tier in fitting)


# A stateful model: several tiers of one event; book (named or not), cancel, change quotas and
# capacity, open/close the waitlist, end a tier's window. Every tier invariant after every step.


@dataclasses.dataclass(frozen=True)
class Holding:
    tier_id: int
    arrival: int
    seats: int


class TieredEventMachine(RuleBasedStateMachine):
    @initialize(
        quotas=st.lists(st.integers(0, 12), min_size=1, max_size=3), spare=st.integers(0, 5), is_open=st.booleans()
    )
    def start(self, quotas: list[int], spare: int, is_open: bool) -> None:
        self.capacity = sum(quotas) + spare
        self.is_waitlist_open = is_open
        self.tiers = {
            i + 1: Tier(i + 1, price_minor=100 * (i + 1), quota_seats=q, reserved_seats=0) for i, q in enumerate(quotas)
        }
        self.waitlists: dict[int, list[WaitlistSlot]] = {tier_id: [] for tier_id in self.tiers}
        self.arrival_of_entry: dict[int, int] = {}
        self.holdings: list[Holding] = []
        self.arrivals = 0
        self.entries = 0
        self.now = NOW

    def event_state(self) -> EventState:
        reserved = sum(tier.reserved_seats for tier in self.tiers.values())
        return EventState(self.capacity, reserved, self.is_waitlist_open)

    @rule(asks=st.lists(st.tuples(seat_counts, st.integers(0, 3)), min_size=1, max_size=6))
    def book(self, asks: list[tuple[int, int]]) -> None:
        self.promote_all()
        requests = [
            TierRequest(f"r{self.arrivals + i}", seats, tier_no or None, self.now)
            for i, (seats, tier_no) in enumerate(asks)
        ]
        result = allocate_tiers(self.event_state(), list(self.tiers.values()), requests, self.now)
        for offset, decided in enumerate(result.decisions):
            arrival = self.arrivals + offset
            decision = decided.decision
            if decided.tier_id is None:
                assert decision.outcome == allocator.Outcome.REJECTED
                continue
            if decision.seats_confirmed:
                self.holdings.append(Holding(decided.tier_id, arrival, decision.seats_confirmed))
            if decision.seats_waitlisted:
                self.entries += 1
                self.waitlists[decided.tier_id].append(WaitlistSlot(self.entries, decision.seats_waitlisted))
                self.arrival_of_entry[self.entries] = arrival
        self.arrivals += len(asks)
        for tier_id, reserved in result.reserved_by_tier.items():
            self.tiers[tier_id] = dataclasses.replace(self.tiers[tier_id], reserved_seats=reserved)

    @precondition(lambda self: bool(self.holdings))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        holding = self.holdings.pop(data.draw(st.integers(0, len(self.holdings) - 1)))
        tier = self.tiers[holding.tier_id]
        state = allocator.release_seats(tier_state(self.event_state(), tier, self.now), holding.seats)
        self.tiers[holding.tier_id] = dataclasses.replace(tier, reserved_seats=state.reserved_seats)
        self.promote_all()

    @rule(tier_no=st.integers(1, 3), quota=st.integers(0, 20))
    def change_quota(self, tier_no: int, quota: int) -> None:
        if tier_no not in self.tiers:
            return
        problem = quota_problem(self.capacity, {tier_no: quota}, list(self.tiers.values()))
        tier = self.tiers[tier_no]
        total_else = sum(t.quota_seats for t in self.tiers.values() if t.tier_id != tier_no)
        assert (problem is None) == (quota >= tier.reserved_seats and quota + total_else <= self.capacity)
        if problem is None:
            assert allocator.resize_capacity(tier_state(self.event_state(), tier, self.now), quota) is not None
            self.tiers[tier_no] = dataclasses.replace(tier, quota_seats=quota)
            self.promote_all()

    @rule(capacity=st.integers(0, 45))
    def change_capacity(self, capacity: int) -> None:
        tiers = list(self.tiers.values())
        if follows_capacity(self.capacity, tiers):
            problem = quota_problem(capacity, {tiers[0].tier_id: capacity}, tiers)
            if problem is None:
                self.tiers[tiers[0].tier_id] = dataclasses.replace(tiers[0], quota_seats=capacity)
        else:
            problem = quota_problem(capacity, {}, tiers)
        if problem is None:
            self.capacity = capacity
            self.promote_all()

    @rule(is_open=st.booleans())
    def switch_waitlist(self, is_open: bool) -> None:
        self.is_waitlist_open = is_open
        self.promote_all()

    @rule(tier_no=st.integers(1, 3))
    def end_tier_window(self, tier_no: int) -> None:
        """The tier's window ends: nothing more is sold in it and its waitlist expires."""
        if tier_no not in self.tiers:
            return
        tier = dataclasses.replace(self.tiers[tier_no], sales_ends_at=self.now)
        self.tiers[tier_no] = tier
        state = tier_state(self.event_state(), tier, self.now)
        assert not state.is_sales_open
        assert allocator.expire_waitlist(state, self.waitlists[tier_no]) == tuple(self.waitlists[tier_no])
        self.waitlists[tier_no] = []

    def promote_all(self) -> None:
        """As settle_event: each tier's waitlist head first, on the tier's own state."""
        for tier_id, tier in list(self.tiers.items()):
            waiting = self.waitlists[tier_id]
            promotions, state = allocator.promote_waitlist(
                tier_state(self.event_state(), tier, self.now), waiting[:1000]
            )
            for promotion in promotions:
                head = waiting[0]
                assert promotion.entry_id == head.entry_id
                self.holdings.append(Holding(tier_id, self.arrival_of_entry[head.entry_id], promotion.seats_promoted))
                if promotion.is_served:
                    waiting.pop(0)
                else:
                    waiting[0] = WaitlistSlot(head.entry_id, promotion.seats_remaining)
            self.tiers[tier_id] = dataclasses.replace(tier, reserved_seats=state.reserved_seats)

    @invariant()
    def tier_invariants_hold(self) -> None:
        tiers = list(self.tiers.values())
        assert tier_violations(self.capacity, self.event_state().reserved_seats, tiers) == []
        assert self.event_state().reserved_seats <= self.capacity

    @invariant()
    def reserved_is_the_sum_of_each_tiers_holdings(self) -> None:
        for tier_id, tier in self.tiers.items():
            assert tier.reserved_seats == sum(h.seats for h in self.holdings if h.tier_id == tier_id)

    @invariant()
    def each_tiers_waitlist_is_fifo_and_means_sold_out(self) -> None:
        for tier_id, waiting in self.waitlists.items():
            arrivals = [self.arrival_of_entry[slot.entry_id] for slot in waiting]
            assert arrivals == sorted(arrivals)
            if waiting and is_on_sale(self.tiers[tier_id], True, self.now):
                assert self.tiers[tier_id].seats_free == 0


TieredEventMachine.TestCase.settings = settings(max_examples=75, stateful_step_count=30, deadline=None)
TestTieredEventMachine = TieredEventMachine.TestCase
