"""The load: wrk (C, cheap on 2 shared cores) posting bookings with rotating tokens through
scripts/bench/book.lua, which keeps the request id of every 202."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from scripts.bench.accounts import Events
from scripts.bench.common import LUA, ROOT, WORK, BenchError
from scripts.bench.cpu import CpuMeter, top_snapshot


@dataclass
class WrkResult:
    duration_s: float
    statuses: dict[str, int]
    errors: dict[str, int]
    ids: list[str]
    latency_us: dict

    @property
    def accepted(self) -> int:
        return sum(count for status, count in self.statuses.items() if status.startswith("2"))

    @property
    def accepted_per_s(self) -> float:
        return self.accepted / self.duration_s if self.duration_s else 0.0

    def non_2xx(self) -> str:
        parts = [f"{status}: {count}" for status, count in sorted(self.statuses.items()) if not status.startswith("2")]
        parts += [f"{name} errors: {count}" for name, count in self.errors.items() if count and name != "status"]
        return ", ".join(parts) or "none"

    def http_ms(self, quantile: str) -> float:
        return self.latency_us["percentiles"].get(quantile, 0) / 1000


def wrk_command(url: str, tokens_file: Path, args, connections: int, duration_s: float, mix: tuple, ids_file: Path):
    """wrk's command line; `mix` is (hot event, spread events)."""
    hot, spread = mix
    return [
        "wrk",
        f"-t{args.threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "15s",
        "-s",
        str(LUA),
        url,
        "--",
        str(tokens_file),
        str(hot),
        ",".join(map(str, spread)) or "-",
        str(args.hot_percent),
        str(ids_file),
        str(args.seed),
    ]


def run_wrk(
    url: str,
    tokens_file: Path,
    events: Events,
    args,
    connections: int,
    duration_s: float,
    tag: str,
    hot: int | None = None,
    spread: list[int] | None = None,
    meter: CpuMeter | None = None,
    top_file: Path | None = None,
) -> WrkResult:
    ids_file = WORK / f"ids-{tag}.txt"
    ids_file.unlink(missing_ok=True)
    mix = (events.hot if hot is None else hot, events.spread if spread is None else spread)
    cmd = wrk_command(url, tokens_file, args, connections, duration_s, mix, ids_file)
    process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if meter is not None:
        meter.children_label = "client (wrk)"
    if top_file is not None:
        top_snapshot(top_file, duration_s / 2)
    try:
        output, _ = process.communicate(timeout=duration_s + 60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise BenchError("wrk did not finish in time") from None
    (WORK / f"wrk-{tag}.txt").write_text(output)
    return wrk_result(process.returncode, output, ids_file)


def wrk_result(returncode: int, output: str, ids_file: Path) -> WrkResult:
    line = next((ln for ln in output.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({returncode}):\n{output[-1500:]}")
    data = json.loads(line[len("BENCH_JSON ") :])
    ids = [ln for ln in ids_file.read_text().split() if ln] if ids_file.exists() else []
    return WrkResult(
        duration_s=data["duration_us"] / 1e6,
        statuses=data["statuses"],
        errors=data["errors"],
        ids=ids,
        latency_us=data["latency_us"],
    )
