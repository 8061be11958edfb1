"""The pending line in the real Redis of `make test` (adapters/redis_line.py)."""

from __future__ import annotations

import threading
import uuid

import pytest
import redis

from atomicseats.adapters.redis_cache import connect
from atomicseats.adapters.redis_line import RedisLine, decided_mark_key, line_key, rate_key
from atomicseats.adapters.redis_state import RedisOutcomeChannel
from atomicseats.domain.line import RATE_WINDOW_S
from atomicseats.services.ports import LineDeparture

CLOSED_PORT_URL = "redis://127.0.0.1:1/0"
EVENT_ID = 7


@pytest.fixture
def redis_client(redis_url) -> redis.Redis:
    connection = connect(redis_url)
    connection.flushdb()
    yield connection
    connection.close()


def recorded(first_row_id: int, count: int, event_id: int = EVENT_ID) -> list[tuple[int, int, str]]:
    return [(event_id, row_id, str(uuid.uuid4())) for row_id in range(first_row_id, first_row_id + count)]


def leave(line: RedisLine, event_id: int, decided_through_row_id: int, decided: int, announced: list[str]) -> None:
    line.leave([LineDeparture(event_id, decided_through_row_id, decided, announced)])


def ranks(line: RedisLine, entries: list[tuple[int, int, str]]) -> list[int | None]:
    readings = [line.reading(event_id, request_id) for event_id, _, request_id in entries]
    return [None if reading is None else reading.rank for reading in readings]


def test_recorded_requests_are_ranked_in_arrival_order_and_leave_when_decided(redis_client):
    line = RedisLine(redis_client)
    first, second = recorded(10, 3), recorded(13, 2)
    line.enter(first)
    line.enter(second)
    assert ranks(line, first + second) == [0, 1, 2, 3, 4]
    leave(line, EVENT_ID, decided_through_row_id=12, decided=3, announced=[])
    assert ranks(line, first + second) == [None, None, None, 0, 1]
    assert line.sizes([EVENT_ID, 99]) == {EVENT_ID: 2, 99: 0}


def test_a_request_decided_before_the_bridge_announced_it_never_enters(redis_client):
    """The bridge's after-commit ZADD may land after the worker decided the rows: the
    decided mark keeps them out, so no decided entry lingers."""
    line = RedisLine(redis_client)
    late = recorded(20, 4)
    leave(line, EVENT_ID, decided_through_row_id=22, decided=3, announced=[])
    line.enter(late)
    assert ranks(line, late) == [None, None, None, 0]
    assert int(redis_client.get(decided_mark_key(EVENT_ID))) == 22


def test_the_decided_mark_only_grows(redis_client):
    line = RedisLine(redis_client)
    leave(line, EVENT_ID, 50, 1, [])
    leave(line, EVENT_ID, 40, 1, [])  # an older batch's effects arriving late
    entries = recorded(45, 10)
    line.enter(entries)
    assert ranks(line, entries)[:6] == [None] * 6
    assert ranks(line, entries)[6:] == [0, 1, 2, 3]


def test_events_have_lines_of_their_own_entered_in_one_call(redis_client):
    line = RedisLine(redis_client)
    mixed = recorded(1, 2, event_id=1) + recorded(3, 2, event_id=2) + recorded(5, 1, event_id=1)
    line.enter(mixed)
    assert ranks(line, mixed) == [0, 1, 0, 1, 2]


def test_positions_stay_exact_while_a_bridge_and_a_worker_run_at_once(redis_url, redis_client):
    """One thread records batches in arrival order, another decides the oldest ones: every
    reading is a rank among exactly the undecided requests, and at the end the line holds
    the undecided ones, in order, and nothing else."""
    batches = [recorded(1 + batch * 50, 50) for batch in range(40)]
    all_entries = [entry for batch in batches for entry in batch]
    decided_through = [0]
    entered = threading.Event()

    def bridge() -> None:
        line = RedisLine(connect(redis_url))
        for batch in batches:
            line.enter(batch)
            entered.set()

    def worker() -> None:
        line = RedisLine(connect(redis_url))
        entered.wait(5)
        for through in range(30, 1500, 30):  # decides behind the bridge, in arrival order
            leave(line, EVENT_ID, through, 30, [])
            decided_through[0] = through

    threads = [threading.Thread(target=bridge), threading.Thread(target=worker)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    line = RedisLine(redis_client)
    undecided = [entry for entry in all_entries if entry[1] > decided_through[0]]
    assert ranks(line, undecided) == list(range(len(undecided)))
    decided = [entry for entry in all_entries if entry[1] <= decided_through[0]]
    assert set(ranks(line, decided)) == {None}
    assert line.sizes([EVENT_ID]) == {EVENT_ID: len(undecided)}


def test_the_rate_counts_decisions_per_second_of_the_redis_clock(redis_client):
    line = RedisLine(redis_client)
    entries = recorded(1, 3)
    line.enter(entries)
    reading = line.reading(EVENT_ID, entries[2][2])
    assert reading is not None and reading.rank == 2
    assert reading.decided_per_second == (0,) * RATE_WINDOW_S
    leave(line, EVENT_ID, 1, 250, [])  # counted in the current second: not yet in the window
    redis_seconds = int(redis_client.time()[0])
    while int(redis_client.time()[0]) == redis_seconds:  # the next second of Redis' clock
        threading.Event().wait(0.05)
    reading = line.reading(EVENT_ID, entries[2][2])
    assert reading is not None and reading.rank == 1
    assert sum(reading.decided_per_second) == 250
    assert reading.decided_per_second[-1] in (0, 250)  # the last whole second, or the one before


def test_leaving_announces_the_outcomes_in_the_same_call(redis_client):
    line = RedisLine(redis_client)
    channel = RedisOutcomeChannel(redis_client)
    request_ids = [str(uuid.uuid4()) for _ in range(1200)]  # more than one script call's worth
    with channel.subscribe(request_ids[0]) as head, channel.subscribe(request_ids[-1]) as tail:
        leave(line, EVENT_ID, 5, 1200, request_ids)
        head.wait(1.0)
        tail.wait(1.0)
        assert head.was_announced and tail.was_announced


def script_calls(line: RedisLine) -> list[int]:
    """Counts the line's leave script calls from now on (one entry each, its events' number)."""
    calls: list[int] = []
    script = line._leave

    def counted(keys, args):
        calls.append(len(keys) // 3)
        return script(keys=keys, args=args)

    line._leave = counted
    return calls


def test_the_events_one_transaction_decided_leave_in_one_call(redis_client):
    """A partition's events decided together leave their lines, count towards their rates and
    announce their outcomes in one script call (one round trip), each as if alone."""
    line = RedisLine(redis_client)
    channel = RedisOutcomeChannel(redis_client)
    entries = {event_id: recorded(10 * event_id, 3, event_id) for event_id in (1, 2, 3)}
    for event_entries in entries.values():
        line.enter(event_entries)
    calls = script_calls(line)
    announced = {
        event_id: [request_id for _, _, request_id in event_entries[:2]] for event_id, event_entries in entries.items()
    }
    with channel.subscribe(announced[1][0]) as first, channel.subscribe(announced[3][1]) as last:
        line.leave([LineDeparture(event_id, 10 * event_id + 1, 2, announced[event_id]) for event_id in (1, 2, 3)])
        first.wait(1.0)
        last.wait(1.0)
        assert first.was_announced and last.was_announced
    assert calls == [3]
    for event_entries in entries.values():
        assert ranks(line, event_entries) == [None, None, 0]
    assert line.sizes([1, 2, 3]) == {1: 1, 2: 1, 3: 1}
    assert [int(redis_client.get(decided_mark_key(event_id))) for event_id in (1, 2, 3)] == [11, 21, 31]


def test_outcomes_beyond_one_calls_worth_go_in_the_next_call_with_nothing_counted_twice(redis_client):
    line = RedisLine(redis_client)
    channel = RedisOutcomeChannel(redis_client)
    first_ids = [str(uuid.uuid4()) for _ in range(700)]
    second_ids = [str(uuid.uuid4()) for _ in range(1500)]
    line.enter(recorded(1, 700, 1) + recorded(1001, 1500, 2))
    calls = script_calls(line)
    with channel.subscribe(first_ids[-1]) as first, channel.subscribe(second_ids[-1]) as second:
        line.leave([LineDeparture(1, 700, 700, first_ids), LineDeparture(2, 2500, 1500, second_ids)])
        first.wait(1.0)
        second.wait(1.0)
        assert first.was_announced and second.was_announced
    assert calls == [1, 1, 1]  # 700, then 1,000 of the second's, then its last 500
    assert line.sizes([1, 2]) == {1: 0, 2: 0}
    rings = {event_id: redis_client.hgetall(rate_key(event_id)).values() for event_id in (1, 2)}
    decided = {event_id: sum(int(slot.split(":")[1]) for slot in ring) for event_id, ring in rings.items()}
    assert decided == {1: 700, 2: 1500}


def test_a_rebuild_puts_back_what_postgres_holds_without_undoing_later_writes(redis_client):
    line = RedisLine(redis_client)
    entries = recorded(100, 6)
    line.enter(entries)
    redis_client.delete(line_key(EVENT_ID), decided_mark_key(EVENT_ID))  # Redis restarted empty
    assert ranks(line, entries) == [None] * 6
    newer = recorded(106, 2)
    line.enter(newer)  # the bridge goes on meanwhile
    # Postgres as reconcile read it: the first two decided since, four pending.
    line.rebuild(EVENT_ID, [(row_id, request_id) for _, row_id, request_id in entries[2:]], decided_below_row_id=102)
    assert ranks(line, entries + newer) == [None, None, 0, 1, 2, 3, 4, 5]
    # A stale snapshot (read before the worker decided up to 104) adds nothing decided back.
    leave(line, EVENT_ID, 104, 3, [])
    line.rebuild(EVENT_ID, [(row_id, request_id) for _, row_id, request_id in entries[2:]], decided_below_row_id=102)
    assert ranks(line, entries + newer) == [None] * 5 + [0, 1, 2]


def test_without_redis_the_line_says_nothing_and_raises_nothing():
    line = RedisLine(connect(CLOSED_PORT_URL))
    entries = recorded(1, 2)
    line.enter(entries)
    leave(line, EVENT_ID, 1, 1, [entries[0][2]])
    line.rebuild(EVENT_ID, [(1, entries[0][2])], 1)
    assert line.reading(EVENT_ID, entries[1][2]) is None
    assert line.sizes([EVENT_ID]) is None
