"""Events over HTTP: publish, read, list, change, waitlist switch, roster, delete."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest
import redis

from atomicseats.adapters import embedded
from atomicseats.adapters.redis_cache import RedisAvailabilityCache, availability_key, connect
from atomicseats.services.ports import EXTENSION_KEY, adapters
from tests.api.support import (
    assert_error,
    assert_refused_for_closed_waitlist,
    assert_success,
    cancel,
    delete_event,
    history,
    request_status,
    roster,
    update_event,
)
from tests.helpers import account, book, create_event, event, event_payload, unchanged

EVENT_FIELDS = {
    "id",
    "name",
    "description",
    "hostId",
    "venue",
    "startsAt",
    "endsAt",
    "capacity",
    "reservedSeats",
    "seatsLeft",
    "price",
    "waitlistOpen",
    "waitlistLength",
}


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


def in_days(days: int) -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=days)


# --- create ---------------------------------------------------------------------------


def test_host_creates_an_event_and_gets_it_back(client):
    host = account(client, "host")
    payload = event_payload(name="Jazz Night", capacity=42, price=2500)

    response = client.post("/api/events/create", json=payload, headers=host.headers)

    data = assert_success(response, 201)
    assert set(data) >= EVENT_FIELDS
    assert data["name"] == "Jazz Night"
    assert data["description"] == payload["description"]
    assert data["venue"] == payload["venue"]
    assert data["hostId"] == host.id
    assert parse(data["startsAt"]) == parse(payload["startsAt"])
    assert parse(data["endsAt"]) == parse(payload["endsAt"])
    assert (data["capacity"], data["reservedSeats"], data["seatsLeft"]) == (42, 0, 42)
    assert data["price"] == 2500
    assert data["waitlistOpen"] is True
    assert data["waitlistLength"] == 0


def test_create_stores_times_in_utc_whatever_the_offset(client):
    host = account(client, "host")

    data = create_event(client, host, startsAt="2031-05-01T20:00:00+02:00", endsAt="2031-05-01T23:00:00+02:00")

    assert parse(data["startsAt"]) == datetime(2031, 5, 1, 18, 0, tzinfo=timezone.utc)
    assert parse(data["startsAt"]).utcoffset() == timedelta(0)


def test_create_with_the_waitlist_closed(client):
    host = account(client, "host")

    assert create_event(client, host, waitlistOpen=False)["waitlistOpen"] is False


def test_guest_cannot_create_an_event(app, client):
    guest = account(client, "guest")
    with unchanged():
        response = client.post("/api/events/create", json=event_payload(), headers=guest.headers)

        assert_error(response, 403)


def test_create_without_a_token_is_401(app):
    with unchanged():
        assert_error(app.test_client().post("/api/events/create", json=event_payload()), 401)


def test_admin_can_create_an_event(client):
    admin = account(client, "admin")

    assert create_event(client, admin)["hostId"] == admin.id


# --- read and list --------------------------------------------------------------------


def test_get_event_is_public(app, client):
    host = account(client, "host")
    created = create_event(client, host)

    response = app.test_client().get(f"/api/events/{created['id']}")

    assert assert_success(response) == created


def test_get_unknown_event_is_404(client):
    with unchanged():
        assert_error(client.get("/api/events/999999"), 404)


def test_list_is_public_and_soonest_first(app, client):
    host = account(client, "host")
    later = create_event(
        client,
        host,
        name="later",
        startsAt=in_days(30).isoformat(),
        endsAt=(in_days(30) + timedelta(hours=1)).isoformat(),
    )
    soonest = create_event(
        client,
        host,
        name="soonest",
        startsAt=in_days(2).isoformat(),
        endsAt=(in_days(2) + timedelta(hours=1)).isoformat(),
    )
    middle = create_event(
        client,
        host,
        name="middle",
        startsAt=in_days(9).isoformat(),
        endsAt=(in_days(9) + timedelta(hours=1)).isoformat(),
    )

    listed = assert_success(app.test_client().get("/api/events/all"))["items"]

    assert [item["id"] for item in listed] == [soonest["id"], middle["id"], later["id"]]
    assert listed[0] == soonest


def test_list_excludes_deleted_events(client):
    host = account(client, "host")
    kept = create_event(client, host)
    gone = create_event(client, host)
    delete_event(client, host, gone["id"])

    listed = assert_success(client.get("/api/events/all"))["items"]

    assert [item["id"] for item in listed] == [kept["id"]]


def test_list_filters_by_host(client):
    first_host = account(client, "host")
    second_host = account(client, "host")
    mine = create_event(client, first_host)
    create_event(client, second_host)

    listed = assert_success(client.get(f"/api/events/all?hostId={first_host.id}"))["items"]

    assert [item["id"] for item in listed] == [mine["id"]]


# --- update ---------------------------------------------------------------------------


def test_owner_updates_details(client):
    host = account(client, "host")
    created = create_event(client, host)
    starts_at = in_days(20)

    data = update_event(
        client,
        host,
        created["id"],
        name="Renamed",
        description="New text",
        venue="Other Hall",
        startsAt=starts_at.isoformat(),
        endsAt=(starts_at + timedelta(hours=3)).isoformat(),
        price=999,
    )

    assert (data["name"], data["description"], data["venue"], data["price"]) == (
        "Renamed",
        "New text",
        "Other Hall",
        999,
    )
    assert parse(data["startsAt"]) == starts_at
    assert event(client, created["id"]) == data


def test_admin_updates_someone_elses_event(client):
    host = account(client, "host")
    admin = account(client, "admin")
    created = create_event(client, host)

    assert update_event(client, admin, created["id"], name="By admin")["name"] == "By admin"


@pytest.mark.parametrize("role", ["host", "guest"])
def test_another_user_cannot_update_the_event(client, role):
    owner = account(client, "host")
    intruder = account(client, role)
    created = create_event(client, owner)

    with unchanged():
        update_event(client, intruder, created["id"], expect=403, name="Hijacked", capacity=1)

    assert event(client, created["id"]) == created


def test_update_unknown_event_is_404(client):
    host = account(client, "host")

    with unchanged():
        update_event(client, host, 999999, expect=404, name="Nobody")


def test_capacity_below_confirmed_seats_is_a_conflict_and_changes_nothing(client):
    host = account(client, "host")
    guest = account(client, "guest")
    created = create_event(client, host, capacity=10)
    book(client, guest, created["id"], 6)
    before = event(client, created["id"])

    with unchanged():
        body = update_event(client, host, created["id"], expect=409, capacity=5, name="Should not stick")

    assert "capacity" in body["errors"]
    assert event(client, created["id"]) == before


def test_capacity_may_drop_to_exactly_the_confirmed_seats(client):
    host = account(client, "host")
    guest = account(client, "guest")
    created = create_event(client, host, capacity=10)
    book(client, guest, created["id"], 6)

    data = update_event(client, host, created["id"], capacity=6)

    assert (data["capacity"], data["reservedSeats"], data["seatsLeft"]) == (6, 6, 0)


def test_raising_capacity_promotes_the_waitlist_head_first(client):
    host = account(client, "host")
    holder, head, second = (account(client, "guest") for _ in range(3))
    created = create_event(client, host, capacity=2)
    book(client, holder, created["id"], 2)
    head_request = book(client, head, created["id"], 3)
    second_request = book(client, second, created["id"], 2)
    assert (head_request["status"], second_request["status"]) == ("waitlisted", "waitlisted")

    data = update_event(client, host, created["id"], capacity=4)

    # Two free seats both go to the head, which keeps its place for the third.
    assert (data["reservedSeats"], data["seatsLeft"], data["waitlistLength"]) == (4, 0, 2)
    head_now = request_status(client, head, head_request["requestId"])
    second_now = request_status(client, second, second_request["requestId"])
    assert (head_now["seatsConfirmed"], head_now["seatsWaitlisted"], head_now["waitlistPosition"]) == (2, 1, 1)
    assert (second_now["seatsConfirmed"], second_now["seatsWaitlisted"], second_now["waitlistPosition"]) == (0, 2, 2)


def test_raising_capacity_again_finishes_the_head_then_serves_the_next(client):
    host = account(client, "host")
    holder, head, second = (account(client, "guest") for _ in range(3))
    created = create_event(client, host, capacity=2)
    book(client, holder, created["id"], 2)
    head_request = book(client, head, created["id"], 3)
    second_request = book(client, second, created["id"], 2)
    update_event(client, host, created["id"], capacity=4)

    data = update_event(client, host, created["id"], capacity=6)

    assert (data["reservedSeats"], data["waitlistLength"]) == (6, 1)
    head_now = request_status(client, head, head_request["requestId"])
    second_now = request_status(client, second, second_request["requestId"])
    assert (head_now["seatsConfirmed"], head_now["waitlistPosition"], len(head_now["bookingIds"])) == (3, None, 2)
    assert (second_now["seatsConfirmed"], second_now["seatsWaitlisted"], second_now["waitlistPosition"]) == (1, 1, 1)
    assert [entry["userId"] for entry in roster(client, host, created["id"])["waitlist"]] == [second.id]


def test_raising_capacity_beyond_the_waitlist_leaves_seats_free(client):
    host = account(client, "host")
    holder, waiting = account(client, "guest"), account(client, "guest")
    created = create_event(client, host, capacity=1)
    book(client, holder, created["id"], 1)
    waiting_request = book(client, waiting, created["id"], 2)

    data = update_event(client, host, created["id"], capacity=10)

    assert (data["reservedSeats"], data["seatsLeft"], data["waitlistLength"]) == (3, 7, 0)
    assert request_status(client, waiting, waiting_request["requestId"])["seatsConfirmed"] == 2


# --- waitlist switch ------------------------------------------------------------------


def test_closed_waitlist_rejects_a_sold_out_booking(client):
    host = account(client, "host")
    holder, late = account(client, "guest"), account(client, "guest")
    created = create_event(client, host, capacity=2)
    book(client, holder, created["id"], 2)

    closed = assert_success(client.post(f"/api/events/{created['id']}/waitlist/close", headers=host.headers))
    body = {"eventId": created["id"], "numberOfSeats": 1}
    response = client.post("/api/events/book", json=body, headers=late.headers)

    assert closed["waitlistOpen"] is False
    assert_refused_for_closed_waitlist(response)
    after = event(client, created["id"])
    assert (after["reservedSeats"], after["waitlistLength"]) == (2, 0)


def test_closed_waitlist_confirms_what_is_free_and_rejects_the_rest(client):
    host = account(client, "host")
    holder, late = account(client, "guest"), account(client, "guest")
    created = create_event(client, host, capacity=3, waitlistOpen=False)
    book(client, holder, created["id"], 2)

    partial = book(client, late, created["id"], 3)

    assert (partial["status"], partial["reason"]) == ("partial", "waitlist_closed")
    assert (partial["seatsConfirmed"], partial["seatsWaitlisted"], len(partial["bookingIds"])) == (1, 0, 1)


def test_reopened_waitlist_takes_new_requests_again(client):
    host = account(client, "host")
    holder, late = account(client, "guest"), account(client, "guest")
    created = create_event(client, host, capacity=1)
    book(client, holder, created["id"], 1)
    assert_success(client.post(f"/api/events/{created['id']}/waitlist/close", headers=host.headers))

    reopened = assert_success(client.post(f"/api/events/{created['id']}/waitlist/reopen", headers=host.headers))
    waitlisted = book(client, late, created["id"], 2)

    assert reopened["waitlistOpen"] is True
    assert (waitlisted["status"], waitlisted["seatsWaitlisted"], waitlisted["waitlistPosition"]) == ("waitlisted", 2, 1)


def test_closing_the_waitlist_still_serves_those_already_waiting(client):
    host = account(client, "host")
    holder, waiting = account(client, "guest"), account(client, "guest")
    created = create_event(client, host, capacity=2)
    book(client, holder, created["id"], 2)
    waiting_request = book(client, waiting, created["id"], 1)
    assert_success(client.post(f"/api/events/{created['id']}/waitlist/close", headers=host.headers))

    cancel(client, holder, created["id"])

    served = request_status(client, waiting, waiting_request["requestId"])
    assert (served["seatsConfirmed"], served["waitlistPosition"]) == (1, None)


@pytest.mark.parametrize("action", ["close", "reopen"])
def test_only_the_owner_switches_the_waitlist(client, action):
    owner = account(client, "host")
    other = account(client, "host")
    created = create_event(client, owner, waitlistOpen=action == "close")

    with unchanged():
        response = client.post(f"/api/events/{created['id']}/waitlist/{action}", headers=other.headers)

        assert_error(response, 403)
    assert event(client, created["id"])["waitlistOpen"] is created["waitlistOpen"]


def test_switching_the_waitlist_of_an_unknown_event_is_404(client):
    host = account(client, "host")

    with unchanged():
        assert_error(client.post("/api/events/999999/waitlist/close", headers=host.headers), 404)


# --- seed compatibility ---------------------------------------------------------------


def test_update_accepts_the_seeds_start_at_and_end_at(client):
    host = account(client, "host")
    created = create_event(client, host)
    starts_at = in_days(40)

    data = update_event(
        client, host, created["id"], startAt=starts_at.isoformat(), endAt=(starts_at + timedelta(hours=1)).isoformat()
    )

    assert parse(data["startsAt"]) == starts_at
    assert parse(data["endsAt"]) == starts_at + timedelta(hours=1)


@pytest.mark.parametrize("closed", [True, False])
def test_update_accepts_the_seeds_waitlist_closed(client, closed):
    host = account(client, "host")
    created = create_event(client, host, waitlistOpen=closed)

    data = update_event(client, host, created["id"], waitlistClosed=closed)

    assert data["waitlistOpen"] is (not closed)


def test_update_waitlist_open_flag(client):
    host = account(client, "host")
    created = create_event(client, host)

    assert update_event(client, host, created["id"], waitlistOpen=False)["waitlistOpen"] is False


# --- roster ---------------------------------------------------------------------------


def test_owner_sees_bookings_and_the_waitlist_in_queue_order(client):
    host = account(client, "host")
    first, second, third, fourth = (account(client, "guest") for _ in range(4))
    created = create_event(client, host, capacity=3, price=1000)
    book(client, first, created["id"], 2)
    book(client, second, created["id"], 3)  # 1 confirmed, 2 waiting
    book(client, third, created["id"], 1)
    book(client, fourth, created["id"], 4)

    data = roster(client, host, created["id"])

    assert data["event"]["id"] == created["id"]
    assert [(item["userId"], item["numberOfSeats"], item["cost"]) for item in data["bookings"]] == [
        (first.id, 2, 2000),
        (second.id, 1, 1000),
    ]
    assert [(entry["userId"], entry["seatsRemaining"]) for entry in data["waitlist"]] == [
        (second.id, 2),
        (third.id, 1),
        (fourth.id, 4),
    ]


def test_admin_can_read_any_roster(client):
    host = account(client, "host")
    admin = account(client, "admin")
    created = create_event(client, host)

    assert roster(client, admin, created["id"])["event"]["id"] == created["id"]


@pytest.mark.parametrize("role", ["guest", "host"])
def test_roster_is_forbidden_to_others(client, role):
    owner = account(client, "host")
    other = account(client, role)
    created = create_event(client, owner)

    with unchanged():
        assert_error(client.get(f"/api/events/{created['id']}/roster", headers=other.headers), 403)


def test_roster_of_an_unknown_event_is_404(client):
    host = account(client, "host")

    with unchanged():
        assert_error(client.get("/api/events/999999/roster", headers=host.headers), 404)


# --- delete ---------------------------------------------------------------------------


def test_delete_cancels_every_booking_and_waitlist_place(client):
    host = account(client, "host")
    booked, waiting = account(client, "guest"), account(client, "guest")
    created = create_event(client, host, capacity=2)
    book(client, booked, created["id"], 1)
    book(client, booked, created["id"], 1)
    waiting_request = book(client, waiting, created["id"], 1)

    deleted = delete_event(client, host, created["id"])

    assert deleted["id"] == created["id"]
    assert [item["status"] for item in history(client, booked)["items"]] == ["cancelled", "cancelled"]
    assert all(item["cancelledAt"] for item in history(client, booked)["items"])
    assert request_status(client, waiting, waiting_request["requestId"])["waitlistPosition"] is None


def test_deleted_event_is_gone(client):
    host = account(client, "host")
    guest = account(client, "guest")
    created = create_event(client, host)
    delete_event(client, host, created["id"])

    with unchanged():
        assert_error(client.get(f"/api/events/{created['id']}"), 404)
        assert_error(client.get(f"/api/events/{created['id']}/roster", headers=host.headers), 404)
        book(client, guest, created["id"], 1, expect=404)
        update_event(client, host, created["id"], expect=404, name="Back from the dead")
        delete_event(client, host, created["id"], expect=404)


def test_booking_a_deleted_event_writes_nothing(app, client):
    host = account(client, "host")
    guest = account(client, "guest")
    created = create_event(client, host)
    delete_event(client, host, created["id"])
    with unchanged():
        book(client, guest, created["id"], 1, expect=404)


@pytest.mark.parametrize("role", ["guest", "host"])
def test_only_the_owner_deletes(client, role):
    owner = account(client, "host")
    other = account(client, role)
    created = create_event(client, owner)

    with unchanged():
        delete_event(client, other, created["id"], expect=403)

    assert event(client, created["id"]) == created


def test_admin_can_delete_any_event(client):
    host = account(client, "host")
    admin = account(client, "admin")
    created = create_event(client, host)

    delete_event(client, admin, created["id"])

    with unchanged():
        assert_error(client.get(f"/api/events/{created['id']}"), 404)


# --- listings and the availability cache ------------------------------------------------
# Listings take seat numbers from the Redis availability cache (Postgres for events it
# lacks). These need the real Redis of `make test`; the cache is refreshed after every
# commit, so a listing never shows a change late, and never needs Redis to be right.

CLOSED_PORT_URL = "redis://127.0.0.1:1/0"  # nothing listens there: every call fails fast


def listed(client, event_id: int) -> dict:
    """The event as `GET /api/events/all` shows it; `GET /api/events/<id>` must agree."""
    matches = [item for item in assert_success(client.get("/api/events/all"))["items"] if item["id"] == event_id]
    assert len(matches) == 1, matches
    assert event(client, event_id) == matches[0]
    return matches[0]


def seat_numbers(item: dict) -> tuple[int, int, int, bool, int]:
    return item["capacity"], item["reservedSeats"], item["seatsLeft"], item["waitlistOpen"], item["waitlistLength"]


def cached_numbers(event_id: int) -> tuple[int, int, int, bool, int] | None:
    cached = adapters().availability.load(event_id)
    if cached is None:
        return None
    return (
        cached.capacity_seats,
        cached.reserved_seats,
        cached.seats_left,
        cached.is_waitlist_open,
        cached.waitlist_length,
    )


def assert_listed_and_cached(client, event_id: int, numbers: tuple[int, int, int, bool, int]) -> None:
    """Listed right, and cached the same: the next listing is a cache hit showing it."""
    assert seat_numbers(listed(client, event_id)) == numbers
    assert cached_numbers(event_id) == numbers


def install_availability_cache(app, cache) -> None:
    app.extensions[EXTENSION_KEY] = dataclasses.replace(app.extensions[EXTENSION_KEY], availability=cache)


def test_listing_shows_every_change_right_after_it_commits(client, redis_url):
    host = account(client, "host")
    holder, waiting = account(client, "guest"), account(client, "guest")
    event_id = create_event(client, host, capacity=4)["id"]
    assert_listed_and_cached(client, event_id, (4, 0, 4, True, 0))

    book(client, holder, event_id, 3)  # confirmed
    assert_listed_and_cached(client, event_id, (4, 3, 1, True, 0))
    book(client, waiting, event_id, 3)  # 1 confirmed, 2 waitlisted
    assert_listed_and_cached(client, event_id, (4, 4, 0, True, 1))
    update_event(client, host, event_id, capacity=5)  # the head gets 1, waits for 1 more
    assert_listed_and_cached(client, event_id, (5, 5, 0, True, 1))
    assert_success(client.post(f"/api/events/{event_id}/waitlist/close", headers=host.headers))
    assert_listed_and_cached(client, event_id, (5, 5, 0, False, 1))
    cancel(client, holder, event_id)  # 3 freed: the head's last seat, 2 left free
    assert_listed_and_cached(client, event_id, (5, 3, 2, False, 0))
    assert_success(client.post(f"/api/events/{event_id}/waitlist/reopen", headers=host.headers))
    assert_listed_and_cached(client, event_id, (5, 3, 2, True, 0))
    update_event(client, host, event_id, capacity=3)
    assert_listed_and_cached(client, event_id, (3, 3, 0, True, 0))

    delete_event(client, host, event_id)
    assert event_id not in [item["id"] for item in assert_success(client.get("/api/events/all"))["items"]]
    with unchanged():
        assert_error(client.get(f"/api/events/{event_id}"), 404)
    assert adapters().availability.load(event_id).is_deleted


def test_listing_after_the_cache_is_lost_reads_postgres_and_refills_it(client, redis_url):
    host = account(client, "host")
    guests = [account(client, "guest") for _ in range(3)]
    busy_id = create_event(client, host, capacity=4)["id"]
    quiet_id = create_event(client, host, capacity=10, waitlistOpen=False)["id"]
    book(client, guests[0], busy_id, 3)
    book(client, guests[1], busy_id, 2)  # 1 confirmed, 1 waitlisted
    book(client, guests[2], busy_id, 1)  # waitlisted
    book(client, guests[2], quiet_id, 2)
    connection = redis.Redis.from_url(redis_url)

    connection.delete(availability_key(busy_id))
    assert cached_numbers(busy_id) is None
    assert seat_numbers(listed(client, busy_id)) == (4, 4, 0, True, 2)
    assert cached_numbers(busy_id) == (4, 4, 0, True, 2)

    connection.flushdb()  # Redis restarted empty: every entry of the page is refilled at once
    assert_success(client.get("/api/events/all"))
    assert cached_numbers(busy_id) == (4, 4, 0, True, 2)
    assert cached_numbers(quiet_id) == (10, 2, 8, False, 0)
    assert_listed_and_cached(client, quiet_id, (10, 2, 8, False, 0))
    connection.close()


def test_listing_shows_the_seat_numbers_the_cache_holds(client, redis_url):
    """Proof that listings read the cache: numbers written there (by no commit) are shown;
    the event's details still come from its row."""
    host = account(client, "host")
    created = create_event(client, host, name="Cached Night", capacity=10)
    connection = redis.Redis.from_url(redis_url)
    fields = {"reserved_seats": "4", "is_waitlist_open": "0", "waitlist_length": "2"}
    connection.hset(availability_key(created["id"]), mapping=fields)

    item = listed(client, created["id"])

    assert seat_numbers(item) == (10, 4, 6, False, 2)
    assert (item["name"], item["venue"], item["hostId"], item["startsAt"]) == (
        created["name"],
        created["venue"],
        created["hostId"],
        created["startsAt"],
    )
    connection.close()


def test_an_event_the_cache_knows_as_deleted_is_not_listed(client, redis_url):
    """Deleted after its row was read: the newer news wins, the event is gone."""
    host = account(client, "host")
    kept = create_event(client, host)
    gone = create_event(client, host)
    connection = redis.Redis.from_url(redis_url)
    connection.hset(availability_key(gone["id"]), "is_deleted", "1")

    assert [item["id"] for item in assert_success(client.get("/api/events/all"))["items"]] == [kept["id"]]
    with unchanged():
        assert_error(client.get(f"/api/events/{gone['id']}"), 404)
    connection.close()


@pytest.mark.parametrize(
    "damage",
    [
        {"reserved_seats": "11"},  # more than the capacity: no commit leaves that
        {"reserved_seats": "-1"},
        {"waitlist_length": "many"},
    ],
)
def test_a_damaged_cache_entry_is_never_listed(client, redis_url, damage):
    host = account(client, "host")
    guest = account(client, "guest")
    event_id = create_event(client, host, capacity=10)["id"]
    book(client, guest, event_id, 2)
    connection = redis.Redis.from_url(redis_url)
    connection.hset(availability_key(event_id), mapping=damage)

    assert seat_numbers(listed(client, event_id)) == (10, 2, 8, True, 0)
    connection.close()


def test_listing_with_redis_unreachable_reads_postgres(app, client, redis_url):
    host = account(client, "host")
    holder, waiting = account(client, "guest"), account(client, "guest")
    event_id = create_event(client, host, capacity=2)["id"]
    book(client, holder, event_id, 2)
    assert_listed_and_cached(client, event_id, (2, 2, 0, True, 0))
    install_availability_cache(app, RedisAvailabilityCache(connect(CLOSED_PORT_URL)))

    assert seat_numbers(listed(client, event_id)) == (2, 2, 0, True, 0)
    book(client, waiting, event_id, 1)  # admitted from Postgres; the cache write is lost
    assert seat_numbers(listed(client, event_id)) == (2, 2, 0, True, 1)
    update_event(client, host, event_id, capacity=4)
    assert seat_numbers(listed(client, event_id)) == (4, 3, 1, True, 0)


def test_listing_without_any_cache_reads_postgres(app, client):
    """The embedded default has no Redis: every listing counts in Postgres."""
    install_availability_cache(app, embedded.NoAvailabilityCache())
    host = account(client, "host")
    guest = account(client, "guest")
    event_id = create_event(client, host, capacity=3)["id"]
    book(client, guest, event_id, 5)

    assert seat_numbers(listed(client, event_id)) == (3, 3, 0, True, 1)
