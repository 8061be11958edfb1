"""Celery routing: every task lands on a queue some worker consumes, and domain events never
queue behind e-mail (a long e-mail batch once held them back for minutes in a burst)."""

from __future__ import annotations

from flask import Flask

from atomicseats import names
from atomicseats.adapters.celery_app import celery_config
from atomicseats.domain import limits
from atomicseats.names import (
    CLOSE_SALES_TASK,
    DOMAIN_EVENTS_QUEUE,
    EXPIRE_OFFERS_TASK,
    HOUSEKEEPING_QUEUE,
    NOTIFICATIONS_QUEUE,
    PUBLISH_DOMAIN_EVENTS_TASK,
    PURGE_TASK,
    RECONCILE_CACHES_TASK,
    SEND_NOTIFICATIONS_TASK,
    SWEEP_PENDING_TASK,
)


def worker_queues(app: Flask, kind: str) -> list[str]:
    """The queues a worker of this app consumes (what `flask worker-queues` prints)."""
    return names.worker_queues(kind, app.config["KAFKA_PARTITIONS"])


def app_with(partitions: int = 3) -> Flask:
    app = Flask(__name__)
    app.config.update(KAFKA_PARTITIONS=partitions, REDIS_URL="redis://127.0.0.1:1/0")
    return app


def test_every_routed_and_scheduled_task_has_a_consuming_worker():
    app = app_with()
    config = celery_config(app)
    consumed = set(worker_queues(app, "allocation")) | set(worker_queues(app, "notifications"))
    routes = config["task_routes"]
    for entry in config["beat_schedule"].values():
        queue = routes.get(entry["task"], {}).get("queue", config["task_default_queue"])
        assert queue in consumed, entry["task"]
    assert set(worker_queues(app, "all")) == consumed


def test_domain_events_have_a_queue_of_their_own_on_the_notifications_worker():
    app = app_with()
    routes = celery_config(app)["task_routes"]
    assert routes[SEND_NOTIFICATIONS_TASK]["queue"] == NOTIFICATIONS_QUEUE
    assert routes[PUBLISH_DOMAIN_EVENTS_TASK]["queue"] == DOMAIN_EVENTS_QUEUE
    assert worker_queues(app, "notifications") == [NOTIFICATIONS_QUEUE, DOMAIN_EVENTS_QUEUE, HOUSEKEEPING_QUEUE]
    assert not set(worker_queues(app, "allocation")) & {NOTIFICATIONS_QUEUE, DOMAIN_EVENTS_QUEUE}


def test_an_allocation_process_runs_nothing_long_but_allocation():
    """The cache reconcile (every minute, up to a second) and the retention purge run where the
    mail goes, never in an allocation process: one held one of its two children there, and
    every partition's decisions waited on the other. The quick periodic tasks stay beside
    allocation (the sweeper re-wakes stranded requests; close-out and offer expiry hand seats on)."""
    app = app_with()
    config = celery_config(app)
    routes = config["task_routes"]
    allocation = set(worker_queues(app, "allocation"))
    for task in (RECONCILE_CACHES_TASK, PURGE_TASK):
        assert routes[task]["queue"] == HOUSEKEEPING_QUEUE
        assert routes[task]["queue"] not in allocation
    for task in (SWEEP_PENDING_TASK, CLOSE_SALES_TASK, EXPIRE_OFFERS_TASK):
        assert routes.get(task, {}).get("queue", config["task_default_queue"]) in allocation


def test_the_sales_close_out_runs_on_the_beat_and_is_a_registered_task():
    from atomicseats import tasks

    app = app_with()
    schedule = {entry["task"]: entry["schedule"] for entry in celery_config(app)["beat_schedule"].values()}
    assert tasks.close_sales.name in schedule
    assert schedule[tasks.close_sales.name] * 3 <= limits.CLOSE_OUT_GRACE_S  # well inside what the audit allows
