"""Hypothesis: the allocator against a reference model, and a stateful event model."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from atomicseats.domain.allocator import (
    REASON_EVENT_STARTED,
    Decision,
    EventState,
    Outcome,
    Promotion,
    SeatRequest,
    WaitlistSlot,
    allocate,
    expire_waitlist,
    promote_round,
    promote_waitlist,
    release_seats,
    resize_capacity,
    waitlist_read_size,
)
from atomicseats.domain.limits import PROMOTION_ROUNDS_MAX, SEATS_PER_REQUEST_MAX
from tests.domain.support import seats_confirmed_total

seat_counts = st.integers(1, SEATS_PER_REQUEST_MAX)
batch_sizes = st.integers(1, 5)  # small promotion batches, so that rounds follow rounds


def promote_in_rounds(
    state: EventState, waitlist: Sequence[WaitlistSlot], batch_max: int
) -> tuple[tuple[Promotion, ...], EventState, int]:
    """Promotion as services/_allocation.py runs it: read the head the allocator asks for,
    write its promotions (served entries leave, the head keeps its remainder), until it says
    promotion is over. Returns every promotion, the state after and the reads made."""
    waiting = list(waitlist)
    promotions: list[Promotion] = []
    reads = 0
    entries_to_read = waitlist_read_size(state, batch_max)
    for _ in range(PROMOTION_ROUNDS_MAX):
        if entries_to_read == 0:
            break
        round_ = promote_round(state, waiting[:entries_to_read], batch_max)
        reads += 1
        for promotion in round_.promotions:
            assert promotion.entry_id == waiting[0].entry_id
            if promotion.is_served:
                waiting.pop(0)
            else:
                waiting[0] = WaitlistSlot(promotion.entry_id, promotion.seats_remaining)
        promotions += round_.promotions
        state, entries_to_read = round_.state, round_.entries_to_read
    assert entries_to_read == 0
    return tuple(promotions), state, reads


# (a) Reference model.


@dataclass
class Claimant:
    seats_wanted: int
    seats_given: int = 0


def reference_allocate(
    state: EventState, waitlist: Sequence[WaitlistSlot], requests: Sequence[SeatRequest]
) -> tuple[tuple[Promotion, ...], tuple[Decision, ...], int]:
    """Seat by seat: each free seat goes to the earliest claimant still short of seats.

    Claimants are the waitlist (head first) followed by the new requests (arrival order).
    After the sales end nobody gets a seat and every new request is rejected.
    """
    if not state.is_sales_open:
        decisions = tuple(
            Decision(request.request_id, request.seats, 0, 0, Outcome.REJECTED, REASON_EVENT_STARTED)
            for request in requests
        )
        return (), decisions, state.reserved_seats
    claimants = [Claimant(slot.seats_remaining) for slot in waitlist]
    claimants += [Claimant(request.seats) for request in requests]
    seats_free = state.capacity_seats - state.reserved_seats
    while seats_free > 0:
        short = [c for c in claimants if c.seats_given < c.seats_wanted]
        if not short:
            break
        short[0].seats_given += 1
        seats_free -= 1
    promotions = tuple(
        Promotion(slot.entry_id, c.seats_given, c.seats_wanted - c.seats_given)
        for slot, c in zip(waitlist, claimants[: len(waitlist)], strict=True)
        if c.seats_given > 0
    )
    decisions = tuple(
        reference_decision(request, c.seats_given, state.is_waitlist_open)
        for request, c in zip(requests, claimants[len(waitlist) :], strict=True)
    )
    return promotions, decisions, state.capacity_seats - seats_free


def reference_decision(request: SeatRequest, seats_given: int, is_open: bool) -> Decision:
    seats_short = request.seats - seats_given
    if seats_short == 0:
        return Decision(request.request_id, request.seats, seats_given, 0, Outcome.CONFIRMED, None)
    outcome = Outcome.PARTIAL if seats_given > 0 else Outcome.WAITLISTED
    if is_open:
        return Decision(request.request_id, request.seats, seats_given, seats_short, outcome, None)
    outcome = Outcome.PARTIAL if seats_given > 0 else Outcome.REJECTED
    return Decision(request.request_id, request.seats, seats_given, 0, outcome, "waitlist_closed")


@st.composite
def event_states(draw: st.DrawFn) -> EventState:
    capacity = draw(st.integers(0, 60))
    reserved = draw(st.integers(0, capacity))
    return EventState(capacity, reserved, is_waitlist_open=draw(st.booleans()), is_sales_open=draw(st.booleans()))


@settings(max_examples=300, deadline=None)
@given(
    event_states(),
    st.lists(seat_counts, max_size=15),
    st.lists(seat_counts, max_size=40),
)
def test_allocator_agrees_with_reference_model(state: EventState, waiting: list[int], sizes: list[int]) -> None:
    waitlist = [WaitlistSlot(entry_id=100 + i, seats_remaining=n) for i, n in enumerate(waiting)]
    requests = [SeatRequest(request_id=f"r{i}", seats=n) for i, n in enumerate(sizes)]
    allocation = allocate(state, waitlist, requests)
    promotions, decisions, reserved_seats = reference_allocate(state, waitlist, requests)
    assert allocation.promotions == promotions
    assert allocation.decisions == decisions
    assert allocation.reserved_seats == reserved_seats
    assert allocation.capacity_seats == state.capacity_seats
    assert seats_confirmed_total(allocation) == reserved_seats - state.reserved_seats


@settings(max_examples=100, deadline=None)
@given(event_states(), st.lists(seat_counts, max_size=15))
def test_promote_waitlist_agrees_with_allocate_without_requests(state: EventState, waiting: list[int]) -> None:
    waitlist = [WaitlistSlot(entry_id=i, seats_remaining=n) for i, n in enumerate(waiting)]
    promotions, after = promote_waitlist(state, waitlist)
    allocation = allocate(state, waitlist, [])
    assert promotions == allocation.promotions
    assert after.reserved_seats == allocation.reserved_seats
    assert after.capacity_seats == state.capacity_seats
    assert after.is_waitlist_open == state.is_waitlist_open
    assert after.is_sales_open == state.is_sales_open


@settings(max_examples=300, deadline=None)
@given(
    event_states(),
    st.lists(seat_counts, max_size=15),
    st.lists(seat_counts, max_size=40),
    batch_sizes,
)
def test_promotion_in_rounds_then_allocation_agrees_with_reference_model(
    state: EventState, waiting: list[int], sizes: list[int], batch_max: int
) -> None:
    """The production path (rounds of reads, then new requests on the state promotion left)
    decides exactly what the reference model does, reading no more batches than it must."""
    waitlist = [WaitlistSlot(entry_id=100 + i, seats_remaining=n) for i, n in enumerate(waiting)]
    requests = [SeatRequest(request_id=f"r{i}", seats=n) for i, n in enumerate(sizes)]
    promotions, after, reads = promote_in_rounds(state, waitlist, batch_max)
    allocation = allocate(after, [], requests)
    expected_promotions, expected_decisions, reserved_seats = reference_allocate(state, waitlist, requests)
    assert promotions == expected_promotions
    assert allocation.decisions == expected_decisions
    assert allocation.reserved_seats == reserved_seats
    assert after.is_waitlist_open == state.is_waitlist_open
    entries_served = sum(promotion.is_served for promotion in promotions)
    assert reads <= entries_served // batch_max + 1
    assert (reads == 0) == (waitlist_read_size(state, batch_max) == 0)


@settings(max_examples=100, deadline=None)
@given(event_states(), st.lists(seat_counts, max_size=15))
def test_the_waitlist_expires_exactly_when_sales_are_closed(state: EventState, waiting: list[int]) -> None:
    waitlist = [WaitlistSlot(entry_id=i, seats_remaining=n) for i, n in enumerate(waiting)]
    expired = expire_waitlist(state, waitlist)
    assert expired == (() if state.is_sales_open else tuple(waitlist))


# (b) Stateful model of one event, built only from the domain functions.


@dataclass(frozen=True)
class Holding:
    arrival: int  # arrival order of the request that holds these seats
    seats: int


class EventMachine(RuleBasedStateMachine):
    """Book, cancel, resize, close and reopen, end sales; FIFO and no oversell after every step,
    and nothing confirmed after the sales end."""

    @initialize(capacity=st.integers(0, 30), is_open=st.booleans(), batch_max=batch_sizes)
    def start(self, capacity: int, is_open: bool, batch_max: int) -> None:
        self.state = EventState(capacity, reserved_seats=0, is_waitlist_open=is_open)
        self.batch_max = batch_max  # promotion reads the waitlist in rounds of this many entries
        self.waitlist: list[WaitlistSlot] = []
        self.arrival_of_entry: dict[int, int] = {}
        self.holdings: list[Holding] = []
        self.arrivals_total = 0
        self.entries_total = 0
        self.seats_confirmed_after_sales_end = 0

    @rule(sizes=st.lists(seat_counts, min_size=1, max_size=8))
    def book_batch(self, sizes: list[int]) -> None:
        first_arrival = self.arrivals_total
        requests = [SeatRequest(f"r{first_arrival + i}", n) for i, n in enumerate(sizes)]
        self.arrivals_total += len(sizes)
        waitlist_before = list(self.waitlist)
        allocation = allocate(self.state, self.waitlist, requests)
        confirmed = self.apply_promotions(allocation.promotions)
        for offset, decision in enumerate(allocation.decisions):
            assert decision.request_id == requests[offset].request_id
            confirmed += self.apply_decision(first_arrival + offset, decision)
            if not self.state.is_sales_open:
                assert (decision.outcome, decision.reason) == (Outcome.REJECTED, REASON_EVENT_STARTED)
        self.state = dataclasses.replace(
            self.state, capacity_seats=allocation.capacity_seats, reserved_seats=allocation.reserved_seats
        )
        self.check_step(waitlist_before, confirmed)

    @rule(sizes=st.lists(seat_counts, min_size=1, max_size=8))
    def book_batch_in_rounds(self, sizes: list[int]) -> None:
        """As the service decides a batch: promotion in rounds, then the requests on the state it left;
        the same decisions as one `allocate` over the whole waitlist."""
        first_arrival = self.arrivals_total
        requests = [SeatRequest(f"r{first_arrival + i}", n) for i, n in enumerate(sizes)]
        self.arrivals_total += len(sizes)
        waitlist_before = list(self.waitlist)
        whole = allocate(self.state, self.waitlist, requests)
        promotions, self.state, _ = promote_in_rounds(self.state, self.waitlist, self.batch_max)
        allocation = allocate(self.state, [], requests)
        assert promotions == whole.promotions
        assert allocation.decisions == whole.decisions
        assert allocation.reserved_seats == whole.reserved_seats
        confirmed = self.apply_promotions(promotions)
        for offset, decision in enumerate(allocation.decisions):
            confirmed += self.apply_decision(first_arrival + offset, decision)
        self.state = dataclasses.replace(self.state, reserved_seats=allocation.reserved_seats)
        self.check_step(waitlist_before, confirmed)

    @precondition(lambda self: bool(self.holdings))
    @rule(data=st.data())
    def cancel_holding(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.holdings) - 1))
        holding = self.holdings.pop(index)
        waitlist_before = list(self.waitlist)
        self.state = release_seats(self.state, holding.seats)
        self.promote(waitlist_before)

    @rule(capacity=st.integers(0, 40))
    def resize(self, capacity: int) -> None:
        resized = resize_capacity(self.state, capacity)
        if capacity < self.state.reserved_seats:
            assert resized is None
            return
        assert resized is not None
        assert resized.capacity_seats == capacity
        assert resized.reserved_seats == self.state.reserved_seats
        waitlist_before = list(self.waitlist)
        self.state = resized
        self.promote(waitlist_before)

    @rule()
    def close_waitlist(self) -> None:
        self.state = dataclasses.replace(self.state, is_waitlist_open=False)

    @rule()
    def reopen_waitlist(self) -> None:
        self.state = dataclasses.replace(self.state, is_waitlist_open=True)
        self.promote(list(self.waitlist))

    @rule()
    def end_sales(self) -> None:
        """The sales end passes: whoever waits is expired, unserved."""
        self.state = dataclasses.replace(self.state, is_sales_open=False)
        expired = expire_waitlist(self.state, self.waitlist)
        assert expired == tuple(self.waitlist)
        self.waitlist = []

    # Applying results, as a service would write them.

    def promote(self, waitlist_before: list[WaitlistSlot]) -> None:
        """As the services do after a cancel, a capacity change or a reopening: in rounds; the
        same promotions as one `promote_waitlist` over the whole waitlist."""
        whole, after_whole = promote_waitlist(self.state, self.waitlist)
        promotions, self.state, _ = promote_in_rounds(self.state, self.waitlist, self.batch_max)
        assert promotions == whole
        assert self.state == after_whole
        confirmed = self.apply_promotions(promotions)
        self.check_step(waitlist_before, confirmed)

    def apply_promotions(self, promotions: Sequence[Promotion]) -> list[int]:
        """Serve the head; returns the arrivals that got seats."""
        confirmed: list[int] = []
        for promotion in promotions:
            head = self.waitlist[0]
            assert promotion.entry_id == head.entry_id
            assert promotion.seats_promoted + promotion.seats_remaining == head.seats_remaining
            arrival = self.arrival_of_entry[head.entry_id]
            self.holdings.append(Holding(arrival, promotion.seats_promoted))
            confirmed.append(arrival)
            if not self.state.is_sales_open:
                self.seats_confirmed_after_sales_end += promotion.seats_promoted
            if promotion.seats_remaining == 0:
                self.waitlist.pop(0)
            else:
                self.waitlist[0] = WaitlistSlot(head.entry_id, promotion.seats_remaining)
        return confirmed

    def apply_decision(self, arrival: int, decision: Decision) -> list[int]:
        if decision.seats_waitlisted > 0:
            assert self.state.is_waitlist_open
            self.entries_total += 1
            self.waitlist.append(WaitlistSlot(self.entries_total, decision.seats_waitlisted))
            self.arrival_of_entry[self.entries_total] = arrival
        if decision.seats_confirmed == 0:
            return []
        if not self.state.is_sales_open:
            self.seats_confirmed_after_sales_end += decision.seats_confirmed
        self.holdings.append(Holding(arrival, decision.seats_confirmed))
        return [arrival]

    def check_step(self, waitlist_before: list[WaitlistSlot], confirmed: list[int]) -> None:
        """FIFO: the old waitlist only lost a head; nobody overtook anyone still waiting."""
        old_ids = [slot.entry_id for slot in waitlist_before]
        new_ids = [slot.entry_id for slot in self.waitlist]
        kept = [entry_id for entry_id in new_ids if entry_id in set(old_ids)]
        assert kept == old_ids[len(old_ids) - len(kept) :]
        assert new_ids[: len(kept)] == kept
        assert all(entry_id > max(old_ids, default=0) for entry_id in new_ids[len(kept) :])
        # Only the head's remainder may shrink; everyone behind it is untouched.
        seats_before = {slot.entry_id: slot.seats_remaining for slot in waitlist_before}
        for position, slot in enumerate(self.waitlist[: len(kept)]):
            if position == 0:
                assert slot.seats_remaining <= seats_before[slot.entry_id]
            else:
                assert slot.seats_remaining == seats_before[slot.entry_id]
        if self.waitlist and confirmed:
            earliest_waiting = self.arrival_of_entry[self.waitlist[0].entry_id]
            assert max(confirmed) <= earliest_waiting

    # Invariants after every step.

    @invariant()
    def nothing_confirmed_after_the_sales_end(self) -> None:
        assert self.seats_confirmed_after_sales_end == 0
        if not self.state.is_sales_open:
            assert self.waitlist == []

    @invariant()
    def never_oversold(self) -> None:
        assert self.state.reserved_seats >= 0
        assert self.state.reserved_seats <= self.state.capacity_seats

    @invariant()
    def reserved_is_sum_of_holdings(self) -> None:
        assert self.state.reserved_seats == sum(holding.seats for holding in self.holdings)

    @invariant()
    def waiting_means_sold_out(self) -> None:
        if self.waitlist:
            assert self.state.seats_free == 0

    @invariant()
    def waitlist_is_in_arrival_order(self) -> None:
        arrivals = [self.arrival_of_entry[slot.entry_id] for slot in self.waitlist]
        assert arrivals == sorted(arrivals)
        assert all(1 <= slot.seats_remaining <= SEATS_PER_REQUEST_MAX for slot in self.waitlist)


EventMachine.TestCase.settings = settings(max_examples=75, stateful_step_count=30, deadline=None)
TestEventMachine = EventMachine.TestCase
