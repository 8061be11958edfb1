"""Adaptive batching: take a request as soon as it arrives, and with it whatever else already waits.

A loop that serves a queue can wait to fill a batch (cheap per request under load, but a lone
request waits for a batch that never fills: ~150 ms from 202 to decision on an idle stack when
the bridge asked for 500 messages within 200 ms) or take one request at a time (prompt when idle,
but a fixed cost per request under load). `next_batch` does both: it blocks only until the first
request is there, then takes, without waiting, what is already buffered behind it (up to the
cap). Idle, a batch is the one request that just arrived; while the loop is busy with a batch,
requests pile up behind it and the next batch carries them all. The batch size follows the
load, and no request ever waits for a batch to fill.

Pure of any client: `source` is anything with confluent-kafka's `consume(num_messages, timeout)`
(which returns as soon as it has `num_messages`, or at the timeout with what it has).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

T = TypeVar("T")


class BatchSource(Protocol[T]):
    def consume(self, num_messages: int, timeout: float) -> list[T]: ...


def next_batch(source: BatchSource[T], batch_max: int, wait_s: float) -> list[T]:
    """Wait up to `wait_s` for one message; then add, without waiting, the ones already buffered
    (at most `batch_max` in all). Empty if nothing came within `wait_s`."""
    assert batch_max >= 1
    assert wait_s >= 0
    first = source.consume(num_messages=1, timeout=wait_s)
    if not first or batch_max == 1:
        return list(first)
    return [*first, *source.consume(num_messages=batch_max - len(first), timeout=0)]


def grown_batch_size(size: int, decided: int, start: int, cap: int) -> int:
    """The allocation worker's next batch: twice this one after a full batch (a backlog waits
    behind it), up to `cap`; back to `start` after one that was not full (nothing waits). Idle,
    a batch is whatever single request is pending; under a backlog, fewer transactions (lock,
    commit, after-commit effects) per decision, and the first decisions come after a batch of
    `start`, not of `cap`."""
    assert 1 <= start <= cap
    assert start <= size <= cap
    assert 0 <= decided <= size
    return min(size * 2, cap) if decided == size else start


def events_by_partition(pairs: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    """(event id, partition) pairs as one allocation wake-up per partition: partition -> its
    events, each event once (with the partition it was first named with), in first-seen order.
    A partition's events are decided by one task, together (tasks.allocate_events)."""
    partition_of: dict[int, int] = {}
    for event_id, partition in pairs:
        partition_of.setdefault(event_id, partition)
    grouped: dict[int, list[int]] = {}
    for event_id, partition in partition_of.items():
        grouped.setdefault(partition, []).append(event_id)
    return grouped


def transaction_round(batch_max_by_event: dict[int, int], events_max: int, requests_max: int) -> dict[int, int]:
    """The events one allocation transaction takes next, in the given order (event id -> its
    batch's size): at most `events_max` of them and, but for the first, no more than
    `requests_max` requests in all, so a round over many busy events holds their locks no longer
    than one hot event's biggest batch does."""
    assert events_max >= 1 and requests_max >= 1
    chosen: dict[int, int] = {}
    requests = 0
    for event_id, size in batch_max_by_event.items():
        if chosen and (len(chosen) == events_max or requests + size > requests_max):
            break
        chosen[event_id] = size
        requests += size
    return chosen
