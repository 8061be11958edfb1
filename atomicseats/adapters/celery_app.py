"""The Celery app, built from the Flask app: tasks run inside an app context.

Delivery options are spelled out rather than trusted to defaults: late acks, a
task lost with its worker goes back to the queue, one message prefetched at a
time, a short visibility timeout so a killed worker's task comes back quickly.
Every task is idempotent, so a redelivery is harmless.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence

import redis
from celery import Celery, Task, signals
from flask import Flask

from atomicseats.domain.limits import CLOSE_OUT_INTERVAL_S, OFFER_EXPIRY_INTERVAL_S
from atomicseats.names import (
    ALLOCATE_EVENTS_TASK,
    CLOSE_SALES_TASK,
    CORRELATION_HEADER_CELERY,
    DOMAIN_EVENTS_QUEUE,
    EXPIRE_OFFERS_TASK,
    HOUSEKEEPING_QUEUE,
    MAINTENANCE_QUEUE,
    NOTIFICATIONS_QUEUE,
    PUBLISH_DOMAIN_EVENTS_TASK,
    PURGE_TASK,
    RECONCILE_CACHES_TASK,
    SEND_NOTIFICATIONS_TASK,
    SWEEP_PENDING_TASK,
    allocation_queue,
)
from atomicseats.observability import announce_ready, get_correlation_id, reset_correlation_id, set_correlation_id

log = logging.getLogger(__name__)

BEAT_HEARTBEAT_SETTING = "atomicseats_beat_heartbeat_file"
VISIBILITY_TIMEOUT_S = 30
SWEEP_INTERVAL_S = 2.0
OUTBOX_INTERVAL_S = 2.0
RECONCILE_INTERVAL_S = 60.0
PURGE_INTERVAL_S = 3600.0  # retention: each run deletes in short batches (services/retention.py)
OUTBOX_WAKE_INTERVAL_S = 0.25  # at most this often per process; beat sweeps the rest
# A wake-up still queued after this long is dropped when it is received: the senders were busy,
# and a pile of stale wake-ups would only stand in front of the next useful one.
OUTBOX_WAKE_EXPIRES_S = 2.0
# Marks a partition whose allocation task is queued and not yet started: while it is there, a
# wake-up for the partition adds its events to the partition's set and sends nothing (the queued
# task takes the set when it starts, and reads the pending requests after that). So a partition
# has at most one task waiting, and it decides every event woken meanwhile in one transaction.
# The TTL bounds how long a marker whose task was lost can hold wake-ups back.
ALLOCATION_QUEUED_KEY = "atomicseats:partition:{partition}:allocation-queued"
ALLOCATION_EVENTS_KEY = "atomicseats:partition:{partition}:allocation-events"
ALLOCATION_QUEUED_TTL_S = 10.0
# KEYS: the marker, the set; ARGV: the TTL in ms, then the event ids. 1: a task must be sent.
_WAKE_PARTITION = """
redis.call('SADD', KEYS[2], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[2], ARGV[1])
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 1 end
return 0
"""
# The events a started task took from the set, other than those it was sent with, are held
# under its task id until it finishes: a task whose worker died is delivered again under the
# same id with the arguments it was sent with, and takes them from there (else they waited for
# the sweeper). The TTL outlasts a redelivery (VISIBILITY_TIMEOUT_S) and a task's own run many
# times over; past it, the sweeper.
ALLOCATION_HELD_KEY = "atomicseats:allocation-task:{task_id}:held-events"
ALLOCATION_HELD_TTL_S = 600.0
# KEYS: the marker, the set, the task's held set; ARGV: the held set's TTL in ms, then the
# events the task was sent with. The other events woken since the task was queued, taken with
# the marker, and those its earlier delivery took. (The set holds the task's own events too: the
# wake-up that queued it added them. Held, they would cost every task a round trip to let go.)
_START_PARTITION = """
local events = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2])
local own = {}
for i = 2, #ARGV do own[ARGV[i]] = true end
local joined = {}
for _, event_id in ipairs(events) do
  if not own[event_id] then joined[#joined + 1] = event_id end
end
if #joined > 0 then
  redis.call('SADD', KEYS[3], unpack(joined))
  redis.call('PEXPIRE', KEYS[3], ARGV[1])
end
return redis.call('SMEMBERS', KEYS[3])
"""


# The same for the outbox's two tasks (e-mails, domain events): one of each waits at a time.
# A queued wake-up expires after OUTBOX_WAKE_EXPIRES_S, and its marker with it. Without the
# marker every allocation batch of every worker process sent both (a Celery publish costs
# ~1 ms of CPU; ~15 % of a worker deciding small batches for many events) while the mailer
# was still busy with the wake-ups before.
OUTBOX_QUEUED_KEY = "atomicseats:outbox:{task}:queued"


def _partition_keys(partition: int) -> list[str]:
    """The partition's "task queued" marker and the set of events woken while it waits (the
    first KEYS of both scripts)."""
    return [ALLOCATION_QUEUED_KEY.format(partition=partition), ALLOCATION_EVENTS_KEY.format(partition=partition)]


def celery_config(app: Flask) -> dict:
    broker_url = app.config.get("CELERY_BROKER_URL") or app.config.get("REDIS_URL") or "memory://"
    return {
        "broker_url": broker_url,
        "result_backend": None,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Task events (received, started, succeeded, failed) for Flower's task list and API,
        # from every worker of every deployment (the same as `celery worker -E`). Cheap: a
        # batched allocation task decides many requests (README "Operating", Flower).
        "worker_send_task_events": True,
        "task_default_queue": MAINTENANCE_QUEUE,
        "task_routes": {
            SEND_NOTIFICATIONS_TASK: {"queue": NOTIFICATIONS_QUEUE},
            PUBLISH_DOMAIN_EVENTS_TASK: {"queue": DOMAIN_EVENTS_QUEUE},
            # Up to a second each (the reconcile of a bench's 331 events: 0.07-0.8 s): in an
            # allocation process they held one of its two children, and every partition's
            # decisions waited on the other.
            RECONCILE_CACHES_TASK: {"queue": HOUSEKEEPING_QUEUE},
            PURGE_TASK: {"queue": HOUSEKEEPING_QUEUE},
        },
        "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT_S},
        "broker_connection_retry_on_startup": True,
        BEAT_HEARTBEAT_SETTING: app.config.get("BEAT_HEARTBEAT_FILE") or None,
        "worker_hijack_root_logger": False,
        "task_always_eager": False,
        "beat_schedule": {
            "sweep-stranded-requests": {"task": SWEEP_PENDING_TASK, "schedule": SWEEP_INTERVAL_S},
            "send-notifications": {"task": SEND_NOTIFICATIONS_TASK, "schedule": OUTBOX_INTERVAL_S},
            "publish-domain-events": {"task": PUBLISH_DOMAIN_EVENTS_TASK, "schedule": OUTBOX_INTERVAL_S},
            "reconcile-caches": {"task": RECONCILE_CACHES_TASK, "schedule": RECONCILE_INTERVAL_S},
            "close-sales": {"task": CLOSE_SALES_TASK, "schedule": CLOSE_OUT_INTERVAL_S},
            "expire-offers": {"task": EXPIRE_OFFERS_TASK, "schedule": OFFER_EXPIRY_INTERVAL_S},
            "purge": {"task": PURGE_TASK, "schedule": PURGE_INTERVAL_S},
        },
    }


def register_celery(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app: Celery[Task] = Celery(app.import_name, task_cls=FlaskTask)
    celery_app.config_from_object(celery_config(app))
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


class CeleryWakeups:
    """The Wakeups port of the full pipeline: Celery task messages, sent by task name (this
    module never imports the tasks, which call services).

    Allocation wake-ups are coalesced per partition through a Redis marker and a set of its
    woken events (`markers`, the shared Redis): one task per partition waits in the queue at a
    time, and it decides every event woken while it waited. Without coalescing every bridge
    batch queued a task for each event it held, and every sweep one more for each event still
    pending: with 200 events on sale, thousands of tasks that found nothing to decide stood in
    the partitions' queues in front of those that had work (make bench's many-events phase:
    1,100 still queued after the last decision). With a marker per event, a hot event's task
    still waited behind a task for each small event woken at another moment (half load: ~1.1
    events a task)."""

    def __init__(self, celery_app: Celery, markers: redis.Redis | None = None) -> None:
        self.celery_app = celery_app
        self.markers = markers
        self._last_outbox_wake = 0.0
        self._lock = threading.Lock()
        if markers is not None:
            self._wake_partition = markers.register_script(_WAKE_PARTITION)
            self._start_partition = markers.register_script(_START_PARTITION)

    def wake_allocation(self, partition: int, event_ids: Sequence[int]) -> None:
        """One allocation task for the partition's events, on its queue, unless one is queued
        already and not started: then the events join that task's (one round trip to Redis)."""
        keys = _partition_keys(partition)
        marked = False
        if self.markers is not None and event_ids:
            try:
                ttl_ms = int(ALLOCATION_QUEUED_TTL_S * 1000)
                if not self._wake_partition(keys=keys, args=[ttl_ms, *event_ids]):
                    return
                marked = True
            except redis.RedisError:
                pass  # no marker: wake anyway
        try:
            self.celery_app.send_task(
                ALLOCATE_EVENTS_TASK,
                args=[partition, list(dict.fromkeys(event_ids))],
                queue=allocation_queue(partition),
            )
        except Exception:
            if marked:
                self._forget(keys[0])  # nothing queued: the next wake-up must send (it finds the set too)
            raise

    def allocation_started(self, partition: int, task_id: str, sent_with: Sequence[int]) -> list[int]:
        """The partition's allocation task has started: a wake-up from now on queues another one.
        Returns the other events woken for the partition while the task waited, and those an
        earlier delivery of the task took (held under its id until `allocation_finished`)."""
        if self.markers is None:
            return []
        keys = [*_partition_keys(partition), ALLOCATION_HELD_KEY.format(task_id=task_id)]
        try:
            held = self._start_partition(keys=keys, args=[int(ALLOCATION_HELD_TTL_S * 1000), *sent_with])
            return [int(event_id) for event_id in held]
        except redis.RedisError:
            log.warning("wakeups.marker_not_cleared", extra={"keys": keys})  # it expires on its own
            return []  # the task's own events; any other's requests the sweeper finds

    def allocation_finished(self, partition: int, task_id: str) -> None:
        """The task is done with the events it held: a later delivery of it takes none of them."""
        if self.markers is not None:
            self._forget(ALLOCATION_HELD_KEY.format(task_id=task_id))

    def wake_outbox(self) -> None:
        """The outbox's tasks (e-mails, domain events), each unless one is queued and not
        started; at most every OUTBOX_WAKE_INTERVAL_S from this process."""
        now = time.monotonic()
        with self._lock:
            if now - self._last_outbox_wake < OUTBOX_WAKE_INTERVAL_S:
                return
            self._last_outbox_wake = now
        for task, queue in (
            (SEND_NOTIFICATIONS_TASK, NOTIFICATIONS_QUEUE),
            (PUBLISH_DOMAIN_EVENTS_TASK, DOMAIN_EVENTS_QUEUE),
        ):
            self._send_once(
                OUTBOX_QUEUED_KEY.format(task=task),
                OUTBOX_WAKE_EXPIRES_S,
                task,
                queue=queue,
                expires=OUTBOX_WAKE_EXPIRES_S,
            )

    def outbox_started(self, task: str) -> None:
        """An outbox task (`task`, its name) has started: a wake-up from now on queues another one."""
        self._forget(OUTBOX_QUEUED_KEY.format(task=task))

    def _send_once(self, key: str, ttl_s: float, task: str, queue: str, expires: float | None = None) -> None:
        """Send `task` unless its marker `key` says one is queued and not started; the marker
        lives `ttl_s` at most, so a task lost on its way cannot hold wake-ups back for long.
        Without Redis every wake-up is sent (one too many is harmless; one too few is not)."""
        if self.markers is not None:
            try:
                if not self.markers.set(key, "1", nx=True, px=int(ttl_s * 1000)):
                    return
            except redis.RedisError:
                key = ""  # no marker: wake anyway
        try:
            self.celery_app.send_task(task, queue=queue, expires=expires)
        except Exception:
            self._forget(key)  # nothing queued: the next wake-up must send
            raise

    def _forget(self, key: str) -> None:
        if self.markers is None or not key:
            return
        try:
            self.markers.delete(key)
        except redis.RedisError:
            log.warning("wakeups.marker_not_cleared", extra={"key": key})  # it expires on its own


@signals.before_task_publish.connect
def _carry_correlation_id(headers=None, **_kwargs):
    if headers is not None and not headers.get(CORRELATION_HEADER_CELERY):
        headers[CORRELATION_HEADER_CELERY] = get_correlation_id()


@signals.task_prerun.connect
def _restore_correlation_id(task=None, **_kwargs):
    correlation_id = getattr(task.request, CORRELATION_HEADER_CELERY, None) if task else None
    task.request._correlation_token = set_correlation_id(correlation_id)


@signals.task_postrun.connect
def _clear_correlation_id(task=None, **_kwargs):
    token = getattr(task.request, "_correlation_token", None) if task else None
    if token is not None:
        reset_correlation_id(token)


@signals.worker_ready.connect
def _worker_ready(**_kwargs):
    announce_ready()


@signals.beat_init.connect
def _beat_ready(sender=None, **_kwargs):
    global _beat_heartbeat_file
    _beat_heartbeat_file = _beat_heartbeat_of(sender)
    _touch_beat_heartbeat()
    announce_ready()


@signals.before_task_publish.connect
def _beat_heartbeat(**_kwargs):
    """In beat, each task it sends (the sweeper's, every SWEEP_INTERVAL_S) shows it is alive."""
    if _beat_heartbeat_file:
        _touch_beat_heartbeat()


def _beat_heartbeat_of(beat) -> str | None:
    config = getattr(getattr(beat, "app", None), "conf", None)
    return config.get(BEAT_HEARTBEAT_SETTING) if config is not None else None


def _touch_beat_heartbeat() -> None:
    if not _beat_heartbeat_file:
        return
    try:
        with open(_beat_heartbeat_file, "a"):
            os.utime(_beat_heartbeat_file)
    except OSError as error:  # a health check will say so; the schedule goes on
        log.warning("beat.heartbeat_failed", extra={"path": _beat_heartbeat_file, "error": str(error)})


_beat_heartbeat_file: str | None = None  # set in the beat process only (beat_init)
