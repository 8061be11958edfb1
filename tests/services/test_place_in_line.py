"""Place in line (issue 13 point 1) through the services the bridge and the worker call, with
the real Redis line, on SQLite and PostgreSQL: recorded requests are ranked in arrival order,
leave the line with their decisions, and a lost line comes back with `flask reconcile`."""

from __future__ import annotations

import dataclasses

import pytest

from atomicseats.adapters.redis_cache import connect
from atomicseats.adapters.redis_line import RedisLine, decided_mark_key, line_key
from atomicseats.adapters.redis_state import RedisOutcomeChannel, RedisWaitlistMirror, waitlist_seats_key
from atomicseats.domain.line import NOT_COUNTED_YET, WaitlistPlace
from atomicseats.services import booking
from atomicseats.services.contracts import AcceptedRequest
from atomicseats.services.ports import EXTENSION_KEY
from atomicseats.services.reconcile import reconcile
from tests.helpers import accepted, account, book, create_event, event_payload, statements_seen


@pytest.fixture
def line(app, redis_url):
    client = connect(redis_url)
    client.flushdb()
    redis_line = RedisLine(client)
    app.extensions[EXTENSION_KEY] = dataclasses.replace(
        app.extensions[EXTENSION_KEY], line=redis_line, outcomes=RedisOutcomeChannel(client)
    )
    yield redis_line
    client.close()


@pytest.fixture
def sale(client):
    host = account(client, "host")
    guests = [account(client, "guest") for _ in range(3)]
    event_id = create_event(client, host, capacity=3)["id"]
    return event_id, guests


def place_of(request: AcceptedRequest):
    return booking.request_status(request.request_id, request.user_id, viewer_is_admin=False).place_in_line


def test_recorded_requests_show_their_place_in_arrival_order_until_decided(app, client, line, sale):
    event_id, guests = sale
    requests = [accepted(guests[index % 3].id, event_id) for index in range(6)]
    booking.record_requests(requests[:4])
    booking.record_requests(requests[4:])
    places = [place_of(request) for request in requests]
    assert [place.people_ahead for place in places] == [0, 1, 2, 3, 4, 5]
    assert [place.position for place in places] == [1, 2, 3, 4, 5, 6]
    assert {place.estimated_wait_s for place in places} == {None}  # nothing decided lately: no guess
    # The API shows the same, in its own words.
    guest = next(guest for guest in guests if guest.id == requests[4].user_id)
    response = client.get(f"/api/bookings/requests/{requests[4].request_id}", headers=guest.headers)
    assert response.status_code == 200
    assert response.get_json()["data"]["placeInLine"] == {
        "queue": "pending",
        "position": 5,
        "peopleAhead": 4,
        "estimatedWaitS": None,
    }
    booking.allocate_pending(event_id)
    statuses = [booking.request_status(r.request_id, r.user_id, viewer_is_admin=False) for r in requests]
    assert [status.status for status in statuses] == ["confirmed"] * 3 + ["waitlisted"] * 3
    assert [status.place_in_line for status in statuses] == [None] * 3 + [
        WaitlistPlace(1, 0),
        WaitlistPlace(2, 1),
        WaitlistPlace(3, 2),
    ]
    assert line.sizes([event_id]) == {event_id: 0}


def test_a_request_still_in_kafka_or_missing_from_the_line_is_not_counted_yet(app, line, sale):
    event_id, guests = sale
    request = accepted(guests[0].id, event_id)
    booking.record_requests([request])
    line.client.delete(line_key(event_id))
    assert place_of(request) == NOT_COUNTED_YET  # said so, never guessed


def test_reconcile_rebuilds_a_lost_line_from_postgres(app, line, sale):
    event_id, guests = sale
    requests = [accepted(guests[0].id, event_id) for _ in range(5)]
    booking.record_requests(requests[:2])
    booking.allocate_pending(event_id)
    booking.record_requests(requests[2:])
    line.client.delete(line_key(event_id), decided_mark_key(event_id))  # Redis restarted empty
    assert {place_of(request) for request in requests[2:]} == {NOT_COUNTED_YET}
    report = reconcile()
    assert report.lines_repaired == 1
    assert any("pending line held 0 requests, 3 pending" in detail for detail in report.details)
    # (the estimate depends on which whole seconds the two decisions fell in: not compared)
    assert [(place.position, place.people_ahead) for place in map(place_of, requests[2:])] == [(1, 0), (2, 1), (3, 2)]
    assert reconcile().lines_repaired == 0  # nothing left to repair


def test_waitlist_places_and_seats_ahead_come_from_the_redis_mirror(app, line, sale):
    event_id, guests = sale
    app.extensions[EXTENSION_KEY] = dataclasses.replace(
        app.extensions[EXTENSION_KEY], waitlist=RedisWaitlistMirror(line.client)
    )
    reconcile()  # the event's (empty) mirror exists from now on
    requests = [accepted(guests[index % 3].id, event_id, seats) for index, seats in enumerate([2, 3, 2, 1])]
    booking.record_requests(requests)
    booking.allocate_pending(event_id)  # 2 confirmed; 1 confirmed + 2 waiting; 2 waiting; 1 waiting
    assert line.client.hlen(waitlist_seats_key(event_id)) == 3  # written by the allocation's apply
    assert [place_of(request) for request in requests] == [
        None,
        WaitlistPlace(1, 0),
        WaitlistPlace(2, 2),
        WaitlistPlace(3, 4),
    ]
    booking.cancel_bookings(requests[0].user_id, event_id, None, cancel_all=False)  # 2 seats freed: the head
    assert [place_of(request) for request in requests[2:]] == [WaitlistPlace(1, 0), WaitlistPlace(2, 2)]


def test_the_embedded_default_has_no_line_to_show(app, client, sale):
    event_id, guests = sale
    status = book(client, guests[0], event_id, 1)
    assert status["status"] == "confirmed"
    assert status["placeInLine"] is None


def test_a_tiered_events_places_are_per_tier_and_come_from_the_mirror_alone(app, client, line):
    """Each tier has its own FIFO queue: a place counts only its tier's entries, and is read
    from Redis without counting waitlist rows in Postgres (the mirror gone, Postgres answers alike)."""
    app.extensions[EXTENSION_KEY] = dataclasses.replace(
        app.extensions[EXTENSION_KEY], waitlist=RedisWaitlistMirror(line.client)
    )
    host = account(client, "host")
    guests = [account(client, "guest") for _ in range(3)]
    payload = {key: value for key, value in event_payload(capacity=2).items() if key != "price"}
    tiers = [{"name": "A", "price": 100, "quota": 1}, {"name": "B", "price": 200, "quota": 1}]
    response = client.post("/api/events/create", json={**payload, "tiers": tiers}, headers=host.headers)
    assert response.status_code == 201, response.get_json()
    event_id = response.get_json()["data"]["id"]
    tier_a, tier_b = (tier["id"] for tier in response.get_json()["data"]["tiers"])
    reconcile()  # the event's (empty) mirror exists from now on
    asked = [(tier_a, 1), (tier_b, 1), (tier_b, 2), (tier_a, 3), (tier_b, 1), (tier_a, 1)]
    requests = [
        dataclasses.replace(accepted(guests[index % 3].id, event_id, seats), tier_id=tier_id)
        for index, (tier_id, seats) in enumerate(asked)
    ]
    booking.record_requests(requests)
    booking.allocate_pending(event_id)  # one confirmed in each tier, the rest wait in their tier's queue
    expected = [None, None, WaitlistPlace(1, 0), WaitlistPlace(1, 0), WaitlistPlace(2, 2), WaitlistPlace(2, 3)]
    with statements_seen() as seen:
        assert [place_of(request) for request in requests] == expected
    assert not [statement for statement in seen if "FROM waitlist_entries" in statement and "count(" in statement]
    line.client.flushdb()  # no mirror: the same places, counted in Postgres
    with statements_seen() as seen:
        assert [place_of(request) for request in requests] == expected
    assert [statement for statement in seen if "FROM waitlist_entries" in statement and "count(" in statement]
