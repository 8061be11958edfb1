"""The embedded default for comparison: the same accept load against the server `make run` starts
(scripts/api_server.sh embedded: granian, as the full mode's API) with the default config
(PIPELINE=embedded, a fresh SQLite file, decisions inline with group commit), after the bench
stack is down."""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from scripts.bench.accounts import Events, create_events, make_accounts
from scripts.bench.common import BENCH_APP_ENV, BIN, ROOT, RUN, WORK, env_without, run, say, wait_http_ok
from scripts.bench.cpu import CpuMeter, CpuReport, settle_disk
from scripts.bench.load import WrkResult, run_wrk
from scripts.bench.outcomes import Latency, count_oversold, outcome_latency
from scripts.bench.stack import stop_process_group

# The bench stack's settings that would turn the default into something else.
FULL_MODE_VARIABLES = {
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
    env = embedded_env(database)
    say(f"embedded default: fresh SQLite {database}, flask db upgrade")
    run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], env, 300, "embedded-migrate.log")
    accounts = make_accounts(env, args.guests, "embedded")
    url = f"http://127.0.0.1:{args.embedded_port}"
    log = open(directory / "api.log", "a")  # noqa: SIM115 - the server outlives this block
    server = subprocess.Popen(
        server_command(args.embedded_port),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        events, accept, cpu = embedded_load(url, server.pid, accounts, args)
    finally:
        stop_process_group(server, 20)
        log.close()
    return embedded_outcomes(database, events, accept, cpu)


def embedded_env(database: Path) -> dict:
    env = env_without(FULL_MODE_VARIABLES)
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
    return env


def server_command(port: int) -> list[str]:
    """`make run`'s server, from the one script that builds it (API_WORKERS / API_THREADS as set)."""
    return [
        "env",
        "API_HOST=127.0.0.1",
        f"API_PORT={port}",
        "bash",
        str(ROOT / "scripts" / "api_server.sh"),
        "embedded",
    ]


def server_shape() -> str:
    workers, threads = os.environ.get("API_WORKERS"), os.environ.get("API_THREADS")
    return f"API_WORKERS={workers or 'default'}, API_THREADS={threads or 'default'}"


def embedded_load(url: str, server_pid: int, accounts: dict, args) -> tuple[Events, WrkResult, CpuReport]:
    """Warm-up, then the measured accept phase against the embedded server."""
    wait_http_ok(f"{url}/readyz", 60)
    say(f"embedded API ready on {url} (scripts/api_server.sh embedded, {server_shape()})")
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
    meter = CpuMeter({"api (embedded granian)": server_pid})
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
    return events, accept, cpu


def embedded_outcomes(database: Path, events: Events, accept: WrkResult, cpu: CpuReport) -> EmbeddedResult:
    """Outcomes, latencies and the oversold check, read from the SQLite file."""
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
        parsed = [(row[0], sqlite_time(row[2]), sqlite_time(row[3]), sqlite_time(row[4])) for row in rows]
        latency = outcome_latency(parsed, ids)
        oversold, mismatched, _notes = count_oversold(
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


def sqlite_time(value) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
