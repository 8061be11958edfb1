"""`make bench`'s many-events, memory and fairness phases: their pure parts (scripts/bench/many.py,
memory.py, fairness.py). No stack is started and nothing is timed."""

from __future__ import annotations

import itertools
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from scripts.bench.fairness import (
    Inversions,
    RunFairness,
    count_inversions,
    count_overtaken,
    fairness_of,
    inversions,
    kafka_inversions,
    largest_overtaking_ms,
)
from scripts.bench.many import PartitionLoad, decided_count, partition_spread, unserved
from scripts.bench.memory import (
    API,
    BRIDGE,
    MAILER,
    WORKER,
    MemoryMeter,
    MemoryReport,
    ProcPeak,
    app_processes,
    parse_status,
    roles,
)

T0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def brute_inversions(values: list) -> int:
    return sum(1 for i, j in itertools.combinations(range(len(values)), 2) if values[i] > values[j])


def brute_overtaken(values: list) -> int:
    return sum(1 for i, value in enumerate(values) if any(later < value for later in values[i + 1 :]))


# --- fairness ---------------------------------------------------------------------------------


@given(st.lists(st.integers(min_value=-20, max_value=20), max_size=60))
def test_inversions_are_counted_as_the_pairwise_reference_counts_them(values):
    assert count_inversions(values) == brute_inversions(values)
    assert count_overtaken(values) == brute_overtaken(values)


def test_inversions_of_simple_orders():
    assert count_inversions(list(range(1000))) == 0
    assert count_inversions(list(range(1000, 0, -1))) == 1000 * 999 // 2
    assert count_inversions([2, 1, 3, 5, 4]) == 2
    assert count_overtaken([2, 1, 3, 5, 4]) == 2  # 2 (by 1) and 5 (by 4)
    assert count_overtaken([5, 1, 2, 3, 4]) == 1  # one late request overtaken by four: one request, four pairs
    assert count_inversions([5, 1, 2, 3, 4]) == 4


def test_a_tie_in_the_reference_order_is_no_inversion():
    # Two requests accepted in the same microsecond may be decided in either order.
    rows = [(T0, 2), (T0, 1), (T0 + timedelta(milliseconds=1), 3)]
    assert inversions(rows) == Inversions(requests=3, pairs=0, overtaken=0)


def test_kafka_order_compares_requests_of_the_same_partition_only():
    # Offsets of two partitions are unrelated: partition 1's offset 0 decided after partition 0's offset 9 is fine.
    rows = [(0, 9, 1), (1, 0, 2), (0, 10, 3), (1, 1, 4)]
    assert kafka_inversions(rows) == Inversions(requests=4, pairs=0, overtaken=0)
    rows = [(0, 9, 2), (0, 10, 1), (1, 0, 3)]  # offset 10 decided before offset 9 of the same partition
    assert kafka_inversions(rows) == Inversions(requests=3, pairs=1, overtaken=1)


def test_the_largest_overtaking_is_how_much_earlier_an_overtaken_request_was_accepted():
    ms = timedelta(milliseconds=1)
    # decision order: accepted at 0, 5, 2 (overtaken by 3 ms), 7, 1 (by 6 ms)
    rows = [(T0, 1), (T0 + 5 * ms, 2), (T0 + 2 * ms, 3), (T0 + 7 * ms, 4), (T0 + 1 * ms, 5)]
    assert largest_overtaking_ms(rows) == 6.0
    assert largest_overtaking_ms([(T0, 1), (T0 + ms, 2)]) == 0.0
    assert largest_overtaking_ms([]) == 0.0


def test_fairness_of_an_event_leaves_requests_not_read_from_kafka_out_of_the_kafka_order():
    ms = timedelta(milliseconds=1)
    rows = [  # (partition, offset, accepted_at, decision rank)
        (3, 100, T0, 1),
        (3, 102, T0 + 2 * ms, 2),  # accepted after the next one, decided before it
        (3, 101, T0 + 1 * ms, 3),  # Kafka order: offset 101 after 102 -> an inversion
        (None, None, T0 + 3 * ms, 4),  # recorded without Kafka (the embedded path)
    ]
    fairness = fairness_of(7, rows)
    assert fairness.decided == 4 and fairness.partitions == 1
    assert fairness.kafka == Inversions(requests=3, pairs=1, overtaken=1)
    assert fairness.acceptance == Inversions(requests=4, pairs=1, overtaken=1)
    assert fairness.overtaking_ms == 1.0
    assert fairness.acceptance.share == 1 / 6


def test_the_run_counts_kafka_order_inversions_over_every_event_and_says_so():
    fair = fairness_of(1, [(0, 1, T0, 1), (0, 2, T0, 2)])
    unfair = fairness_of(2, [(4, 1, T0, 2), (4, 2, T0, 1)])
    run = RunFairness(hot=fair, others=[unfair])
    assert run.kafka_pairs() == 1
    text = "\n".join(run.lines())
    assert "against Kafka order: 0 inverted pairs" in text
    assert "every other event of the run (1 events, 2 requests read from Kafka): 1 inverted pairs" in text


# --- memory -----------------------------------------------------------------------------------

STATUS = """Name:\tgranian
Umask:\t0022
State:\tS (sleeping)
VmPeak:\t  812344 kB
VmSize:\t  812340 kB
VmHWM:\t  153412 kB
VmRSS:\t  121020 kB
RssAnon:\t   98000 kB
Threads:\t9
"""


def test_status_gives_the_resident_set_and_its_high_water_mark_in_kb():
    assert parse_status(STATUS) == (121020, 153412)
    assert parse_status("Name:\tkthreadd\nState:\tS (sleeping)\n") == (0, 0)  # a kernel thread has neither


def test_the_processes_of_each_group_are_found_under_their_restart_loop():
    procs = {  # pid -> (ppid, ticks, comm, start time), as read_procs returns
        100: (1, 0, "bash", 1),  # the api's restart loop (a root)
        101: (100, 0, "granian", 2),
        102: (101, 0, "granian", 3),
        103: (101, 0, "granian", 3),
        200: (1, 0, "bash", 1),  # the bridge's loop
        201: (200, 0, "python", 2),
        202: (200, 0, "sleep", 9),  # between two restarts
        300: (1, 0, "postgres", 1),  # not a root: not ours to report
        301: (300, 0, "postgres", 2),
    }
    found = app_processes(procs, {100: API, 200: BRIDGE})
    assert found == {101: (API, 1), 102: (API, 2), 103: (API, 2), 201: (BRIDGE, 1)}


def test_a_peak_counts_the_high_water_mark_only_when_it_covers_the_phase():
    reset = ProcPeak(API, 1, 2, "granian", before_kb=300_000, reset=True)
    reset.observe(rss_kb=100_000, hwm_kb=150_000)  # HWM reset at the start: the phase's own peak
    assert reset.peak_kb == 150_000
    lifetime = ProcPeak(API, 2, 2, "granian", before_kb=300_000, reset=False)
    lifetime.observe(rss_kb=100_000, hwm_kb=300_000)  # not reset: the HWM is older than the phase
    assert lifetime.peak_kb == 100_000
    started = ProcPeak(BRIDGE, 3, 1, "python")  # started during the phase: its HWM is the phase's
    started.observe(rss_kb=80_000, hwm_kb=90_000)
    started.observe(rss_kb=70_000, hwm_kb=90_000)
    assert started.peak_kb == 90_000


def test_the_report_names_each_process_by_its_role_and_checks_the_floors():
    peaks = [
        ProcPeak(WORKER, 31, 2, "celery", peak_kb=310 * 1024, before_kb=200 * 1024, reset=True),
        ProcPeak(API, 12, 2, "granian", peak_kb=120 * 1024, before_kb=130 * 1024, reset=True),
        ProcPeak(API, 11, 1, "granian", peak_kb=40 * 1024, before_kb=40 * 1024, reset=True),
        ProcPeak(API, 13, 2, "granian", peak_kb=199 * 1024, before_kb=150 * 1024, reset=True),
        ProcPeak(WORKER, 30, 1, "celery", peak_kb=90 * 1024, before_kb=90 * 1024, reset=True),
        ProcPeak(BRIDGE, 20, 1, "python", peak_kb=95 * 1024),
        ProcPeak(MAILER, 40, 1, "celery", peak_kb=900 * 1024, before_kb=900 * 1024, reset=True),
    ]
    assert [(p.pid, role) for p, role in roles(peaks)] == [
        (11, "main"),
        (12, "child 1"),
        (13, "child 2"),
        (20, "main"),
        (30, "main"),
        (31, "child 1"),
        (40, "main"),
    ]
    report = MemoryReport(peaks)
    assert [p.pid for p in report.over_floor()] == [31]  # the mailer has no floor
    assert report.group_peak_mb(API) == 199 and report.group_peak_mb("worker 2 (celery)") is None
    lines = report.lines()
    assert "floor < 300 MB: OVER" in lines[5] and "child 1" in lines[5]
    assert "floor < 200 MB: ok" in lines[2]
    assert "(started during this phase)" in lines[3]
    assert "floor" not in lines[6]


def test_the_meter_reads_the_peak_of_a_real_process_from_proc():
    # A child of ours that holds 64 MB, under a bash loop as platform.sh runs each process.
    holder = (
        "import sys; block = bytearray(64 << 20); block[::4096] = b'x' * len(block[::4096]); "
        "print('ready', flush=True); sys.stdin.read()"
    )
    loop = subprocess.Popen(
        ["bash", "-c", f'"{sys.executable}" -c "{holder}"; true'],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert loop.stdout.readline().strip() == "ready"
        meter = MemoryMeter(roots=lambda: {BRIDGE: loop.pid})
        meter.start()
        report = meter.stop()
    finally:
        loop.stdin.close()
        loop.wait(30)
    [peak] = report.peaks
    assert peak.group == BRIDGE and peak.depth == 1
    assert 64 <= peak.peak_kb / 1024 < 300
    assert peak.before_kb is not None and peak.before_kb >= 64 * 1024


# --- many events ------------------------------------------------------------------------------


def test_the_partition_spread_lists_every_partition_and_finds_those_not_served():
    rows = [(0, 40, 2000, 2000), (2, 30, 1500, 1500), (5, 35, 1700, 0), (None, 1, 3, 3)]
    spread = partition_spread(rows, 6)
    assert [load.partition for load in spread] == [0, 1, 2, 3, 4, 5, None]
    assert spread[1] == PartitionLoad(1, 0, 0, 0)
    assert unserved(spread) == [1, 3, 4, 5]
    assert unserved(partition_spread([(p, 1, 10, 10) for p in range(6)], 6)) == []


def test_a_workers_decisions_are_the_sum_of_its_decided_counter_over_outcomes():
    text = """# HELP atomicseats_booking_requests_decided_total Booking requests decided, by outcome
# TYPE atomicseats_booking_requests_decided_total counter
atomicseats_booking_requests_decided_total{outcome="confirmed"} 1200.0
atomicseats_booking_requests_decided_total{outcome="waitlisted"} 34.0
# HELP atomicseats_allocation_batch_size Requests per allocation batch
# TYPE atomicseats_allocation_batch_size histogram
atomicseats_allocation_batch_size_count 12.0
"""
    assert decided_count(text) == 1234.0
    assert decided_count("") == 0.0


def test_the_last_line_gains_the_many_events_memory_and_fairness_figures():
    from scripts.bench.report import phase_fields

    memory = MemoryReport(
        [
            ProcPeak(API, 12, 2, "granian", peak_kb=130 * 1024),
            ProcPeak(BRIDGE, 20, 1, "python", peak_kb=95 * 1024),
            ProcPeak(WORKER, 31, 2, "celery", peak_kb=101 * 1024),
        ]
    )
    full = SimpleNamespace(
        many=SimpleNamespace(decided_per_s=5123.6),
        pipeline=SimpleNamespace(memory=memory),
        fairness=RunFairness(hot=fairness_of(1, [(0, 1, T0 + timedelta(milliseconds=1), 1), (0, 2, T0, 2)])),
    )
    fields = phase_fields(full)
    assert fields == (
        " many_decided_per_s=5124 api_rss_mb=130 bridge_rss_mb=95 worker_rss_mb=101"
        " kafka_order_inversions=0 acceptance_order_inversions=1"
    )
    assert phase_fields(SimpleNamespace(many=None, pipeline=None, fairness=None)) == ""
    # --backlog 0: the peaks of the many-events phase's drain stand in
    many_only = SimpleNamespace(many=SimpleNamespace(decided_per_s=800.0, memory=memory), pipeline=None, fairness=None)
    assert phase_fields(many_only) == " many_decided_per_s=800 api_rss_mb=130 bridge_rss_mb=95 worker_rss_mb=101"
