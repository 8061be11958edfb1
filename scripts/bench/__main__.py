#!/usr/bin/env python3
"""`make bench`: a flash sale against the full pipeline on this machine, and the same load
against the embedded default for comparison. A benchmark, not a timed test.

What it does (every step bounded by a deadline, everything on 127.0.0.1):

  setup     STACK=bench: stop any app process left over, start the services, create a fresh
            database, recreate the Kafka topics empty (and forget the bridge's group), flush
            Redis, then `scripts/platform.sh up` (API on :5200, bridge, worker, beat, Flower).
            1 host and G guests are inserted with one shared password hash and logged in
            in-process (argon2 costs ~0.3 s per hash here: 400 hashes would take a minute);
            the events are created through the API with the host's token.
            PostgreSQL runs with production durability (fsync, synchronous commits): every
            figure includes the WAL flushes a real deployment pays.
  warm-up   the same load for W seconds on a separate event (a cold Kafka broker spends
            its first half minute JIT-compiling); then the warm-up's e-mails go out (an on-sale
            starts on a quiet platform) and dirty pages are synced to disk, so neither the
            mailer nor the kernel's writeback lands in a measured phase.
  accept    wrk (C, cheap on 2 shared cores) drives N connections for T seconds of
            POST /api/events/book with rotating tokens: 70% to one hot event, 30% spread
            over 20 others, 1-4 seats. accepted/s = 2xx responses / duration. The request id
            of every 202 is kept (scripts/bench/book.lua).
  drain     until every 202 has a final outcome in Postgres (deadline), then
            p50/p99 of decided_at - accepted_at over those requests.
  outbox    wait (bounded) until the e-mails and domain events of the accept phase are out,
            so the decide phase does not inherit that phase's leftover e-mail work.
  decide    "one hot event with a backlog", measured twice on fresh hot events:
            pipeline  (the headline decided/s) bridge stopped, B requests produced straight
                      to Kafka in the API's message format; then the bridge is started with
                      the worker running and the clock runs until all B are decided. This
                      is what a backlog waiting in Kafka really drains at: recording
                      (bridge) and deciding (Celery) both on the clock, sharing the CPU.
            stages    bridge and worker stopped, B more requests produced; bridge alone
                      (record/s), then worker alone (decide/s from recorded requests). The
                      worker-only figure isolates the allocator path, but the recording was
                      done off its clock, so it is a diagnostic, not the headline.
            decided/s = (B - first batch) / (last decided_at - first decided_at); the wall
            clock rate, including process start-up, is printed next to it.
  waits     "waiting never blocks the API": decisions paused (bridge stopped), W requests
            (5,000) for a fresh event produced to Kafka and claimed in the request registry as
            the API does (so they read `pending`); the answer time of other routes
            (GET /api/events/all and POST /api/events/book, a few clients back to back) is sampled
            with no wait open, then with the W long polls (?wait=30, raw asyncio connections, each
            with its owner's token) open and subscribed. p50/p99 of the other routes with the waits
            open are in the table and the last line; the decisions resume and every wait must
            answer with its final outcome.
  check     oversold = sum over events of max(0, confirmed seats - capacity); lost = every
            request acknowledged (202 at the API, or acked by Kafka for the backlog) without
            a final outcome after the drain; `flask audit --pending-grace-s 0`.
  embedded  the same accept load against `gunicorn wsgi:app` on the embedded default
            (the default config, PIPELINE=embedded, a fresh SQLite file, decisions inline,
            same workers x threads as the bench API), after the bench stack is down.

CPU: every phase reports the CPU seconds each process group used (from /proc), so where
the time goes is measured, not guessed; "other" is everything on the machine that is not
this benchmark (another stack, a test run) and says how trustworthy the run is.

The last line of the output is machine-readable:
    accepted_per_s=N decided_per_s=N p50_ms=N p99_ms=N oversold=N lost=N waits_open=N
    waiting_other_p50_ms=N waiting_other_p99_ms=N waits_final=N
Exit status: 0, or 1 if oversold/lost/audit failed (or --strict and a floor was missed),
2 if the benchmark itself could not run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the application's names, via scripts/stacktools.py

from scripts.stacktools import parse_exports, recreate_topics  # noqa: E402

BIN = ROOT / ".venv" / "bin"
STACK = "bench"
RUN = ROOT / ".run" / STACK
APP_RUN = RUN / "app"
WORK = RUN / "bench"
LUA = ROOT / "scripts" / "bench" / "book.lua"
API_URL = "http://127.0.0.1:5200"
BENCH_DB = "atomicseats_bench"
GUEST_PASSWORD = "bench-password-0"
FLOOR_ACCEPTED = 1000
FLOOR_DECIDED = 3000
CLK_TCK = os.sysconf("SC_CLK_TCK")
OTHER = "other (not this bench)"

# Settings for every process of the bench stack (and the embedded server): the login limit
# out of the way, tokens that outlive the run.
BENCH_APP_ENV = {"RATELIMIT_AUTH": "1000000 per minute", "ACCESS_TOKEN_EXPIRY_MIN": "240"}


class BenchError(RuntimeError):
    pass


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ----------------------------------------------------------------------------- processes


def run(cmd: list[str], env: dict, timeout_s: float, log_name: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command to completion (bounded), its output appended to WORK/<log_name>."""
    log_path = WORK / log_name
    with open(log_path, "a") as log:
        log.write(f"\n--- {time.strftime('%F %T')} $ {' '.join(cmd)}\n")
        log.flush()
        try:
            result = subprocess.run(
                cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s, text=True
            )
        except subprocess.TimeoutExpired as error:
            raise BenchError(f"{' '.join(cmd[:4])} did not finish within {timeout_s:.0f}s (log {log_path})") from error
    if check and result.returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
        raise BenchError(f"{' '.join(cmd[:4])} failed ({result.returncode}); {log_path}:\n" + "\n".join(tail))
    return result


class Stack:
    """The full-mode platform of STACK=bench, driven through scripts/platform.sh."""

    def __init__(self, database_url: str) -> None:
        self.env = {**os.environ, "STACK": STACK, "DATABASE_URL": database_url, **BENCH_APP_ENV}
        for name in ("REDIS_URL", "ATOMICSEATS_ENV", "CELERY_BROKER_URL"):  # the bench stack's own
            self.env.pop(name, None)

    def platform(self, *args: str, timeout_s: float = 300) -> None:
        run(["bash", "scripts/platform.sh", *args], self.env, timeout_s, "platform.log")

    def start_async(self, *procs: str):
        """`platform.sh start <procs>` in the background, so the clock and the CPU meter can
        stop when the work is done rather than when the start script returns. Returns a
        function that waits for the script; it tolerates a readiness check that failed
        although the process runs (a log check can lose a race with a process that logs a
        lot at once)."""
        log = open(WORK / "platform.log", "a")  # noqa: SIM115 - closed by finish()
        log.write(f"\n--- {time.strftime('%F %T')} $ bash scripts/platform.sh start {' '.join(procs)}\n")
        log.flush()
        process = subprocess.Popen(
            ["bash", "scripts/platform.sh", "start", *procs],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def finish() -> None:
            try:
                code = process.wait(timeout=300)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait(10)
            log.close()
            if code == 0:
                return
            status = subprocess.run(
                ["bash", "scripts/platform.sh", "status"],
                cwd=ROOT,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=60,
            ).stdout
            if not all(f"{proc} running" in status for proc in procs):
                raise BenchError(f"platform.sh start {' '.join(procs)} failed ({code}); see {WORK / 'platform.log'}")
            say(f"note: platform.sh start {' '.join(procs)} exited {code} although it runs (see platform.log)")

        return finish

    def app_env(self) -> dict:
        """The environment the platform's processes run with (for the CLI and the setup)."""
        out = subprocess.run(
            ["bash", "scripts/platform.sh", "env"], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60
        )
        if out.returncode != 0:
            raise BenchError(f"platform.sh env failed: {out.stderr[-500:]}")
        env = dict(self.env)
        env.update(parse_exports(out.stdout))
        env.update(parse_exports((APP_RUN / "secrets.env").read_text()))
        env.update(
            ATOMICSEATS_ENV="production",
            PIPELINE="kafka",
            COOKIE_SECURE="false",
            MAIL_SUPPRESS_SEND="false",
            LOG_LEVEL=env.get("LOG_LEVEL", "INFO"),
            LOG_JSON=env.get("LOG_JSON", "true"),
            FLASK_APP="wsgi",
        )
        return env


def services_env() -> dict:
    out = subprocess.run(
        ["bash", "scripts/services.sh", "env"],
        cwd=ROOT,
        env={**os.environ, "STACK": STACK},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode != 0:
        raise BenchError(f"services.sh env failed: {out.stderr[-500:]}")
    return parse_exports(out.stdout)


def http_json(method: str, url: str, body: dict | None = None, token: str | None = None, timeout_s: float = 30) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        raise BenchError(f"{method} {url} -> {error.code}: {error.read()[:300]!r}") from error


def wait_http_ok(url: str, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise BenchError(f"{url} not ready after {deadline_s:.0f}s")


# ----------------------------------------------------------------------------- CPU accounting


def _read_procs() -> dict[int, tuple[int, int, str, int]]:
    """pid -> (ppid, user+system ticks, comm, start time) for every process on the machine.
    A pid is the same process at both ends of a phase when its start time matches (a
    kernel worker's comm changes with the work it does)."""
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        close = stat.rfind(")")
        fields_ = stat[close + 2 :].split()
        procs[int(name)] = (
            int(fields_[1]),
            int(fields_[11]) + int(fields_[12]),
            stat[stat.find("(") + 1 : close],
            int(fields_[19]),
        )
    return procs


def _read_machine() -> tuple[int, int]:
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values[:8]) - idle, sum(values[:8])


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _pidfile(path: Path) -> int | None:
    try:
        text = path.read_text().split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


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
        self.procs0 = _read_procs()
        self.machine0 = _read_machine()
        self.children0 = _children_cpu_s()

    def stop(self) -> CpuReport:
        procs1 = _read_procs()
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
        seen = 0
        while pid > 1 and seen < 64:
            if pid in self.roots:
                return self.roots[pid]
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
        "api (granian)": _pidfile(APP_RUN / "api.pid"),
        "bridge": _pidfile(APP_RUN / "bridge.pid"),
        "worker (celery)": _pidfile(APP_RUN / "worker.pid"),
        "mailer (celery, nice 19)": _pidfile(APP_RUN / "mailer.pid"),
        "beat": _pidfile(APP_RUN / "beat.pid"),
        "flower": _pidfile(APP_RUN / "flower.pid"),
        "postgres": _pidfile(pg_link / "data" / "postmaster.pid"),
        "kafka": _pidfile(RUN / "kafka" / "pid"),
        "redis": _pidfile(RUN / "redis" / "pid"),
        "smtp sink": _pidfile(RUN / "smtp" / "pid"),
    }


def settle_disk() -> None:
    """Write dirty pages back before a measured phase: setup (a fresh database, topics, a
    backlog) leaves tens of MB in the page cache, and the kernel would otherwise flush them
    ~30 s later (ext4 writeback workers took half a core), in the middle of the measurement."""
    started = time.monotonic()
    os.sync()
    say(f"  disk settled (sync, {time.monotonic() - started:.1f}s)")


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


# ----------------------------------------------------------------------------- setup


def internal_setup(guests: int, out_path: str) -> None:
    """Run with the app's environment (a subprocess): insert 1 host + N guests sharing one
    password hash, log each in (an AuthSession + tokens, exactly as /api/user/login does)."""
    sys.path.insert(0, str(ROOT))
    from atomicseats import create_app
    from atomicseats.extensions import db
    from atomicseats.models import User
    from atomicseats.services import users

    app = create_app()
    with app.app_context():
        password_hash = users.password_hasher().hash(GUEST_PASSWORD)
        host = User(
            username="bench_host",
            name="Bench Host",
            email="bench_host@bench.example",
            password_hash=password_hash,
            role="host",
        )
        people = [
            User(
                username=f"bench_guest_{i}",
                name=f"Bench Guest {i}",
                email=f"bench_guest_{i}@bench.example",
                password_hash=password_hash,
                role="guest",
            )
            for i in range(guests)
        ]
        db.session.add_all([host, *people])
        db.session.commit()
        result = {
            "host_id": host.id,
            "host_token": users.login(host.id).access_token,
            "guest_ids": [person.id for person in people],
            "guest_tokens": [users.login(person.id).access_token for person in people],
        }
    Path(out_path).write_text(json.dumps(result))


def make_accounts(env: dict, guests: int, tag: str) -> dict:
    out = WORK / f"accounts-{tag}.json"
    run(
        [str(BIN / "python"), str(Path(__file__).resolve()), "--internal-setup", str(guests), str(out)],
        env,
        300,
        f"setup-{tag}.log",
    )
    accounts = json.loads(out.read_text())
    (WORK / f"tokens-{tag}.txt").write_text("\n".join(accounts["guest_tokens"]) + "\n")
    return accounts


def create_event(api: str, token: str, name: str, capacity: int) -> int:
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    body = {
        "name": name,
        "venue": "Bench Arena",
        "description": "benchmark event",
        "startsAt": starts.isoformat(),
        "endsAt": (starts + timedelta(hours=3)).isoformat(),
        "capacity": capacity,
        "price": 2500,
    }
    return int(http_json("POST", f"{api}/api/events/create", body, token)["data"]["id"])


@dataclass
class Events:
    hot: int
    spread: list[int]
    warmup: int
    backlog: list[int] = field(default_factory=list)
    waits: int | None = None


def create_events(api: str, token: str, args, with_backlog: bool) -> Events:
    hot = create_event(api, token, "Flash sale: the hot one", args.hot_capacity)
    spread = [
        create_event(api, token, f"Spread event {i + 1}", args.spread_capacity) for i in range(args.spread_events)
    ]
    warmup = create_event(api, token, "Warm-up", 1_000_000)
    events = Events(hot=hot, spread=spread, warmup=warmup)
    if with_backlog:
        events.backlog = [create_event(api, token, f"Backlog hot event {i + 1}", args.hot_capacity) for i in range(2)]
    if args.waits > 0:
        events.waits = create_event(api, token, "Waiting room", args.hot_capacity)
    return events


# ----------------------------------------------------------------------------- load (wrk)


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
    hot = events.hot if hot is None else hot
    spread = events.spread if spread is None else spread
    cmd = [
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
    line = next((ln for ln in output.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if process.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({process.returncode}):\n{output[-1500:]}")
    data = json.loads(line[len("BENCH_JSON ") :])
    ids = [ln for ln in ids_file.read_text().split() if ln] if ids_file.exists() else []
    return WrkResult(
        duration_s=data["duration_us"] / 1e6,
        statuses=data["statuses"],
        errors=data["errors"],
        ids=ids,
        latency_us=data["latency_us"],
    )


# ----------------------------------------------------------------------------- Postgres


class Db:
    def __init__(self, url: str) -> None:
        import psycopg2

        self.connection = psycopg2.connect(url, connect_timeout=10)
        self.connection.autocommit = True

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def one(self, sql: str, params: tuple = ()) -> tuple:
        return self.rows(sql, params)[0]

    def close(self) -> None:
        self.connection.close()


def recreate_database(admin_url: str, name: str) -> str:
    import psycopg2

    connection = psycopg2.connect(admin_url, connect_timeout=10)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()
    return admin_url.rsplit("/", 1)[0] + "/" + name


def reset_kafka(brokers: str, deadline_s: float = 90) -> None:
    try:
        recreate_topics(brokers, deadline_s)
    except RuntimeError as error:
        raise BenchError(str(error)) from error


def produce_backlog(
    brokers: str, event_id: int, user_ids: list[int], count: int, seed: int, registry=None
) -> tuple[list[str], float]:
    """Put `count` requests for one event on booking-requests exactly as the API would
    (same producer settings, key, message body and header); returns their ids. With a
    `registry` (RedisRequestRegistry), each is also claimed there, as the API does."""
    import random

    from confluent_kafka import Producer

    sys.path.insert(0, str(ROOT))
    from atomicseats.adapters.kafka import ProducerSettings
    from atomicseats.names import BOOKING_REQUESTS_TOPIC, CORRELATION_HEADER_KAFKA
    from atomicseats.services.contracts import AcceptedRequest

    rng = random.Random(seed)
    producer = Producer(ProducerSettings(brokers, linger_ms=5, delivery_timeout_s=30).librdkafka_config())
    failures = []

    def on_delivery(error, _message):
        if error is not None:
            failures.append(error)

    ids = []
    started = time.monotonic()
    for i in range(count):
        request_id = str(uuid.uuid4())
        accepted = AcceptedRequest(
            request_id=request_id,
            user_id=user_ids[i % len(user_ids)],
            event_id=event_id,
            seats=rng.randint(1, 4),
            idempotency_key=None,
            correlation_id=f"bench-{request_id[:8]}",
            accepted_at=datetime.now(UTC),
        )
        value = json.dumps(accepted.to_message(), separators=(",", ":")).encode()
        headers = [(CORRELATION_HEADER_KAFKA, accepted.correlation_id.encode())]
        while True:
            try:
                producer.produce(
                    BOOKING_REQUESTS_TOPIC,
                    key=str(event_id).encode(),
                    value=value,
                    headers=headers,
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        if registry is not None:
            registry.claim(accepted)
        ids.append(request_id)
    if producer.flush(60) != 0 or failures:
        raise BenchError(f"backlog not acknowledged by Kafka: {failures[:3]}")
    return ids, time.monotonic() - started


# ----------------------------------------------------------------------------- measuring outcomes


def wait_final(db: Db, event_ids: list[int], expected_ids: set[str], deadline_s: float, what: str) -> float:
    """Wait until every expected id is final and nothing of these events is pending.
    Gives up at the deadline, or after 60 s with nothing pending and no progress."""
    started = time.monotonic()
    last_progress, last_final = started, -1
    while True:
        final, pending = db.one(
            "SELECT count(*) FILTER (WHERE status <> 'pending'), count(*) FILTER (WHERE status = 'pending')"
            " FROM booking_requests WHERE event_id = ANY(%s)",
            (event_ids,),
        )
        now = time.monotonic()
        if final != last_final:
            last_final, last_progress = final, now
        if final >= len(expected_ids) and pending == 0:
            missing = expected_ids - final_ids(db, event_ids)
            if not missing:
                return now - started
        if now - started > deadline_s:
            say(f"{what}: deadline {deadline_s:.0f}s reached with {pending} pending")
            return now - started
        if pending == 0 and now - last_progress > 60:
            say(f"{what}: nothing pending and no progress for 60s; some requests never arrived")
            return now - started
        time.sleep(0.25)


@dataclass
class OutboxDrain:
    emails_at_start: int
    unpublished_at_start: int
    seconds: float
    emails_left: int
    unpublished_left: int

    def describe(self) -> str:
        rate = (self.emails_at_start - self.emails_left) / self.seconds if self.seconds > 0 else float("nan")
        left = (
            ""
            if not (self.emails_left or self.unpublished_left)
            else f"; NOT drained: {self.emails_left} e-mails, {self.unpublished_left} domain events left"
        )
        return (
            f"{self.emails_at_start} e-mails and {self.unpublished_at_start} domain events pending; "
            f"waited {self.seconds:.1f}s ({fmt(rate)} e-mails/s){left}"
        )


def wait_outbox(db: Db, deadline_s: float) -> OutboxDrain:
    """Wait until the outbox has sent every e-mail and published every domain event."""
    query = (
        "SELECT count(*) FILTER (WHERE channel = 'email' AND status = 'pending'),"
        " count(*) FILTER (WHERE published_at IS NULL) FROM outbox"
    )
    started = time.monotonic()
    emails0, unpublished0 = db.one(query)
    emails, unpublished = emails0, unpublished0
    while (emails or unpublished) and time.monotonic() - started < deadline_s:
        time.sleep(0.5)
        emails, unpublished = db.one(query)
    return OutboxDrain(emails0, unpublished0, time.monotonic() - started, emails, unpublished)


def final_ids(db: Db, event_ids: list[int]) -> set[str]:
    rows = db.rows(
        "SELECT request_id FROM booking_requests WHERE event_id = ANY(%s) AND status <> 'pending'", (event_ids,)
    )
    return {row[0] for row in rows}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Latency:
    count: int
    p50_ms: float
    p99_ms: float
    record_p50_ms: float
    record_p99_ms: float
    max_ms: float


def outcome_latency(rows: list[tuple], ids: set[str]) -> Latency:
    """rows: (request_id, accepted_at, created_at, decided_at)."""
    decided, recorded = [], []
    for request_id, accepted_at, created_at, decided_at in rows:
        if ids and request_id not in ids or accepted_at is None:
            continue
        if decided_at is not None:
            decided.append((decided_at - accepted_at).total_seconds() * 1000)
        if created_at is not None:
            recorded.append((created_at - accepted_at).total_seconds() * 1000)
    return Latency(
        count=len(decided),
        p50_ms=percentile(decided, 50),
        p99_ms=percentile(decided, 99),
        record_p50_ms=percentile(recorded, 50),
        record_p99_ms=percentile(recorded, 99),
        max_ms=max(decided) if decided else float("nan"),
    )


def oversold_pg(db: Db) -> tuple[int, int, list[str]]:
    rows = db.rows(
        "SELECT e.id, e.capacity_seats, e.reserved_seats,"
        " COALESCE((SELECT sum(b.seats) FROM bookings b WHERE b.event_id = e.id AND b.status = 'confirmed'), 0)"
        " FROM events e"
    )
    return _oversold(rows)


def _oversold(rows) -> tuple[int, int, list[str]]:
    oversold, mismatched, notes = 0, 0, []
    for event_id, capacity, reserved, confirmed in rows:
        confirmed = int(confirmed)
        if confirmed > capacity:
            oversold += confirmed - capacity
            notes.append(f"event {event_id}: {confirmed} confirmed > capacity {capacity}")
        if confirmed != reserved:
            mismatched += 1
            notes.append(f"event {event_id}: reserved_seats {reserved} != confirmed {confirmed}")
    return oversold, mismatched, notes


@dataclass
class DecideResult:
    mode: str
    count: int
    decided_per_s: float
    wall_per_s: float
    span_s: float
    wall_s: float
    lost: int
    record_per_s: float | None = None
    record_wall_per_s: float | None = None
    statuses: dict[str, int] = field(default_factory=dict)
    cpu: CpuReport | None = None
    record_cpu: CpuReport | None = None


def decided_rate(db: Db, event_id: int, count: int, started_wall: datetime) -> tuple[float, float, float, float]:
    """(decided/s between first and last decision, wall-clock decided/s from `started_wall`,
    the span, the wall time). The first batch is left out of the span rate: its
    decisions carry the span's start time."""
    first, last = db.one(
        "SELECT min(decided_at), max(decided_at) FROM booking_requests WHERE event_id = %s AND status <> 'pending'",
        (event_id,),
    )
    if first is None:
        return 0.0, 0.0, 0.0, 0.0
    (in_first,) = db.one(
        "SELECT count(*) FROM booking_requests WHERE event_id = %s AND decided_at = %s", (event_id, first)
    )
    span = (last - first).total_seconds()
    wall = (last - started_wall).total_seconds()
    rate = (count - in_first) / span if span > 0 else float("nan")
    return rate, count / wall if wall > 0 else float("nan"), span, wall


def status_counts(db: Db, event_id: int) -> dict[str, int]:
    return dict(
        db.rows("SELECT status, count(*) FROM booking_requests WHERE event_id = %s GROUP BY status", (event_id,))
    )


# ----------------------------------------------------------------------------- the full pipeline


@dataclass
class FullResult:
    accept: WrkResult
    accept_cpu: CpuReport
    drain_s: float
    latency: Latency
    lost_api: int
    pipeline: DecideResult | None
    stages: DecideResult | None
    oversold: int
    counter_mismatches: int
    oversold_notes: list[str]
    audit_ok: bool
    audit_text: str
    accept_statuses_db: dict[str, int]
    top_file: Path
    outbox: OutboxDrain | None
    waits: WaitsResult | None = None


# ----------------------------------------------------------------------------- waits phase

WAIT_S = 30  # each long poll's ?wait= (LONG_POLL_WAIT_S_MAX)
SAMPLE_CLIENTS = 4  # clients of the other routes, each back to back
SAMPLE_TIMEOUT_S = 30.0


@dataclass
class RouteSample:
    """Answer times of the other routes over a few seconds."""

    ms: dict[str, list[float]]
    failures: int

    def quantile(self, q: float, route: str | None = None) -> float:
        values = self.ms.get(route, []) if route else [v for vs in self.ms.values() for v in vs]
        return percentile(values, q)

    def describe(self) -> str:
        parts = [
            f"{route} p50 {fmt(percentile(values, 50), 1)} / p99 {fmt(percentile(values, 99), 1)} ms "
            f"({len(values)} answers)"
            for route, values in self.ms.items()
        ]
        return "; ".join(parts) + f"; failures {self.failures}"


@dataclass
class WaitsResult:
    count: int
    open_s: float
    subscribed: int
    idle: RouteSample
    waiting: RouteSample
    answered_final: int
    answered_pending: int
    errors: int
    last_answer_s: float  # after decisions resumed
    lost: int
    booked_ids: list[str]


def sample_routes(api: str, tokens: list[str], event_id: int, seconds: float) -> tuple[RouteSample, list[str]]:
    """SAMPLE_CLIENTS clients alternate GET /api/events/all and POST /api/events/book for
    `seconds`; returns the answer times and the ids of the bookings accepted."""
    ms: dict[str, list[float]] = {"GET /api/events/all": [], "POST /api/events/book": []}
    booked: list[str] = []
    failures = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        turn = index
        while time.monotonic() < deadline:
            token = tokens[turn % len(tokens)]
            is_book = turn % 2 == 1
            route = "POST /api/events/book" if is_book else "GET /api/events/all"
            body = json.dumps({"eventId": event_id, "numberOfSeats": 1}).encode() if is_book else None
            request = urllib.request.Request(f"{api}{route.split(' ')[1]}", data=body, method=route.split(" ")[0])
            request.add_header("Authorization", f"Bearer {token}")
            request.add_header("Content-Type", "application/json")
            started = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=SAMPLE_TIMEOUT_S) as response:
                    payload = json.loads(response.read() or b"{}")
                    elapsed_ms = (time.monotonic() - started) * 1000
                with lock:
                    ms[route].append(elapsed_ms)
                    if is_book:
                        booked.append(payload["data"]["requestId"])
            except (urllib.error.URLError, OSError, ValueError, KeyError):
                with lock:
                    failures[0] += 1
                    ms[route].append(SAMPLE_TIMEOUT_S * 1000)
            turn += SAMPLE_CLIENTS

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(SAMPLE_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + SAMPLE_TIMEOUT_S + 5)
    return RouteSample(ms, failures[0]), booked


class LongPolls:
    """`count` long polls on one asyncio loop in a thread: raw HTTP/1.1, one connection each."""

    def __init__(self, api: str, polls: list[tuple[str, str]]) -> None:
        from urllib.parse import urlsplit

        url = urlsplit(api)
        self.host, self.port = url.hostname, url.port
        self.polls = polls
        self.answers: list = []
        self.answered_at: list[float] = []
        self.thread = threading.Thread(target=self._run, name="bench-long-polls", daemon=True)

    def start(self) -> None:
        self.thread.start()

    async def _one(self, request_id: str, token: str):
        import asyncio

        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(
                (
                    f"GET /api/bookings/requests/{request_id}?wait={WAIT_S} HTTP/1.1\r\n"
                    f"Host: {self.host}:{self.port}\r\nAuthorization: Bearer {token}\r\n"
                    "Connection: close\r\n\r\n"
                ).encode()
            )
            await writer.drain()
            raw = await asyncio.wait_for(reader.read(), WAIT_S + 60)
        finally:
            writer.close()
        self.answered_at.append(time.monotonic())
        head, _, body = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 200:
            return f"HTTP {status}"
        return json.loads(body)["data"]["status"]

    def _run(self) -> None:
        import asyncio

        async def everyone():
            return await asyncio.gather(*(self._one(rid, token) for rid, token in self.polls), return_exceptions=True)

        self.answers = asyncio.run(everyone())


def subscribed_count(client, request_ids: list[str]) -> int:
    from atomicseats.adapters.redis_state import outcome_channel

    count = 0
    for first in range(0, len(request_ids), 500):
        channels = [outcome_channel(rid) for rid in request_ids[first : first + 500]]
        count += sum(1 for _, subscribers in client.pubsub_numsub(*channels) if subscribers > 0)
    return count


def measure_waits(stack: Stack, db: Db, service_env: dict, events: Events, accounts: dict, args) -> WaitsResult:
    """Decisions are paused by stopping the bridge (it starts again in ~3 s; the worker takes
    10-30 s on a busy 2-core machine, as long as a whole wait): the requests wait in Kafka,
    and the API knows them from the request registry, as it knows every request it accepted."""
    import redis

    from atomicseats.adapters.redis_state import RedisRequestRegistry

    count = args.waits
    say(f"waits phase: bridge stopped, {count} requests for a fresh event accepted (pending), then {count} long polls")
    stack.platform("stop", "bridge")
    tokens = accounts["guest_tokens"]
    idle, booked_idle = sample_routes(API_URL, tokens, events.warmup, args.waits_sample)
    say(f"  other routes, no wait open: {idle.describe()}")
    client = redis.Redis.from_url(service_env["REDIS_URL"], socket_timeout=10)
    ids, _ = produce_backlog(
        service_env["KAFKA_BROKERS"],
        events.waits,
        accounts["guest_ids"],
        count,
        args.seed + 7,
        registry=RedisRequestRegistry(client),
    )
    polls = LongPolls(API_URL, [(rid, tokens[index % len(tokens)]) for index, rid in enumerate(ids)])
    opened = time.monotonic()
    polls.start()
    subscribed = 0
    while time.monotonic() - opened < WAIT_S / 2:
        subscribed = subscribed_count(client, ids)
        if subscribed >= count:
            break
        time.sleep(0.5)
    open_s = time.monotonic() - opened
    say(f"  {subscribed} of {count} waits open and subscribed after {open_s:.1f}s")
    waiting, booked_waiting = sample_routes(API_URL, tokens, events.warmup, args.waits_sample)
    say(f"  other routes, {subscribed} waits open: {waiting.describe()}")
    started = time.monotonic()
    finish = stack.start_async("bridge")
    polls.thread.join(WAIT_S + 90)
    finish()
    answers = polls.answers
    final = sum(1 for answer in answers if answer in ("confirmed", "partial", "waitlisted", "rejected"))
    pending = sum(1 for answer in answers if answer == "pending")
    last_s = max(polls.answered_at, default=started) - started
    say(
        f"  decisions resumed: {final} waits answered final, {pending} pending, "
        f"{len(ids) - final - pending} errors; last answer {last_s:.1f}s after the bridge start"
    )
    wait_final(db, [events.waits], set(ids), args.drain_timeout, "waits-phase requests")
    lost = len(set(ids) - final_ids(db, [events.waits]))
    client.close()
    return WaitsResult(
        count=count,
        open_s=open_s,
        subscribed=subscribed,
        idle=idle,
        waiting=waiting,
        answered_final=final,
        answered_pending=pending,
        errors=len(ids) - final - pending,
        last_answer_s=last_s,
        lost=lost,
        booked_ids=booked_idle + booked_waiting,
    )


def run_full(args) -> FullResult:
    say("full pipeline: stopping any leftover bench processes, starting the services")
    base_env = {**os.environ, "STACK": STACK}
    run(
        ["bash", "scripts/platform.sh", "stop", "api", "flower", "beat", "worker", "bridge"],
        base_env,
        180,
        "platform.log",
    )
    run(["bash", "scripts/services.sh", "start"], base_env, 600, "services.log")
    service_env = services_env()
    say("fresh database, empty Kafka topics, empty Redis")
    database_url = recreate_database(service_env["DATABASE_URL"], BENCH_DB)
    reset_kafka(service_env["KAFKA_BROKERS"])
    import redis

    redis.Redis.from_url(service_env["REDIS_URL"], socket_timeout=10).flushall()

    stack = Stack(database_url)
    say(f"platform up (STACK=bench, API {API_URL}, log {WORK / 'platform.log'})")
    stack.platform("up", timeout_s=600)
    app_env = stack.app_env()
    accounts = make_accounts(app_env, args.guests, "full")
    events = create_events(API_URL, accounts["host_token"], args, with_backlog=args.backlog > 0)
    tokens_file = WORK / "tokens-full.txt"
    db = Db(database_url)
    try:
        if args.warmup > 0:
            say(f"warm-up: {args.warmup:g}s, {args.connections} connections, separate event")
            warm = run_wrk(
                API_URL,
                tokens_file,
                events,
                args,
                args.connections,
                args.warmup,
                "warmup-full",
                hot=events.warmup,
                spread=[],
            )
            wait_final(db, [events.warmup], set(warm.ids), args.drain_timeout, "warm-up drain")
            # An on-sale starts on a quiet platform: the warm-up's e-mails go out first.
            say(f"waiting (≤{args.outbox_timeout:g}s) for the outbox to send the warm-up's e-mails")
            say(f"  outbox: {wait_outbox(db, args.outbox_timeout).describe()}")

        say(
            f"accept phase: {args.connections} connections for {args.duration:g}s "
            f"({args.hot_percent}% to the hot event, the rest over {len(events.spread)} events)"
        )
        settle_disk()
        meter = CpuMeter(bench_roots())
        top_file = WORK / "top-accept.txt"
        meter.start()
        accept = run_wrk(
            API_URL,
            tokens_file,
            events,
            args,
            args.connections,
            args.duration,
            "accept-full",
            meter=meter,
            top_file=top_file,
        )
        accept_cpu = meter.stop()
        say(
            f"accepted {accept.accepted} in {accept.duration_s:.1f}s = {accept.accepted_per_s:.0f}/s; "
            f"non-2xx: {accept.non_2xx()}"
        )

        phase_events = [events.hot, *events.spread]
        ids = set(accept.ids)
        say(f"draining: waiting (≤{args.drain_timeout:g}s) for a final outcome of every accepted request")
        drain_s = wait_final(db, phase_events, ids, args.drain_timeout, "accept drain")
        rows = db.rows(
            "SELECT request_id, accepted_at, created_at, decided_at FROM booking_requests WHERE event_id = ANY(%s)",
            (phase_events,),
        )
        latency = outcome_latency(rows, ids)
        lost_api = len(ids - final_ids(db, phase_events))
        accept_statuses_db = dict(
            db.rows(
                "SELECT status, count(*) FROM booking_requests WHERE event_id = ANY(%s) GROUP BY status",
                (phase_events,),
            )
        )
        say(
            f"drained in {drain_s:.1f}s; accepted→final p50 {latency.p50_ms:.0f} ms, p99 {latency.p99_ms:.0f} ms; "
            f"lost {lost_api}"
        )

        pipeline = stages = None
        outbox = None
        if args.backlog > 0:
            say(f"waiting (≤{args.outbox_timeout:g}s) for the outbox to send the accept phase's e-mails first")
            outbox = wait_outbox(db, args.outbox_timeout)
            say(f"  outbox: {outbox.describe()}")
            pipeline = decide_pipeline(
                stack, db, service_env["KAFKA_BROKERS"], events.backlog[0], accounts["guest_ids"], args
            )
            if not args.skip_stages:
                stages = decide_stages(
                    stack, db, service_env["KAFKA_BROKERS"], events.backlog[1], accounts["guest_ids"], args
                )

        waits = None
        if args.waits > 0:
            try:
                waits = measure_waits(stack, db, service_env, events, accounts, args)
                wait_final(db, [events.warmup], set(waits.booked_ids), args.drain_timeout, "waits-phase bookings")
            except BenchError as error:  # the other phases' figures still stand
                say(f"waits phase FAILED: {error}")
                stack.platform("start", "bridge")

        oversold, mismatched, notes = oversold_pg(db)
        say("flask audit --pending-grace-s 0")
        audit = run(
            [str(BIN / "flask"), "--app", "wsgi", "audit", "--pending-grace-s", "0"],
            app_env,
            600,
            "audit.log",
            check=False,
        )
        audit_lines = (WORK / "audit.log").read_text(errors="replace").rstrip().splitlines()
        audit_text = "\n".join(line for line in audit_lines[-12:] if line.strip() and not line.startswith("---"))
    finally:
        db.close()
    return FullResult(
        accept=accept,
        accept_cpu=accept_cpu,
        drain_s=drain_s,
        latency=latency,
        lost_api=lost_api,
        pipeline=pipeline,
        stages=stages,
        oversold=oversold,
        counter_mismatches=mismatched,
        oversold_notes=notes,
        audit_ok=audit.returncode == 0,
        audit_text=audit_text,
        accept_statuses_db=accept_statuses_db,
        top_file=top_file,
        outbox=outbox,
        waits=waits,
    )


def decide_pipeline(stack: Stack, db: Db, brokers: str, event_id: int, user_ids: list[int], args) -> DecideResult:
    say(f"decide (pipeline): bridge stopped, {args.backlog} requests for one hot event produced to Kafka")
    stack.platform("stop", "bridge")
    ids, produce_s = produce_backlog(brokers, event_id, user_ids, args.backlog, args.seed + 1)
    say(f"  produced and acked in {produce_s:.1f}s; starting the bridge (worker running), clock on")
    rate, wall_rate, span, wall, lost, cpu = time_drain(stack, db, event_id, ids, "bridge", "bridge", args)
    say(f"  decided {len(ids)} in {span:.1f}s = {rate:.0f}/s (wall incl. bridge start {wall_rate:.0f}/s); lost {lost}")
    return DecideResult(
        "pipeline", len(ids), rate, wall_rate, span, wall, lost, statuses=status_counts(db, event_id), cpu=cpu
    )


def time_drain(stack: Stack, db: Db, event_id: int, ids: list[str], proc: str, cpu_label: str, args):
    """Start `proc`, wait until every request in `ids` is final, and time it: (decided/s, wall
    decided/s, span s, wall s, lost, CPU report). The clock starts with the process."""
    settle_disk()
    meter = CpuMeter(bench_roots())
    meter.start()
    started_wall = datetime.now(UTC)
    finish = stack.start_async(proc)
    try:
        wait_final(db, [event_id], set(ids), args.drain_timeout, f"backlog drained by the {proc}")
        meter.add_root(cpu_label, _pidfile(APP_RUN / f"{proc}.pid") or 0)
        cpu = meter.stop()
    finally:
        finish()
    rate, wall_rate, span, wall = decided_rate(db, event_id, len(ids), started_wall)
    lost = len(set(ids) - final_ids(db, [event_id]))
    return rate, wall_rate, span, wall, lost, cpu


def decide_stages(stack: Stack, db: Db, brokers: str, event_id: int, user_ids: list[int], args) -> DecideResult:
    say(f"decide (stages): bridge and worker stopped, {args.backlog} more requests produced to Kafka")
    stack.platform("stop", "bridge", "worker")
    ids, _ = produce_backlog(brokers, event_id, user_ids, args.backlog, args.seed + 2)
    meter = CpuMeter(bench_roots())
    meter.start()
    started = time.monotonic()
    finish = stack.start_async("bridge")
    try:
        deadline = time.monotonic() + args.drain_timeout
        while True:
            (recorded,) = db.one("SELECT count(*) FROM booking_requests WHERE event_id = %s", (event_id,))
            if recorded >= len(ids) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        record_wall = time.monotonic() - started
        meter.add_root("bridge", _pidfile(APP_RUN / "bridge.pid") or 0)
        record_cpu = meter.stop()
    finally:
        finish()
    first, last = db.one(
        "SELECT min(created_at), max(created_at) FROM booking_requests WHERE event_id = %s", (event_id,)
    )
    (in_first,) = db.one(
        "SELECT count(*) FROM booking_requests WHERE event_id = %s AND created_at = %s", (event_id, first)
    )
    record_span = (last - first).total_seconds() if first else 0
    record_rate = (recorded - in_first) / record_span if record_span > 0 else float("nan")
    say(f"  bridge alone recorded {recorded} at {record_rate:.0f}/s (wall incl. start {recorded / record_wall:.0f}/s)")
    say("  starting the worker, clock on")
    rate, wall_rate, span, wall, lost, cpu = time_drain(stack, db, event_id, ids, "worker", "worker (celery)", args)
    say(f"  worker alone decided {len(ids)} in {span:.1f}s = {rate:.0f}/s (wall incl. worker start {wall_rate:.0f}/s)")
    return DecideResult(
        "stages",
        len(ids),
        rate,
        wall_rate,
        span,
        wall,
        lost,
        record_per_s=record_rate,
        record_wall_per_s=recorded / record_wall,
        statuses=status_counts(db, event_id),
        cpu=cpu,
        record_cpu=record_cpu,
    )


# ----------------------------------------------------------------------------- the embedded default


@dataclass
class EmbeddedResult:
    accept: WrkResult
    cpu: CpuReport
    decided: int
    latency: Latency
    lost: int
    oversold: int
    counter_mismatches: int


def run_embedded(args) -> EmbeddedResult:
    directory = RUN / "embedded"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    database = directory / "atomicseats.db"
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "REDIS_HOST",
            "KAFKA_BROKERS",
            "KAFKA_BROKER",
            "MAIL_SERVER",
            "CELERY_BROKER_URL",
            "ATOMICSEATS_ENV",
            "PIPELINE",
        }
    }
    env.update(BENCH_APP_ENV)
    env.update(
        DATABASE_URL=f"sqlite:///{database}",
        PIPELINE="embedded",
        FLASK_APP="wsgi",
        PYTHONUNBUFFERED="1",
        LOG_LEVEL=os.environ.get("LOG_LEVEL", "INFO"),
        LOG_JSON=os.environ.get("LOG_JSON", "true"),
        SESSION_SECRET=secrets.token_urlsafe(48),
        ACCESS_TOKEN_SECRET=secrets.token_urlsafe(48),
        REFRESH_TOKEN_SECRET=secrets.token_urlsafe(48),
    )
    say(f"embedded default: fresh SQLite {database}, flask db upgrade")
    run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], env, 300, "embedded-migrate.log")
    accounts = make_accounts(env, args.guests, "embedded")
    url = f"http://127.0.0.1:{args.embedded_port}"
    workers, threads = os.environ.get("API_WORKERS", "3"), os.environ.get("API_THREADS", "8")
    command = [
        str(BIN / "gunicorn"),
        "--bind",
        f"127.0.0.1:{args.embedded_port}",
        "--workers",
        workers,
        "--threads",
        threads,
        "--worker-class",
        "gthread",
        "--timeout",
        "60",
        "--graceful-timeout",
        "10",
        "wsgi:app",
    ]
    log = open(directory / "api.log", "a")  # noqa: SIM115 - the server outlives this block
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http_ok(f"{url}/readyz", 60)
        say(f"embedded API ready on {url} ({workers} workers x {threads} threads)")
        events = create_events(url, accounts["host_token"], args, with_backlog=False)
        tokens_file = WORK / "tokens-embedded.txt"
        if args.warmup > 0:
            run_wrk(
                url,
                tokens_file,
                events,
                args,
                args.connections,
                args.warmup,
                "warmup-embedded",
                hot=events.warmup,
                spread=[],
            )
        say(f"embedded accept phase: {args.connections} connections for {args.duration:g}s")
        settle_disk()
        meter = CpuMeter({"api (embedded gunicorn)": server.pid})
        meter.start()
        accept = run_wrk(
            url,
            tokens_file,
            events,
            args,
            args.connections,
            args.duration,
            "accept-embedded",
            meter=meter,
            top_file=WORK / "top-embedded.txt",
        )
        cpu = meter.stop()
        say(
            f"embedded accepted {accept.accepted} in {accept.duration_s:.1f}s = {accept.accepted_per_s:.0f}/s; "
            f"non-2xx: {accept.non_2xx()}"
        )
    finally:
        _stop_process_group(server, 20)
        log.close()
    connection = sqlite3.connect(database, timeout=30)
    try:
        phase_events = [events.hot, *events.spread]
        marks = ",".join("?" * len(phase_events))
        rows = connection.execute(
            f"SELECT request_id, status, accepted_at, created_at, decided_at FROM booking_requests"
            f" WHERE event_id IN ({marks})",
            phase_events,
        ).fetchall()
        ids = set(accept.ids)
        final = {row[0] for row in rows if row[1] != "pending"}
        parsed = [(row[0], _sqlite_time(row[2]), _sqlite_time(row[3]), _sqlite_time(row[4])) for row in rows]
        latency = outcome_latency(parsed, ids)
        oversold, mismatched, _notes = _oversold(
            connection.execute(
                "SELECT e.id, e.capacity_seats, e.reserved_seats, COALESCE((SELECT sum(b.seats) FROM bookings b"
                " WHERE b.event_id = e.id AND b.status = 'confirmed'), 0) FROM events e"
            ).fetchall()
        )
    finally:
        connection.close()
    return EmbeddedResult(
        accept=accept,
        cpu=cpu,
        decided=len(ids & final),
        latency=latency,
        lost=len(ids - final),
        oversold=oversold,
        counter_mismatches=mismatched,
    )


def _sqlite_time(value) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _stop_process_group(process: subprocess.Popen, timeout_s: float) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    except ProcessLookupError:
        pass


# ----------------------------------------------------------------------------- report


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def report(args, full: FullResult | None, embedded: EmbeddedResult | None) -> tuple[str, bool]:
    cores = os.cpu_count()
    print()
    print("=" * 100)
    print(
        f"AtomicSeats flash-sale benchmark  {time.strftime('%F %T')}  {cores} CPUs  "
        f"load: {args.connections} connections x {args.duration:g}s, {args.guests} guests, "
        f"{args.hot_percent}% to one hot event (capacity {args.hot_capacity}), the rest over "
        f"{args.spread_events} events, 1-4 seats"
    )
    print("=" * 100)
    col = "{:<44}{:>20}{:>20}   {}"
    print(col.format("", "full pipeline", "embedded default", ""))
    emb = embedded
    ok = True
    if full:
        acc_floor = "ok" if full.accept.accepted_per_s >= FLOOR_ACCEPTED else "BELOW FLOOR"
        decided = full.pipeline.decided_per_s if full.pipeline else float("nan")
        dec_floor = "ok" if decided >= FLOOR_DECIDED else "BELOW FLOOR"
    else:
        acc_floor = dec_floor = ""
        decided = float("nan")
    F = full
    print(
        col.format(
            "accepted requests/s at the API (2xx)",
            fmt(F and F.accept.accepted_per_s),
            fmt(emb and emb.accept.accepted_per_s),
            f"floor >= {FLOOR_ACCEPTED}: {acc_floor}" if F else "",
        )
    )
    print(
        col.format(
            "decided requests/s, hot event with backlog",
            fmt(decided),
            fmt(emb and emb.decided / emb.accept.duration_s) + "*",
            f"floor >= {FLOOR_DECIDED}: {dec_floor}" if F else "",
        )
    )
    print(
        col.format(
            "accepted -> final outcome p50 (ms)",
            fmt(F and F.latency.p50_ms),
            fmt(emb and emb.latency.p50_ms),
            "accept phase, from Postgres/SQLite timestamps",
        )
    )
    print(
        col.format(
            "accepted -> final outcome p99 (ms)", fmt(F and F.latency.p99_ms), fmt(emb and emb.latency.p99_ms), ""
        )
    )
    print(
        col.format(
            "HTTP response time p50 / p99 (ms, wrk)",
            f"{fmt(F and F.accept.http_ms('50'), 1)} / {fmt(F and F.accept.http_ms('99'), 1)}" if F else "-",
            f"{fmt(emb.accept.http_ms('50'), 1)} / {fmt(emb.accept.http_ms('99'), 1)}" if emb else "-",
            "",
        )
    )
    print(
        col.format(
            "requests answered 2xx (accept phase)", fmt(F and F.accept.accepted), fmt(emb and emb.accept.accepted), ""
        )
    )
    print(col.format("oversold seats", fmt(F and F.oversold), fmt(emb and emb.oversold), "must be 0"))
    lost_full = (F.lost_api + sum(d.lost for d in (F.pipeline, F.stages, F.waits) if d)) if F else None
    print(col.format("lost requests", fmt(lost_full), fmt(emb and emb.lost), "must be 0"))
    print(
        col.format(
            "events whose reserved_seats != confirmed",
            fmt(F and F.counter_mismatches),
            fmt(emb and emb.counter_mismatches),
            "",
        )
    )
    W = F.waits if F else None
    print(
        col.format(
            f"other routes p50 / p99 (ms), {W.count if W else 0} waits open" if W else "other routes, waits open",
            f"{fmt(W.waiting.quantile(50), 1)} / {fmt(W.waiting.quantile(99), 1)}" if W else "-",
            "-",
            f"no wait open: {fmt(W.idle.quantile(50), 1)} / {fmt(W.idle.quantile(99), 1)}" if W else "",
        )
    )
    print(
        col.format(
            "waits answered with their final outcome",
            f"{W.answered_final} / {W.count}" if W else "-",
            "-",
            "once decisions resume; must be all" if W else "",
        )
    )
    print("  * embedded decides inline, before it answers: decided/s = requests decided in the accept phase / duration")
    if F:
        other = OTHER
        shares = [("accept phase", F.accept_cpu)]
        shares += [("pipeline decide", F.pipeline.cpu)] if F.pipeline and F.pipeline.cpu else []
        print(
            "  interference: processes outside this benchmark used "
            + ", ".join(
                f"{100 * cpu.by_group.get(other, 0) / cpu.wall_s:.0f}% of a core in the {name}" for name, cpu in shares
            )
            + " (the figures are only as good as the machine is quiet)"
        )
        print()
        print(f"full pipeline, accept phase: non-2xx {F.accept.non_2xx()}; outcomes {F.accept_statuses_db}")
        print(
            f"  accepted -> recorded by the bridge p50 {fmt(F.latency.record_p50_ms)} ms, p99 "
            f"{fmt(F.latency.record_p99_ms)} ms; accepted -> final max {fmt(F.latency.max_ms)} ms; "
            f"backlog drained {F.drain_s:.1f}s after the load stopped"
        )
        print(f"  CPU during the accept phase (top -b -n1 mid-phase in {F.top_file}):")
        for line in F.accept_cpu.lines({"accepted": F.accept.accepted}):
            print(line)
        if F.outbox:
            print(f"outbox after the accept phase (before the decide phase): {F.outbox.describe()}")
        if F.pipeline:
            p = F.pipeline
            print(
                f"decided/s (headline) = pipeline mode: {p.count} requests for one hot event waiting in Kafka, "
                f"bridge started with the worker running;"
            )
            print(
                f"  {fmt(p.decided_per_s)}/s from first to last decision ({p.span_s:.1f}s), "
                f"{fmt(p.wall_per_s)}/s wall clock incl. bridge start ({p.wall_s:.1f}s); outcomes {p.statuses}"
            )
            if p.cpu:
                for line in p.cpu.lines({"decided": p.count}):
                    print(line)
        if W:
            print(
                f"waits phase: {W.subscribed} of {W.count} long polls open and subscribed in {W.open_s:.1f}s; "
                f"after decisions resumed {W.answered_final} final, {W.answered_pending} still pending, "
                f"{W.errors} errors, last answer {W.last_answer_s:.1f}s after it"
            )
            print(f"  other routes, no wait open:  {W.idle.describe()}")
            print(f"  other routes, {W.count} waits open: {W.waiting.describe()}")
        if F.stages:
            s = F.stages
            print(
                f"stages (diagnostic, {s.count} requests): bridge alone records {fmt(s.record_per_s)}/s "
                f"(wall {fmt(s.record_wall_per_s)}/s); worker alone decides {fmt(s.decided_per_s)}/s "
                f"(wall incl. worker start {fmt(s.wall_per_s)}/s)"
            )
            print("  (the worker alone also sends the e-mails still queued from the pipeline phase meanwhile)")
            if s.record_cpu:
                print("  CPU, bridge alone:")
                for line in s.record_cpu.lines({"recorded": s.count}):
                    print(line)
            if s.cpu:
                print("  CPU, worker alone:")
                for line in s.cpu.lines({"decided": s.count}):
                    print(line)
        print(f"audit ({'clean' if F.audit_ok else 'FAILED'}):")
        for line in F.audit_text.splitlines():
            print(f"  {line}")
        for note in F.oversold_notes[:10]:
            print(f"  ! {note}")
        ok = ok and F.oversold == 0 and lost_full == 0 and F.audit_ok
    if emb:
        print(f"embedded default: non-2xx {emb.accept.non_2xx()}; CPU during its accept phase:")
        for line in emb.cpu.lines({"accepted": emb.accept.accepted}):
            print(line)
        ok = ok and emb.oversold == 0 and emb.lost == 0
    print(f"details: {WORK}")
    if F:
        final = (
            f"accepted_per_s={round(F.accept.accepted_per_s)} "
            f"decided_per_s={round(decided) if not math.isnan(decided) else 0} "
            f"p50_ms={round(F.latency.p50_ms) if not math.isnan(F.latency.p50_ms) else 0} "
            f"p99_ms={round(F.latency.p99_ms) if not math.isnan(F.latency.p99_ms) else 0} "
            f"oversold={F.oversold} lost={lost_full}"
        )
        if W:
            final += (
                f" waits_open={W.subscribed} waiting_other_p50_ms={round(W.waiting.quantile(50))} "
                f"waiting_other_p99_ms={round(W.waiting.quantile(99))} waits_final={W.answered_final}"
            )
            if args.strict and W.answered_final != W.count:
                ok = False
        if args.strict and (acc_floor != "ok" or dec_floor != "ok"):
            ok = False
    else:
        e = emb
        final = (
            f"accepted_per_s={round(e.accept.accepted_per_s)} "
            f"decided_per_s={round(e.decided / e.accept.duration_s)} p50_ms={round(e.latency.p50_ms)} "
            f"p99_ms={round(e.latency.p99_ms)} oversold={e.oversold} lost={e.lost}"
        )
    return final, ok


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=15, help="seconds of load in the accept phase (15)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent client connections (64)")
    parser.add_argument(
        "--backlog",
        type=int,
        default=30000,
        help="requests in each hot-event backlog of the decide phase (30000; 0 skips it)",
    )
    parser.add_argument(
        "--waits", type=int, default=5000, help="long polls held open in the waits phase (5000; 0 skips it)"
    )
    parser.add_argument(
        "--waits-sample", type=float, default=5.0, help="seconds the other routes are sampled in the waits phase (5)"
    )
    parser.add_argument("--hot-capacity", type=int, default=1000, help="seats of the hot event (1000)")
    parser.add_argument("--spread-capacity", type=int, default=2000, help="seats of each spread event (2000)")
    parser.add_argument("--spread-events", type=int, default=20, help="number of spread events (20)")
    parser.add_argument("--hot-percent", type=int, default=70, help="share of requests to the hot event (70)")
    parser.add_argument("--guests", type=int, default=200, help="guest accounts whose tokens rotate (200)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=20,
        help="seconds of warm-up load on a separate event, all connections (20): a freshly started "
        "Kafka broker spends its first half minute JIT-compiling (twice the CPU per request), "
        "a production one is long warm",
    )
    parser.add_argument("--drain-timeout", type=float, default=300, help="seconds to wait for outcomes (300)")
    parser.add_argument(
        "--outbox-timeout",
        type=float,
        default=240,
        help="seconds to let the outbox drain after the warm-up and before the decide phase (240)",
    )
    parser.add_argument("--embedded-port", type=int, default=5290, help="port of the embedded server (5290)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the request mix (1)")
    parser.add_argument("--skip-embedded", action="store_true", help="do not run the embedded comparison")
    parser.add_argument("--skip-full", action="store_true", help="only the embedded default")
    parser.add_argument("--skip-stages", action="store_true", help="no bridge-alone / worker-alone diagnostic")
    parser.add_argument("--keep", action="store_true", help="leave the bench stack running afterwards")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a floor is missed")
    parser.add_argument("--internal-setup", nargs=2, metavar=("GUESTS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.internal_setup is None:
        if not 1 <= args.connections <= 10000 or args.duration <= 0 or args.guests < 1 or args.backlog < 0:
            parser.error("out-of-range option")
        if not 0 <= args.waits <= 20000 or not 0 < args.waits_sample <= 20:
            parser.error("out-of-range option")
        if not 0 <= args.hot_percent <= 100 or args.threads < 1 or args.threads > args.connections:
            parser.error("out-of-range option")
        if args.skip_full and args.skip_embedded:
            parser.error("nothing to run")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.internal_setup:
        internal_setup(int(args.internal_setup[0]), args.internal_setup[1])
        return 0
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (make bench installs it: apt-get install wrk)", file=sys.stderr)
        return 2
    WORK.mkdir(parents=True, exist_ok=True)
    for stale in WORK.glob("*"):
        if stale.is_file():
            stale.unlink()
    say(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before start; logs in {WORK}")
    full = embedded = None
    stack_touched = False
    try:
        if not args.skip_full:
            stack_touched = True
            full = run_full(args)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        if not args.keep:
            say("tearing the bench stack down")
            run(
                ["bash", "scripts/platform.sh", "down"],
                {**os.environ, "STACK": STACK},
                300,
                "platform.log",
                check=False,
            )
        return 2
    except BaseException:
        if stack_touched and not args.keep:
            run(
                ["bash", "scripts/platform.sh", "down"],
                {**os.environ, "STACK": STACK},
                300,
                "platform.log",
                check=False,
            )
        raise
    if stack_touched:
        if args.keep:
            say(f"--keep: the bench stack stays up (API {API_URL}); STACK=bench scripts/platform.sh down stops it")
        else:
            say("tearing the bench stack down")
            run(
                ["bash", "scripts/platform.sh", "down"],
                {**os.environ, "STACK": STACK},
                300,
                "platform.log",
                check=False,
            )
    if not args.skip_embedded:
        try:
            embedded = run_embedded(args)
        except BenchError as error:
            print(f"bench: embedded comparison failed: {error}", file=sys.stderr)
            if full is None:
                return 2
    final, ok = report(args, full, embedded)
    print(final, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
