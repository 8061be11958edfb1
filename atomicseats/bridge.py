"""The Kafka bridge: booking-requests → durable pending rows → a Celery wake-up per event.

For each batch it reads, in Kafka order: record every request in one transaction
(idempotent on request id, so a redelivered message records nothing twice), then wake
the allocation task of each event on the queue of its partition; the offsets of what is
recorded are committed after that, at most every OFFSET_COMMIT_INTERVAL_S (an idle
bridge commits each batch at once). Killed at any point, it either re-reads messages it
had not committed (harmless) or has recorded them already (and the sweeper wakes their
events if the wake-up was lost). Nothing is acknowledged before it is durable.

That makes it safe to end the bridge whenever it stops doing its job: requests wait on its
partitions (or on a group that reads none) and its offsets have not moved for BRIDGE_STALL_S,
or its loop has not come round for BRIDGE_HUNG_S (atomicseats/liveness.py). It logs why and
exits; its supervisor starts a fresh one, which joins the group and reads on.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec
from flask import Flask

from atomicseats.adapters import request_message
from atomicseats.adapters.metrics import serve_metrics
from atomicseats.batching import events_by_partition, next_batch
from atomicseats.domain import limits
from atomicseats.liveness import Heartbeat, StallWatch
from atomicseats.names import BOOKING_REQUESTS_TOPIC, BRIDGE_CONSUMER_GROUP
from atomicseats.observability import announce_ready, log_with_correlation
from atomicseats.services import booking
from atomicseats.services.contracts import AcceptedRequest
from atomicseats.services.ports import Metrics, adapters
from atomicseats.services.unit_of_work import release_session

log = logging.getLogger("atomicseats.bridge")

CONSUME_BATCH_MAX = limits.ALLOCATION_BATCH_SIZE_MAX
CONSUME_TIMEOUT_S = 0.2  # the longest the loop waits for a first message before it comes round
FETCH_MIN_BYTES = 1
FETCH_WAIT_MAX_MS = 500
QUEUED_MESSAGES_MIN = CONSUME_BATCH_MAX  # fetched ahead per partition, at most (about)
FETCH_QUEUE_BACKOFF_MS = 10
RECORD_RETRY_DELAY_S_MAX = 5.0
STARTUP_TIMEOUT_S = 30.0
LIVENESS_CHECK_INTERVAL_S = 5.0
OFFSETS_QUERY_TIMEOUT_S = 2.0
# Under load the loop comes round every few ms: a commit per batch was a write to the
# broker's offsets log per batch. Committing less often only means a restarted bridge reads
# (and records once, ignoring them) a little more again.
OFFSET_COMMIT_INTERVAL_S = 0.25
EXIT_STALLED = 75  # EX_TEMPFAIL: start me again
EXIT_HUNG = 70
CLIENT_ERROR_LOG_INTERVAL_S = 5.0


def consumer_config(brokers: str) -> dict:
    return {
        "bootstrap.servers": brokers,
        "group.id": BRIDGE_CONSUMER_GROUP,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",  # requests produced before the first bridge joined are not skipped
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": 10000,
        "max.poll.interval.ms": 300000,
        "isolation.level": "read_committed",
        # Fetching adapts like the batches (atomicseats/batching.py): the broker answers a fetch
        # as soon as a message is there, or empty after FETCH_WAIT_MAX_MS. Idle, a request is
        # fetched the moment it is written and the connection is quiet in between; busy, what
        # was written while the last fetch travelled comes in one. The client fetches ahead only
        # while the loop keeps up: with a batch's worth waiting on a partition it stops (looking
        # again every FETCH_QUEUE_BACKOFF_MS), so a bridge behind fetches in chunks.
        # (Until 2026-12-03 a fetch waited for 64 KiB or 4 ms: an idle request waited up to
        # 4 ms, and the broker answered 250 empty fetches a second, ~11 % of a core on a quiet
        # stack. fetch.min.bytes=1 had been tried before and left a ~0.5 s tail, which was the
        # liveness check's, not the fetch's: it asked the broker on the consumer's connection,
        # behind a fetch held for fetch.wait.max.ms; LagReader asks on its own.)
        "fetch.min.bytes": FETCH_MIN_BYTES,
        "fetch.wait.max.ms": FETCH_WAIT_MAX_MS,
        "queued.min.messages": QUEUED_MESSAGES_MIN,
        "fetch.queue.backoff.ms": FETCH_QUEUE_BACKOFF_MS,
    }


def run_bridge(app: Flask, stop: threading.Event | None = None) -> int:
    """Consume until `stop` is set or SIGTERM/SIGINT arrives. The one loop meant to run forever:
    0 when told to stop, EXIT_STALLED when it stopped taking the requests that wait for it."""
    stop = stop or _stop_on_signals()
    heartbeat = Heartbeat(app.config["BRIDGE_HUNG_S"], _end_hung_process).start()
    stall = StallWatch(app.config["BRIDGE_STALL_S"])
    consumer = Consumer({**consumer_config(app.config["KAFKA_BROKERS"]), "error_cb": _log_client_error})
    offsets = OffsetKeeper(BOOKING_REQUESTS_TOPIC, OFFSET_COMMIT_INTERVAL_S)
    lag_reader = LagReader(app.config["KAFKA_BROKERS"], BOOKING_REQUESTS_TOPIC, BRIDGE_CONSUMER_GROUP)
    with app.app_context():
        metrics = adapters().metrics

    def on_revoke(revoking: Consumer, partitions: list[TopicPartition]) -> None:
        offsets.commit(revoking, [partition.partition for partition in partitions])  # theirs, before they go
        _log_revocation(revoking, partitions)

    def on_lost(losing: Consumer, partitions: list[TopicPartition]) -> None:
        offsets.forget([partition.partition for partition in partitions])  # someone else's to commit now
        _log_loss(losing, partitions)

    try:
        _check_broker(consumer)
        consumer.subscribe([BOOKING_REQUESTS_TOPIC], on_assign=_log_assignment, on_revoke=on_revoke, on_lost=on_lost)
        serve_metrics(app)
        log.info("bridge.started", extra={"topic": BOOKING_REQUESTS_TOPIC, "group": BRIDGE_CONSUMER_GROUP})
        announce_ready()
        next_check = time.monotonic() + LIVENESS_CHECK_INTERVAL_S
        while not stop.is_set():
            heartbeat.beat()
            # Adaptive: a lone request at once, and whatever piled up meanwhile with it.
            messages = next_batch(consumer, CONSUME_BATCH_MAX, CONSUME_TIMEOUT_S)
            if messages and _handle_batch(app, messages, stop, heartbeat):
                offsets.recorded(messages)
            now = time.monotonic()
            offsets.commit_due(consumer, now)
            if now >= next_check:
                next_check = now + LIVENESS_CHECK_INTERVAL_S
                if _is_stalled(consumer, lag_reader, stall, now, metrics):
                    return EXIT_STALLED
        offsets.commit(consumer)  # what is recorded, before leaving: the next owner reads on from there
    finally:
        consumer.close()  # leaves the group at once, so a rebalance need not wait for a timeout
        heartbeat.stop()
        log.info("bridge.stopped")
    return 0


def _is_stalled(
    consumer: Consumer, lag_reader: LagReader, stall: StallWatch, now: float, metrics: Metrics | None = None
) -> bool:
    """Requests wait for this bridge and its offsets have not moved for the stall time (and
    `metrics` learn how many wait on each partition it holds)."""
    lag = lag_reader.read(consumer)
    if lag is not None and metrics is not None:
        metrics.consumer_lag(lag.by_partition)
    if not stall.observe(now, None if lag is None else lag.waiting > 0, None if lag is None else lag.mark):
        return False
    log.error(
        "bridge.stalled",
        extra={
            "waiting": lag.waiting if lag else None,
            "assigned": lag.assigned if lag else None,
            "stalled_s": round(stall.waited_s(now), 1),
            "action": "exit for a restart",
        },
    )
    return True


@dataclass(frozen=True)
class Lag:
    """What waits for a bridge: on its own partitions, or (holding none) on its whole group's."""

    waiting: int
    assigned: list[int]
    mark: tuple[int, ...]  # the offsets that move when the bridge (or its group) makes progress
    by_partition: dict[int, int] = field(default_factory=dict)  # waiting on each partition it holds


class LagReader:
    """The requests waiting behind a consumer's positions (or, with no partition assigned,
    behind its group's committed offsets), asked on a connection of its own.

    A broker answers each connection's requests in turn, and the consumer's connection
    nearly always has a fetch waiting at the broker (until a message comes or
    fetch.wait.max.ms passes). Asked there (a ListOffsets per partition, the group's offsets,
    the topic's metadata), each question waited for the fetch ahead of it: the bridge's loop
    stood still ~30 ms every LIVENESS_CHECK_INTERVAL_S with a 4 ms fetch wait (requests
    arriving meanwhile waited too: an idle stack's slowest decisions), 2.7 s with 500 ms.
    An admin client has its own connection: one ListOffsets request for every partition, and
    one OffsetFetch for the group's committed offsets when some partition has no position yet."""

    def __init__(self, brokers: str, topic: str, group: str, timeout_s: float = OFFSETS_QUERY_TIMEOUT_S) -> None:
        self.topic = topic
        self.group = group
        self.timeout_s = timeout_s
        # No error_cb: its events would queue until someone polls the client, which nothing
        # does; the consumer reports the same broker's errors (librdkafka logs them as well).
        self.admin = AdminClient({"bootstrap.servers": brokers})

    def read(self, consumer: Consumer) -> Lag | None:
        """None if the broker cannot tell now."""
        try:
            assigned = sorted(tp.partition for tp in consumer.assignment() if tp.topic == self.topic)
            if assigned:
                held = consumer.position([TopicPartition(self.topic, partition) for partition in assigned])
                offsets = {tp.partition: tp.offset for tp in held}
            else:
                offsets = dict.fromkeys(self._partitions(), OFFSET_INVALID)
            unplaced = [partition for partition, offset in offsets.items() if offset < 0]
            if unplaced:  # no position yet (or holding none): where the group committed
                offsets |= self._committed(unplaced)
            ends = self._offsets(list(offsets), OffsetSpec.latest())
            unread = [partition for partition, offset in offsets.items() if offset < 0]
            starts = self._offsets(unread, OffsetSpec.earliest()) if unread else {}  # auto.offset.reset
        except (KafkaException, KeyError, RuntimeError, TimeoutError):
            return None
        behind = {p: max(0, ends[p] - (offset if offset >= 0 else starts[p])) for p, offset in offsets.items()}
        by_partition = {partition: behind[partition] for partition in assigned}
        return Lag(sum(behind.values()), assigned, tuple(offsets.values()), by_partition)

    def _partitions(self) -> list[int]:
        metadata = self.admin.list_topics(self.topic, timeout=self.timeout_s).topics[self.topic]
        if metadata.error is not None:
            raise KafkaException(metadata.error)
        return sorted(metadata.partitions)

    def _committed(self, partitions: list[int]) -> dict[int, int]:
        asked = ConsumerGroupTopicPartitions(self.group, [TopicPartition(self.topic, p) for p in partitions])
        future = self.admin.list_consumer_group_offsets([asked], request_timeout=self.timeout_s)[self.group]
        answer = future.result(timeout=self.timeout_s + 1)
        for tp in answer.topic_partitions:
            if tp.error is not None:
                raise KafkaException(tp.error)
        return {tp.partition: tp.offset for tp in answer.topic_partitions}

    def _offsets(self, partitions: list[int], spec: OffsetSpec) -> dict[int, int]:
        asked = {TopicPartition(self.topic, p): spec for p in partitions}
        futures = self.admin.list_offsets(
            asked, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=self.timeout_s
        )
        return {tp.partition: future.result(timeout=self.timeout_s + 1).offset for tp, future in futures.items()}


def _end_hung_process(silent_s: float) -> None:
    """The loop has not come round for BRIDGE_HUNG_S: a call never returned. Nothing in this
    process can be trusted to unwind, so end it; what it had not committed is read again."""
    log.critical("bridge.hung", extra={"silent_s": round(silent_s, 1), "action": "exit for a restart"})
    logging.shutdown()
    os._exit(EXIT_HUNG)


def _handle_batch(
    app: Flask, messages: list[Message], stop: threading.Event, heartbeat: Heartbeat | None = None
) -> bool:
    """Record the batch and wake its events; False if stopping before it was durable (its
    offsets must not be committed: the messages come again)."""
    accepted = list(_parse(messages))
    with app.app_context():
        if accepted and not _record_until_durable(accepted, stop, heartbeat):
            return False
        for request in accepted:
            log_with_correlation(
                log,
                "bridge.request.recorded",
                request.correlation_id,
                logging.DEBUG,  # one per request: ~1,000 lines/s in an on-sale (README "Logs")
                request_id=request.request_id,
                event_id=request.event_id,
                partition=request.kafka_partition,
                offset=request.kafka_offset,
            )
        _wake_events(accepted)
    return True


class OffsetKeeper:
    """The offsets of recorded batches, committed at most every `interval_s`: the first batch
    after a quiet spell at once, then whatever was recorded meanwhile in one commit.

    Explicit offsets (the message after the last recorded one, per partition), never the
    consumer's positions: those run ahead of what is durable while a batch is being recorded.
    Asynchronous: a synchronous commit blocked the bridge for up to a minute during a broker
    restart. Safe because recording is idempotent: an uncommitted batch is read again and
    recorded once."""

    def __init__(self, topic: str, interval_s: float) -> None:
        self.topic = topic
        self.interval_s = interval_s
        self._next: dict[int, int] = {}  # partition -> the offset to commit
        self._committed_at = float("-inf")

    def recorded(self, messages: Iterable[Message]) -> None:
        for message in messages:
            partition, offset = message.partition(), message.offset()
            if partition is not None and offset is not None and offset >= 0:
                self._next[partition] = max(self._next.get(partition, 0), offset + 1)

    def commit_due(self, consumer: Consumer, now: float) -> None:
        if self._next and now - self._committed_at >= self.interval_s:
            self.commit(consumer)
            self._committed_at = now

    def commit(self, consumer: Consumer, partitions: Iterable[int] | None = None) -> None:
        """Commit what is recorded (of `partitions` only, if given) now."""
        chosen = set(self._next) if partitions is None else set(partitions) & set(self._next)
        if not chosen:
            return
        offsets = [TopicPartition(self.topic, partition, self._next.pop(partition)) for partition in sorted(chosen)]
        try:
            consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as error:  # e.g. mid-rebalance: the messages come again, recorded once
            log.warning("bridge.commit_failed", extra={"error": str(error)})

    def forget(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._next.pop(partition, None)


def _wake_events(accepted: list[AcceptedRequest]) -> None:
    """One wake-up per partition in the batch, for its events; a lost one is recovered by the sweeper."""
    wakeups = adapters().wakeups
    grouped = events_by_partition((request.event_id, request.kafka_partition or 0) for request in accepted)
    for partition, event_ids in grouped.items():
        try:
            wakeups.wake_allocation(partition, event_ids)
        except Exception as error:  # noqa: BLE001 - the broker may be down; the sweeper re-wakes
            log.warning("bridge.wake_failed", extra={"event_ids": event_ids, "error": str(error)[:300]})


def _parse(messages: Iterable[Message]) -> Iterable[AcceptedRequest]:
    for message in messages:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("bridge.consume_error", extra={"error": str(error)})
            continue
        try:
            value = message.value()
            if value is None:  # a tombstone carries no request
                raise ValueError("message without a value")
            yield request_message.decode(value, partition=message.partition(), offset=message.offset())
        except (TypeError, ValueError, KeyError) as error:
            # A request the API never wrote: nothing was promised for it. Keep a trace and go on.
            log.error(
                "bridge.malformed_message",
                extra={"partition": message.partition(), "offset": message.offset(), "error": str(error)},
            )


def _record_until_durable(
    accepted: list[AcceptedRequest], stop: threading.Event, heartbeat: Heartbeat | None = None
) -> bool:
    """Record the batch, retrying with backoff while the database is unavailable (each attempt
    is the loop coming round: a bridge waiting for its database is not hung)."""
    delay_s = 0.1
    while True:
        if heartbeat is not None:
            heartbeat.beat()
        try:
            for start in range(0, len(accepted), limits.ALLOCATION_BATCH_SIZE_MAX):
                booking.record_requests(accepted[start : start + limits.ALLOCATION_BATCH_SIZE_MAX])
            return True
        except Exception as error:  # noqa: BLE001 - whatever failed, retry: never drop a request
            log.warning("bridge.record_failed", extra={"error": str(error)[:300], "retry_in_s": delay_s})
            # The next attempt must not meet "invalid transaction is rolled back" forever on
            # this batch's session after a lost connection (a database restart).
            release_session()
        if stop.wait(delay_s):
            return False
        delay_s = min(delay_s * 2, RECORD_RETRY_DELAY_S_MAX)


def _check_broker(consumer: Consumer) -> None:
    """Fail loudly at start if the broker cannot be reached (never just log and idle)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            consumer.list_topics(timeout=5)
            return
        except KafkaException as error:
            if time.monotonic() > deadline:
                raise RuntimeError(f"bridge cannot reach Kafka: {error}") from error
            time.sleep(1)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def request_stop(signum, _frame):
        log.info("bridge.stopping", extra={"signal": signum})
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop


def _log_assignment(_consumer, partitions) -> None:
    log.info("bridge.assigned", extra={"partitions": sorted(partition.partition for partition in partitions)})


def _log_revocation(_consumer, partitions) -> None:
    log.info("bridge.revoked", extra={"partitions": sorted(partition.partition for partition in partitions)})


def _log_loss(_consumer, partitions) -> None:
    """The group moved on without this member (its session ran out, or the coordinator forgot
    it): the partitions are someone else's now; the client rejoins by itself."""
    log.warning("bridge.lost", extra={"partitions": sorted(partition.partition for partition in partitions)})


def _log_client_error(error: KafkaError) -> None:
    """librdkafka's own errors (a broker gone, all brokers down), logged but not once per
    reconnect attempt: the first of each kind, then at most every CLIENT_ERROR_LOG_INTERVAL_S
    with how many came meanwhile."""
    now = time.monotonic()
    last_logged_at, repeated = _client_errors.get(error.code(), (None, 0))
    if last_logged_at is not None and now - last_logged_at < CLIENT_ERROR_LOG_INTERVAL_S:
        _client_errors[error.code()] = (last_logged_at, repeated + 1)
        return
    _client_errors[error.code()] = (now, 0)
    log.warning("bridge.kafka_error", extra={"error": str(error), "fatal": error.fatal(), "repeated": repeated})


_client_errors: dict[int, tuple[float | None, int]] = {}  # error code -> (last logged at, repeats since)
