"""Kafka producers: booking requests (the API) and domain events (the outbox publisher).

One producer per process, created lazily after any fork (gunicorn, Celery prefork),
idempotent with acks=all, keyed by event id with Java's murmur2 partitioner so every
process, in any language, maps an event to the same partition. A background thread
serves delivery reports; a request waits only for its own acknowledgement.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Producer

from atomicseats.adapters.request_message import headers_of, message_of
from atomicseats.errors import HandOffUnknown, ServiceBusy
from atomicseats.names import BOOKING_EVENTS_TOPIC, BOOKING_REQUESTS_TOPIC
from atomicseats.services.contracts import AcceptedRequest

log = logging.getLogger(__name__)

KafkaHeaders = list[tuple[str, str | bytes | None]]  # as confluent-kafka's produce takes them

DELIVERY_TIMEOUT_S = 5.0  # a request waits at most this long for the broker's acknowledgement
POLL_INTERVAL_S = 0.05
PROBE_TIMEOUT_S = 2.0  # readiness: a broker that has not answered by then is not there


@dataclass(frozen=True)
class ProducerSettings:
    brokers: str
    linger_ms: int = 5  # KAFKA_LINGER_MS: concurrent requests share a produce request
    delivery_timeout_s: float = DELIVERY_TIMEOUT_S

    def librdkafka_config(self) -> dict:
        return {
            "bootstrap.servers": self.brokers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": self.linger_ms,
            "partitioner": "murmur2_random",
            "message.timeout.ms": int(self.delivery_timeout_s * 1000),
            "socket.connection.setup.timeout.ms": 3000,
            "client.id": f"atomicseats-{os.getpid()}",
        }


class _Delivery:
    """One message's delivery report, waited for by its sender: a lock taken at creation and
    given back by the report (librdkafka reports each message once), the leanest wait CPython
    has (threading.Event builds a Condition and a lock per wait)."""

    __slots__ = ("_pending", "error")

    def __init__(self) -> None:
        self._pending = threading.Lock()
        self._pending.acquire()
        self.error: KafkaError | None = None

    def __call__(self, error, _message) -> None:
        self.error = error
        self._pending.release()

    def wait(self, timeout_s: float) -> bool:
        """True once reported (then `error` says how), False after `timeout_s` without."""
        return self._pending.acquire(timeout=timeout_s)


class SharedProducer:
    """A process-wide producer, rebuilt in a child after fork, with a polling thread."""

    def __init__(self, settings: ProducerSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._producer: Producer | None = None
        self._pid: int | None = None

    def _get(self) -> Producer:
        if self._producer is not None and self._pid == os.getpid():
            return self._producer
        with self._lock:
            if self._producer is None or self._pid != os.getpid():
                self._producer = Producer(self.settings.librdkafka_config())
                self._pid = os.getpid()
                thread = threading.Thread(target=self._serve_reports, args=(self._producer,), daemon=True)
                thread.start()
        return self._producer

    def _serve_reports(self, producer: Producer) -> None:
        """Delivery reports for every waiting request (a daemon: ends with the process)."""
        while producer is self._producer:
            producer.poll(POLL_INTERVAL_S)

    def has_topic(self, topic: str, timeout_s: float) -> bool:
        """The cluster answers a metadata request and knows `topic` (raises KafkaException if not)."""
        metadata = self._get().list_topics(topic, timeout=timeout_s).topics.get(topic)
        return metadata is not None and metadata.error is None and bool(metadata.partitions)

    def send(self, topic: str, key: str, value: bytes, headers: KafkaHeaders) -> None:
        """Produce one message and return once the broker acknowledged it (ServiceBusy if not)."""
        delivery = _Delivery()
        try:
            self._get().produce(topic, key=key.encode(), value=value, headers=headers, on_delivery=delivery)
        except (BufferError, KafkaException) as error:
            log.warning("kafka.produce_refused", extra={"topic": topic, "error": str(error)})
            raise ServiceBusy("Booking is temporarily unavailable, please retry") from error
        # Past produce() the message is librdkafka's: not confirmed in time, or reported failed
        # (a timed-out message may have reached the broker), it may be in the topic after all.
        if not delivery.wait(self.settings.delivery_timeout_s + 1.0):
            raise HandOffUnknown("Booking is temporarily unavailable, please retry")
        if delivery.error is not None:
            log.warning("kafka.delivery_failed", extra={"topic": topic, "error": str(delivery.error)})
            raise HandOffUnknown("Booking is temporarily unavailable, please retry")

    def send_many(self, topic: str, messages: list[tuple[str, bytes]]) -> None:
        """Produce a batch and wait for all acknowledgements; raise if any failed."""
        deliveries = []
        producer = self._get()
        for key, value in messages:
            delivery = _Delivery()
            producer.produce(topic, key=key.encode(), value=value, on_delivery=delivery)
            deliveries.append(delivery)
        for delivery in deliveries:
            if not delivery.wait(self.settings.delivery_timeout_s + 1.0) or delivery.error is not None:
                raise KafkaException(delivery.error or KafkaError(KafkaError._TIMED_OUT))

    def close(self, timeout_s: float = 5.0) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None and self._pid == os.getpid():
            producer.flush(timeout_s)


class KafkaPipeline:
    """The full pipeline's entry (the Pipeline port): puts accepted booking requests on
    `booking-requests`, keyed by event id; the bridge records them and wakes allocation."""

    records_before_answering = False

    def __init__(self, producer: SharedProducer) -> None:
        self.producer = producer

    def submit(self, accepted: AcceptedRequest) -> None:
        """Return once the broker acknowledged the request (acks=all); ServiceBusy otherwise.
        The request travels on: no status yet (None)."""
        value = json.dumps(message_of(accepted), separators=(",", ":")).encode()
        self.producer.send(BOOKING_REQUESTS_TOPIC, str(accepted.event_id), value, headers_of(accepted))


class KafkaDomainEventPublisher:
    """Publishes outbox rows to `booking-events` (the DomainEventPublisher protocol)."""

    def __init__(self, producer: SharedProducer) -> None:
        self.producer = producer

    def publish(self, events: list[tuple[str, dict]]) -> None:
        messages = [(key, json.dumps(payload, separators=(",", ":"), default=str).encode()) for key, payload in events]
        self.producer.send_many(BOOKING_EVENTS_TOPIC, messages)


class KafkaProbe:
    """The Probe port for Kafka: the API's producer reaches a broker that holds booking-requests."""

    name = "kafka"

    def __init__(self, producer: SharedProducer, topic: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self.producer = producer
        self.topic = topic
        self.timeout_s = timeout_s

    def ping(self) -> bool:
        try:
            return self.producer.has_topic(self.topic, self.timeout_s)
        except (KafkaException, RuntimeError):
            return False
