"""Topic, queue, group and header names: one place, so producers and consumers agree."""

from __future__ import annotations

BOOKING_REQUESTS_TOPIC = "booking-requests"
BOOKING_EVENTS_TOPIC = "booking-events"
BRIDGE_CONSUMER_GROUP = "atomicseats-bridge"

CORRELATION_HEADER_KAFKA = "x-request-id"
CORRELATION_HEADER_CELERY = "correlation_id"

ALLOCATION_QUEUE_PREFIX = "alloc.p"
NOTIFICATIONS_QUEUE = "notifications"  # e-mail
DOMAIN_EVENTS_QUEUE = "domain-events"  # outbox rows to the booking-events topic: never behind e-mail
MAINTENANCE_QUEUE = "maintenance"


def allocation_queue(partition: int) -> str:
    """Each Kafka partition of booking-requests has its own allocation queue."""
    assert partition >= 0
    return f"{ALLOCATION_QUEUE_PREFIX}{partition}"


def allocation_queues(partition_count: int) -> list[str]:
    return [allocation_queue(partition) for partition in range(partition_count)]
