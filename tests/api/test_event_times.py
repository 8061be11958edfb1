"""Event times over HTTP: salesEndAt, no events in the past, no booked event moved into the past,
and no booking once sales have ended (SQLite and PostgreSQL, Redis cache on)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from atomicseats.extensions import db
from atomicseats.models import Event
from atomicseats.services import audit
from atomicseats.services.ports import adapters
from tests.api.support import assert_error, update_event
from tests.helpers import account, book, create_event, event, event_payload, unchanged


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


def from_now(**delta) -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0) + timedelta(**delta)


def test_sales_end_defaults_to_the_start_and_can_be_set_earlier(client):
    host = account(client, "host")
    starts_at, sales_end_at = from_now(days=10), from_now(days=2)

    default = create_event(client, host, startsAt=starts_at.isoformat(), endsAt=from_now(days=11).isoformat())
    early = create_event(client, host, salesEndAt=sales_end_at.isoformat())

    assert parse(default["salesEndAt"]) == starts_at
    assert parse(early["salesEndAt"]) == sales_end_at
    assert parse(event(client, early["id"])["salesEndAt"]) == sales_end_at
    moved = update_event(client, host, default["id"], salesEndAt=(sales_end_at - timedelta(days=1)).isoformat())
    assert parse(moved["salesEndAt"]) == sales_end_at - timedelta(days=1)
    reset = update_event(client, host, default["id"], salesEndAt=None)  # back to the default: the start
    assert parse(reset["salesEndAt"]) == starts_at


def test_sales_end_after_the_start_is_400_and_changes_nothing(client):
    host = account(client, "host")
    created = create_event(client, host)
    with unchanged():
        late_create = client.post(
            "/api/events/create",
            json=event_payload(salesEndAt=from_now(days=11).isoformat()),
            headers=host.headers,
        )
        late_update = client.post(
            "/api/events/update",
            json={"id": created["id"], "salesEndAt": from_now(days=11).isoformat()},
            headers=host.headers,
        )
        start_before_sales_end = client.post(
            "/api/events/update",
            json={
                "id": created["id"],
                "salesEndAt": from_now(days=5).isoformat(),
                "startsAt": from_now(days=4).isoformat(),
            },
            headers=host.headers,
        )

        for response in (late_create, late_update, start_before_sales_end):
            assert_error(response, 400, "salesEndAt")
    assert event(client, created["id"])["salesEndAt"] == created["salesEndAt"]


def test_an_event_cannot_be_created_in_the_past(client):
    host = account(client, "host")
    with unchanged():
        started = client.post(
            "/api/events/create",
            json=event_payload(startsAt=from_now(hours=-1).isoformat(), endsAt=from_now(hours=2).isoformat()),
            headers=host.headers,
        )
        sales_ended = client.post(
            "/api/events/create", json=event_payload(salesEndAt=from_now(minutes=-1).isoformat()), headers=host.headers
        )

        assert_error(started, 400, "startsAt")
        assert_error(sales_ended, 400, "salesEndAt")


def test_a_booked_event_cannot_be_moved_into_the_past(client):
    host = account(client, "host")
    guest = account(client, "guest")
    booked = create_event(client, host)
    book(client, guest, booked["id"], 2)

    into_past_start = update_event(
        client, host, booked["id"], 409, startsAt=from_now(days=-2).isoformat(), endsAt=from_now(days=-1).isoformat()
    )
    into_past_sales_end = update_event(client, host, booked["id"], 409, salesEndAt=from_now(hours=-1).isoformat())

    assert "startsAt" in into_past_start["errors"]
    assert "salesEndAt" in into_past_sales_end["errors"]
    unchanged = event(client, booked["id"])
    assert (unchanged["startsAt"], unchanged["salesEndAt"]) == (booked["startsAt"], booked["salesEndAt"])
    in_three_days = from_now(days=3)
    later = update_event(client, host, booked["id"], salesEndAt=in_three_days.isoformat())  # the future is fine
    assert parse(later["salesEndAt"]) == in_three_days


def test_an_event_without_bookings_may_end_its_sales_now(client):
    host = account(client, "host")
    guest = account(client, "guest")
    created = create_event(client, host)

    just_gone = from_now(seconds=-1)
    ended = update_event(client, host, created["id"], salesEndAt=just_gone.isoformat())

    assert parse(ended["salesEndAt"]) == just_gone
    with unchanged():
        refused = book(client, guest, created["id"], 1, expect=409)  # the cache heard of the new sales end
    assert refused["errors"]["eventId"] == ["Sales for this event have ended."]


def test_an_event_that_ended_yesterday_takes_no_booking(client):
    """The issue's reproduction: it answered 202 and confirmed."""
    host = account(client, "host")
    guest = account(client, "guest")
    created = create_event(client, host)
    yesterday = datetime.now(timezone.utc) - timedelta(days=1)
    db.session.execute(
        sa.update(Event)
        .where(Event.id == created["id"])
        .values(starts_at=yesterday - timedelta(hours=3), ends_at=yesterday)
    )
    db.session.commit()
    adapters().availability.forget(created["id"])  # as the cache would hold it: written after the start moved
    with unchanged():
        response = client.post(
            "/api/events/book", json={"eventId": created["id"], "numberOfSeats": 1}, headers=guest.headers
        )

        body = assert_error(response, 409, "eventId")
        assert body["message"] == "Sales for this event have ended"
    assert audit.run_audit().is_clean


def test_booking_through_the_cache_after_the_start_is_409(client):
    """The availability cache carries the sales end: admission needs no database read."""
    host = account(client, "host")
    guest = account(client, "guest")
    created = create_event(client, host, startsAt=from_now(seconds=2).isoformat(), endsAt=from_now(hours=2).isoformat())
    assert adapters().availability.load(created["id"]).sales_end_at == parse(created["salesEndAt"])
    time.sleep(max(0.0, (parse(created["salesEndAt"]) - datetime.now(timezone.utc)).total_seconds()) + 0.05)
    with unchanged():
        book(client, guest, created["id"], 1, expect=409)


def test_openapi_documents_sales_end(client):
    schemas = client.get("/api/openapi.json").get_json()["components"]["schemas"]
    documented = {name: schema for name, schema in schemas.items() if "salesEndAt" in schema.get("properties", {})}
    assert len(documented) >= 3  # create, update and the event shown
    for schema in documented.values():
        assert schema["properties"]["salesEndAt"].get("description")
