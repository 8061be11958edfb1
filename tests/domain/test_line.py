"""Hypothesis: the place-in-line rule (domain/line.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from atomicseats.domain import line

ranks = st.integers(0, 1_000_000)
windows = st.lists(st.integers(0, 100_000), min_size=0, max_size=line.RATE_WINDOW_S)
waits_s = st.floats(0, 10 * line.ESTIMATED_WAIT_S_MAX, allow_nan=False)


@given(ranks, windows)
def test_a_pending_place_counts_everyone_ahead_and_never_estimates_a_negative_wait(rank, window):
    place = line.pending_place(rank, window)
    assert place.people_ahead == rank
    assert place.position == rank + 1
    if place.estimated_wait_s is not None:
        assert place.estimated_wait_s >= 1  # deciding takes some time, however fast
        assert place.estimated_wait_s <= line.ESTIMATED_WAIT_S_MAX + line.WAIT_ROUNDING_STEP_S_LONG


@given(ranks, st.lists(st.just(0), max_size=line.RATE_WINDOW_S))
def test_no_decisions_lately_means_no_estimate(rank, window):
    assert line.pending_place(rank, window).estimated_wait_s is None


@given(st.integers(0, 10_000), st.integers(0, 10_000), windows)
def test_further_back_never_waits_less(rank, more, window):
    nearer = line.pending_place(rank, window).estimated_wait_s
    further = line.pending_place(rank + more, window).estimated_wait_s
    if nearer is not None and further is not None:
        assert further >= nearer
    if nearer is None:  # no rate, or already past the longest estimate
        assert further is None


@given(st.integers(0, 10_000), st.lists(st.integers(1, 100_000), min_size=1, max_size=line.RATE_WINDOW_S))
def test_a_faster_rate_never_waits_longer(rank, window):
    slower = line.pending_place(rank, window).estimated_wait_s
    faster = line.pending_place(rank, [count * 2 for count in window]).estimated_wait_s
    if slower is not None:
        assert faster is not None
        assert faster <= slower


@given(waits_s)
def test_rounding_goes_up_to_a_step_never_down(seconds):
    rounded = line.rounded_wait_s(seconds)
    assert rounded >= seconds
    if seconds <= 10:
        assert rounded - seconds <= 1
    elif seconds <= 120:
        assert rounded % 5 == 0 and rounded - seconds <= 5
    else:
        assert rounded % 60 == 0 and rounded - seconds <= 60


@given(st.integers(0, 1_000_000), st.integers(0, 1000), st.integers(1, 100_000))
def test_the_estimate_is_the_line_ahead_at_the_rate(rank, _unused, rate):
    window = [rate] * line.RATE_WINDOW_S
    estimate = line.estimated_wait_s(rank, float(rate))
    assert line.pending_place(rank, window).estimated_wait_s == estimate
    exact_s = (rank + 1) / rate
    if estimate is not None:
        assert estimate >= exact_s
    else:
        assert exact_s > line.ESTIMATED_WAIT_S_MAX


def test_examples_a_buyer_would_read():
    assert line.pending_place(0, [100] * 5) == line.PendingPlace(1, 0, 1)
    assert line.pending_place(999, [100] * 5) == line.PendingPlace(1000, 999, 10)
    assert line.pending_place(1499, [100] * 5).estimated_wait_s == 15
    assert line.pending_place(29_999, [100] * 5).estimated_wait_s == 300
    assert line.pending_place(5, []).estimated_wait_s is None
    assert line.pending_place(5, []).is_counted
    assert not line.NOT_COUNTED_YET.is_counted


@given(st.integers(0, 100_000), st.integers(0, 10))
def test_a_waitlist_place_is_one_based_and_its_seats_ahead_are_kept(index, extra):
    seats_ahead = index + extra  # each entry ahead waits for a seat at least
    assert line.waitlist_place(index, seats_ahead) == line.WaitlistPlace(index + 1, seats_ahead)
    assert line.waitlist_place(index, None).seats_ahead is None
