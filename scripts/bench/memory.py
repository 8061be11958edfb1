"""Memory: the peak resident set (RSS) of each process of the platform during a phase, from /proc.

When the phase starts, each process's lifetime peak so far is read (VmHWM in /proc/<pid>/status)
and then reset to its current RSS (writing 5 to /proc/<pid>/clear_refs), so the VmHWM read at the
end is the exact peak of this phase, however brief. One reader thread also samples every process
of the platform (VmRSS) every SAMPLE_S: it finds the processes started during the phase (the
bridge, a prefork child; their VmHWM counts from their start) and is the peak where the reset
was refused. A process's figure is the larger of the two.

Floors (issue 12 point 7): each API worker process under 200 MB, the bridge and each allocation
worker process under 300 MB.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from scripts.bench.cpu import bench_roots, read_procs

SAMPLE_S = 0.5
API, BRIDGE, WORKER, WORKER_2, MAILER = (
    "api (granian)",
    "bridge",
    "worker (celery)",
    "worker 2 (celery)",
    "mailer (celery, nice 19)",
)
APP_GROUPS = (API, BRIDGE, WORKER, WORKER_2, MAILER, "beat")
FLOORS_MB = {API: 200, BRIDGE: 300, WORKER: 300, WORKER_2: 300}
# The restart loop platform.sh runs each process under (bash), and what it runs between restarts.
LOOP_COMMANDS = {"bash", "sh", "sleep", "nice", "setsid"}


def parse_status(text: str) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB from the text of /proc/<pid>/status; 0 for a field that is not
    there (a kernel thread, a zombie)."""
    values = {"VmRSS:": 0, "VmHWM:": 0}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in values:
            values[parts[0]] = int(parts[1])
    return values["VmRSS:"], values["VmHWM:"]


def read_memory(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) in kB of a live process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            return parse_status(handle.read())
    except OSError:
        return None


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux 4.0+, a process of our own user)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def app_processes(procs: dict[int, tuple], roots: dict[int, str]) -> dict[int, tuple[str, int]]:
    """pid -> (group, depth) of every process under a root (roots: pid -> group), the root's
    restart loop itself left out: depth 1 is the process the loop runs (the main process),
    2 and more its children (granian's workers, Celery's pool). `procs` as read_procs returns."""
    out = {}
    for pid, entry in procs.items():
        if entry[2] in LOOP_COMMANDS:
            continue
        node, depth = pid, 0
        while node > 1 and depth < 64 and node not in roots:
            parent = procs.get(node)
            if parent is None:
                break
            node, depth = parent[0], depth + 1
        if node in roots and depth > 0:
            out[pid] = (roots[node], depth)
    return out


@dataclass
class ProcPeak:
    group: str
    pid: int
    depth: int
    command: str
    peak_kb: int = 0  # the phase's peak: VmHWM at the end (reset at the start) or the sampled max
    before_kb: int | None = None  # VmHWM when the phase started: its peak over its life so far
    reset: bool = False  # its VmHWM was reset at the start (False: the sampled max, or started during it)

    def observe(self, rss_kb: int, hwm_kb: int) -> None:
        """A reading during the phase: the VmHWM counts when it only covers the phase."""
        self.peak_kb = max(self.peak_kb, rss_kb, hwm_kb if self.reset or self.before_kb is None else 0)

    @property
    def floor_mb(self) -> int | None:
        return FLOORS_MB.get(self.group)

    def over_floor(self) -> bool:
        return self.floor_mb is not None and self.peak_kb >= self.floor_mb * 1024


def roles(peaks: list[ProcPeak]) -> list[tuple[ProcPeak, str]]:
    """Each process with its role in its group: "main", then "child 1", "child 2"... (by pid)."""
    out = []
    counters: dict[str, int] = {}

    def order(peak: ProcPeak) -> tuple[int, int, int]:
        return (APP_GROUPS.index(peak.group) if peak.group in APP_GROUPS else 99, peak.depth, peak.pid)

    for peak in sorted(peaks, key=order):
        if peak.depth == 1:
            out.append((peak, "main"))
        else:
            counters[peak.group] = counters.get(peak.group, 0) + 1
            out.append((peak, f"child {counters[peak.group]}"))
    return out


@dataclass
class MemoryReport:
    peaks: list[ProcPeak] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
        for peak, role in roles(self.peaks):
            line = f"    {peak.group:<24} {role:<8} {peak.command[:15]:<15} peak {peak.peak_kb / 1024:6.0f} MB"
            if peak.before_kb is not None:
                line += f"  (before this phase {peak.before_kb / 1024:4.0f} MB)"
            elif not peak.reset:
                line += "  (started during this phase)"
            if peak.floor_mb is not None:
                line += f"  floor < {peak.floor_mb} MB: {'OVER' if peak.over_floor() else 'ok'}"
            out.append(line)
        return out

    def group_peak_mb(self, group: str) -> int | None:
        values = [peak.peak_kb for peak in self.peaks if peak.group == group]
        return round(max(values) / 1024) if values else None

    def over_floor(self) -> list[ProcPeak]:
        return [peak for peak in self.peaks if peak.over_floor()]


class MemoryMeter:
    """The peak RSS of every process of the platform between start() and stop()."""

    def __init__(self, roots: Callable[[], dict[str, int | None]] = bench_roots, sample_s: float = SAMPLE_S) -> None:
        self.roots = roots  # asked at every sample: a process (the bridge) may start meanwhile
        self.sample_s = sample_s
        self.peaks: dict[tuple[int, int], ProcPeak] = {}  # (pid, start time) -> its peak
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def _members(self) -> tuple[dict[int, tuple], dict[int, tuple[str, int]]]:
        roots = {pid: group for group, pid in self.roots().items() if pid and group in APP_GROUPS}
        procs = read_procs()
        return procs, app_processes(procs, roots)

    def start(self) -> None:
        procs, members = self._members()
        for pid, (group, depth) in members.items():
            memory = read_memory(pid)
            if memory is None:
                continue
            peak = ProcPeak(group, pid, depth, procs[pid][2], before_kb=memory[1])
            peak.reset = reset_peak(pid)
            self.peaks[(pid, procs[pid][3])] = peak
        self.thread = threading.Thread(target=self._run, daemon=True, name="bench-memory")
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(self.sample_s):
            self.sample()

    def sample(self) -> None:
        procs, members = self._members()
        for pid, (group, depth) in members.items():
            memory = read_memory(pid)
            if memory is None:
                continue
            key = (pid, procs[pid][3])
            peak = self.peaks.get(key)
            if peak is None:  # started during the phase: its VmHWM is this phase's
                peak = self.peaks[key] = ProcPeak(group, pid, depth, procs[pid][2])
            peak.observe(*memory)

    def stop(self) -> MemoryReport:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.sample()
        return MemoryReport(list(self.peaks.values()))
