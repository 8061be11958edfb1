"""The full pipeline (STACK=bench), phase after phase: setup, warm-up, accept, drain, open loop,
outbox, decide, reference, many events, waits, check (fairness included)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from scripts.bench.accounts import Events, create_events, make_accounts
from scripts.bench.backlog import DecideResult, decide_pipeline, decide_stages
from scripts.bench.common import (
    API_URL,
    BENCH_DB,
    BENCH_SERVICES_ENV,
    BIN,
    RUN,
    STACK,
    STACK_ENV,
    WORK,
    BenchError,
    run,
    say,
)
from scripts.bench.cpu import CpuMeter, CpuReport, bench_roots, jit_cpu_s, pidfile, settle_cpu, settle_disk
from scripts.bench.fairness import RunFairness, measure_fairness
from scripts.bench.idle import IdleResult, measure_idle
from scripts.bench.load import WrkResult, run_wrk
from scripts.bench.many import ManyResult, many_phase
from scripts.bench.openloop import OpenLoopResult, run_openloop
from scripts.bench.outcomes import (
    Latency,
    OutboxDrain,
    final_ids,
    outcome_latency,
    oversold_pg,
    request_times,
    wait_final,
    wait_outbox,
)
from scripts.bench.reference import ReferenceResult, reference_phase
from scripts.bench.stack import Db, Stack, recreate_database, reset_kafka, services_env
from scripts.bench.waits import WaitsResult, measure_waits


@dataclass
class Drain:
    seconds: float
    latency: Latency
    lost: int
    statuses: dict[str, int]


@dataclass
class Checks:
    oversold: int
    counter_mismatches: int
    oversold_notes: list[str]
    audit_ok: bool
    audit_text: str


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
    outbox: OutboxDrain | None  # the accept phase's e-mails (and their lag), before the decide phase
    mail: OutboxDrain | None = None  # the decide phase's e-mails: the mailer's rate on a backlog
    waits: WaitsResult | None = None
    openloop: OpenLoopResult | None = None
    many: ManyResult | None = None
    fairness: RunFairness | None = None
    idle: IdleResult | None = None
    reference: ReferenceResult | None = None  # the bare-SQL reference (scripts/bench/reference.py)


@dataclass
class Setup:
    stack: Stack
    service_env: dict
    database_url: str
    app_env: dict
    accounts: dict
    events: Events


def run_full(args) -> FullResult:
    setup = set_up(args)
    tokens_file = WORK / "tokens-full.txt"
    db = Db(setup.database_url)
    try:
        if args.warmup > 0:
            warm_up(db, setup.events, tokens_file, args)
        idle = idle_phase(setup, db, args) if args.idle > 0 else None
        accept_started = datetime.now(UTC)
        accept, accept_cpu, top_file = accept_phase(setup.events, tokens_file, args)
        drain = drain_phase(db, setup.events, accept, args)
        accept_window = (accept_started, datetime.now(UTC))  # the accept phase's decisions
        openloop = openloop_phase(setup, db, accept, args) if args.openloop_seconds > 0 else None
        outbox, pipeline, stages, mail = (
            decide_phase(setup, db, args, accept_window) if args.backlog > 0 else (None, None, None, None)
        )
        reference = None
        if args.backlog > 0 and not args.skip_reference:  # once the decide phase's e-mails are out
            reference = reference_phase(setup.service_env["DATABASE_URL"], args)
        many = None
        if args.many > 0:
            brokers = setup.service_env["KAFKA_BROKERS"]
            many = many_phase(setup.stack, db, brokers, setup.app_env, setup.accounts, args)
        waits = waits_phase(setup, db, args) if args.waits > 0 else None
        checks = check(db, setup.app_env)
        say("fairness: decision order against Kafka order and API acceptance order")
        fairness = measure_fairness(db, setup.events.hot)
    finally:
        db.close()
    return FullResult(
        accept=accept,
        accept_cpu=accept_cpu,
        drain_s=drain.seconds,
        latency=drain.latency,
        lost_api=drain.lost,
        pipeline=pipeline,
        stages=stages,
        oversold=checks.oversold,
        counter_mismatches=checks.counter_mismatches,
        oversold_notes=checks.oversold_notes,
        audit_ok=checks.audit_ok,
        audit_text=checks.audit_text,
        accept_statuses_db=drain.statuses,
        top_file=top_file,
        outbox=outbox,
        mail=mail,
        waits=waits,
        openloop=openloop,
        many=many,
        fairness=fairness,
        idle=idle,
        reference=reference,
    )


def set_up(args) -> Setup:
    """Leftover bench processes stopped, the services started, a fresh database, empty Kafka
    topics, empty Redis; the platform up; the accounts and events."""
    say("full pipeline: stopping any leftover bench processes, starting the services")
    base_env = {**os.environ, **STACK_ENV, **BENCH_SERVICES_ENV}
    run(
        # The mailer too: one left running (a run with --keep) would send with the code it started with.
        ["bash", "scripts/platform.sh", "stop", "api", "flower", "beat", "mailer", "worker2", "worker", "bridge"],
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
    say(f"platform up (STACK={STACK}, API {API_URL}, log {WORK / 'platform.log'})")
    stack.platform("up", timeout_s=600)
    app_env = stack.app_env()
    accounts = make_accounts(app_env, args.guests, "full")
    events = create_events(API_URL, accounts["host_token"], args, with_backlog=args.backlog > 0)
    return Setup(stack, service_env, database_url, app_env, accounts, events)


WARMUP_SLICE_S = 10  # the warm-up goes on in slices this long until the broker is warm
JIT_QUIET_SHARE = 0.03  # of a core: the broker's JIT compilers are done (steady state: 1-2 %)


def next_warmup_slice_s(elapsed_s: float, jit_share: float, warmup_max_s: float) -> int:
    """Seconds more of warm-up after `elapsed_s`, whose last slice's JIT took `jit_share` of a
    core: a slice while the broker still compiles and another fits within `warmup_max_s`, else 0."""
    if jit_share <= JIT_QUIET_SHARE or elapsed_s + WARMUP_SLICE_S > warmup_max_s:
        return 0
    return WARMUP_SLICE_S


def warm_up(db: Db, events: Events, tokens_file: Path, args) -> None:
    """Load on a separate event until the platform is warm: `--warmup` seconds, then slices
    of WARMUP_SLICE_S while the Kafka broker's JIT compilers still used more than
    JIT_QUIET_SHARE of a core in the last one (up to `--warmup-max` in all). A freshly started
    broker compiles for about its first minute under load: at 20 s its compilers still took a
    fifth of a core, and the broker 0.18 ms of CPU per accepted booking against 0.09-0.10 once
    warm (accept phase at 0c72248: 1,318 and 1,425/s after 20 s of warm-up, 1,503 and 1,608/s
    after 60 s). A production broker is long warm: the measured phases start warm too."""
    kafka = pidfile(RUN / "kafka" / "pid")
    say(
        f"warm-up: {args.warmup:g}s or more (until the broker's JIT is quiet, ≤{args.warmup_max:g}s), "
        f"{args.connections} connections, separate event"
    )
    ids: list[str] = []
    elapsed_s, slice_s = 0, args.warmup
    while True:
        jit_before = jit_cpu_s(kafka)
        warm = run_wrk(
            API_URL,
            tokens_file,
            events,
            args,
            args.connections,
            slice_s,
            f"warmup-full-{elapsed_s}",
            hot=events.warmup,
            spread=[],
        )
        ids.extend(warm.ids)
        elapsed_s += slice_s
        jit_share = (jit_cpu_s(kafka) - jit_before) / slice_s
        say(
            f"  {elapsed_s}s: {warm.accepted_per_s:,.0f} accepted/s; the broker's JIT compilers "
            f"{100 * jit_share:.0f}% of a core"
        )
        slice_s = next_warmup_slice_s(elapsed_s, jit_share, args.warmup_max)
        if not slice_s:
            break
    wait_final(db, [events.warmup], set(ids), args.drain_timeout, "warm-up drain")
    # An on-sale starts on a quiet platform: the warm-up's e-mails go out first.
    say(f"waiting (≤{args.outbox_timeout:g}s) for the outbox to send the warm-up's e-mails")
    say(f"  outbox: {wait_outbox(db, args.outbox_timeout).describe()}")


def idle_phase(setup: Setup, db: Db, args) -> IdleResult:
    """On the warm, quiet platform (the warm-up's e-mails are out, the machine's CPUs idle), before
    the flash sale."""
    accounts = setup.accounts
    settle_disk()
    waited_s, share = settle_cpu()
    say(f"  machine settled: {100 * share:.0f}% of its CPUs busy over the last second, after {waited_s:.0f}s")
    idle = measure_idle(
        db, accounts["host_token"], accounts["guest_tokens"], args.idle, args.idle_gap_ms, args.drain_timeout
    )
    for line in idle.lines():
        say(line)
    return idle


def accept_phase(events: Events, tokens_file: Path, args) -> tuple[WrkResult, CpuReport, Path]:
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
    return accept, accept_cpu, top_file


def drain_phase(db: Db, events: Events, accept: WrkResult, args) -> Drain:
    phase_events = [events.hot, *events.spread]
    ids = set(accept.ids)
    say(f"draining: waiting (≤{args.drain_timeout:g}s) for a final outcome of every accepted request")
    drain_s = wait_final(db, phase_events, ids, args.drain_timeout, "accept drain")
    latency = outcome_latency(request_times(db, phase_events), ids)
    lost_api = len(ids - final_ids(db, phase_events))
    statuses = dict(
        db.rows(
            "SELECT status, count(*) FROM booking_requests WHERE event_id = ANY(%s) GROUP BY status",
            (phase_events,),
        )
    )
    say(
        f"drained in {drain_s:.1f}s; accepted→final p50 {latency.p50_ms:.0f} ms, p99 {latency.p99_ms:.0f} ms; "
        f"lost {lost_api}"
    )
    return Drain(drain_s, latency, lost_api, statuses)


def openloop_phase(setup: Setup, db: Db, accept: WrkResult, args) -> OpenLoopResult | None:
    """The latency curve up to the ceiling the accept phase measured (scripts/bench/openloop.py)."""
    try:
        return run_openloop(
            db, setup.accounts["host_token"], setup.accounts["guest_tokens"], accept.accepted_per_s, args
        )
    except BenchError as error:  # the other phases' figures still stand
        say(f"open-loop phase FAILED: {error}")
        return None


def decide_phase(
    setup: Setup, db: Db, args, accept_window: tuple[datetime, datetime]
) -> tuple[OutboxDrain, DecideResult, DecideResult | None, OutboxDrain]:
    """The decide phase between two waits for the outbox: the accept phase's e-mails go out
    first (their figures: the lag buyers saw), and the decide phase's own after it (30,000
    decisions or more at once: the mailer's rate on a backlog), so neither lands in a later phase."""
    say(f"waiting (≤{args.outbox_timeout:g}s) for the outbox to send the accept phase's e-mails first")
    outbox = wait_outbox(db, args.outbox_timeout, accept_window)
    say(f"  outbox: {outbox.describe()}")
    say(f"  accept phase's e-mails: {outbox.mailer.describe() if outbox.mailer else '-'}")
    decide_started = datetime.now(UTC)
    brokers, guest_ids, backlog = setup.service_env["KAFKA_BROKERS"], setup.accounts["guest_ids"], setup.events.backlog
    pipeline = decide_pipeline(setup.stack, db, brokers, backlog[0], guest_ids, args)
    stages = None
    if not args.skip_stages:
        stages = decide_stages(setup.stack, db, brokers, backlog[1], guest_ids, args)
    say(f"waiting (≤{args.outbox_timeout:g}s) for the outbox to send the decide phase's e-mails")
    meter = CpuMeter(bench_roots())
    meter.start()
    mail = wait_outbox(db, args.outbox_timeout, (decide_started, None), stages.mailer_paused if stages else None)
    mail.cpu = meter.stop()
    say(f"  outbox: {mail.describe()}")
    say(f"  decide phase's e-mails: {mail.mailer.describe() if mail.mailer else '-'}")
    return outbox, pipeline, stages, mail


def waits_phase(setup: Setup, db: Db, args) -> WaitsResult | None:
    waits = None
    try:
        waits = measure_waits(setup.stack, db, setup.service_env, setup.events, setup.accounts, args)
        wait_final(db, [setup.events.warmup], set(waits.booked_ids), args.drain_timeout, "waits-phase bookings")
    except BenchError as error:  # the other phases' figures still stand
        say(f"waits phase FAILED: {error}")
        setup.stack.platform("start", "bridge")
    return waits


def check(db: Db, app_env: dict) -> Checks:
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
    return Checks(oversold, mismatched, notes, audit.returncode == 0, audit_text)
