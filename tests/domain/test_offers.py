"""Waitlist offers (issue 13 point 2): the allocator's offer mode and the answers to an offer
(domain/offers.py), by example and with Hypothesis: a stateful model of one event where any
sequence of bookings, cancellations, capacity changes, mode switches, offers, accepts (all or
fewer), declines, expiries and the sales end keeps every invariant."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from atomicseats.domain import offers
from atomicseats.domain.allocator import (
    REASON_EVENT_STARTED,
    EventState,
    Offer,
    Outcome,
    SeatRequest,
    WaitlistMode,
    WaitlistSlot,
    allocate,
    expire_waitlist,
    promote_round,
    release_seats,
    resize_capacity,
    waitlist_read_size,
)
from atomicseats.domain.limits import PROMOTION_ROUNDS_MAX, SEATS_PER_REQUEST_MAX
from atomicseats.domain.offers import Answer, OpenOffer, Refusal

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOUR = 3600


def offering(capacity: int, reserved: int = 0, offered: int = 0, is_sales_open: bool = True) -> EventState:
    return EventState(
        capacity,
        reserved_seats=reserved,
        is_waitlist_open=True,
        is_sales_open=is_sales_open,
        seats_offered=offered,
        waitlist_mode=WaitlistMode.OFFER,
    )


# -- the allocator in offer mode --------------------------------------------------------


def test_freed_seats_are_offered_to_the_head_and_held_not_sold() -> None:
    state = offering(10, reserved=8)
    allocation = allocate(state, [WaitlistSlot(1, 3), WaitlistSlot(2, 1)], [])
    assert allocation.promotions == ()
    assert allocation.offers == (Offer(1, 2, 1),)  # two seats held for the head, which wants one more
    assert (allocation.reserved_seats, allocation.seats_offered, allocation.seats_free) == (8, 2, 0)


def test_seats_offered_are_not_free_for_new_requests() -> None:
    state = offering(10, reserved=8, offered=2)
    allocation = allocate(state, [], [SeatRequest("r1", 1)])
    assert allocation.decisions[0].outcome is Outcome.WAITLISTED
    assert (allocation.reserved_seats, allocation.seats_offered) == (8, 2)


def test_several_entries_are_offered_in_line_and_the_last_may_be_partial() -> None:
    state = offering(10, reserved=4)
    allocation = allocate(state, [WaitlistSlot(1, 2), WaitlistSlot(2, 3), WaitlistSlot(3, 4)], [])
    assert allocation.offers == (Offer(1, 2, 0), Offer(2, 3, 0), Offer(3, 1, 3))
    assert allocation.seats_free == 0


def test_an_open_offer_is_topped_up_before_anyone_behind_is_offered() -> None:
    """Entry 1 holds an offer of 1 seat and wants 2 more: the next seats freed go to it."""
    state = offering(10, reserved=8, offered=1)
    assert waitlist_read_size(state) == 1  # one seat free: the head (entry 2 behind it is not read)
    round_ = promote_round(state, [WaitlistSlot(1, 2)])
    assert round_.offers == (Offer(1, 1, 1),)
    assert round_.state.seats_offered == 2


def test_auto_mode_promotes_and_offers_nothing() -> None:
    state = dataclasses.replace(offering(10, reserved=8), waitlist_mode=WaitlistMode.AUTO)
    allocation = allocate(state, [WaitlistSlot(1, 3)], [])
    assert allocation.offers == ()
    assert allocation.promotions[0].seats_promoted == 2
    assert allocation.reserved_seats == 10


def test_capacity_cannot_drop_below_the_seats_sold_and_offered() -> None:
    state = offering(10, reserved=5, offered=3)
    assert resize_capacity(state, 7) is None
    resized = resize_capacity(state, 8)
    assert resized is not None and resized.seats_free == 0


def test_after_the_sales_end_nobody_is_offered_anything() -> None:
    state = offering(10, reserved=2, is_sales_open=False)
    assert allocate(state, [WaitlistSlot(1, 3)], []).offers == ()


# -- answers -----------------------------------------------------------------------------


def an_offer(seats: int = 2, waiting: int = 3, expires_in_s: int = HOUR) -> OpenOffer:
    return OpenOffer(
        entry_id=7, seats_offered=seats, seats_waiting=waiting, expires_at=NOW + timedelta(seconds=expires_in_s)
    )


def test_accepting_every_seat_offered_confirms_them_and_keeps_the_place_for_the_rest() -> None:
    resolution = offers.accept(offering(10, reserved=8, offered=2), an_offer(2, waiting=3), 2, NOW)
    assert isinstance(resolution, offers.Resolution)
    assert (resolution.answer, resolution.seats_confirmed, resolution.seats_released) == (Answer.ACCEPTED, 2, 0)
    assert (resolution.seats_still_waiting, resolution.reason) == (1, None)
    assert (resolution.state.reserved_seats, resolution.state.seats_offered) == (10, 0)


def test_accepting_fewer_releases_the_rest_and_ends_the_wait() -> None:
    resolution = offers.accept(offering(10, reserved=8, offered=2), an_offer(2, waiting=3), 1, NOW)
    assert isinstance(resolution, offers.Resolution)
    assert (resolution.seats_confirmed, resolution.seats_released, resolution.seats_still_waiting) == (1, 1, 0)
    assert resolution.reason == offers.REASON_OFFER_ACCEPTED_FEWER
    assert (resolution.state.reserved_seats, resolution.state.seats_offered, resolution.state.seats_free) == (9, 0, 1)


@pytest.mark.parametrize("seats", [0, 3, -1])
def test_accepting_no_seat_or_more_than_offered_is_refused(seats: int) -> None:
    assert offers.accept(offering(10, reserved=8, offered=2), an_offer(2), seats, NOW) is Refusal.SEATS_OUT_OF_RANGE


def test_an_answer_at_or_after_the_deadline_is_too_late() -> None:
    state, offer = offering(10, reserved=8, offered=2), an_offer(2, expires_in_s=60)
    deadline = NOW + timedelta(seconds=60)
    assert isinstance(offers.accept(state, offer, 2, deadline - timedelta(microseconds=1)), offers.Resolution)
    assert offers.accept(state, offer, 2, deadline) is Refusal.OFFER_EXPIRED
    assert offers.decline(state, offer, deadline) is Refusal.OFFER_EXPIRED


def test_nothing_is_accepted_after_the_sales_end() -> None:
    assert offers.accept(offering(10, reserved=8, offered=2, is_sales_open=False), an_offer(2), 2, NOW) is (
        Refusal.SALES_ENDED
    )


def test_declining_releases_every_seat_and_leaves_the_waitlist() -> None:
    resolution = offers.decline(offering(10, reserved=8, offered=2), an_offer(2, waiting=3), NOW)
    assert isinstance(resolution, offers.Resolution)
    assert (resolution.answer, resolution.seats_released, resolution.seats_still_waiting) == (Answer.DECLINED, 2, 0)
    assert resolution.reason == offers.REASON_OFFER_DECLINED
    assert resolution.state.seats_free == 2


def test_expiry_takes_exactly_the_offers_past_their_deadline_and_all_once_sales_end() -> None:
    early, late = an_offer(1, expires_in_s=60), dataclasses.replace(an_offer(2, expires_in_s=HOUR), entry_id=8)
    state = offering(10, reserved=7, offered=3)
    expired = offers.expire(state, [early, late], NOW + timedelta(seconds=60))
    assert [resolution.entry_id for resolution in expired] == [7]
    assert expired[-1].state.seats_offered == 2
    closed = dataclasses.replace(state, is_sales_open=False)
    assert [resolution.entry_id for resolution in offers.expire(closed, [early, late], NOW)] == [7, 8]


def test_the_window_a_host_may_set_is_minutes_to_days() -> None:
    assert not offers.is_window_valid(offers.OFFER_WINDOW_MIN_S - 1)
    assert offers.is_window_valid(offers.OFFER_WINDOW_MIN_S)
    assert offers.is_window_valid(offers.OFFER_WINDOW_MAX_S)
    assert not offers.is_window_valid(offers.OFFER_WINDOW_MAX_S + 1)
    assert offers.expires_at(NOW, HOUR) == NOW + timedelta(hours=1)


# -- a stateful model of one event -------------------------------------------------------


@dataclass
class Entry:
    entry_id: int
    arrival: int
    waiting: int  # seats it still waits for, its open offer's included
    offered: int = 0  # its open offer (0: none)
    expires_at: datetime | None = None

    @property
    def wants(self) -> int:
        return self.waiting - self.offered


@dataclass
class Model:
    holdings: list[int] = field(default_factory=list)  # seats of each confirmed booking
    waitlist: list[Entry] = field(default_factory=list)
    confirmed_after_sales_end: int = 0


class OfferMachine(RuleBasedStateMachine):
    @initialize(
        capacity=st.integers(0, 25),
        mode=st.sampled_from(WaitlistMode),
        window_s=st.integers(offers.OFFER_WINDOW_MIN_S, 4 * HOUR),
        batch_max=st.integers(1, 4),
    )
    def start(self, capacity: int, mode: WaitlistMode, window_s: int, batch_max: int) -> None:
        self.state = EventState(capacity, reserved_seats=0, is_waitlist_open=True, waitlist_mode=mode)
        self.window_s = window_s
        self.batch_max = batch_max
        self.now = NOW
        self.model = Model()
        self.arrivals = 0
        self.entries = 0

    # -- what guests and hosts do

    @rule(sizes=st.lists(st.integers(1, SEATS_PER_REQUEST_MAX), min_size=1, max_size=6))
    def book(self, sizes: list[int]) -> None:
        self.serve()  # as settle_event: the waitlist first, then the new requests on what it left
        requests = [SeatRequest(f"r{self.arrivals + i}", seats) for i, seats in enumerate(sizes)]
        allocation = allocate(self.state, [], requests)
        assert allocation.promotions == () and allocation.offers == ()  # the waitlist was served already
        for decision in allocation.decisions:
            self.arrivals += 1
            if not self.state.is_sales_open:
                assert (decision.outcome, decision.reason) == (Outcome.REJECTED, REASON_EVENT_STARTED)
            if decision.seats_confirmed:
                self.confirm(decision.seats_confirmed)
            if decision.seats_waitlisted:
                self.entries += 1
                self.model.waitlist.append(Entry(self.entries, self.arrivals, decision.seats_waitlisted))
        self.state = dataclasses.replace(self.state, reserved_seats=allocation.reserved_seats)

    @precondition(lambda self: bool(self.model.holdings))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        seats = self.model.holdings.pop(data.draw(st.integers(0, len(self.model.holdings) - 1)))
        self.state = release_seats(self.state, seats)
        self.serve()

    @rule(capacity=st.integers(0, 30))
    def resize(self, capacity: int) -> None:
        resized = resize_capacity(self.state, capacity)
        assert (resized is None) == (capacity < self.state.reserved_seats + self.state.seats_offered)
        if resized is not None:
            self.state = resized
            self.serve()

    @rule(mode=st.sampled_from(WaitlistMode))
    def switch_mode(self, mode: WaitlistMode) -> None:
        """Open offers run their course whatever the mode becomes."""
        self.state = dataclasses.replace(self.state, waitlist_mode=mode)
        self.serve()

    @precondition(lambda self: any(entry.offered for entry in self.model.waitlist))
    @rule(data=st.data())
    def accept(self, data: st.DataObject) -> None:
        entry = data.draw(st.sampled_from([entry for entry in self.model.waitlist if entry.offered]))
        seats = data.draw(st.integers(0, entry.offered + 1))
        answer = offers.accept(self.state, self.open_offer(entry), seats, self.now)
        if not self.state.is_sales_open:
            assert answer is Refusal.SALES_ENDED
        elif self.now >= entry.expires_at:
            assert answer is Refusal.OFFER_EXPIRED
        elif not 1 <= seats <= entry.offered:
            assert answer is Refusal.SEATS_OUT_OF_RANGE
        else:
            assert isinstance(answer, offers.Resolution)
            assert answer.seats_confirmed == seats
            assert answer.seats_confirmed + answer.seats_released == entry.offered
            self.confirm(seats)
            self.resolve(entry, answer)

    @precondition(lambda self: any(entry.offered for entry in self.model.waitlist))
    @rule(data=st.data())
    def decline(self, data: st.DataObject) -> None:
        entry = data.draw(st.sampled_from([entry for entry in self.model.waitlist if entry.offered]))
        answer = offers.decline(self.state, self.open_offer(entry), self.now)
        if not self.state.is_sales_open or self.now >= entry.expires_at:
            assert answer is Refusal.OFFER_EXPIRED
            return
        assert isinstance(answer, offers.Resolution)
        assert (answer.seats_released, answer.seats_still_waiting) == (entry.offered, 0)
        self.resolve(entry, answer)

    @rule(seconds=st.integers(0, 6 * HOUR))
    def time_passes(self, seconds: int) -> None:
        """The beat's expiry task: every offer past its deadline, in line order."""
        self.now += timedelta(seconds=seconds)
        self.expire_offers()

    @rule()
    def end_sales(self) -> None:
        self.state = dataclasses.replace(self.state, is_sales_open=False)
        self.expire_offers()  # every open offer, then whoever still waits
        slots = [WaitlistSlot(entry.entry_id, entry.waiting) for entry in self.model.waitlist]
        assert expire_waitlist(self.state, slots) == tuple(slots)
        self.model.waitlist = []

    # -- applying results, as the services would write them

    def open_offer(self, entry: Entry) -> OpenOffer:
        assert entry.expires_at is not None
        return OpenOffer(entry.entry_id, entry.offered, entry.waiting, entry.expires_at)

    def confirm(self, seats: int) -> None:
        self.model.holdings.append(seats)
        if not self.state.is_sales_open:
            self.model.confirmed_after_sales_end += seats

    def resolve(self, entry: Entry, resolution: offers.Resolution) -> None:
        self.state = resolution.state
        entry.offered, entry.expires_at = 0, None
        entry.waiting = resolution.seats_still_waiting
        if entry.waiting == 0:
            self.model.waitlist.remove(entry)
        self.serve()  # released seats pass on at once

    def expire_offers(self) -> None:
        holding = [entry for entry in self.model.waitlist if entry.offered]
        for resolution in offers.expire(self.state, [self.open_offer(entry) for entry in holding], self.now):
            entry = next(entry for entry in holding if entry.entry_id == resolution.entry_id)
            assert resolution.answer is Answer.EXPIRED
            assert self.now >= entry.expires_at or not self.state.is_sales_open
            self.state = resolution.state
            self.model.waitlist.remove(entry)
        if self.state.is_sales_open:
            assert all(self.now < entry.expires_at for entry in self.model.waitlist if entry.offered)
        else:
            assert not any(entry.offered for entry in self.model.waitlist)
        self.serve()

    def serve(self) -> None:
        """As services/_allocation.py: rounds of the entries that still want seats, head first."""
        entries_to_read = waitlist_read_size(self.state, self.batch_max)
        for _ in range(PROMOTION_ROUNDS_MAX * 10):
            if entries_to_read == 0:
                return
            wanting = [entry for entry in self.model.waitlist if entry.wants > 0][:entries_to_read]
            round_ = promote_round(self.state, [WaitlistSlot(e.entry_id, e.wants) for e in wanting], self.batch_max)
            served = [*round_.promotions, *round_.offers]
            assert not (round_.offers and self.state.waitlist_mode is WaitlistMode.AUTO)
            assert not (round_.promotions and self.state.waitlist_mode is WaitlistMode.OFFER)
            for promotion in round_.promotions:
                entry = self.entry(promotion.entry_id)
                self.confirm(promotion.seats_promoted)
                entry.waiting -= promotion.seats_promoted
                if entry.waiting == 0:
                    self.model.waitlist.remove(entry)
            for offer in round_.offers:
                entry = self.entry(offer.entry_id)
                if not entry.offered:  # a new offer; a top-up keeps its deadline
                    entry.expires_at = offers.expires_at(self.now, self.window_s)
                entry.offered += offer.seats_offered
                assert offer.seats_still_wanted == entry.wants
            self.check_in_line([promotion.entry_id for promotion in served])
            self.state = round_.state
            entries_to_read = round_.entries_to_read
        raise AssertionError("serving did not end")

    def entry(self, entry_id: int) -> Entry:
        return next(entry for entry in self.model.waitlist if entry.entry_id == entry_id)

    def check_in_line(self, served_ids: list[int]) -> None:
        """Whoever got seats in this round: everyone ahead of them wants nothing more."""
        for entry_id in served_ids:
            ahead = [entry for entry in self.model.waitlist if entry.entry_id < entry_id]
            assert all(entry.wants == 0 for entry in ahead if entry.entry_id not in served_ids)

    # -- invariants after every step

    @invariant()
    def a_seat_is_sold_or_offered_never_both_and_never_oversold(self) -> None:
        assert self.state.reserved_seats == sum(self.model.holdings)
        assert self.state.seats_offered == sum(entry.offered for entry in self.model.waitlist)
        assert self.state.reserved_seats + self.state.seats_offered <= self.state.capacity_seats

    @invariant()
    def one_open_offer_at_most_per_entry_within_what_it_waits_for(self) -> None:
        for entry in self.model.waitlist:
            assert 0 <= entry.offered <= entry.waiting
            assert 1 <= entry.waiting <= SEATS_PER_REQUEST_MAX
            assert (entry.expires_at is None) == (entry.offered == 0)

    @invariant()
    def free_seats_only_when_nobody_in_line_wants_them(self) -> None:
        if self.state.is_sales_open and self.state.seats_free > 0:
            assert all(entry.wants == 0 for entry in self.model.waitlist)

    @invariant()
    def the_line_is_in_arrival_order_and_nothing_sold_after_the_sales_end(self) -> None:
        arrivals = [entry.arrival for entry in self.model.waitlist]
        assert arrivals == sorted(arrivals)
        assert self.model.confirmed_after_sales_end == 0
        if not self.state.is_sales_open:
            assert self.model.waitlist == []


OfferMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestOfferMachine = OfferMachine.TestCase
