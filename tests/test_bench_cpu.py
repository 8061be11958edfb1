"""`make bench`'s CPU accounting (scripts/bench/cpu.py) against real processes: a JVM's JIT."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import time

import pytest

from scripts.bench.cpu import Gauge, jit_cpu_s, machine_gauge_ms, settle_cpu, wakeup_gauge_us
from scripts.bench.full import next_warmup_slice_s

SPIN = """
public class Spin {
    public static void main(String[] args) throws Exception {
        long sum = 0;
        long until = System.nanoTime() + 20_000_000_000L;
        while (System.nanoTime() < until) {  // hot code: C1 then C2 compile it
            for (int i = 0; i < 1_000_000; i++) sum += (i ^ sum) % 7;
            if (System.in.available() > 0) break;
        }
        System.out.println(sum);
    }
}
"""


def test_a_jvm_compiling_its_hot_code_shows_its_jit_threads_cpu_and_other_processes_none(tmp_path):
    java = shutil.which("java")
    if java is None:
        pytest.fail("java is not installed (Kafka needs it too)")
    source = tmp_path / "Spin.java"
    source.write_text(SPIN)
    jvm = subprocess.Popen([java, str(source)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while jit_cpu_s(jvm.pid) < 0.05 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert jit_cpu_s(jvm.pid) >= 0.05  # the source launcher's javac and the loop are compiled
    finally:
        jvm.kill()
        jvm.wait()
    assert jit_cpu_s(os.getpid()) == 0.0  # CPython has no such threads
    assert jit_cpu_s(jvm.pid) == 0.0  # gone
    assert jit_cpu_s(None) == 0.0


@pytest.mark.parametrize(
    ("elapsed_s", "jit_share", "warmup_max_s", "more_s"),
    [
        (20, 0.20, 120, 10),  # still compiling: another slice
        (20, 0.03, 120, 0),  # quiet: warm
        (50, 0.01, 120, 0),
        (110, 0.20, 120, 10),  # the last slice that fits
        (111, 0.20, 120, 0),  # another would pass the limit
        (20, 0.20, 20, 0),  # --warmup-max no longer than --warmup: the first slice only
    ],
)
def test_the_warm_up_goes_on_in_slices_while_the_broker_compiles_and_within_its_limit(
    elapsed_s, jit_share, warmup_max_s, more_s
):
    assert next_warmup_slice_s(elapsed_s, jit_share, warmup_max_s) == more_s


def test_the_machine_gauge_times_the_same_work_alike_and_reports_the_slower_end():
    first, second = machine_gauge_ms(rounds=2), machine_gauge_ms(rounds=2)
    assert first > 0 and second > 0
    assert max(first, second) / min(first, second) < 3  # the same work: the same order of CPU
    gauge = Gauge(start_ms=80.4, end_ms=95.6)
    assert gauge.field() == " cpu_gauge_ms=96"  # the slower of the two ends
    assert gauge.line().startswith("machine gauge: 80 ms at the start, 96 ms at the end")
    assert Gauge(start_ms=80.4).field() == " cpu_gauge_ms=80"  # no end measured (NaN): the start
    assert "not measured at the end" in Gauge(start_ms=80.4).line()


def test_the_wake_up_gauge_times_round_trips_across_two_cpus_and_leaves_the_affinity_as_it_was():
    own = os.sched_getaffinity(0)
    if len(own) < 2:
        pytest.fail("the bench machine has two CPUs; this one lets the process use fewer")
    microseconds = wakeup_gauge_us(round_trips=200, rounds=2)
    assert 0 < microseconds < 10_000  # a real round trip: microseconds, not nothing, not a timeout
    assert os.sched_getaffinity(0) == own  # pinned while it measured, then given back
    try:
        os.sched_setaffinity(0, {min(own)})
        assert math.isnan(wakeup_gauge_us(round_trips=10, rounds=1))  # one CPU: nothing to measure across
    finally:
        os.sched_setaffinity(0, own)
    gauge = Gauge(start_ms=80.4, end_ms=95.6, wakeup_us=49.6)
    assert gauge.field() == " cpu_gauge_ms=96 wakeup_gauge_us=50"
    assert gauge.line().endswith(
        "wake-up gauge: 50 us (a round trip between two processes on two CPUs; smaller is faster)"
    )
    assert Gauge(start_ms=80.4).field() == " cpu_gauge_ms=80"  # not measured: no field
    assert Gauge(start_ms=80.4).wakeup() == "not measured"


def test_a_phase_on_an_idle_stack_waits_for_the_machine_to_go_quiet_and_not_forever():
    def machine(busy_per_window: list[int]):
        """A /proc/stat reader: 100 jiffies a window, `busy` of them busy, one window per sleep."""
        totals = [(sum(busy_per_window[:windows]), 100 * windows) for windows in range(len(busy_per_window) + 1)]
        readings = iter(totals)
        return lambda: next(readings)

    slept: list[float] = []
    waited_s, share = settle_cpu(0.10, 1.0, 20.0, read=machine([60, 35, 8, 50]), sleep=slept.append)
    assert (waited_s, share) == (3.0, 0.08) and slept == [1.0, 1.0, 1.0]  # the third window was quiet

    waited_s, share = settle_cpu(0.10, 1.0, 3.0, read=machine([60, 40, 30, 20]), sleep=slept.append)
    assert (waited_s, share) == (3.0, 0.30)  # never quiet: given up at the limit, with the last share

    # The real machine: an idle test process's reading ends at once or within the limit.
    waited_s, share = settle_cpu(1.0, 0.2, 1.0)
    assert waited_s == 0.2 and 0.0 <= share <= 1.0
