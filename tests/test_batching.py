"""Adaptive batching (atomicseats/batching.py) against a simulated consumer on a fake clock.

`Simulated` answers `consume(num_messages, timeout)` as confluent-kafka's consumer does: at once
when `num_messages` are buffered, else when the last of them arrives, or at the timeout with
what it has. Time is the simulation's own: nothing here sleeps or reads a clock.
"""

from __future__ import annotations

import bisect
import math

from hypothesis import given
from hypothesis import strategies as st

from atomicseats.batching import events_by_partition, grown_batch_size, next_batch, transaction_round

BATCH_MAX = 500
WAIT_S = 0.2


class Simulated:
    """Messages 0, 1, 2, ... arriving at the given times; `now` moves only while a call waits."""

    def __init__(self, arrivals: list[float], now: float = 0.0) -> None:
        self.arrivals = sorted(arrivals)
        self.taken = 0
        self.now = now
        self.calls: list[tuple[int, float]] = []

    def consume(self, num_messages: int, timeout: float) -> list[int]:
        self.calls.append((num_messages, timeout))
        last_needed = self.taken + num_messages - 1
        ready_at = self.arrivals[last_needed] if last_needed < len(self.arrivals) else math.inf
        self.now = max(self.now, min(self.now + timeout, ready_at))
        arrived = bisect.bisect_right(self.arrivals, self.now)
        batch = list(range(self.taken, min(arrived, self.taken + num_messages)))
        self.taken += len(batch)
        return batch


times = st.floats(0, 1, allow_nan=False)


@given(st.floats(0, WAIT_S, allow_nan=False), st.floats(0, 0.5, allow_nan=False))
def test_a_lone_request_is_taken_the_moment_it_arrives(arrives_after_s, now):
    source = Simulated([now + arrives_after_s], now)
    assert next_batch(source, BATCH_MAX, WAIT_S) == [0]
    assert source.now == now + arrives_after_s
    # The negative control: asking for a full batch within the wait holds it to the timeout.
    waiting = Simulated([now + arrives_after_s], now)
    assert waiting.consume(BATCH_MAX, WAIT_S) == [0]
    assert waiting.now == now + WAIT_S


@given(st.lists(times, max_size=40), times, st.integers(1, 8))
def test_a_batch_is_everything_waiting_when_the_first_is_there_up_to_the_cap(arrivals, now, batch_max):
    source = Simulated(arrivals, now)
    batch = next_batch(source, batch_max, WAIT_S)
    in_time = sorted(t for t in arrivals if t <= now + WAIT_S)
    if not in_time:
        assert batch == []
        assert source.now == now + WAIT_S
        return
    taken_at = max(now, in_time[0])  # never later than the first message
    assert source.now == taken_at
    waiting = sum(1 for t in arrivals if t <= taken_at)
    assert batch == list(range(min(waiting, batch_max)))
    assert all(timeout == 0 for _, timeout in source.calls[1:])  # only the first call waits


@given(
    st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=200),
    st.floats(0, 0.05, allow_nan=False),
    st.floats(0, 0.01, allow_nan=False),
    st.integers(1, 50),
)
def test_a_serving_loop_takes_each_request_once_in_order_and_at_once_when_idle(arrivals, cost_s, cost_each_s, cap):
    """A loop that spends cost_s + cost_each_s per request on each batch: every request is
    taken once, in arrival order; one that arrives while the loop waits is taken as it arrives;
    one that arrives while it works waits only for the batches ahead of it."""
    source = Simulated(arrivals)
    arrivals = sorted(arrivals)
    taken: list[int] = []
    while len(taken) < len(arrivals):
        idle_from = source.now
        batch = next_batch(source, cap, WAIT_S)
        if not batch:
            continue
        first = batch[0]
        if arrivals[first] > idle_from:  # arrived while the loop waited: taken on arrival
            assert source.now == arrivals[first]
        assert len(batch) == min(cap, sum(1 for t in arrivals[first:] if t <= source.now))
        taken.extend(batch)
        source.now += cost_s + cost_each_s * len(batch)
    assert taken == list(range(len(arrivals)))


def test_batches_grow_while_requests_wait_and_shrink_when_they_stop():
    """A burst of 1,000 at once, then requests 1 s apart: full batches, then one at a time."""
    arrivals = [0.0] * 1000 + [10.0 + i for i in range(5)]
    source, sizes = Simulated(arrivals), []
    while source.taken < len(arrivals):
        batch = next_batch(source, BATCH_MAX, WAIT_S)
        if batch:
            sizes.append(len(batch))
            source.now += 0.01
    assert sizes == [500, 500, 1, 1, 1, 1, 1]


# --- the allocation worker's batches: grow while a backlog waits -----------------------------

START, CAP = 500, 4000


def batches_for(backlog: int, start: int = START, cap: int = CAP) -> list[int]:
    """The batches a task loop decides for a backlog of `backlog` pending requests."""
    batches, size = [], start
    while True:
        decided = min(size, backlog)
        batches.append(decided)
        backlog -= decided
        if decided < size:
            return batches
        size = grown_batch_size(size, decided, start, cap)


@given(st.integers(1, 100), st.integers(0, 20), st.integers(0, 100))
def test_the_next_batch_stays_between_start_and_cap(start, doublings, short):
    cap = start * 2**doublings
    size = min(cap, start * 2 ** (doublings // 2))
    decided = max(0, size - short)
    grown = grown_batch_size(size, decided, start, cap)
    assert start <= grown <= cap
    if decided == size:
        assert grown == min(2 * size, cap)  # a full batch: work waits, the next takes more
    else:
        assert grown == start  # caught up: the next batch is small again


@given(st.integers(0, 200_000))
def test_a_backlog_is_decided_whole_in_batches_that_double_up_to_the_cap(backlog):
    batches = batches_for(backlog)
    assert sum(batches) == backlog  # nothing left behind, nothing decided twice
    full = batches[:-1]
    assert all(size == min(START * 2**index, CAP) for index, size in enumerate(full))
    assert batches[-1] < min(START * 2 ** len(full), CAP)  # the loop stops at the first short batch
    assert len(batches) <= 4 + backlog // CAP + 1  # 500, 1000, 2000, then 4000 at a time


def test_an_idle_pipeline_decides_a_lone_request_in_a_batch_of_one():
    assert batches_for(1) == [1]
    assert batches_for(0) == [0]


@given(st.lists(st.tuples(st.integers(1, 30), st.integers(0, 5)), max_size=60))
def test_each_partitions_events_make_one_wake_up_each_event_once_in_first_seen_order(pairs):
    grouped = events_by_partition(pairs)
    woken = [event_id for event_ids in grouped.values() for event_id in event_ids]
    assert sorted(woken) == sorted({event_id for event_id, _ in pairs})  # every event, once
    first_partition = {}
    for event_id, partition in pairs:
        first_partition.setdefault(event_id, partition)
    for partition, event_ids in grouped.items():
        assert event_ids  # no empty wake-up
        assert all(first_partition[event_id] == partition for event_id in event_ids)
        seen_order = [event_id for event_id in first_partition if first_partition[event_id] == partition]
        assert event_ids == seen_order


def test_a_batch_over_two_partitions_wakes_two_tasks():
    assert events_by_partition([(7, 2), (3, 0), (7, 2), (9, 2), (3, 4)]) == {2: [7, 9], 0: [3]}


@given(
    st.dictionaries(st.integers(1, 500), st.integers(1, 4000), max_size=80),
    st.integers(1, 40),
    st.integers(1, 8000),
)
def test_a_transaction_takes_the_next_events_in_order_within_both_bounds(batch_max_by_event, events_max, requests_max):
    chosen = transaction_round(batch_max_by_event, events_max, requests_max)
    assert list(chosen) == list(batch_max_by_event)[: len(chosen)]  # the next ones, in order
    assert all(chosen[event_id] == batch_max_by_event[event_id] for event_id in chosen)
    if not batch_max_by_event:
        assert chosen == {}
        return
    assert 1 <= len(chosen) <= events_max  # never none: one busy event alone may exceed the request bound
    assert len(chosen) == 1 or sum(chosen.values()) <= requests_max
    if len(chosen) < min(events_max, len(batch_max_by_event)):  # it stopped early: the next would not fit
        assert sum(chosen.values()) + batch_max_by_event[list(batch_max_by_event)[len(chosen)]] > requests_max


def test_a_round_holds_as_many_events_as_one_hot_events_biggest_batch_allows():
    assert transaction_round({1: 500, 2: 500, 3: 500}, 32, 1000) == {1: 500, 2: 500}
    assert transaction_round({7: 4000, 8: 500}, 32, 4000) == {7: 4000}
    assert transaction_round({7: 4000}, 32, 1000) == {7: 4000}  # alone, whatever its size
    assert transaction_round(dict.fromkeys(range(40), 1), 32, 4000) == dict.fromkeys(range(32), 1)
