"""The decide phase, "one hot event with a backlog": requests produced straight to Kafka in the
API's message format, then drained by the pipeline (headline decided/s) and by each stage alone
(bridge, then worker: a diagnostic)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from scripts.bench.common import APP_RUN, BenchError, say
from scripts.bench.cpu import CpuMeter, CpuReport, bench_roots, pidfile, read_procs, settle_disk
from scripts.bench.memory import MemoryMeter, MemoryReport
from scripts.bench.outcomes import decided_rate, final_ids, status_counts, wait_final
from scripts.bench.stack import Db, Stack


def produce_backlog(
    brokers: str, event_ids: int | list[int], user_ids: list[int], count: int, seed: int, registry=None
) -> tuple[list[str], float]:
    """Put `count` requests for one event (or spread in turn over several) on booking-requests
    exactly as the API would (same producer settings, key, message body and header); returns
    their ids. With a `registry` (RedisRequestRegistry), each is also claimed there, as the API does."""
    events = [event_ids] if isinstance(event_ids, int) else event_ids
    from confluent_kafka import Producer

    from atomicseats.adapters.kafka import ProducerSettings

    rng = random.Random(seed)
    producer = Producer(ProducerSettings(brokers, linger_ms=5, delivery_timeout_s=30).librdkafka_config())
    failures = []

    def on_delivery(error, _message):
        if error is not None:
            failures.append(error)

    ids = []
    started = time.monotonic()
    for i in range(count):
        accepted = accepted_request(events[i % len(events)], user_ids[i % len(user_ids)], rng.randint(1, 4))
        produce_request(producer, accepted, on_delivery)
        if registry is not None:
            registry.claim(accepted)
        ids.append(accepted.request_id)
    if producer.flush(60) != 0 or failures:
        raise BenchError(f"backlog not acknowledged by Kafka: {failures[:3]}")
    return ids, time.monotonic() - started


def accepted_request(event_id: int, user_id: int, seats: int):
    from atomicseats.services.contracts import AcceptedRequest

    request_id = str(uuid.uuid4())
    return AcceptedRequest(
        request_id=request_id,
        user_id=user_id,
        event_id=event_id,
        seats=seats,
        idempotency_key=None,
        correlation_id=f"bench-{request_id[:8]}",
        accepted_at=datetime.now(UTC),
    )


def produce_request(producer, accepted, on_delivery) -> None:
    """One request on booking-requests, keyed by its event, as the API's publisher puts it."""
    from atomicseats.adapters.request_message import headers_of, message_of
    from atomicseats.names import BOOKING_REQUESTS_TOPIC

    value = json.dumps(message_of(accepted), separators=(",", ":")).encode()
    headers = headers_of(accepted)
    while True:
        try:
            producer.produce(
                BOOKING_REQUESTS_TOPIC,
                key=str(accepted.event_id).encode(),
                value=value,
                headers=headers,
                on_delivery=on_delivery,
            )
            break
        except BufferError:
            producer.poll(0.05)
    producer.poll(0)


@dataclass
class DrainFigures:
    """What a phase that drains recorded requests measured (the backlog phases and the
    many-events phase): the rates and spans of `Drained`, how many, and their outcomes."""

    count: int
    decided_per_s: float
    wall_per_s: float
    span_s: float
    wall_s: float
    lost: int
    statuses: dict[str, int]
    cpu: CpuReport | None
    memory: MemoryReport | None

    @staticmethod
    def of(drained: Drained, count: int, statuses: dict[str, int]) -> dict:
        """The shared fields, from one drain: `SomeResult(**DrainFigures.of(...), extra=...)`."""
        return {
            "count": count,
            "decided_per_s": drained.rate,
            "wall_per_s": drained.wall_rate,
            "span_s": drained.span_s,
            "wall_s": drained.wall_s,
            "lost": drained.lost,
            "statuses": statuses,
            "cpu": drained.cpu,
            "memory": drained.memory,
        }


@dataclass
class DecideResult(DrainFigures):
    mode: str
    record_per_s: float | None = None
    record_wall_per_s: float | None = None
    record_cpu: CpuReport | None = None
    mailer_paused: tuple[datetime, datetime] | None = None  # the stages phase stops the mailer meanwhile


def decide_pipeline(stack: Stack, db: Db, brokers: str, event_id: int, user_ids: list[int], args) -> DecideResult:
    say(f"decide (pipeline): bridge stopped, {args.backlog} requests for one hot event produced to Kafka")
    stack.platform("stop", "bridge")
    ids, produce_s = produce_backlog(brokers, event_id, user_ids, args.backlog, args.seed + 1)
    say(f"  produced and acked in {produce_s:.1f}s; starting the bridge (worker running), clock on")
    d = time_drain(stack, db, [event_id], ids, "bridge", "bridge", args)
    say(
        f"  decided {len(ids)} in {d.span_s:.1f}s = {d.rate:.0f}/s "
        f"(wall incl. bridge start {d.wall_rate:.0f}/s); lost {d.lost}"
    )
    if d.memory:
        say("  peak RSS while draining:")
        for line in d.memory.lines():
            say(line)
    return DecideResult(**DrainFigures.of(d, len(ids), status_counts(db, event_id)), mode="pipeline")


@dataclass
class Drained:
    rate: float  # decided/s from the first decision to the last (first batch left out)
    wall_rate: float  # decided/s from the start of the process
    span_s: float
    wall_s: float
    lost: int
    cpu: CpuReport
    memory: MemoryReport | None


def time_drain(
    stack: Stack, db: Db, event_ids: list[int], ids: list[str], proc: str, cpu_label: str, args, memory: bool = True
) -> Drained:
    """Start `proc`, wait until every request in `ids` is final, and time it, with the CPU and
    (unless memory=False) the peak RSS of each process meanwhile. The clock starts with the process."""
    settle_disk()
    meter = CpuMeter(bench_roots())
    rss = MemoryMeter() if memory else None
    meter.start()
    if rss:
        rss.start()
    started_wall = datetime.now(UTC)
    finish = stack.start_async(proc)
    try:
        wait_final(db, event_ids, set(ids), args.drain_timeout, f"backlog drained by the {proc}")
        meter.add_root(cpu_label, pidfile(APP_RUN / f"{proc}.pid") or 0)
        cpu = meter.stop()
        memory_report = rss.stop() if rss else None
    finally:
        finish()
    rate, wall_rate, span, wall = decided_rate(db, event_ids, len(ids), started_wall)
    lost = len(set(ids) - final_ids(db, event_ids))
    return Drained(rate, wall_rate, span, wall, lost, cpu, memory_report)


def decide_stages(stack: Stack, db: Db, brokers: str, event_id: int, user_ids: list[int], args) -> DecideResult:
    """Each stage alone: the bridge records the backlog, then the worker decides it. The mailer
    is paused meanwhile (SIGSTOP: it would send the pipeline phase's e-mails and these on the
    same two cores, and its outbox queries would count as PostgreSQL's per decision); it goes
    on after, from where it was."""
    say(f"decide (stages): bridge and worker stopped, mailer paused, {args.backlog} more requests produced to Kafka")
    stack.platform("stop", "bridge", "worker")
    with paused(pidfile(APP_RUN / "mailer.pid")) as mailer_paused_at:
        result = _stages(stack, db, brokers, event_id, user_ids, args)
    result.mailer_paused = (mailer_paused_at, datetime.now(UTC))
    say("  the mailer goes on")
    return result


@contextlib.contextmanager
def paused(root_pid: int | None) -> Iterator[datetime]:
    """SIGSTOP a process and its descendants (yields when), SIGCONT them after: the same
    processes go on where they were, their connections and queues as they were."""
    procs = read_procs()
    tree = [root_pid] if root_pid else []
    for pid in tree:  # grows while it is walked: each process's children join the list
        tree += [child for child, (ppid, *_) in procs.items() if ppid == pid]
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
    try:
        yield datetime.now(UTC)
    finally:
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def _stages(stack: Stack, db: Db, brokers: str, event_id: int, user_ids: list[int], args) -> DecideResult:
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
        meter.add_root("bridge", pidfile(APP_RUN / "bridge.pid") or 0)
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
    d = time_drain(stack, db, [event_id], ids, "worker", "worker (celery)", args, memory=False)
    say(
        f"  worker alone decided {len(ids)} in {d.span_s:.1f}s = {d.rate:.0f}/s "
        f"(wall incl. worker start {d.wall_rate:.0f}/s)"
    )
    return DecideResult(
        **DrainFigures.of(d, len(ids), status_counts(db, event_id)),
        mode="stages",
        record_per_s=record_rate,
        record_wall_per_s=recorded / record_wall,
        record_cpu=record_cpu,
    )
