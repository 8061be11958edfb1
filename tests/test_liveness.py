"""The liveness watches of the bridge (atomicseats/liveness.py), pure of any client."""

from __future__ import annotations

import logging
import threading

from hypothesis import given
from hypothesis import strategies as st

from atomicseats.liveness import Heartbeat, StallWatch

STALL_S = 10.0

# One observation: seconds since the previous one, does work wait (None: the broker cannot
# tell), and the progress mark (offsets).
observations = st.lists(
    st.tuples(st.floats(0, 30), st.one_of(st.none(), st.booleans()), st.integers(0, 3)), max_size=40
)


def replay(steps) -> list[tuple[float, bool | None, int, bool]]:
    watch, now, seen = StallWatch(STALL_S), 0.0, []
    for gap_s, work_waits, mark in steps:
        now += gap_s
        seen.append((now, work_waits, mark, watch.observe(now, work_waits, mark)))
    return seen


def stalled_by_the_rule(seen, index: int) -> bool:
    """Work waited at every observation of the last STALL_S seconds, the mark never moved, and
    the wait began at least STALL_S before this one."""
    now, _, mark, _ = seen[index]
    start = index
    while start > 0 and seen[start - 1][1] is True and seen[start - 1][2] == mark:
        start -= 1
    return seen[index][1] is True and now - seen[start][0] >= STALL_S


@given(observations)
def test_stalled_exactly_when_work_waited_the_stall_time_without_progress(steps):
    seen = replay(steps)
    for index, (_, _, _, stalled) in enumerate(seen):
        assert stalled == stalled_by_the_rule(seen, index)


@given(observations)
def test_never_stalled_while_nothing_waits_or_the_broker_cannot_tell(steps):
    steps = [(gap_s, False if work_waits else work_waits, mark) for gap_s, work_waits, mark in steps]
    assert not any(stalled for *_, stalled in replay(steps))


@given(st.integers(3, 50))
def test_progress_within_each_stall_time_is_never_a_stall(count):
    steps = [(STALL_S - 0.5, True, index) for index in range(count)]  # offsets move each time
    assert not any(stalled for *_, stalled in replay(steps))
    # The negative control: the same waits with the offsets standing still is a stall.
    still = [(STALL_S - 0.5, True, 0) for _ in range(count)]
    assert any(stalled for *_, stalled in replay(still))


def test_a_loop_that_stops_beating_is_reported_once():
    reported = []
    done = threading.Event()
    heartbeat = Heartbeat(0.2, lambda silent_s: (reported.append(silent_s), done.set())).start()
    try:
        assert done.wait(10), "a silent loop was never reported"
    finally:
        heartbeat.stop()
    assert len(reported) == 1 and reported[0] >= 0.2


def test_a_loop_that_keeps_beating_is_never_reported():
    reported = []
    heartbeat = Heartbeat(0.2, reported.append).start()
    try:
        for _ in range(60):  # 1.2 s: six times the hung time
            heartbeat.beat()
            threading.Event().wait(0.02)
    finally:
        heartbeat.stop()
    assert reported == []


def test_the_bridge_logs_a_repeated_client_error_once_per_interval(caplog):
    """librdkafka reports a failed connection at every reconnect attempt (every 50 ms while a
    broker is down): the log gets the first, then a count at most every few seconds."""
    from confluent_kafka import KafkaError

    from atomicseats import bridge

    bridge._client_errors.clear()
    with caplog.at_level(logging.WARNING, logger="atomicseats.bridge"):
        for _ in range(50):
            bridge._log_client_error(KafkaError(KafkaError._TRANSPORT))
        bridge._log_client_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
    logged = [record for record in caplog.records if record.msg == "bridge.kafka_error"]
    assert [record.error for record in logged] == [
        str(KafkaError(KafkaError._TRANSPORT)),
        str(KafkaError(KafkaError._ALL_BROKERS_DOWN)),
    ]
