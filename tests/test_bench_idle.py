"""The bench's idle phase (scripts/bench/idle.py): its pure parts; no stack, nothing timed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scripts.bench.idle import IdleResult, epoch_s, idle_latencies
from scripts.bench.report import full_final_line, idle_field
from tests.bench_support import full_result

T0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def test_latencies_count_from_the_202_the_client_read_to_the_recorded_decision():
    read_202_at = {"a": T0.timestamp() + 0.010, "b": T0.timestamp() + 1.0}
    rows = [
        # request_id, accepted_at, created_at (recorded by the bridge), decided_at
        ("a", T0, T0 + timedelta(milliseconds=9), T0 + timedelta(milliseconds=22)),
        ("b", T0 + timedelta(seconds=0.995), T0 + timedelta(seconds=1.002), T0 + timedelta(seconds=1.0125)),
    ]
    from_202, to_recorded, from_accepted = idle_latencies(rows, read_202_at)
    assert [round(ms, 3) for ms in from_202] == [12.0, 12.5]
    assert [round(ms, 3) for ms in to_recorded] == [-1.0, 2.0]  # the bridge may have it before the client
    assert [round(ms, 3) for ms in from_accepted] == [22.0, 17.5]


def test_an_undecided_or_unknown_request_is_left_out_and_naive_times_are_utc():
    naive = datetime(2026, 11, 30, 3, 0)
    assert epoch_s(naive) == T0.timestamp()
    rows = [("pending", T0, T0, None), ("other", T0, T0, T0)]
    assert idle_latencies(rows, {"pending": T0.timestamp()}) == ([], [], [])


def test_the_last_line_gains_idle_p99_after_p99_and_before_the_half_load_figure():
    idle = IdleResult(count=3, gap_ms=50, from_202_ms=[10.0, 12.0, 31.4])
    assert idle_field(idle) == "idle_p99_ms=31 "
    assert idle_field(None) == ""
    full = full_result(idle=idle)
    line = full_final_line(full, 3500.2, 0)
    assert line == "accepted_per_s=1150 decided_per_s=3500 p50_ms=95 p99_ms=410 idle_p99_ms=31 oversold=0 lost=0"


def test_the_report_names_the_floor_and_what_was_lost():
    idle = IdleResult(count=2, gap_ms=50, from_202_ms=[12.0, 45.0], lost=1)
    lines = "\n".join(idle.lines())
    assert "floor p99 <= 30: ABOVE FLOOR" in lines
    assert "lost: 1" in lines
    assert "floor p99 <= 30: ok" in "\n".join(IdleResult(count=1, gap_ms=50, from_202_ms=[12.0]).lines())
