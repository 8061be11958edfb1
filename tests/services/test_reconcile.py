"""`flask reconcile` rebuilds Redis from Postgres: real Redis, SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
import redis
import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy import select

from atomicseats.adapters.redis_cache import RedisAvailabilityCache, availability_key, connect
from atomicseats.adapters.redis_state import (
    RedisOutcomeChannel,
    RedisRequestRegistry,
    RedisWaitlistMirror,
)
from atomicseats.cli.operations import reconcile_command
from atomicseats.extensions import db
from atomicseats.models import Event, WaitlistEntry
from atomicseats.services import audit, booking
from atomicseats.services.contracts import EventAvailability
from atomicseats.services.ports import EXTENSION_KEY, MirroredEntry, adapters
from atomicseats.services.reconcile import reconcile
from tests.conftest import fresh_app
from tests.helpers import accepted, account, book, create_event, statements_seen

CLOSED_PORT_URL = "redis://127.0.0.1:1/0"


@dataclass(frozen=True)
class Sale:
    busy_id: int  # sold out, three entries waiting
    quiet_id: int  # seats left, nobody waiting
    deleted_id: int
    guests: list
    redis: redis.Redis


def install_redis_adapters(app, url: str) -> redis.Redis:
    client = connect(url)
    app.extensions[EXTENSION_KEY] = dataclasses.replace(
        app.extensions[EXTENSION_KEY],
        availability=RedisAvailabilityCache(client),
        requests=RedisRequestRegistry(client),
        waitlist=RedisWaitlistMirror(client),
        outcomes=RedisOutcomeChannel(client),
    )
    return client


def build_sale(app, client, redis_url: str) -> Sale:
    redis_client = install_redis_adapters(app, redis_url)
    host = account(client, "host")
    guests = [account(client, "guest") for _ in range(3)]
    busy_id = create_event(client, host, capacity=4)["id"]
    assert book(client, guests[0], busy_id, 3)["status"] == "confirmed"
    assert book(client, guests[1], busy_id, 3)["status"] == "partial"
    assert book(client, guests[2], busy_id, 2)["status"] == "waitlisted"
    assert book(client, guests[0], busy_id, 1)["status"] == "waitlisted"
    quiet_id = create_event(client, host, capacity=10)["id"]
    book(client, guests[1], quiet_id, 2)
    deleted_id = create_event(client, host, capacity=5)["id"]
    book(client, guests[2], deleted_id, 1)
    response = client.post("/api/events/delete", json={"id": deleted_id}, headers=host.headers)
    assert response.status_code == 200, response.get_json()
    return Sale(busy_id, quiet_id, deleted_id, guests, redis_client)


@pytest.fixture
def sale(app, client, redis_url) -> Sale:
    built = build_sale(app, client, redis_url)
    yield built
    built.redis.close()


@pytest.fixture
def postgres_app(postgres_url):
    """Row locks only block across connections on Postgres."""
    with fresh_app(postgres_url) as application:
        yield application


def truth(event_id: int) -> tuple[EventAvailability, dict[int, int | None]]:
    """The event's availability, and its waiting entries (id -> tier id) in FIFO order."""
    db.session.rollback()
    event = db.session.get(Event, event_id)
    waiting = dict(
        db.session.execute(
            select(WaitlistEntry.id, WaitlistEntry.tier_id)
            .where(WaitlistEntry.event_id == event_id, WaitlistEntry.status == "waiting")
            .order_by(WaitlistEntry.id)
        ).all()
    )
    availability = EventAvailability(
        event_id,
        event.capacity_seats,
        event.reserved_seats,
        event.is_waitlist_open,
        event.is_deleted,
        len(waiting),
        event.sales_end,
    )
    return availability, waiting


def assert_redis_agrees(*event_ids: int) -> None:
    for event_id in event_ids:
        availability, waiting = truth(event_id)
        assert adapters().availability.load(event_id) == availability
        assert adapters().waitlist.load(event_id) == waiting


def counts(report) -> tuple[int, int, int, int]:
    return report.events_checked, report.availability_repaired, report.waitlists_repaired, report.repairs_failed


def test_a_flushed_redis_is_rebuilt_for_every_event(sale):
    sale.redis.flushdb()
    report = reconcile()
    assert counts(report) == (3, 3, 3, 0)
    assert len(report.details) == 6
    assert_redis_agrees(sale.busy_id, sale.quiet_id, sale.deleted_id)
    assert len(adapters().waitlist.load(sale.busy_id)) == 3
    assert adapters().availability.load(sale.deleted_id).is_deleted  # admission control refuses it
    assert audit.run_audit().is_clean
    second = reconcile()
    assert counts(second) == (3, 0, 0, 0)
    assert second.details == []


def test_one_wrong_availability_entry_is_the_only_repair(sale):
    reconcile()
    sale.redis.hset(availability_key(sale.quiet_id), "reserved_seats", "7")
    assert [violation.invariant for violation in audit.run_audit().violations] == ["6-cache-agrees"]
    report = reconcile()
    assert counts(report) == (3, 1, 0, 0)
    assert report.details == [f"event {sale.quiet_id}: availability had reserved_seats 7 (truth 2), repaired"]
    assert_redis_agrees(sale.busy_id, sale.quiet_id, sale.deleted_id)
    assert audit.run_audit().is_clean


def test_repairs_are_counted_for_operators(sale):
    """atomicseats_redis_drift_repaired_total{mirror} (this test process keeps its own registry)."""

    def repaired(mirror: str) -> float:
        return REGISTRY.get_sample_value("atomicseats_redis_drift_repaired_total", {"mirror": mirror}) or 0.0

    reconcile()
    before = {mirror: repaired(mirror) for mirror in ("availability", "waitlist")}
    sale.redis.hset(availability_key(sale.quiet_id), "reserved_seats", "7")
    sale.redis.hset(availability_key(sale.busy_id), "reserved_seats", "0")
    reconcile()
    assert repaired("availability") - before["availability"] == 2
    assert repaired("waitlist") == before["waitlist"]


def test_an_entry_in_the_wrong_tiers_queue_is_the_only_repair(sale):
    reconcile()
    _, waiting = truth(sale.busy_id)
    head, tier_id = next(iter(waiting.items()))
    assert tier_id is not None and len(waiting) == 3
    wrong = {entry_id: MirroredEntry(1, tier_id) for entry_id in waiting} | {head: MirroredEntry(1, tier_id + 1000)}
    adapters().waitlist.replace(sale.busy_id, wrong)  # same entries: one in another queue
    second = list(waiting)[1]
    assert adapters().waitlist.place(sale.busy_id, second, tier_id) == (1, 0)  # would be wrong: 3 ahead
    violations = audit.run_audit().violations
    assert [(violation.invariant, violation.subject) for violation in violations] == [
        ("6-cache-agrees", f"event {sale.busy_id}")
    ]
    report = reconcile()
    assert counts(report) == (3, 0, 1, 0)
    assert report.details == [
        f"event {sale.busy_id}: waitlist mirror had entries in the wrong tier's queue (3 entries), repaired"
    ]
    head_seats = db.session.get(WaitlistEntry, head).seats_remaining
    assert adapters().waitlist.place(sale.busy_id, second, tier_id) == (2, head_seats)
    assert audit.run_audit().is_clean


def test_the_mirror_follows_later_bookings_and_cancellations(sale, client):
    reconcile()
    book(client, sale.guests[1], sale.busy_id, 2)  # joins the tail
    response = client.delete(
        "/api/events/book", json={"eventId": sale.busy_id, "cancelAll": True}, headers=sale.guests[0].headers
    )
    assert response.status_code == 200, response.get_json()  # frees 3 seats and leaves the queue
    assert_redis_agrees(sale.busy_id)
    assert audit.run_audit().is_clean
    assert counts(reconcile()) == (3, 0, 0, 0)


class HeldStores:
    """The availability cache, but each writer's store held back until the test lets it land."""

    def __init__(self, cache: RedisAvailabilityCache) -> None:
        self.cache = cache
        self.held: list[list[EventAvailability]] = []

    def store(self, availability: list[EventAvailability]) -> None:
        self.held.append(availability)

    def __getattr__(self, name: str):
        return getattr(self.cache, name)


def test_cache_writes_that_land_in_reverse_commit_order_leave_the_newer_figures(app, sale):
    """Two writers of one event commit in the row lock's order, but each writes the cache after
    its commit, so the writes can reach Redis the other way round (two allocation processes on a
    busy machine: make bench's many-events phase once ended with an event cached 14 waiting
    entries short). The event's version orders them: the older figures never replace the newer."""
    cache = adapters().availability
    holding = HeldStores(cache)
    app.extensions[EXTENSION_KEY] = dataclasses.replace(app.extensions[EXTENSION_KEY], availability=holding)
    version_before = db.session.get(Event, sale.busy_id).version
    for guest in sale.guests[1:]:
        request = accepted(guest.id, sale.busy_id, 1)
        booking.record_requests([request])
        assert booking.allocate_pending(sale.busy_id).requests_decided == 1
    app.extensions[EXTENSION_KEY] = dataclasses.replace(app.extensions[EXTENSION_KEY], availability=cache)
    [older], [newer] = holding.held
    assert (older.waitlist_length, newer.waitlist_length) == (4, 5)
    assert (older.version, newer.version) == (version_before + 1, version_before + 2)  # one per commit

    cache.store([newer])
    cache.store([older])  # late

    assert cache.load(sale.busy_id) == newer
    assert_redis_agrees(sale.busy_id)
    assert audit.run_audit().is_clean


def test_an_entry_ahead_of_the_database_is_replaced_by_reconcile(sale):
    """An entry whose version is ahead of the event row's (left from before a restore, or from a
    database made anew under the same Redis) keeps every writer's store out; reconcile, holding
    the row's share lock, replaces it, also when its figures happen to agree."""
    cache = adapters().availability
    ahead = db.session.get(Event, sale.busy_id).version + 50
    cache.replace([dataclasses.replace(cache.load(sale.busy_id), reserved_seats=0, version=ahead)])
    booking.record_requests([accepted(sale.guests[1].id, sale.busy_id, 1)])
    assert booking.allocate_pending(sale.busy_id).requests_decided == 1
    assert cache.load(sale.busy_id).reserved_seats == 0  # the writer's newer figures were kept out

    assert reconcile().availability_repaired == 1
    assert_redis_agrees(sale.busy_id)
    assert cache.load(sale.busy_id).version == db.session.get(Event, sale.busy_id).version

    cache.replace([dataclasses.replace(cache.load(sale.busy_id), version=ahead)])  # same figures
    assert reconcile().availability_repaired == 1
    assert cache.load(sale.busy_id).version == db.session.get(Event, sale.busy_id).version
    assert audit.run_audit().is_clean


def test_a_decision_batch_caches_the_waitlist_length_of_the_event_row_and_never_counts_the_queue(sale):
    """Announcing a batch reads `events.waitlist_length`; a count over the waiting entries made
    every batch of a hot event slower as its queue grew."""
    request = accepted(sale.guests[1].id, sale.busy_id, 2)
    booking.record_requests([request])
    with statements_seen() as statements:
        assert booking.allocate_pending(sale.busy_id).requests_decided == 1
    assert statements  # the listener saw the batch
    assert [s for s in statements if "waitlist_entries" in s and "count(" in s.lower()] == []
    assert adapters().availability.load(sale.busy_id).waitlist_length == 4  # three waited, one more now
    assert_redis_agrees(sale.busy_id)
    assert audit.run_audit().is_clean


def test_flask_reconcile_prints_the_report_and_audit_is_clean_after(app, sale):
    if "reconcile" not in app.cli.commands:
        app.cli.add_command(reconcile_command)
    sale.redis.flushdb()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["reconcile"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "reconciled 3 events: 3 availability entries and 3 waitlists repaired"
    assert f"  event {sale.busy_id}: waitlist mirror missing, repaired" in lines
    assert f"  event {sale.deleted_id}: availability missing, repaired" in lines
    audit_result = runner.invoke(args=["audit"])
    assert audit_result.exit_code == 0, audit_result.output
    again = runner.invoke(args=["reconcile"])
    assert again.output.splitlines() == ["reconciled 3 events: 0 availability entries and 0 waitlists repaired"]


def test_with_redis_down_reconcile_reports_every_repair_failed_and_never_raises(app, sale):
    install_redis_adapters(app, CLOSED_PORT_URL)
    report = reconcile()
    assert counts(report) == (3, 0, 0, 6)
    assert report.details, "no detail for the failed repairs"
    assert all("could not be written" in line for line in report.details)
    if "reconcile" not in app.cli.commands:
        app.cli.add_command(reconcile_command)
    result = app.test_cli_runner().invoke(args=["reconcile"])
    assert result.exit_code == 1
    assert "6 repair(s) failed" in result.output


def test_an_event_row_locked_by_a_writer_is_skipped_not_overwritten(postgres_app, postgres_url, redis_url):
    """The repair holds a share lock: it never writes a state a concurrent writer is changing."""
    sale = build_sale(postgres_app, postgres_app.test_client(), redis_url)
    reconcile()
    sale.redis.hset(availability_key(sale.quiet_id), "reserved_seats", "7")
    writer_engine = sa.create_engine(postgres_url)
    try:
        with writer_engine.begin() as writer:
            writer.execute(sa.text("SELECT id FROM events WHERE id = :id FOR UPDATE"), {"id": sale.quiet_id})
            report = reconcile()
            assert counts(report) == (3, 0, 0, 1)
            assert report.details == [
                f"event {sale.quiet_id}: not repaired, row busy (LockNotAvailable); run reconcile again"
            ]
            assert sale.redis.hget(availability_key(sale.quiet_id), "reserved_seats") == "7"
    finally:
        writer_engine.dispose()
    assert counts(reconcile()) == (3, 1, 0, 0)
    assert_redis_agrees(sale.busy_id, sale.quiet_id, sale.deleted_id)
    sale.redis.close()
