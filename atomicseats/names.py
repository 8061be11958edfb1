"""Topic, partition, queue, task, group and header names: one place, so producers and consumers
agree. Python imports them; the shell scripts ask this module; docker-compose.yml cannot, so
tests/test_names.py holds it to them.

    python atomicseats/names.py topics                          "name partitions" per topic
    python atomicseats/names.py queues [all|allocation|notifications] [--partitions N]
                                                                comma-separated, for celery -Q
    python atomicseats/names.py tasks                           one Celery task name per line

Stdlib only, and run by its path (not -m, which would import the whole application first):
any python3 can answer, before the virtualenv exists.
"""

from __future__ import annotations

import argparse
import sys

# --- Kafka -------------------------------------------------------------------------------------
BOOKING_REQUESTS_TOPIC = "booking-requests"
BOOKING_EVENTS_TOPIC = "booking-events"
# Partitions of booking-requests: each has its own allocation queue, so the default of
# KAFKA_PARTITIONS, the topic as the scripts create it and the worker's queues follow from it.
BOOKING_REQUESTS_PARTITIONS = 6
BOOKING_EVENTS_PARTITIONS = 3
TOPICS = {BOOKING_REQUESTS_TOPIC: BOOKING_REQUESTS_PARTITIONS, BOOKING_EVENTS_TOPIC: BOOKING_EVENTS_PARTITIONS}
BRIDGE_CONSUMER_GROUP = "atomicseats-bridge"

# --- headers -----------------------------------------------------------------------------------
CORRELATION_HEADER = "X-Request-ID"  # HTTP, both ways
CORRELATION_HEADER_KAFKA = "x-request-id"  # on booking-requests messages
CORRELATION_HEADER_CELERY = "correlation_id"  # on Celery task messages
IDEMPOTENCY_HEADER = "Idempotency-Key"  # HTTP, on POST /api/events/book
MAIL_KIND_HEADER = "X-AtomicSeats-Kind"  # on every e-mail: which notification it is

# --- pages the e-mails link to (under PUBLIC_BASE_URL; tests/web/test_my_bookings.py holds the routes to them)
EVENT_PAGE_PATH = "/events/{event_id}"
MY_BOOKINGS_PATH = "/bookings"
OFFER_PAGE_PATH = "/offers/{token}"  # a waitlist offer, answered from its e-mail's signed link

# --- Celery queues -----------------------------------------------------------------------------
ALLOCATION_QUEUE_PREFIX = "alloc.p"
NOTIFICATIONS_QUEUE = "notifications"  # e-mail
DOMAIN_EVENTS_QUEUE = "domain-events"  # outbox rows to the booking-events topic: never behind e-mail
MAINTENANCE_QUEUE = "maintenance"  # the sweeper, sales close-out, offer expiry: quick, beside allocation
HOUSEKEEPING_QUEUE = "housekeeping"  # cache reconcile, retention purge: long runs, never in an allocation process

# --- Celery tasks ------------------------------------------------------------------------------
ALLOCATE_EVENTS_TASK = "atomicseats.allocate_events"
SWEEP_PENDING_TASK = "atomicseats.sweep_pending"
SEND_NOTIFICATIONS_TASK = "atomicseats.send_notifications"
PUBLISH_DOMAIN_EVENTS_TASK = "atomicseats.publish_domain_events"
CLOSE_SALES_TASK = "atomicseats.close_sales"
EXPIRE_OFFERS_TASK = "atomicseats.expire_offers"
RECONCILE_CACHES_TASK = "atomicseats.reconcile_caches"
PURGE_TASK = "atomicseats.purge"
TASKS = (
    ALLOCATE_EVENTS_TASK,
    SWEEP_PENDING_TASK,
    SEND_NOTIFICATIONS_TASK,
    PUBLISH_DOMAIN_EVENTS_TASK,
    CLOSE_SALES_TASK,
    EXPIRE_OFFERS_TASK,
    RECONCILE_CACHES_TASK,
    PURGE_TASK,
)

WORKER_KINDS = ("all", "allocation", "notifications")


def allocation_queue(partition: int) -> str:
    """Each Kafka partition of booking-requests has its own allocation queue."""
    assert partition >= 0
    return f"{ALLOCATION_QUEUE_PREFIX}{partition}"


def allocation_queues(partition_count: int) -> list[str]:
    return [allocation_queue(partition) for partition in range(partition_count)]


def worker_queues(kind: str = "all", partitions: int = BOOKING_REQUESTS_PARTITIONS) -> list[str]:
    """The queues a worker consumes: allocation (every partition, plus maintenance), notifications
    (e-mail, domain events and housekeeping, best in a process of their own so neither mail nor a
    minute's cache reconcile ever holds an allocation process), or all."""
    if kind not in WORKER_KINDS:
        raise ValueError(f"unknown worker kind {kind!r} (one of {', '.join(WORKER_KINDS)})")
    allocation = [*allocation_queues(partitions), MAINTENANCE_QUEUE]
    notifications = [NOTIFICATIONS_QUEUE, DOMAIN_EVENTS_QUEUE, HOUSEKEEPING_QUEUE]
    if kind == "allocation":
        return allocation
    if kind == "notifications":
        return notifications
    return [*allocation, *notifications]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="atomicseats/names.py", description="Print the platform's names.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("topics", help='"name partitions" per Kafka topic')
    queues = commands.add_parser("queues", help="a worker's Celery queues, comma-separated")
    queues.add_argument("kind", nargs="?", default="all", choices=WORKER_KINDS)
    queues.add_argument("--partitions", type=int, default=BOOKING_REQUESTS_PARTITIONS)
    commands.add_parser("tasks", help="the Celery task names")
    args = parser.parse_args(argv)
    if args.command == "topics":
        lines = [f"{topic} {partitions}" for topic, partitions in TOPICS.items()]
    elif args.command == "queues":
        lines = [",".join(worker_queues(args.kind, args.partitions))]
    else:
        lines = list(TASKS)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
