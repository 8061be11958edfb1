"""Hypothesis: a request's status follows its seats (domain/request_state.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atomicseats.domain.allocator import EventState, Outcome, SeatRequest, allocate
from atomicseats.domain.limits import SEATS_PER_REQUEST_MAX
from atomicseats.domain.request_state import request_status, seats_held
from atomicseats.domain.states import DECIDED_REQUEST_STATUSES, RequestStatus


@dataclass(frozen=True)
class Seats:
    requested: int
    confirmed: int
    waitlisted: int
    cancelled: int
    is_withdrawn: bool

    @property
    def held(self) -> int:
        return self.confirmed - self.cancelled

    def status(self) -> str:
        return request_status(self.requested, self.confirmed, self.waitlisted, self.cancelled, self.is_withdrawn)


@st.composite
def request_seats(draw) -> Seats:
    """Any counters the booking_requests constraints allow."""
    requested = draw(st.integers(1, SEATS_PER_REQUEST_MAX))
    confirmed = draw(st.integers(0, requested))
    waitlisted = draw(st.integers(0, requested - confirmed))
    cancelled = draw(st.integers(0, confirmed))
    return Seats(requested, confirmed, waitlisted, cancelled, draw(st.booleans()))


@given(request_seats())
def test_status_is_a_decided_status_never_pending(seats: Seats) -> None:
    status = seats.status()
    assert status in DECIDED_REQUEST_STATUSES
    assert status != RequestStatus.PENDING


@given(request_seats())
def test_partial_iff_seats_held_and_something_short(seats: Seats) -> None:
    is_short = seats.waitlisted > 0 or seats.held < seats.requested
    assert (seats.status() == RequestStatus.PARTIAL) == (seats.held > 0 and is_short)


@given(request_seats())
def test_waitlisted_iff_nothing_held_and_seats_waiting(seats: Seats) -> None:
    assert (seats.status() == RequestStatus.WAITLISTED) == (seats.held == 0 and seats.waitlisted > 0)


@given(request_seats())
def test_confirmed_iff_every_requested_seat_held(seats: Seats) -> None:
    assert (seats.status() == RequestStatus.CONFIRMED) == (seats.held == seats.requested)


@given(request_seats())
def test_nothing_held_nothing_waiting_is_cancelled_or_rejected(seats: Seats) -> None:
    status = seats.status()
    is_empty = seats.held == 0 and seats.waitlisted == 0
    assert (status in (RequestStatus.CANCELLED, RequestStatus.REJECTED)) == is_empty
    if is_empty:
        is_given_up = seats.cancelled > 0 or seats.is_withdrawn
        assert status == (RequestStatus.CANCELLED if is_given_up else RequestStatus.REJECTED)


@given(request_seats())
def test_withdrawal_only_matters_once_nothing_is_held_or_waiting(seats: Seats) -> None:
    flipped = Seats(seats.requested, seats.confirmed, seats.waitlisted, seats.cancelled, not seats.is_withdrawn)
    if seats.held > 0 or seats.waitlisted > 0:
        assert flipped.status() == seats.status()


@given(request_seats(), st.integers(1, SEATS_PER_REQUEST_MAX))
def test_promotion_never_moves_a_request_back_to_waitlisted(seats: Seats, promoted: int) -> None:
    """Seats moving from waiting to confirmed: the status becomes partial or confirmed."""
    promoted = min(promoted, seats.waitlisted)
    if promoted == 0:
        return
    after = Seats(seats.requested, seats.confirmed + promoted, seats.waitlisted - promoted, seats.cancelled, False)
    assert after.status() in (RequestStatus.PARTIAL, RequestStatus.CONFIRMED)


@given(request_seats())
def test_giving_everything_back_is_cancelled(seats: Seats) -> None:
    """Cancel every held seat and withdraw the waiting remainder: the request is cancelled
    when it ever held a seat or had one waiting."""
    after = Seats(seats.requested, seats.confirmed, 0, seats.confirmed, True)
    assert after.status() == RequestStatus.CANCELLED
    assert seats_held(after.confirmed, after.cancelled) == 0


@given(
    st.integers(0, 40),
    st.integers(0, 40),
    st.booleans(),
    st.lists(st.integers(1, SEATS_PER_REQUEST_MAX), min_size=1, max_size=20),
)
def test_the_allocators_first_decision_agrees_with_the_rule(
    capacity: int, reserved: int, is_waitlist_open: bool, seat_counts: list[int]
) -> None:
    reserved = min(reserved, capacity)
    requests = [SeatRequest(f"r{i}", seats) for i, seats in enumerate(seat_counts)]
    allocation = allocate(EventState(capacity, reserved, is_waitlist_open), [], requests)
    for decision in allocation.decisions:
        status = request_status(decision.seats_requested, decision.seats_confirmed, decision.seats_waitlisted, 0, False)
        assert status == decision.outcome.value
        assert Outcome(status) is decision.outcome


@pytest.mark.parametrize(
    ("counters", "expected"),
    [
        ((4, 4, 0, 0, False), RequestStatus.CONFIRMED),
        ((4, 2, 2, 0, False), RequestStatus.PARTIAL),
        ((4, 0, 4, 0, False), RequestStatus.WAITLISTED),
        ((4, 0, 0, 0, False), RequestStatus.REJECTED),
        ((4, 2, 0, 0, True), RequestStatus.PARTIAL),  # left the waitlist, keeps 2 seats
        ((4, 0, 0, 0, True), RequestStatus.CANCELLED),  # left the waitlist holding nothing
        ((4, 4, 0, 4, False), RequestStatus.CANCELLED),  # gave every seat back
        ((4, 4, 0, 1, False), RequestStatus.PARTIAL),  # gave one seat back
        ((4, 2, 2, 2, False), RequestStatus.WAITLISTED),  # gave back the held part, still waiting
    ],
)
def test_examples(counters: tuple[int, int, int, int, bool], expected: str) -> None:
    assert request_status(*counters) == expected
