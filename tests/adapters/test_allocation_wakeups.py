"""Allocation wake-ups are coalesced per event, and the outbox's per task (adapters/celery_app.py,
CeleryWakeups): while a partition's task waits in its queue, waking it again sends nothing and
the events join that task; once the task starts (it takes them and clears the marker before it
reads the pending requests), a wake-up queues another.

make bench's many-events phase found the pile this prevents: a task per event per bridge batch
and per sweep, 1,100 of them still queued after the last of 20,000 requests over 200 events was
decided. Real Redis: Celery's broker (the queues are Redis lists) and the markers' store."""

from __future__ import annotations

import json
import socket

import pytest
from celery import Celery

from atomicseats import tasks
from atomicseats.adapters import celery_app as celery_app_module
from atomicseats.adapters.celery_app import (
    ALLOCATION_EVENTS_KEY,
    ALLOCATION_HELD_KEY,
    ALLOCATION_HELD_TTL_S,
    ALLOCATION_QUEUED_KEY,
    ALLOCATION_QUEUED_TTL_S,
    OUTBOX_QUEUED_KEY,
    OUTBOX_WAKE_EXPIRES_S,
    CeleryWakeups,
)
from atomicseats.adapters.redis_cache import connect
from atomicseats.domain import limits
from atomicseats.names import (
    DOMAIN_EVENTS_QUEUE,
    NOTIFICATIONS_QUEUE,
    PUBLISH_DOMAIN_EVENTS_TASK,
    SEND_NOTIFICATIONS_TASK,
    allocation_queue,
)
from atomicseats.services import booking
from atomicseats.services.ports import EXTENSION_KEY
from tests.helpers import accepted, account, book, create_event


@pytest.fixture
def redis_client(redis_url):
    client = connect(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def celery_on(broker_url: str) -> Celery:
    celery_app = Celery("wakeups-test")
    celery_app.conf.update(
        broker_url=broker_url,
        task_publish_retry=False,
        broker_connection_retry=False,
        broker_connection_timeout=0.5,
        broker_transport_options={"max_retries": 0},
    )
    return celery_app


def queued(client, partition: int) -> list[list]:
    """The arguments ([partition, [event ids]]) of the tasks waiting in a partition's queue, oldest first."""
    messages = reversed(client.lrange(allocation_queue(partition), 0, -1))  # kombu pushes to the head
    return [json.loads(message)["headers"]["argsrepr"] for message in messages]


def args(partition: int, event_ids: list[int]) -> str:
    return repr([partition, event_ids])


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends: nothing listens there


def marker(partition: int) -> str:
    return ALLOCATION_QUEUED_KEY.format(partition=partition)


def joined(client, partition: int) -> set[int]:
    """The events woken for a partition while its task waits in the queue."""
    return {int(member) for member in client.smembers(ALLOCATION_EVENTS_KEY.format(partition=partition))}


def test_a_partition_whose_task_waits_in_the_queue_is_not_queued_again_its_events_join_it(redis_url, redis_client):
    wakeups = CeleryWakeups(celery_on(redis_url), markers=redis_client)
    for _ in range(3):  # three bridge batches (or sweeps) with requests for event 5
        wakeups.wake_allocation(2, [5])
    wakeups.wake_allocation(2, [5, 6])  # 6 is new: it joins the queued task
    wakeups.wake_allocation(3, [7])  # another partition: a task of its own
    assert queued(redis_client, 2) == [args(2, [5])]
    assert queued(redis_client, 3) == [args(3, [7])]
    assert joined(redis_client, 2) == {5, 6}
    ttl_ms = redis_client.pttl(marker(2))
    assert 0 < ttl_ms <= ALLOCATION_QUEUED_TTL_S * 1000  # a marker whose task was lost cannot hold wake-ups for long


def test_a_batchs_events_of_one_partition_are_woken_in_one_task(redis_url, redis_client):
    wakeups = CeleryWakeups(celery_on(redis_url), markers=redis_client)
    wakeups.wake_allocation(1, [7, 3, 7, 9])  # a bridge batch's events of partition 1, one named twice
    assert queued(redis_client, 1) == [args(1, [7, 3, 9])]


def test_once_the_task_has_started_a_wake_up_queues_another(redis_url, redis_client):
    wakeups = CeleryWakeups(celery_on(redis_url), markers=redis_client)
    wakeups.wake_allocation(0, [5])
    wakeups.wake_allocation(0, [6])
    assert wakeups.allocation_started(0, "task-a", [5]) == [6]  # the task takes every other event woken meanwhile
    assert redis_client.exists(marker(0)) == 0 and joined(redis_client, 0) == set()
    wakeups.wake_allocation(0, [5])  # it reads the pending requests after this: later ones need a task of their own
    wakeups.wake_allocation(0, [5, 6])
    assert queued(redis_client, 0) == [args(0, [5]), args(0, [5])]


def test_a_task_delivered_again_takes_again_the_events_its_first_delivery_took_until_it_finishes(
    redis_url, redis_client
):
    """A task whose worker died comes back under its id with the arguments it was sent with:
    the events that had joined it are held under that id, not lost until the sweeper."""
    wakeups = CeleryWakeups(celery_on(redis_url), markers=redis_client)
    wakeups.wake_allocation(0, [5])
    wakeups.wake_allocation(0, [6])  # joins
    assert wakeups.allocation_started(0, "task-a", [5]) == [6]
    held = ALLOCATION_HELD_KEY.format(task_id="task-a")
    assert 0 < redis_client.pttl(held) <= ALLOCATION_HELD_TTL_S * 1000  # one that never finishes: for so long
    wakeups.wake_allocation(0, [7])  # a wake-up after the start queues the next task, sent with 7
    assert wakeups.allocation_started(0, "task-b", [7]) == []  # nothing joined it: nothing held, nothing to finish
    assert redis_client.exists(ALLOCATION_HELD_KEY.format(task_id="task-b")) == 0
    # task-a's worker dies; the broker delivers it again (same id, same arguments: [0, [5]])
    assert wakeups.allocation_started(0, "task-a", [5]) == [6]
    wakeups.allocation_finished(0, "task-a")
    assert redis_client.exists(held) == 0
    assert wakeups.allocation_started(0, "task-a", [5]) == []  # a later delivery of a finished task takes nothing


def test_without_the_markers_every_wake_up_is_sent(redis_url, redis_client):
    unreachable = connect(f"redis://127.0.0.1:{closed_port()}/0")
    wakeups = CeleryWakeups(celery_on(redis_url), markers=unreachable)
    for _ in range(3):
        wakeups.wake_allocation(1, [5, 6])
    assert queued(redis_client, 1) == [args(1, [5, 6])] * 3  # a wake-up too many is harmless; one too few is not
    assert wakeups.allocation_started(1, "task-a", [5, 6]) == []  # nor does starting a task fail: it has its own


def test_a_wake_up_that_could_not_be_sent_leaves_no_marker(redis_url, redis_client):
    wakeups = CeleryWakeups(celery_on(f"redis://127.0.0.1:{closed_port()}/0"), markers=redis_client)
    with pytest.raises(Exception):  # noqa: B017 - kombu's connection error, whichever it is
        wakeups.wake_allocation(0, [4, 5])
    assert redis_client.exists(marker(0)) == 0  # the next wake-up sends
    working = CeleryWakeups(celery_on(redis_url), markers=redis_client)
    working.wake_allocation(0, [6])
    assert queued(redis_client, 0) == [args(0, [6])]
    assert sorted(working.allocation_started(0, "task-a", [6])) == [4, 5]  # its task takes the unsent one's events


def test_the_allocation_task_takes_the_events_that_joined_it_and_clears_the_marker(
    app, client, redis_url, redis_client
):
    import dataclasses

    host, guest = account(client, "host"), account(client)
    event_ids = [create_event(client, host)["id"] for _ in range(2)]
    book(client, guest, event_ids[0], 2)  # the embedded default decides it at once
    booking.record_requests([accepted(guest.id, event_ids[1], 3)])  # pending
    wakeups = CeleryWakeups(celery_on(redis_url), markers=redis_client)
    app.extensions[EXTENSION_KEY] = dataclasses.replace(app.extensions[EXTENSION_KEY], wakeups=wakeups)
    wakeups.wake_allocation(0, [event_ids[0]])
    wakeups.wake_allocation(0, [event_ids[1]])  # joins the queued task
    assert queued(redis_client, 0) == [args(0, [event_ids[0]])]
    assert tasks.allocate_events.apply(args=[0, [event_ids[0]]]).get() == 1  # the joined event's request
    assert redis_client.exists(marker(0)) == 0 and joined(redis_client, 0) == set()
    wakeups.wake_allocation(0, event_ids)
    assert queued(redis_client, 0) == [args(0, [event_ids[0]]), args(0, event_ids)]


def test_a_retried_task_keeps_the_events_that_joined_it(app, redis_url, redis_client, monkeypatch):
    """The set they joined is emptied when the task starts: its retry (the database busy) must
    carry them, or they would wait for the sweeper."""
    import dataclasses

    from atomicseats.errors import ServiceBusy

    wakeups = CeleryWakeups(celery_on(redis_url), markers=redis_client)
    app.extensions[EXTENSION_KEY] = dataclasses.replace(app.extensions[EXTENSION_KEY], wakeups=wakeups)
    wakeups.wake_allocation(0, [11])
    wakeups.wake_allocation(0, [12])  # joins
    attempts: list[list[int]] = []

    def busy(batch_max_by_event):
        attempts.append(sorted(batch_max_by_event))
        raise ServiceBusy()

    monkeypatch.setattr(booking, "allocate_pending_together", busy)
    tasks.allocate_events.apply(args=[0, [11]])  # eager: its retries run at once, until they give up
    assert len(attempts) == tasks.ALLOCATION_RETRIES_MAX + 1
    assert all(attempt == [11, 12] for attempt in attempts)


def test_an_allocation_task_whose_worker_died_decides_the_joined_events_when_delivered_again(
    app, client, redis_url, redis_client, monkeypatch
):
    import dataclasses

    host, guest = account(client, "host"), account(client)
    event_ids = [create_event(client, host)["id"] for _ in range(2)]
    booking.record_requests([accepted(guest.id, event_id, 2) for event_id in event_ids])  # pending
    wakeups = CeleryWakeups(celery_on(redis_url), markers=redis_client)
    app.extensions[EXTENSION_KEY] = dataclasses.replace(app.extensions[EXTENSION_KEY], wakeups=wakeups)
    wakeups.wake_allocation(0, [event_ids[0]])
    wakeups.wake_allocation(0, [event_ids[1]])  # joins the queued task, whose message names only the first
    decide = booking.allocate_pending_together

    def worker_dies(batch_max_by_event):
        monkeypatch.setattr(booking, "allocate_pending_together", decide)  # the next delivery runs on
        raise RuntimeError("the worker process was killed")  # before it decided anything

    monkeypatch.setattr(booking, "allocate_pending_together", worker_dies)
    assert tasks.allocate_events.apply(args=[0, [event_ids[0]]], task_id="allocation-1").failed()
    assert dict(pending_counts()) == {event_ids[0]: 1, event_ids[1]: 1}
    # Delivered again: the same id and arguments. Both events are decided, not the first alone.
    assert tasks.allocate_events.apply(args=[0, [event_ids[0]]], task_id="allocation-1").get() == 2
    assert dict(pending_counts()) == {}
    assert redis_client.exists(ALLOCATION_HELD_KEY.format(task_id="allocation-1")) == 0  # finished: let go


def test_a_task_decides_its_events_batch_after_batch_and_queues_what_its_cap_left(
    app, client, redis_url, redis_client, monkeypatch
):
    import dataclasses

    host, guest = account(client, "host"), account(client)
    first_id, second_id = (create_event(client, host, capacity=20)["id"] for _ in range(2))
    booking.record_requests([accepted(guest.id, first_id) for _ in range(5)] + [accepted(guest.id, second_id)])
    wakeups = CeleryWakeups(celery_on(redis_url), markers=redis_client)
    app.extensions[EXTENSION_KEY] = dataclasses.replace(app.extensions[EXTENSION_KEY], wakeups=wakeups)
    monkeypatch.setattr(limits, "ALLOCATION_BATCH_SIZE_MAX", 2)
    monkeypatch.setattr(limits, "ALLOCATION_EVENTS_PER_TRANSACTION_MAX", 1)  # a transaction each
    monkeypatch.setattr(tasks, "ALLOCATION_REQUESTS_PER_TASK_MAX", 3)
    # The first event's full batch of 2 sends it behind the second (1, short: done); then the
    # task has decided its 3 and queues a successor for the first event, whose batch had grown.
    assert tasks.allocate_events.apply(args=[4, [second_id, first_id]]).get() == 3
    assert queued(redis_client, 4) == [args(4, [first_id])]
    assert dict(pending_counts()) == {first_id: 3}


def test_the_sweeper_wakes_each_partitions_stranded_events_in_one_task(
    app, client, redis_url, redis_client, monkeypatch
):
    import dataclasses

    host, guest = account(client, "host"), account(client)
    event_ids = [create_event(client, host)["id"] for _ in range(3)]
    partitions = {event_ids[0]: 1, event_ids[1]: 5, event_ids[2]: 1}
    booking.record_requests(
        [
            dataclasses.replace(accepted(guest.id, event_id), kafka_partition=partitions[event_id])
            for event_id in event_ids
        ]
    )
    wakeups = CeleryWakeups(celery_on(redis_url), markers=redis_client)
    app.extensions[EXTENSION_KEY] = dataclasses.replace(app.extensions[EXTENSION_KEY], wakeups=wakeups)
    monkeypatch.setattr(tasks, "STRANDED_AFTER_S", 0)
    assert tasks.sweep_pending() == 3
    assert queued(redis_client, 1) == [args(1, [event_ids[0], event_ids[2]])]
    assert queued(redis_client, 5) == [args(5, [event_ids[1]])]


def test_a_bridge_batch_wakes_one_task_per_partition_with_its_events(app, redis_url, redis_client):
    import dataclasses

    from atomicseats.bridge import _wake_events

    wakeups = CeleryWakeups(celery_on(redis_url), markers=redis_client)
    app.extensions[EXTENSION_KEY] = dataclasses.replace(app.extensions[EXTENSION_KEY], wakeups=wakeups)
    where = [(7, 1), (3, 4), (7, 1), (9, 1), (3, 4), (8, None)]  # (event, partition); None: not from Kafka
    _wake_events(
        [dataclasses.replace(accepted(1, event_id), kafka_partition=partition) for event_id, partition in where]
    )
    assert queued(redis_client, 1) == [args(1, [7, 9])]
    assert queued(redis_client, 4) == [args(4, [3])]
    assert queued(redis_client, 0) == [args(0, [8])]


def pending_counts() -> list[tuple[int, int]]:
    from sqlalchemy import func, select

    from atomicseats.extensions import db
    from atomicseats.models import BookingRequest

    statement = (
        select(BookingRequest.event_id, func.count())
        .where(BookingRequest.status == "pending")
        .group_by(BookingRequest.event_id)
    )
    return [tuple(row) for row in db.session.execute(statement)]


# -- the outbox's wake-ups: the same coalescing, one marker per task ------------------------


def queued_tasks(client, queue: str) -> list[str]:
    return [json.loads(message)["headers"]["task"] for message in client.lrange(queue, 0, -1)]


def test_an_outbox_task_that_waits_in_its_queue_is_not_queued_again(redis_url, redis_client, monkeypatch):
    monkeypatch.setattr(celery_app_module, "OUTBOX_WAKE_INTERVAL_S", 0)  # this process's own throttle off
    senders = [CeleryWakeups(celery_on(redis_url), markers=redis_client) for _ in range(3)]  # three processes
    for wakeups in senders * 2:  # six allocation batches' commits, the mailer busy meanwhile
        wakeups.wake_outbox()
    assert queued_tasks(redis_client, NOTIFICATIONS_QUEUE) == [SEND_NOTIFICATIONS_TASK]
    assert queued_tasks(redis_client, DOMAIN_EVENTS_QUEUE) == [PUBLISH_DOMAIN_EVENTS_TASK]
    ttl_ms = redis_client.pttl(OUTBOX_QUEUED_KEY.format(task=SEND_NOTIFICATIONS_TASK))
    assert 0 < ttl_ms <= OUTBOX_WAKE_EXPIRES_S * 1000  # no longer than the queued wake-up itself lives

    senders[0].outbox_started(SEND_NOTIFICATIONS_TASK)  # the mailer took it: e-mails recorded now need another
    senders[1].wake_outbox()
    assert queued_tasks(redis_client, NOTIFICATIONS_QUEUE) == [SEND_NOTIFICATIONS_TASK] * 2
    assert queued_tasks(redis_client, DOMAIN_EVENTS_QUEUE) == [PUBLISH_DOMAIN_EVENTS_TASK]  # that one still waits


def test_without_the_markers_every_outbox_wake_up_is_sent(redis_url, redis_client, monkeypatch):
    monkeypatch.setattr(celery_app_module, "OUTBOX_WAKE_INTERVAL_S", 0)
    wakeups = CeleryWakeups(celery_on(redis_url), markers=connect(f"redis://127.0.0.1:{closed_port()}/0"))
    wakeups.wake_outbox()
    wakeups.wake_outbox()
    assert queued_tasks(redis_client, NOTIFICATIONS_QUEUE) == [SEND_NOTIFICATIONS_TASK] * 2
    wakeups.outbox_started(SEND_NOTIFICATIONS_TASK)  # does not fail either


@pytest.mark.parametrize("task_name", [SEND_NOTIFICATIONS_TASK, PUBLISH_DOMAIN_EVENTS_TASK])
def test_the_outbox_tasks_clear_their_marker_when_they_start(app, redis_url, redis_client, task_name):
    import dataclasses

    wakeups = CeleryWakeups(celery_on(redis_url), markers=redis_client)
    app.extensions[EXTENSION_KEY] = dataclasses.replace(app.extensions[EXTENSION_KEY], wakeups=wakeups)
    redis_client.set(OUTBOX_QUEUED_KEY.format(task=task_name), "1")  # its wake-up was queued
    task = {SEND_NOTIFICATIONS_TASK: tasks.send_notifications, PUBLISH_DOMAIN_EVENTS_TASK: tasks.publish_domain_events}
    assert task[task_name].apply().get() == 0  # nothing due
    assert redis_client.exists(OUTBOX_QUEUED_KEY.format(task=task_name)) == 0
