"""CPU accounting: the CPU seconds each process group of the bench used in a phase, from /proc,
so where the time goes is measured, not guessed; and what keeps a measured phase clean."""

from __future__ import annotations

import math
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scripts.bench.common import APP_RUN, OTHER, RUN, say

CLK_TCK = os.sysconf("SC_CLK_TCK")


def read_procs() -> dict[int, tuple[int, int, str, int]]:
    """pid -> (ppid, user+system ticks, comm, start time) for every process on the machine.
    A pid is the same process at both ends of a phase when its start time matches (a
    kernel worker's comm changes with the work it does)."""
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        stat = _read_stat(f"/proc/{name}/stat")
        if stat is not None:
            comm, fields_ = stat
            procs[int(name)] = (int(fields_[1]), int(fields_[11]) + int(fields_[12]), comm, int(fields_[19]))
    return procs


def _read_stat(path: str) -> tuple[str, list[str]] | None:
    """A /proc stat file's comm and the fields after it (state first), or None when the process
    or thread has gone. The comm may hold spaces and parentheses: it ends at the last ')'."""
    try:
        with open(path) as handle:
            stat = handle.read()
    except OSError:
        return None
    close = stat.rfind(")")
    return stat[stat.find("(") + 1 : close], stat[close + 2 :].split()


def _read_machine() -> tuple[int, int]:
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values[:8]) - idle, sum(values[:8])


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


GAUGE_ROUNDS = 5
WAKEUP_ROUND_TRIPS = 2000


def _gauge_workload() -> int:
    """A fixed piece of interpreter work like the API's (calls, dicts, strings, ints)."""
    table: dict[int, str] = {}
    total = 0
    for number in range(300_000):
        key = number & 1023
        table[key] = f"{key}:{number}"
        total += len(table[key]) + _gauge_step(number)
    return total


def _gauge_step(number: int) -> int:
    return number % 7


@dataclass
class Gauge:
    """The machine gauges before the bench's first phase and after its last (a VM's core can
    change speed within a run): the CPU gauge (machine_gauge_ms) at both ends, the wake-up gauge
    (wakeup_gauge_us) at the start."""

    start_ms: float
    end_ms: float = float("nan")
    wakeup_us: float = float("nan")

    def line(self) -> str:
        end = "not measured" if math.isnan(self.end_ms) else f"{self.end_ms:.0f} ms"
        return (
            f"machine gauge: {self.start_ms:.0f} ms at the start, {end} at the end "
            "(CPU of one fixed pure-Python workload; smaller is faster); "
            f"wake-up gauge: {self.wakeup()} (a round trip between two processes on two CPUs; smaller is faster)"
        )

    def wakeup(self) -> str:
        return "not measured" if math.isnan(self.wakeup_us) else f"{self.wakeup_us:.0f} us"

    def field(self) -> str:
        """` cpu_gauge_ms=N`: the larger of the two (the slower the machine was); then
        ` wakeup_gauge_us=N` when it was measured."""
        measured = [value for value in (self.start_ms, self.end_ms) if not math.isnan(value)]
        wakeup = "" if math.isnan(self.wakeup_us) else f" wakeup_gauge_us={round(self.wakeup_us)}"
        return f" cpu_gauge_ms={round(max(measured))}{wakeup}"


def machine_gauge_ms(rounds: int = GAUGE_ROUNDS) -> float:
    """The CPU milliseconds (this process's, the least of `rounds` runs) one fixed piece of
    pure-Python work takes: how fast this machine's core is right now. The figures of two runs
    compare only as far as their gauges agree: the same code accepted 1,370-1,520/s on one
    machine and 600-820/s on one whose cores ran Python about half as fast."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        _gauge_workload()
        best = min(best, time.process_time() - started)
    return best * 1000


# The wake-up gauge's partner: pinned to the CPU it is given, it echoes each byte it reads.
_ECHO = """
import os, sys
os.sched_setaffinity(0, {int(sys.argv[1])})
os.write(1, b"r")
while os.read(0, 1):
    os.write(1, b".")
"""


def wakeup_gauge_us(round_trips: int = WAKEUP_ROUND_TRIPS, rounds: int = GAUGE_ROUNDS) -> float:
    """Wall microseconds of one round trip between this process and a partner pinned to another
    CPU, a byte each way over pipes (the least of `rounds` means): what a hand-off from one
    process or thread to another costs when it wakes a sleeping CPU. The pipeline hands every
    request on many times (client, API server, Flask thread, Kafka client, broker, bridge,
    Celery), so this moves its rates where the CPU gauge does not: on a Firecracker VM whose
    CPU gauge read 73-95 ms (as fast as the machine where the API accepted 1,520/s) it read
    ~50 us (~6 us with both processes on one CPU) and the API accepted 550-860/s. NaN with
    fewer than two CPUs to pin to."""
    own_cpus = os.sched_getaffinity(0)
    cpus = sorted(own_cpus)
    if len(cpus) < 2:
        return float("nan")
    partner = subprocess.Popen(
        [sys.executable, "-c", _ECHO, str(cpus[1])], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert partner.stdin is not None and partner.stdout is not None
    to_partner, from_partner = partner.stdin.fileno(), partner.stdout.fileno()
    best = float("inf")
    try:
        os.sched_setaffinity(0, {cpus[0]})
        os.read(from_partner, 1)  # the partner is pinned and ready
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(round_trips):
                os.write(to_partner, b".")
                os.read(from_partner, 1)
            best = min(best, (time.perf_counter() - started) / round_trips)
    finally:
        os.sched_setaffinity(0, own_cpus)
        partner.stdin.close()
        partner.wait(timeout=10)
        partner.stdout.close()
    return best * 1_000_000


def pidfile(path: Path) -> int | None:
    try:
        text = path.read_text().split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


# HotSpot's JIT compiler threads, as /proc names them (comm is cut at 15 characters).
JIT_THREAD_NAMES = ("C1 CompilerThre", "C2 CompilerThre")


def jit_cpu_s(pid: int | None) -> float:
    """CPU seconds a JVM's JIT compiler threads (HotSpot's C1 and C2) have used so far, from
    /proc/<pid>/task; 0 when there is no such process. A freshly started Kafka broker compiles
    for about its first minute under load, at up to a fifth of a core (the warm-up waits it out)."""
    if pid is None:
        return 0.0
    ticks = 0
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for thread in threads:
        stat = _read_stat(f"/proc/{pid}/task/{thread}/stat")  # None: the thread ended meanwhile
        if stat is not None and stat[0] in JIT_THREAD_NAMES:
            ticks += int(stat[1][11]) + int(stat[1][12])
    return ticks / CLK_TCK


class CpuMeter:
    """CPU seconds per process group between start() and stop(), from /proc."""

    def __init__(self, roots: dict[str, int | None], children_label: str = "bench-driver children") -> None:
        self.roots = {pid: group for group, pid in roots.items() if pid}
        self.roots[os.getpid()] = "bench-driver"
        # Processes this script started and reaped meanwhile (wrk, platform.sh and what it
        # runs) are gone from /proc at stop(): their CPU comes from getrusage(CHILDREN).
        self.children_label = children_label

    def add_root(self, group: str, pid: int) -> None:
        self.roots[pid] = group

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.procs0 = read_procs()
        self.machine0 = _read_machine()
        self.children0 = _children_cpu_s()

    def stop(self) -> CpuReport:
        procs1 = read_procs()
        machine1 = _read_machine()
        wall = time.monotonic() - self.t0
        by_group: dict[str, float] = {}
        other_by_name: dict[str, float] = {}
        for pid, (_ppid, ticks, _comm, started) in procs1.items():
            before = self.procs0.get(pid)
            used = ticks - (before[1] if before and before[3] == started else 0)
            if used <= 0:
                continue
            group = self._group_of(pid, procs1)
            by_group[group] = by_group.get(group, 0.0) + used / CLK_TCK
            if group == OTHER:
                other_by_name[procs1[pid][2]] = other_by_name.get(procs1[pid][2], 0.0) + used / CLK_TCK
        reaped = _children_cpu_s() - self.children0
        if reaped >= 0.01:
            by_group[self.children_label] = by_group.get(self.children_label, 0.0) + reaped
        busy = (machine1[0] - self.machine0[0]) / CLK_TCK
        total = (machine1[1] - self.machine0[1]) / CLK_TCK
        return CpuReport(
            wall_s=wall, by_group=by_group, machine_busy_s=busy, machine_total_s=total, other_by_name=other_by_name
        )

    def _group_of(self, pid: int, procs: dict) -> str:
        return group_of(pid, procs, self.roots)


def group_of(pid: int, procs: dict, roots: dict[int, str]) -> str:
    """The group of a process: that of its nearest ancestor (itself included) among `roots`
    (pid -> group), "client (wrk)" under wrk, else OTHER. `procs` as read_procs returns."""
    seen = 0
    while pid > 1 and seen < 64:
        if pid in roots:
            return roots[pid]
        entry = procs.get(pid)
        if entry is None:
            break
        if entry[2] == "wrk":
            return "client (wrk)"
        pid = entry[0]
        seen += 1
    return OTHER


@dataclass
class CpuReport:
    wall_s: float
    by_group: dict[str, float]
    machine_busy_s: float
    machine_total_s: float
    other_by_name: dict[str, float] = field(default_factory=dict)

    def lines(self, per_request: dict[str, int] | None = None) -> list[str]:
        cores = os.cpu_count() or 1
        out = [
            f"    machine busy {100 * self.machine_busy_s / max(self.machine_total_s, 1e-9):5.1f}% of {cores} cores"
            f" over {self.wall_s:.1f}s"
        ]
        for group, seconds in sorted(self.by_group.items(), key=lambda item: -item[1]):
            if seconds < 0.05:
                continue
            line = f"    {group:<24} {seconds:7.1f} cpu-s  {100 * seconds / self.wall_s:5.1f}% of a core"
            if per_request:
                line += "  " + "  ".join(
                    f"{1000 * seconds / count:.2f} ms/{label}" for label, count in per_request.items() if count
                )
            if group == OTHER and self.other_by_name:
                top = sorted(self.other_by_name.items(), key=lambda item: -item[1])[:3]
                line += "  (" + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in top) + ")"
            out.append(line)
        return out


def bench_roots() -> dict[str, int | None]:
    pg_link = RUN / "postgres"
    return {
        "api (granian)": pidfile(APP_RUN / "api.pid"),
        "bridge": pidfile(APP_RUN / "bridge.pid"),
        "worker (celery)": pidfile(APP_RUN / "worker.pid"),
        "worker 2 (celery)": pidfile(APP_RUN / "worker2.pid"),
        "mailer (celery, nice 19)": pidfile(APP_RUN / "mailer.pid"),
        "beat": pidfile(APP_RUN / "beat.pid"),
        "flower": pidfile(APP_RUN / "flower.pid"),
        "postgres": pidfile(pg_link / "data" / "postmaster.pid"),
        "kafka": pidfile(RUN / "kafka" / "pid"),
        "redis": pidfile(RUN / "redis" / "pid"),
        "smtp sink": pidfile(RUN / "smtp" / "pid"),
    }


def settle_disk() -> None:
    """Write dirty pages back before a measured phase: setup (a fresh database, topics, a
    backlog) leaves tens of MB in the page cache, and the kernel would otherwise flush them
    ~30 s later (ext4 writeback workers took half a core), in the middle of the measurement."""
    started = time.monotonic()
    os.sync()
    say(f"  disk settled (sync, {time.monotonic() - started:.1f}s)")


QUIET_SHARE = 0.10  # of the machine's CPUs: a full stack with nothing to do uses ~4-5 %
QUIET_WINDOW_S = 1.0
QUIET_WAIT_S_MAX = 20.0


def settle_cpu(
    share_max: float = QUIET_SHARE,
    window_s: float = QUIET_WINDOW_S,
    wait_s_max: float = QUIET_WAIT_S_MAX,
    read: Callable[[], tuple[int, int]] = _read_machine,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[float, float]:
    """Wait until the machine's CPUs were at most `share_max` busy over the last `window_s`
    (at most `wait_s_max`), so a phase that measures an idle stack starts on one: the outbox's
    rows can all be sent while the mailer and its database backend still finish their last
    task. Returns (seconds waited, the last window's busy share)."""
    waited_s, share = 0.0, 1.0
    busy0, total0 = read()
    while waited_s < wait_s_max:
        sleep(window_s)
        waited_s += window_s
        busy1, total1 = read()
        share = (busy1 - busy0) / max(total1 - total0, 1)
        if share <= share_max:
            break
        busy0, total0 = busy1, total1
    return waited_s, share


def top_snapshot(path: Path, delay_s: float) -> threading.Thread:
    def take() -> None:
        time.sleep(delay_s)
        try:
            out = subprocess.run(["top", "-b", "-n1", "-w", "200"], capture_output=True, text=True, timeout=20)
            path.write_text(out.stdout)
        except (OSError, subprocess.SubprocessError) as error:
            path.write_text(f"top failed: {error}\n")

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    return thread
