"""The composition root's wiring: choose the adapters for this app, decided here, in one
place, for every mode, and hand the in-process ones the use cases they run (adapters never
import services; this module may, as create_app's helper).

PIPELINE=embedded: requests are recorded and allocated in-process.
PIPELINE=kafka: requests go to Kafka; the bridge records them and Celery allocates.
REDIS_URL (either mode): availability cache, request registry, waitlist mirror and
outcome channel live in Redis; without it, Postgres answers everything. The pending line
(place in line) exists with Kafka only: in-process nobody is ever pending.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from flask import Flask
from sqlalchemy.engine import make_url

from atomicseats import tasks
from atomicseats.adapters import embedded
from atomicseats.adapters.celery_app import OUTBOX_WAKE_INTERVAL_S, register_celery
from atomicseats.adapters.metrics import PrometheusMetrics
from atomicseats.domain import limits
from atomicseats.names import BOOKING_REQUESTS_TOPIC
from atomicseats.services import booking, offers, outbox, sales
from atomicseats.services.ports import EXTENSION_KEY, Adapters

SEND_NOTIFICATIONS_ROUND = "send_notifications"
# The embedded server's e-mails: once a booking's commit wakes the beat thread, it sends, then
# waits this long before a woken round runs again (what commits meanwhile goes out together).
# The same bound as the full mode's wake-ups (adapters/celery_app.py OUTBOX_WAKE_INTERVAL_S).
EMBEDDED_OUTBOX_WAKE_GAP_S = OUTBOX_WAKE_INTERVAL_S


def register_adapters(app: Flask) -> None:
    celery_app = register_celery(app)  # the @shared_task functions (atomicseats.tasks) register with it

    redis_url = app.config.get("REDIS_URL")
    # The limiter's storage defaults to REDIS_URL (bind_extensions); only then may the
    # registry count quotas in its claim.
    shares_limiter = app.config.get("RATELIMIT_STORAGE_URI", redis_url) == redis_url
    parts = _redis_parts(redis_url, shares_limiter) if redis_url else _embedded_parts()
    if app.config["PIPELINE"] == "kafka":
        from atomicseats.adapters.celery_app import CeleryWakeups
        from atomicseats.adapters.kafka import (
            KafkaDomainEventPublisher,
            KafkaPipeline,
            KafkaProbe,
            ProducerSettings,
            SharedProducer,
        )
        from atomicseats.adapters.redis_cache import connect

        if not redis_url:
            raise RuntimeError("PIPELINE=kafka needs REDIS_URL (Celery's broker and the request registry)")
        producer = SharedProducer(
            ProducerSettings(app.config["KAFKA_BROKERS"], linger_ms=app.config["KAFKA_LINGER_MS"])
        )
        app.extensions["atomicseats.kafka_producer"] = producer
        parts["pipeline"] = KafkaPipeline(producer)
        parts["wakeups"] = CeleryWakeups(celery_app, markers=connect(redis_url))
        parts["domain_events"] = KafkaDomainEventPublisher(producer)
        parts["probes"] = (*parts.get("probes", ()), KafkaProbe(producer, BOOKING_REQUESTS_TOPIC))
    else:
        if app.config["EMBEDDED_GROUP_COMMIT"]:
            parts["pipeline"] = embedded.InProcessPipeline(
                record_and_decide=booking.record_and_decide,
                read_statuses=booking.recorded_statuses,
                batch_max=limits.ALLOCATION_BATCH_SIZE_MAX,
                writers=_sqlite_writers_lock(app.config["SQLALCHEMY_DATABASE_URI"]),
            )
        else:
            parts["pipeline"] = embedded.SerialInProcessPipeline(
                record=booking.record_requests,
                allocate=booking.allocate_pending,
                read_statuses=booking.recorded_statuses,
            )
        beat = _register_embedded_beat(app)
        parts["wakeups"] = embedded.InProcessWakeups(
            allocate=booking.allocate_pending,
            send_notifications=outbox.send_due_notifications,
            send_in_background=functools.partial(beat.wake, SEND_NOTIFICATIONS_ROUND) if beat else None,
        )
        parts["domain_events"] = embedded.NoDomainEventPublisher()
        parts["line"] = embedded.NoLine(parts["outcomes"])  # decided before answering: nobody waits in line
    parts["mailer"] = _mailer(app)
    parts["metrics"] = PrometheusMetrics()
    app.extensions[EXTENSION_KEY] = Adapters(**parts)


def _sqlite_writers_lock(database_uri: str) -> embedded.WritersLock | None:
    """For a SQLite file: the lock the group commits of its server processes take turns on
    (`<file>-writers.lock`). PostgreSQL's own locks block without polling: none."""
    url = make_url(database_uri)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return embedded.WritersLock(f"{url.database}-writers.lock")


def _register_embedded_beat(app: Flask) -> embedded.EmbeddedBeat | None:
    interval_s = app.config["EMBEDDED_BEAT_INTERVAL_S"]
    if interval_s <= 0:
        return None
    beat = embedded.EmbeddedBeat(app, interval_s, embedded_beat_rounds(), wake_gap_s=EMBEDDED_OUTBOX_WAKE_GAP_S)
    app.extensions["atomicseats.embedded_beat"] = beat
    app.before_request(beat.start_once)
    return beat


def embedded_beat_rounds() -> list[tuple[str, Callable[[], object]]]:
    """The embedded default's periodic work, in the order beat would run it. The e-mail round
    is the full mode's task body (batches while they come back full, then a wake-up for the
    rest), so a woken round drains what a burst of bookings wrote; so is the sweep, which
    decides what a server recorded and could not decide at once (EMBEDDED_GROUP_COMMIT=false:
    its event's row held past the lock timeout) and what a server killed between recording
    and deciding left."""
    return [
        ("sweep_pending", tasks.sweep_pending.run),
        ("close_sales", sales.close_due_sales),
        ("expire_offers", offers.expire_due_offers),
        (SEND_NOTIFICATIONS_ROUND, tasks.send_notifications.run),
    ]


def _embedded_parts() -> dict:
    return {
        "availability": embedded.NoAvailabilityCache(),
        "requests": embedded.NoRequestRegistry(),
        "waitlist": embedded.NoWaitlistMirror(),
        "outcomes": embedded.PollingOutcomeChannel(),
        "sessions": embedded.NoSessionCache(),
    }


def _redis_parts(redis_url: str, shares_limiter: bool) -> dict:
    from atomicseats.adapters.redis_cache import RedisAvailabilityCache, RedisProbe, RedisSessionCache, connect
    from atomicseats.adapters.redis_line import RedisLine
    from atomicseats.adapters.redis_state import RedisOutcomeChannel, RedisRequestRegistry, RedisWaitlistMirror

    client = connect(redis_url)
    return {
        "line": RedisLine(client),
        "availability": RedisAvailabilityCache(client),
        "requests": RedisRequestRegistry(client, counts_quotas=shares_limiter),
        "waitlist": RedisWaitlistMirror(client),
        "outcomes": RedisOutcomeChannel(client),
        "sessions": RedisSessionCache(client),
        "probes": (RedisProbe(client),),
    }


def _mailer(app: Flask):
    from atomicseats.adapters.mail import FlaskMailMailer, LoggingMailer

    if app.config["MAIL_SUPPRESS_SEND"]:
        return LoggingMailer()
    return FlaskMailMailer(sessions=app.config["MAIL_SMTP_SESSIONS"])
