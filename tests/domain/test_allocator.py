"""Examples for every allocation rule (DESIGN.md, "Allocation semantics")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from atomicseats.domain.allocator import (
    REASON_EVENT_STARTED,
    Allocation,
    Decision,
    EventState,
    Outcome,
    Promotion,
    PromotionRound,
    SeatRequest,
    WaitlistSlot,
    allocate,
    expire_waitlist,
    expiry_read_size,
    is_sales_open,
    promote_round,
    promote_waitlist,
    release_seats,
    resize_capacity,
    sales_end_of,
    waitlist_read_size,
)
from atomicseats.domain.limits import (
    ALLOCATION_BACKLOG_BATCH_MAX,
    CLOSE_OUT_BATCH_MAX,
    SEATS_PER_REQUEST_MAX,
    WAITLIST_PROMOTION_BATCH_MAX,
)
from tests.domain.support import seats_confirmed_total


def state(capacity: int, reserved: int = 0, is_open: bool = True) -> EventState:
    return EventState(capacity_seats=capacity, reserved_seats=reserved, is_waitlist_open=is_open)


def requests(*seats: int) -> list[SeatRequest]:
    return [SeatRequest(request_id=f"r{index}", seats=count) for index, count in enumerate(seats)]


def only_decision(allocation: Allocation) -> Decision:
    assert len(allocation.decisions) == 1
    return allocation.decisions[0]


# New requests.


def test_enough_free_seats_confirms_in_full() -> None:
    allocation = allocate(state(10, reserved=4), [], requests(6))
    assert only_decision(allocation) == Decision("r0", 6, 6, 0, Outcome.CONFIRMED, None)
    assert allocation.reserved_seats == 10
    assert allocation.seats_free == 0
    assert seats_confirmed_total(allocation) == 6
    assert allocation.promotions == ()


def test_partial_with_open_waitlist_waitlists_the_remainder() -> None:
    allocation = allocate(state(10, reserved=7), [], requests(5))
    decision = only_decision(allocation)
    assert decision == Decision("r0", 5, 3, 2, Outcome.PARTIAL, None)
    assert decision.seats_requested - decision.seats_confirmed - decision.seats_waitlisted == 0
    assert allocation.reserved_seats == 10


def test_partial_with_closed_waitlist_rejects_the_remainder() -> None:
    allocation = allocate(state(10, reserved=7, is_open=False), [], requests(5))
    decision = only_decision(allocation)
    assert decision == Decision("r0", 5, 3, 0, Outcome.PARTIAL, "waitlist_closed")
    assert decision.seats_requested - decision.seats_confirmed - decision.seats_waitlisted == 2
    assert allocation.reserved_seats == 10


def test_sold_out_with_open_waitlist_waitlists_all_seats() -> None:
    allocation = allocate(state(10, reserved=10), [], requests(4))
    assert only_decision(allocation) == Decision("r0", 4, 0, 4, Outcome.WAITLISTED, None)
    assert allocation.reserved_seats == 10


def test_sold_out_with_closed_waitlist_rejects() -> None:
    allocation = allocate(state(10, reserved=10, is_open=False), [], requests(4))
    decision = only_decision(allocation)
    assert decision == Decision("r0", 4, 0, 0, Outcome.REJECTED, "waitlist_closed")
    assert decision.seats_requested - decision.seats_confirmed - decision.seats_waitlisted == 4


def test_zero_capacity_event_waitlists_everyone() -> None:
    allocation = allocate(state(0), [], requests(1, 2))
    assert [d.outcome for d in allocation.decisions] == [Outcome.WAITLISTED] * 2


def test_batch_is_decided_in_arrival_order() -> None:
    allocation = allocate(state(10), [], requests(4, 4, 4, 1, 2))
    summary = [(d.request_id, d.outcome, d.seats_confirmed, d.seats_waitlisted) for d in allocation.decisions]
    assert summary == [
        ("r0", Outcome.CONFIRMED, 4, 0),
        ("r1", Outcome.CONFIRMED, 4, 0),
        ("r2", Outcome.PARTIAL, 2, 2),
        # r3 needs 1 seat only, but r2 waits ahead of it: no seat is free.
        ("r3", Outcome.WAITLISTED, 0, 1),
        ("r4", Outcome.WAITLISTED, 0, 2),
    ]
    assert allocation.reserved_seats == 10


def test_reordering_the_batch_changes_who_gets_seats() -> None:
    first = allocate(state(3), [], [SeatRequest("a", 3), SeatRequest("b", 3)])
    second = allocate(state(3), [], [SeatRequest("b", 3), SeatRequest("a", 3)])
    assert first.decisions[0].request_id == "a"
    assert first.decisions[0].outcome is Outcome.CONFIRMED
    assert second.decisions[0].request_id == "b"
    assert second.decisions[0].outcome is Outcome.CONFIRMED


def test_empty_batch_with_empty_waitlist_changes_nothing() -> None:
    allocation = allocate(state(10, reserved=3), [], [])
    assert allocation == Allocation((), (), reserved_seats=3, capacity_seats=10)


# Waitlist promotion.


def test_waitlist_is_served_before_new_requests() -> None:
    waitlist = [WaitlistSlot(entry_id=1, seats_remaining=2)]
    allocation = allocate(state(10, reserved=7), waitlist, requests(2))
    assert allocation.promotions == (Promotion(entry_id=1, seats_promoted=2, seats_remaining=0),)
    assert only_decision(allocation) == Decision("r0", 2, 1, 1, Outcome.PARTIAL, None)
    assert seats_confirmed_total(allocation) == 3
    assert allocation.reserved_seats == 10


def test_head_served_partially_keeps_its_place() -> None:
    waitlist = [WaitlistSlot(1, 5), WaitlistSlot(2, 1)]
    allocation = allocate(state(10, reserved=7), waitlist, requests(1))
    # The head gets all 3 free seats and still waits for 2; entry 2 and r0 get nothing.
    assert allocation.promotions == (Promotion(1, 3, 2),)
    assert only_decision(allocation).outcome is Outcome.WAITLISTED


def test_nobody_behind_the_head_is_served_first_even_if_it_would_fit() -> None:
    waitlist = [WaitlistSlot(1, 4), WaitlistSlot(2, 1), WaitlistSlot(3, 1)]
    promotions, after = promote_waitlist(state(10, reserved=7), waitlist)
    assert promotions == (Promotion(1, 3, 1),)
    assert after == state(10, reserved=10)


def test_freed_seats_serve_several_entries_in_order() -> None:
    waitlist = [WaitlistSlot(7, 2), WaitlistSlot(3, 3), WaitlistSlot(9, 4)]
    promotions, after = promote_waitlist(state(10, reserved=4), waitlist)
    assert promotions == (Promotion(7, 2, 0), Promotion(3, 3, 0), Promotion(9, 1, 3))
    assert after.reserved_seats == 10


def test_promotion_runs_while_the_waitlist_is_closed() -> None:
    waitlist = [WaitlistSlot(1, 2)]
    allocation = allocate(state(10, reserved=6, is_open=False), waitlist, requests(3))
    assert allocation.promotions == (Promotion(1, 2, 0),)
    assert only_decision(allocation) == Decision("r0", 3, 2, 0, Outcome.PARTIAL, "waitlist_closed")


def test_promotion_with_no_free_seats_promotes_nobody() -> None:
    promotions, after = promote_waitlist(state(5, reserved=5), [WaitlistSlot(1, 1)])
    assert promotions == ()
    assert after == state(5, reserved=5)


def test_promotion_with_empty_waitlist_changes_nothing() -> None:
    promotions, after = promote_waitlist(state(5, reserved=1), [])
    assert promotions == ()
    assert after == state(5, reserved=1)


def test_promotion_keeps_the_waitlist_flag() -> None:
    _, after = promote_waitlist(state(5, reserved=1, is_open=False), [WaitlistSlot(1, 1)])
    assert after == state(5, reserved=2, is_open=False)


# Promotion in rounds: how a caller that reads the waitlist from a database serves it.


def test_promotion_reads_one_entry_per_free_seat_at_most_one_batch() -> None:
    assert waitlist_read_size(state(10, reserved=7)) == 3
    assert waitlist_read_size(state(10, reserved=7), batch_max=2) == 2
    assert waitlist_read_size(state(10, reserved=10)) == 0
    assert waitlist_read_size(state(5000)) == WAITLIST_PROMOTION_BATCH_MAX


def test_a_round_that_read_the_whole_waitlist_ends_promotion() -> None:
    round_ = promote_round(state(10, reserved=4), [WaitlistSlot(1, 2), WaitlistSlot(2, 1)])
    assert round_ == PromotionRound((Promotion(1, 2, 0), Promotion(2, 1, 0)), state(10, reserved=7), 0)
    assert all(promotion.is_served for promotion in round_.promotions)


def test_a_full_batch_served_in_full_with_seats_left_asks_for_another_round() -> None:
    waitlist = [WaitlistSlot(1, 1), WaitlistSlot(2, 2), WaitlistSlot(3, 4), WaitlistSlot(4, 1)]
    first = promote_round(state(10, reserved=4), waitlist[:2], batch_max=2)
    assert first.promotions == (Promotion(1, 1, 0), Promotion(2, 2, 0))
    assert first.entries_to_read == 2  # 3 seats still free, a batch is 2
    second = promote_round(first.state, waitlist[2:], batch_max=2)
    # The head of this round takes the last 3 seats and keeps its place waiting for 1.
    assert second.promotions == (Promotion(3, 3, 1),)
    assert not second.promotions[0].is_served
    assert second == PromotionRound(second.promotions, state(10, reserved=10), 0)


def test_a_round_with_no_seat_free_reads_nothing_and_ends_promotion() -> None:
    assert promote_round(state(5, reserved=5), []) == PromotionRound((), state(5, reserved=5), 0)


def test_a_round_given_more_entries_than_it_asked_for_is_our_bug() -> None:
    with pytest.raises(AssertionError):
        promote_round(state(10, reserved=8), [WaitlistSlot(1, 1), WaitlistSlot(2, 1), WaitlistSlot(3, 1)])


def test_after_the_sales_end_promotion_reads_nothing_and_the_close_out_reads_a_batch() -> None:
    assert waitlist_read_size(closed(10, reserved=2)) == 0
    assert promote_round(closed(10, reserved=2), []) == PromotionRound((), closed(10, reserved=2), 0)
    assert expiry_read_size(closed(10, reserved=2)) == CLOSE_OUT_BATCH_MAX
    assert expiry_read_size(state(10, reserved=2)) == 0


# Cancellation and capacity.


def test_release_frees_seats() -> None:
    assert release_seats(state(10, reserved=6), 4) == state(10, reserved=2)
    assert release_seats(state(10, reserved=6), 6) == state(10, reserved=0)


def test_release_then_promote_hands_seats_to_the_head() -> None:
    freed = release_seats(state(4, reserved=4), 3)
    promotions, after = promote_waitlist(freed, [WaitlistSlot(1, 2), WaitlistSlot(2, 2)])
    assert promotions == (Promotion(1, 2, 0), Promotion(2, 1, 1))
    assert after.reserved_seats == 4


@pytest.mark.parametrize("seats", [0, -1, 7])
def test_release_of_seats_not_held_is_our_bug(seats: int) -> None:
    with pytest.raises(AssertionError):
        release_seats(state(10, reserved=6), seats)


def test_resize_below_reserved_is_refused() -> None:
    assert resize_capacity(state(10, reserved=6), 5) is None


def test_resize_to_reserved_or_above_is_allowed() -> None:
    assert resize_capacity(state(10, reserved=6), 6) == state(6, reserved=6)
    assert resize_capacity(state(10, reserved=6, is_open=False), 20) == state(20, 6, is_open=False)


def test_raising_capacity_then_promoting_serves_the_waitlist() -> None:
    raised = resize_capacity(state(4, reserved=4), 6)
    assert raised is not None
    promotions, after = promote_waitlist(raised, [WaitlistSlot(1, 3)])
    assert promotions == (Promotion(1, 2, 1),)
    assert after == state(6, reserved=6)


# Bad input is the caller's job: the domain asserts.


@pytest.mark.parametrize("seats", [0, -3, SEATS_PER_REQUEST_MAX + 1])
def test_seats_out_of_range_is_our_bug(seats: int) -> None:
    with pytest.raises(AssertionError):
        allocate(state(100), [], requests(seats))


def test_oversized_batch_is_our_bug() -> None:
    with pytest.raises(AssertionError):
        allocate(state(100), [], requests(*[1] * (ALLOCATION_BACKLOG_BATCH_MAX + 1)))


def test_oversized_waitlist_is_our_bug() -> None:
    waitlist = [WaitlistSlot(index, 1) for index in range(WAITLIST_PROMOTION_BATCH_MAX + 1)]
    with pytest.raises(AssertionError):
        promote_waitlist(state(100), waitlist)


def test_duplicate_request_ids_are_our_bug() -> None:
    with pytest.raises(AssertionError):
        allocate(state(100), [], [SeatRequest("same", 1), SeatRequest("same", 2)])


def test_oversold_state_is_our_bug() -> None:
    with pytest.raises(AssertionError):
        allocate(state(5, reserved=6), [], requests(1))


def test_largest_batch_is_allowed() -> None:
    allocation = allocate(state(100), [], requests(*[1] * ALLOCATION_BACKLOG_BATCH_MAX))
    assert allocation.reserved_seats == 100
    assert sum(d.outcome is Outcome.CONFIRMED for d in allocation.decisions) == 100


# Time: sales close at the event's sales end (or start); the caller says whether they are open.


def closed(capacity: int, reserved: int = 0, is_open: bool = True) -> EventState:
    return EventState(capacity, reserved, is_waitlist_open=is_open, is_sales_open=False)


def test_after_the_sales_end_a_request_is_rejected_even_with_seats_free() -> None:
    allocation = allocate(closed(10), [], requests(2))
    assert only_decision(allocation) == Decision("r0", 2, 0, 0, Outcome.REJECTED, REASON_EVENT_STARTED)
    assert allocation.reserved_seats == 0


def test_after_the_sales_end_freed_seats_promote_nobody() -> None:
    waitlist = [WaitlistSlot(entry_id=1, seats_remaining=2)]
    promotions, after = promote_waitlist(release_seats(closed(4, reserved=4), 3), waitlist)
    assert promotions == ()
    assert after.reserved_seats == 1
    assert allocate(closed(4, reserved=1), waitlist, requests(1)).promotions == ()


def test_the_sales_end_expires_the_whole_waitlist_and_nothing_before_it() -> None:
    waitlist = [WaitlistSlot(entry_id=1, seats_remaining=2), WaitlistSlot(entry_id=2, seats_remaining=1)]
    assert expire_waitlist(closed(4, reserved=4), waitlist) == tuple(waitlist)
    assert expire_waitlist(state(4, reserved=4), waitlist) == ()


def test_sales_end_defaults_to_the_start_and_closes_at_that_instant() -> None:
    starts_at = datetime(2031, 5, 1, 18, 0, tzinfo=UTC)
    assert sales_end_of(starts_at, None) == starts_at
    assert sales_end_of(starts_at, starts_at - timedelta(hours=1)) == starts_at - timedelta(hours=1)
    assert is_sales_open(starts_at, starts_at - timedelta(microseconds=1))
    assert not is_sales_open(starts_at, starts_at)


def test_a_sales_end_after_the_start_is_our_bug() -> None:
    starts_at = datetime(2031, 5, 1, 18, 0, tzinfo=UTC)
    with pytest.raises(AssertionError):
        sales_end_of(starts_at, starts_at + timedelta(seconds=1))
