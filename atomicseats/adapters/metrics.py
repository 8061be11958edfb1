"""The Metrics port in Prometheus' terms (prometheus_client), for every process.

A process that forks workers (granian's API workers, Celery's prefork pool) runs in
prometheus_client's multiprocess mode: PROMETHEUS_MULTIPROC_DIR names a directory, empty
when the process starts (scripts/platform.sh cleans it), where each worker process keeps its
values in memory-mapped files; a scrape adds them up. Without that variable (the embedded
default, the bridge) the values live in this process.

The API answers at `/metrics` (with the gauges read from the database at the scrape); the
bridge, the allocation worker and the mailer serve their own on METRICS_PORT
(`serve_metrics`). Names are prefixed `atomicseats_`; every label comes from a bounded set.
"""

from __future__ import annotations

import logging
import os
from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from wsgiref.simple_server import WSGIServer

from flask import Flask
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from atomicseats.services.contracts import PlatformGauges

log = logging.getLogger(__name__)

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_DECISION_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)

HTTP_REQUESTS = Counter(
    "atomicseats_http_requests",
    "HTTP requests answered, by route rule, method and status",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "atomicseats_http_request_duration_seconds",
    "Time to answer an HTTP request, by route rule, method and status",
    ["route", "method", "status"],
    buckets=_LATENCY_BUCKETS_S,
)
REQUESTS_ACCEPTED = Counter("atomicseats_booking_requests_accepted", "Booking requests accepted (answered 202)")
REQUESTS_DECIDED = Counter("atomicseats_booking_requests_decided", "Booking requests decided, by outcome", ["outcome"])
DECISION_LATENCY = Histogram(
    "atomicseats_booking_decision_seconds",
    "Time from a request's acceptance (the 202) to its decision",
    buckets=_DECISION_BUCKETS_S,
)
BATCH_SIZE = Histogram(
    "atomicseats_allocation_batch_size", "Requests decided per allocation batch", buckets=_BATCH_SIZE_BUCKETS
)
BATCH_DURATION = Histogram(
    "atomicseats_allocation_batch_seconds", "Time of one allocation batch (its transaction)", buckets=_LATENCY_BUCKETS_S
)
NOTIFICATIONS_SENT = Counter("atomicseats_notifications_sent", "E-mails handed to the mail server")
NOTIFICATION_FAILURES = Counter(
    "atomicseats_notification_send_failures", "E-mail sends that failed (retried later or given up)"
)
DRIFT_REPAIRED = Counter(
    "atomicseats_redis_drift_repaired", "Redis entries reconcile found drifted and rewrote", ["mirror"]
)
CONSUMER_LAG = Gauge(
    "atomicseats_kafka_consumer_lag",
    "booking-requests messages waiting behind the bridge, per partition it holds",
    ["partition"],
    multiprocess_mode="mostrecent",
)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_DIR_VARIABLE) or None


def process_registry() -> CollectorRegistry:
    """What this process (and, in multiprocess mode, its sibling workers) recorded."""
    path = multiprocess_dir()
    if path is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return registry


class PrometheusMetrics:
    """The Metrics port. Module-level metric objects: one set per process, whatever the apps."""

    def __init__(self) -> None:
        self._lag_partitions: set[int] = set()

    def http_request(self, route: str, method: str, status: int, seconds: float) -> None:
        code = str(status)
        HTTP_REQUESTS.labels(route, method, code).inc()
        HTTP_LATENCY.labels(route, method, code).observe(seconds)

    def requests_accepted(self, count: int) -> None:
        REQUESTS_ACCEPTED.inc(count)

    def requests_decided(self, decided: Sequence[tuple[str, float]]) -> None:
        # A batch's count per outcome in one increment each (a flash sale decides thousands a second).
        for outcome, count in Tally(outcome for outcome, _ in decided).items():
            REQUESTS_DECIDED.labels(outcome).inc(count)
        for _, seconds in decided:
            DECISION_LATENCY.observe(max(0.0, seconds))

    def allocation_batch(self, size: int, seconds: float) -> None:
        BATCH_SIZE.observe(size)
        BATCH_DURATION.observe(seconds)

    def notifications_sent(self, sent: int, failed: int) -> None:
        if sent:
            NOTIFICATIONS_SENT.inc(sent)
        if failed:
            NOTIFICATION_FAILURES.inc(failed)

    def drift_repaired(self, mirror: str, count: int) -> None:
        DRIFT_REPAIRED.labels(mirror).inc(count)

    def consumer_lag(self, waiting_by_partition: dict[int, int]) -> None:
        for partition in self._lag_partitions - waiting_by_partition.keys():  # revoked: another bridge's now
            CONSUMER_LAG.remove(str(partition))
        for partition, waiting in waiting_by_partition.items():
            CONSUMER_LAG.labels(str(partition)).set(waiting)
        self._lag_partitions = set(waiting_by_partition)

    def render(self, gauges: PlatformGauges | None) -> tuple[bytes, str]:
        body = generate_latest(process_registry())
        if gauges is not None:
            extra = CollectorRegistry(auto_describe=False)
            extra.register(_GaugesCollector(gauges))
            body += generate_latest(extra)
        return body, CONTENT_TYPE_LATEST


class _GaugesCollector(Collector):
    def __init__(self, gauges: PlatformGauges) -> None:
        self.gauges = gauges

    def collect(self) -> Iterable[GaugeMetricFamily]:
        pending = self.gauges.pending_requests
        yield GaugeMetricFamily("atomicseats_pending_requests", "Booking requests recorded, not yet decided", pending)
        outbox = GaugeMetricFamily("atomicseats_outbox_backlog", "Outbox rows by state", labels=["state"])
        for state, count in sorted(self.gauges.outbox.items()):
            outbox.add_metric([state], count)
        yield outbox
        waitlist = GaugeMetricFamily(
            "atomicseats_waitlist_length",
            "Waiting entries per event: the longest waitlists of events on sale",
            labels=["event_id"],
        )
        for event_id, length in self.gauges.waitlist_lengths:
            waitlist.add_metric([str(event_id)], length)
        yield waitlist


def serve_metrics(app: Flask) -> WSGIServer | None:
    """Serve this process's metrics on METRICS_HOST:METRICS_PORT (a thread), if a port is set.
    Returns the server (`shutdown()` stops it), or None when the process serves none."""
    port = app.config.get("METRICS_PORT") or 0
    if not port:
        return None
    server, _thread = start_http_server(port, addr=app.config["METRICS_HOST"], registry=process_registry())
    log.info("metrics.serving", extra={"host": app.config["METRICS_HOST"], "port": port})
    return server
