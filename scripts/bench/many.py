"""The many-events phase (issue 12 point 6): an on-sale of many events at once, decided by two
allocation worker processes.

M events (200) are created through the API; they land on every partition of booking-requests
(the key is the event id). With the bridge stopped, a second allocation worker is started
(`platform.sh start worker2`: the same queues, every partition's, as `worker`), B requests spread
in turn over the events are produced straight to Kafka in the API's format, then the bridge
starts and the clock runs until all B are decided (as the decide phase's pipeline mode).
Printed: the aggregate decided/s (first to last decision over all the events), per partition
the events, requests and decisions (every partition must be served), the decisions of each
worker (from its own decided counter, atomicseats_booking_requests_decided_total, read before
and after), the CPU and the peak RSS of each process. worker2 is stopped afterwards.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass, field

from scripts.bench.accounts import create_event
from scripts.bench.backlog import DrainFigures, produce_backlog, time_drain
from scripts.bench.common import API_URL, BenchError, fmt, say
from scripts.bench.stack import Db, Stack

DECIDED_COUNTER = "atomicseats_booking_requests_decided_total"
WORKERS = {"worker": "WORKER_METRICS_URL", "worker2": "WORKER2_METRICS_URL"}


@dataclass
class PartitionLoad:
    partition: int | None  # None: requests recorded without one (not through Kafka)
    events: int
    requests: int
    decided: int


def partition_spread(rows: list[tuple], partitions: int) -> list[PartitionLoad]:
    """One line per partition of booking-requests, those that got nothing included, from rows
    (partition, events, requests, decided); a partition outside the topic's range (or None) is
    kept, after them, so nothing is hidden."""
    by_partition = {row[0]: PartitionLoad(row[0], int(row[1]), int(row[2]), int(row[3])) for row in rows}
    out = [by_partition.pop(partition, PartitionLoad(partition, 0, 0, 0)) for partition in range(partitions)]
    return out + sorted(by_partition.values(), key=lambda load: (load.partition is None, load.partition or 0))


def unserved(spread: list[PartitionLoad]) -> list[int | None]:
    """The partitions none of whose requests was decided."""
    return [load.partition for load in spread if load.decided == 0]


def decided_count(metrics_text: str) -> float:
    """The sum over outcomes of the decided counter in a Prometheus exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == DECIDED_COUNTER:
                total += sample.value
    return total


@dataclass
class ManyResult(DrainFigures):
    events: int
    partitions: list[PartitionLoad]
    by_worker: dict[str, float] = field(default_factory=dict)
    batches: int = 0  # allocation batches (an event's decisions share one decided_at per batch)
    queued_after: int | None = None  # allocation tasks still in the partitions' queues once all were decided

    def unserved(self) -> list[int | None]:
        return unserved(self.partitions)

    def lines(self) -> list[str]:
        out = [
            f"many events: {self.count} requests over {self.events} events, two allocation workers: "
            f"{fmt(self.decided_per_s)} decided/s from first to last decision ({self.span_s:.1f}s), "
            f"{fmt(self.wall_per_s)}/s wall clock incl. bridge start; lost {self.lost}; outcomes {self.statuses}",
            "  partition   events   requests   decided",
        ]
        for load in self.partitions:
            name = "none" if load.partition is None else str(load.partition)
            out.append(f"  {name:>9} {load.events:>8} {load.requests:>10} {load.decided:>9}")
        missing = self.unserved()
        out.append(
            "  every partition served"
            if not missing
            else f"  NOT SERVED: partition(s) {', '.join(str(p) for p in missing)}"
        )
        if self.batches:
            out.append(f"  {self.batches} allocation batches, {self.count / self.batches:.1f} requests each on average")
        if self.queued_after is not None:
            out.append(f"  allocation tasks still queued once every request was decided: {self.queued_after}")
        if self.by_worker:
            shares = ", ".join(f"{name} {fmt(count)}" for name, count in self.by_worker.items())
            out.append(f"  decided by each worker (its own counter): {shares}")
        return out


def run_many(stack: Stack, db: Db, brokers: str, app_env: dict, host_token: str, guest_ids: list[int], args):
    from atomicseats.names import BOOKING_REQUESTS_PARTITIONS

    say(f"many events: {args.many_events} events, {args.many} requests spread over them, two allocation workers")
    events = [
        create_event(API_URL, host_token, f"Many events {i + 1}", args.many_capacity) for i in range(args.many_events)
    ]
    stack.platform("stop", "bridge")
    stack.platform("start", "worker2")
    try:
        before = decided_by_worker(app_env)
        ids, produce_s = produce_backlog(brokers, events, guest_ids, args.many, args.seed + 3)
        say(f"  produced and acked in {produce_s:.1f}s; starting the bridge (worker and worker2 running), clock on")
        drained = time_drain(stack, db, events, ids, "bridge", "bridge", args)
        queued_after = queued_allocation_tasks(app_env)
        after = decided_by_worker(app_env)
    finally:
        stack.platform("stop", "worker2")
    rows = db.rows(
        "SELECT kafka_partition, count(DISTINCT event_id), count(*), count(*) FILTER (WHERE status <> 'pending')"
        " FROM booking_requests WHERE event_id = ANY(%s) GROUP BY kafka_partition",
        (events,),
    )
    (batches,) = db.one(
        "SELECT count(DISTINCT (event_id, decided_at)) FROM booking_requests WHERE event_id = ANY(%s)", (events,)
    )
    statuses = dict(
        db.rows("SELECT status, count(*) FROM booking_requests WHERE event_id = ANY(%s) GROUP BY status", (events,))
    )
    result = ManyResult(
        **DrainFigures.of(drained, len(ids), statuses),
        events=len(events),
        partitions=partition_spread(rows, BOOKING_REQUESTS_PARTITIONS),
        by_worker={name: after[name] - before.get(name, 0.0) for name in after},
        batches=batches,
        queued_after=queued_after,
    )
    for line in result.lines():
        say(line)
    return result


def queued_allocation_tasks(app_env: dict) -> int | None:
    """Allocation tasks waiting in the partitions' queues (Celery's broker is the stack's Redis:
    each queue a list), None when Redis does not answer."""
    import redis

    from atomicseats.names import BOOKING_REQUESTS_PARTITIONS, allocation_queues

    try:
        client = redis.Redis.from_url(app_env["REDIS_URL"], socket_timeout=5)
        return sum(client.llen(queue) for queue in allocation_queues(BOOKING_REQUESTS_PARTITIONS))
    except (redis.RedisError, KeyError):
        return None


def decided_by_worker(app_env: dict) -> dict[str, float]:
    """Each allocation worker's decided counter (its metrics endpoint); a worker that does not
    answer is left out."""
    out = {}
    for name, variable in WORKERS.items():
        url = app_env.get(variable)
        if not url:
            continue
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                out[name] = decided_count(response.read().decode())
        except (urllib.error.URLError, OSError, ValueError) as error:
            say(f"  note: {name}'s metrics ({url}) did not answer: {error}")
    return out


def many_phase(stack: Stack, db: Db, brokers: str, app_env: dict, accounts: dict, args) -> ManyResult | None:
    """The phase, its failure reported without losing the other phases' figures."""
    try:
        return run_many(stack, db, brokers, app_env, accounts["host_token"], accounts["guest_ids"], args)
    except BenchError as error:
        say(f"many-events phase FAILED: {error}")
        stack.platform("start", "bridge")
        return None
