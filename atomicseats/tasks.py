"""Celery tasks: ids in, one service call each, idempotent, retried within bounds."""

from __future__ import annotations

import logging
import time

from celery import shared_task

from atomicseats.batching import events_by_partition, grown_batch_size, transaction_round
from atomicseats.domain import limits
from atomicseats.errors import ServiceBusy
from atomicseats.names import (
    ALLOCATE_EVENTS_TASK,
    CLOSE_SALES_TASK,
    EXPIRE_OFFERS_TASK,
    PUBLISH_DOMAIN_EVENTS_TASK,
    PURGE_TASK,
    RECONCILE_CACHES_TASK,
    SEND_NOTIFICATIONS_TASK,
    SWEEP_PENDING_TASK,
)
from atomicseats.services import booking
from atomicseats.services.ports import adapters
from atomicseats.services.unit_of_work import database_errors_as_busy

log = logging.getLogger(__name__)

ALLOCATION_RETRIES_MAX = 10
ALLOCATION_REQUESTS_PER_TASK_MAX = 20_000  # then the task re-queues itself so other events get a turn
ALLOCATION_RETRY_DELAY_S = 0.5  # doubled on each retry up to the cap: ~40 s of retries in all
ALLOCATION_RETRY_DELAY_S_MAX = 5.0  # a database restart takes seconds; the sweeper covers the rest
STRANDED_AFTER_S = 3.0  # pending this long without a decision: wake its event again
OUTBOX_ROUNDS_MAX = 20  # domain events: a round is one produce to Kafka
# E-mail: batches back to back while they come back full, for up to this long; then, if more
# remain, the task queues a successor behind whatever else waits. (A fixed 3 batches a task
# capped a drain at 600 e-mails per beat, ~300/s, once the burst's own wake-ups stopped.)
EMAIL_TASK_S_MAX = 5.0


@shared_task(name=ALLOCATE_EVENTS_TASK, bind=True, max_retries=ALLOCATION_RETRIES_MAX)
def allocate_events(self, partition: int, event_ids: list[int]) -> int:
    """Decide the pending requests of a partition's events (those it was sent with, and those
    woken while it waited), batch after batch, until none are left: each round one transaction
    for as many of them as `transaction_round` allows (services/booking.py,
    `allocate_pending_together`); an event whose batch came back short is done, one whose batch
    came back full goes on with a bigger one, after the others (atomicseats/batching.py).
    A delivery of the task after its worker died takes again the events the first one had
    joined (Wakeups.allocation_started: held under the task's id until it finishes)."""
    wakeups = adapters().wakeups
    # Before reading: requests recorded from now on wake another task.
    joined = wakeups.allocation_started(partition, self.request.id, event_ids)
    all_event_ids = sorted({*event_ids, *joined})
    batch_max_by_event = dict.fromkeys(all_event_ids, limits.ALLOCATION_BATCH_SIZE_MAX)
    decided = 0
    try:
        while batch_max_by_event and decided < ALLOCATION_REQUESTS_PER_TASK_MAX:
            chosen = transaction_round(
                batch_max_by_event, limits.ALLOCATION_EVENTS_PER_TRANSACTION_MAX, limits.ALLOCATION_BACKLOG_BATCH_MAX
            )
            for event_id, summary in booking.allocate_pending_together(chosen).items():
                decided += summary.requests_decided
                size = batch_max_by_event.pop(event_id)
                if summary.requests_decided == size:  # a full batch: more may be pending, after the others
                    start, cap = limits.ALLOCATION_BATCH_SIZE_MAX, limits.ALLOCATION_BACKLOG_BATCH_MAX
                    batch_max_by_event[event_id] = grown_batch_size(size, summary.requests_decided, start, cap)
    except ServiceBusy as error:  # a lock held elsewhere, or the database down or recovering
        # Every event it took, those that joined it too: the set they came from is empty now.
        delay_s = allocation_retry_delay_s(self.request.retries)
        raise self.retry(args=[partition, all_event_ids], exc=error, countdown=delay_s) from error
    if batch_max_by_event:  # more remain: queue behind whatever else waits
        wakeups.wake_allocation(partition, list(batch_max_by_event))
    if joined:  # held under its id (its retries carry them in their arguments, and finish here too)
        wakeups.allocation_finished(partition, self.request.id)
    return decided


def allocation_retry_delay_s(retries: int) -> float:
    return min(ALLOCATION_RETRY_DELAY_S * 2**retries, ALLOCATION_RETRY_DELAY_S_MAX)


@shared_task(name=SWEEP_PENDING_TASK)
def sweep_pending() -> int:
    """Re-wake events whose requests wait too long: a lost wake-up never strands a request.
    While the database is down or recovering there is nothing to read: the first sweep after
    it is back wakes whatever the outage stranded."""
    try:
        with database_errors_as_busy():
            stranded = booking.stranded_events(older_than_s=STRANDED_AFTER_S)
    except ServiceBusy:
        log.warning("sweep.skipped", extra={"reason": "database unavailable"})
        return 0
    wakeups = adapters().wakeups
    for partition, event_ids in events_by_partition(stranded).items():
        wakeups.wake_allocation(partition, event_ids)
    if stranded:
        log.warning("sweep.rewoke", extra={"events": len(stranded)})
    return len(stranded)


@shared_task(name=SEND_NOTIFICATIONS_TASK)
def send_notifications() -> int:
    from atomicseats.services import outbox

    adapters().wakeups.outbox_started(SEND_NOTIFICATIONS_TASK)  # before reading: later e-mails wake it again
    sent = 0
    started = time.monotonic()
    while True:
        report = outbox.send_due_notifications()
        sent += report.sent
        if report.sent + report.retried + report.failed < limits.OUTBOX_BATCH_SIZE_MAX:
            return sent
        if time.monotonic() - started > EMAIL_TASK_S_MAX:
            adapters().wakeups.wake_outbox()  # more remain: a successor goes on
            return sent


@shared_task(name=PUBLISH_DOMAIN_EVENTS_TASK)
def publish_domain_events() -> int:
    from atomicseats.services import outbox

    adapters().wakeups.outbox_started(PUBLISH_DOMAIN_EVENTS_TASK)
    published = 0
    for _ in range(OUTBOX_ROUNDS_MAX):
        count = outbox.publish_due_domain_events(limits.OUTBOX_BATCH_SIZE_MAX)
        published += count
        if count < limits.OUTBOX_BATCH_SIZE_MAX:
            break
    return published


@shared_task(name=CLOSE_SALES_TASK)
def close_sales() -> int:
    """Close out the waitlists of events whose sales ended (idempotent, bounded)."""
    from atomicseats.services import sales

    try:
        return sales.close_due_sales().entries_expired
    except ServiceBusy:  # an event row stayed locked: the next beat tries again
        log.warning("sales.close_out.busy")
        return 0


@shared_task(name=EXPIRE_OFFERS_TASK)
def expire_offers() -> int:
    """End the waitlist offers past their deadline: their seats go to the next in line."""
    from atomicseats.services import offers

    try:
        return offers.expire_due_offers()
    except ServiceBusy:  # an event row stayed locked: the next beat tries again
        log.warning("offers.expiry.busy")
        return 0


@shared_task(name=RECONCILE_CACHES_TASK)
def reconcile_caches() -> int:
    from atomicseats.services import reconcile

    started = time.monotonic()
    report = reconcile.reconcile()
    repaired = report.availability_repaired + report.waitlists_repaired
    log.info("reconcile.done", extra={"repaired": repaired, "s": round(time.monotonic() - started, 3)})
    return repaired


@shared_task(name=PURGE_TASK)
def purge() -> int:
    """Retention: delete old decided requests, delivered outbox rows and ended sessions in short
    batches; what a run leaves (a big backlog, or a batch that met a lock) the next one takes."""
    from atomicseats.services import retention

    try:
        return retention.purge(retention.configured_policy()).total
    except ServiceBusy:
        log.warning("retention.purge.busy")
        return 0
