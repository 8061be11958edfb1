"""The full pipeline's entry: the API produces to Kafka; the bridge and Celery do the rest."""

from __future__ import annotations

import threading
import time

from celery import Celery

from atomicseats.adapters.kafka import KafkaRequestPublisher
from atomicseats.names import (
    DOMAIN_EVENTS_QUEUE,
    NOTIFICATIONS_QUEUE,
    PUBLISH_DOMAIN_EVENTS_TASK,
    SEND_NOTIFICATIONS_TASK,
)
from atomicseats.services.contracts import AcceptedRequest

OUTBOX_WAKE_INTERVAL_S = 0.25  # at most this often per process; beat sweeps the rest
# A wake-up still queued after this long is dropped when it is received: the senders were busy,
# and a pile of stale wake-ups would only stand in front of the next useful one.
OUTBOX_WAKE_EXPIRES_S = 2.0


class KafkaPipeline:
    records_before_answering = False

    def __init__(self, publisher: KafkaRequestPublisher, celery_app: Celery) -> None:
        self.publisher = publisher
        self.celery_app = celery_app
        self._last_outbox_wake = 0.0
        self._lock = threading.Lock()

    def submit(self, accepted: AcceptedRequest) -> bool:
        """Return once the broker acknowledged the request (acks=all); ServiceBusy otherwise."""
        self.publisher.publish(accepted)
        return False

    def wake_outbox(self) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last_outbox_wake < OUTBOX_WAKE_INTERVAL_S:
                return
            self._last_outbox_wake = now
        for task, queue in (
            (SEND_NOTIFICATIONS_TASK, NOTIFICATIONS_QUEUE),
            (PUBLISH_DOMAIN_EVENTS_TASK, DOMAIN_EVENTS_QUEUE),
        ):
            self.celery_app.send_task(task, queue=queue, expires=OUTBOX_WAKE_EXPIRES_S)
