"""Bad input on every JSON endpoint: a 4xx in the error envelope that names the field,
nothing written, and never a 500 (DESIGN.md, Security baseline)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from tests.api.support import assert_error, assert_success, delete_event
from tests.helpers import PASSWORD, Account, account, book, create_event, event_payload, stored_state, unchanged

MISSING = object()  # a change that removes the key
OVERSIZED_PADDING = "x" * (70 * 1024)  # the cap is 64 KiB


@dataclass
class Raw:
    """A body sent as-is, with its own Content-Type."""

    data: str | bytes
    content_type: str


@dataclass
class World:
    host: Account
    guest: Account
    event: dict
    booking_id: int


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    actor: str | None  # "host", "guest" or None (no token)
    valid_body: Callable[[World], dict]
    required_field: str  # named when the body is an empty object


ENDPOINTS = {
    "register": Endpoint(
        "POST",
        "/api/user/register",
        None,
        lambda world: {
            "username": "fresh_user",
            "name": "Fresh User",
            "email": "fresh@example.test",
            "password": PASSWORD,
            "role": "guest",
        },
        "username",
    ),
    "login": Endpoint(
        "POST",
        "/api/user/login",
        None,
        lambda world: {"username": world.guest.username, "password": PASSWORD},
        "password",
    ),
    "create": Endpoint("POST", "/api/events/create", "host", lambda world: event_payload(), "name"),
    "update": Endpoint(
        "POST", "/api/events/update", "host", lambda world: {"id": world.event["id"], "name": "Renamed"}, "id"
    ),
    "delete": Endpoint("POST", "/api/events/delete", "host", lambda world: {"id": world.event["id"]}, "id"),
    "book": Endpoint(
        "POST", "/api/events/book", "guest", lambda world: {"eventId": world.event["id"], "numberOfSeats": 1}, "eventId"
    ),
    "cancel": Endpoint("DELETE", "/api/events/book", "guest", lambda world: {"eventId": world.event["id"]}, "eventId"),
}


@pytest.fixture
def world(client) -> World:
    host = account(client, "host")
    guest = account(client, "guest")
    created = create_event(client, host, capacity=10)
    accepted = book(client, guest, created["id"], 2)
    return World(host, guest, created, accepted["bookingIds"][0])


def send(client, world: World, name: str, body):
    endpoint = ENDPOINTS[name]
    headers = {}
    if endpoint.actor is not None:
        headers.update(getattr(world, endpoint.actor).headers)
    if isinstance(body, Raw):
        return client.open(
            endpoint.path, method=endpoint.method, data=body.data, content_type=body.content_type, headers=headers
        )
    return client.open(
        endpoint.path, method=endpoint.method, data=json.dumps(body), content_type="application/json", headers=headers
    )


def changed(body: dict, changes: dict) -> dict:
    result = dict(body)
    for key, value in changes.items():
        if value is MISSING:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def state(client, world: World) -> tuple:
    """Everything a refused request must leave as it was: every row (the event's included) and
    every Redis key (tests.helpers.stored_state)."""
    return stored_state()


def in_days(days: int, hours: int = 0) -> str:
    moment = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=days, hours=hours)
    return moment.isoformat()


# --- bodies that are not a JSON object ------------------------------------------------

SHAPES = {
    "not-json": (Raw("{not json", "application/json"), None),
    "empty-body": (Raw("", "application/json"), None),
    "invalid-utf8": (Raw(b'\xff\xfe{"a": 1}', "application/json"), None),
    "json-list": ([{"a": 1}], "_schema"),
    "json-string": ("a string", "_schema"),
    "json-number": (3, "_schema"),
    "json-null": (None, None),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ENDPOINTS)
def test_body_that_is_not_a_json_object_is_400(client, world, name, shape):
    body, field = SHAPES[shape]
    before = state(client, world)

    with unchanged():
        assert_error(send(client, world, name, body), 400, field)

    assert state(client, world) == before


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
@pytest.mark.parametrize("name", ENDPOINTS)
def test_valid_json_with_the_wrong_content_type_is_400(client, world, name, content_type):
    body = json.dumps(ENDPOINTS[name].valid_body(world))
    before = state(client, world)

    with unchanged():
        response = send(client, world, name, Raw(body, content_type))

        assert "JSON" in assert_error(response, 400)["message"]
    assert state(client, world) == before


@pytest.mark.parametrize("name", ENDPOINTS)
def test_empty_object_is_400_naming_a_required_field(client, world, name):
    before = state(client, world)

    with unchanged():
        assert_error(send(client, world, name, {}), 400, ENDPOINTS[name].required_field)

    assert state(client, world) == before


@pytest.mark.parametrize("name", ENDPOINTS)
def test_body_over_64_kib_is_413_in_the_envelope(client, world, name):
    body = {**ENDPOINTS[name].valid_body(world), "padding": OVERSIZED_PADDING}
    before = state(client, world)

    with unchanged():
        response = send(client, world, name, body)

        assert_error(response, 413)
    assert state(client, world) == before


@pytest.mark.parametrize("name", ENDPOINTS)
def test_deeply_nested_json_is_400_not_500(client, world, name):
    """json.loads raises RecursionError (not ValueError) on deep nesting, and
    load_body's get_json(silent=True) only swallows ValueError."""
    before = state(client, world)

    with unchanged():
        response = send(client, world, name, Raw("[" * 20000 + "]" * 20000, "application/json"))

        assert_error(response, 400)
    assert state(client, world) == before


# --- field by field -------------------------------------------------------------------

HUGE = 10**30

FIELD_CASES = [
    # register
    ("register", "missing-username", {"username": MISSING}, "username"),
    ("register", "missing-name", {"name": MISSING}, "name"),
    ("register", "missing-email", {"email": MISSING}, "email"),
    ("register", "missing-password", {"password": MISSING}, "password"),
    ("register", "username-int", {"username": 12345}, "username"),
    ("register", "username-too-short", {"username": "ab"}, "username"),
    ("register", "username-too-long", {"username": "u" * 33}, "username"),
    ("register", "username-with-space", {"username": "two words"}, "username"),
    ("register", "username-with-at", {"username": "me@home"}, "username"),
    ("register", "email-invalid", {"email": "not-an-email"}, "email"),
    ("register", "email-int", {"email": 5}, "email"),
    ("register", "password-too-short", {"password": "short"}, "password"),
    ("register", "password-too-long", {"password": "p" * 129}, "password"),
    ("register", "password-int", {"password": 12345678}, "password"),
    ("register", "password-null", {"password": None}, "password"),
    ("register", "name-empty", {"name": ""}, "name"),
    ("register", "name-too-long", {"name": "n" * 101}, "name"),
    ("register", "role-unknown", {"role": "superuser"}, "role"),
    ("register", "role-bool", {"role": True}, "role"),
    ("register", "role-null", {"role": None}, "role"),
    ("register", "unknown-isAdmin", {"isAdmin": True}, "isAdmin"),
    ("register", "unknown-passwordHash", {"passwordHash": "x"}, "passwordHash"),
    # login
    ("login", "missing-password", {"password": MISSING}, "password"),
    ("login", "neither-username-nor-email", {"username": MISSING}, "username"),
    ("login", "username-empty", {"username": ""}, "username"),
    ("login", "username-int", {"username": 42}, "username"),
    ("login", "email-list", {"email": []}, "email"),
    ("login", "password-null", {"password": None}, "password"),
    ("login", "password-int", {"password": 12345678}, "password"),
    ("login", "unknown-remember", {"remember": True}, "remember"),
    # create
    ("create", "missing-name", {"name": MISSING}, "name"),
    ("create", "missing-venue", {"venue": MISSING}, "venue"),
    ("create", "missing-startsAt", {"startsAt": MISSING}, "startsAt"),
    ("create", "missing-endsAt", {"endsAt": MISSING}, "endsAt"),
    ("create", "missing-capacity", {"capacity": MISSING}, "capacity"),
    ("create", "capacity-string", {"capacity": "3"}, "capacity"),
    ("create", "capacity-float", {"capacity": 2.5}, "capacity"),
    ("create", "capacity-whole-float", {"capacity": 3.0}, "capacity"),
    ("create", "capacity-bool", {"capacity": True}, "capacity"),
    ("create", "capacity-huge", {"capacity": HUGE}, "capacity"),
    ("create", "capacity-negative", {"capacity": -1}, "capacity"),
    ("create", "capacity-zero", {"capacity": 0}, "capacity"),
    ("create", "capacity-null", {"capacity": None}, "capacity"),
    ("create", "price-negative", {"price": -1}, "price"),
    ("create", "price-string", {"price": "1500"}, "price"),
    ("create", "price-float", {"price": 15.5}, "price"),
    ("create", "price-huge", {"price": HUGE}, "price"),
    ("create", "startsAt-garbage", {"startsAt": "not-a-date"}, "startsAt"),
    ("create", "startsAt-impossible", {"startsAt": "2030-13-45T00:00:00+00:00"}, "startsAt"),
    ("create", "startsAt-number", {"startsAt": 1700000000}, "startsAt"),
    ("create", "ends-before-start", {"startsAt": in_days(5, 3), "endsAt": in_days(5)}, "endsAt"),
    ("create", "ends-at-start", {"startsAt": in_days(5), "endsAt": in_days(5)}, "endsAt"),
    ("create", "waitlistOpen-string", {"waitlistOpen": "true"}, "waitlistOpen"),
    ("create", "waitlistOpen-int", {"waitlistOpen": 1}, "waitlistOpen"),
    ("create", "name-empty", {"name": ""}, "name"),
    ("create", "name-too-long", {"name": "n" * 201}, "name"),
    ("create", "venue-empty", {"venue": ""}, "venue"),
    ("create", "description-too-long", {"description": "d" * 5001}, "description"),
    ("create", "unknown-reservedSeats", {"reservedSeats": 0}, "reservedSeats"),
    ("create", "unknown-hostId", {"hostId": 1}, "hostId"),
    ("create", "unknown-status", {"status": "deleted"}, "status"),
    # update
    ("update", "missing-id", {"id": MISSING}, "id"),
    ("update", "nothing-to-change", {"name": MISSING}, "_schema"),
    ("update", "id-string", {"id": "1"}, "id"),
    ("update", "id-zero", {"id": 0}, "id"),
    ("update", "id-negative", {"id": -1}, "id"),
    ("update", "id-bool", {"id": True}, "id"),
    ("update", "id-float", {"id": 2.5}, "id"),
    ("update", "id-huge", {"id": HUGE}, "id"),
    ("update", "unknown-reservedSeats", {"reservedSeats": 0}, "reservedSeats"),
    ("update", "unknown-seatsLeft", {"seatsLeft": 100}, "seatsLeft"),
    ("update", "unknown-hostId", {"hostId": 1}, "hostId"),
    ("update", "unknown-waitlistLength", {"waitlistLength": 0}, "waitlistLength"),
    ("update", "capacity-string", {"capacity": "3"}, "capacity"),
    ("update", "capacity-float", {"capacity": 2.5}, "capacity"),
    ("update", "capacity-bool", {"capacity": True}, "capacity"),
    ("update", "capacity-zero", {"capacity": 0}, "capacity"),
    ("update", "capacity-negative", {"capacity": -1}, "capacity"),
    ("update", "capacity-huge", {"capacity": HUGE}, "capacity"),
    ("update", "price-negative", {"price": -5}, "price"),
    ("update", "name-null", {"name": None}, "name"),
    ("update", "name-empty", {"name": ""}, "name"),
    ("update", "waitlistClosed-string", {"waitlistClosed": "true"}, "waitlistClosed"),
    ("update", "waitlistOpen-string", {"waitlistOpen": "false"}, "waitlistOpen"),
    ("update", "waitlistOpen-and-waitlistClosed", {"waitlistOpen": True, "waitlistClosed": False}, "waitlistClosed"),
    ("update", "startAt-and-startsAt", {"startAt": in_days(3), "startsAt": in_days(3)}, "startAt"),
    ("update", "starts-after-current-end", {"startsAt": in_days(60)}, "endsAt"),
    ("update", "ends-before-start", {"startsAt": in_days(5, 3), "endsAt": in_days(5)}, "endsAt"),
    ("update", "seed-ends-before-start", {"startAt": in_days(5, 3), "endAt": in_days(5)}, "endsAt"),
    ("update", "startsAt-garbage", {"startsAt": "tomorrow"}, "startsAt"),
    # delete
    ("delete", "missing-id", {"id": MISSING}, "id"),
    ("delete", "id-string", {"id": "1"}, "id"),
    ("delete", "id-zero", {"id": 0}, "id"),
    ("delete", "id-negative", {"id": -1}, "id"),
    ("delete", "id-bool", {"id": True}, "id"),
    ("delete", "id-float", {"id": 2.5}, "id"),
    ("delete", "id-huge", {"id": HUGE}, "id"),
    ("delete", "id-null", {"id": None}, "id"),
    ("delete", "unknown-force", {"force": True}, "force"),
    ("delete", "eventId-instead-of-id", {"id": MISSING, "eventId": 1}, "eventId"),
    # book
    ("book", "missing-eventId", {"eventId": MISSING}, "eventId"),
    ("book", "missing-numberOfSeats", {"numberOfSeats": MISSING}, "numberOfSeats"),
    ("book", "seats-string", {"numberOfSeats": "3"}, "numberOfSeats"),
    ("book", "seats-float", {"numberOfSeats": 2.5}, "numberOfSeats"),
    ("book", "seats-whole-float", {"numberOfSeats": 2.0}, "numberOfSeats"),
    ("book", "seats-bool", {"numberOfSeats": True}, "numberOfSeats"),
    ("book", "seats-string-bool", {"numberOfSeats": "true"}, "numberOfSeats"),
    ("book", "seats-huge", {"numberOfSeats": HUGE}, "numberOfSeats"),
    ("book", "seats-negative", {"numberOfSeats": -1}, "numberOfSeats"),
    ("book", "seats-zero", {"numberOfSeats": 0}, "numberOfSeats"),
    ("book", "seats-eleven", {"numberOfSeats": 11}, "numberOfSeats"),
    ("book", "seats-null", {"numberOfSeats": None}, "numberOfSeats"),
    ("book", "seats-list", {"numberOfSeats": [2]}, "numberOfSeats"),
    ("book", "eventId-string", {"eventId": "1"}, "eventId"),
    ("book", "eventId-zero", {"eventId": 0}, "eventId"),
    ("book", "eventId-negative", {"eventId": -1}, "eventId"),
    ("book", "eventId-bool", {"eventId": True}, "eventId"),
    ("book", "eventId-float", {"eventId": 1.5}, "eventId"),
    ("book", "eventId-huge", {"eventId": HUGE}, "eventId"),
    ("book", "eventId-null", {"eventId": None}, "eventId"),
    ("book", "unknown-userId", {"userId": 1}, "userId"),
    ("book", "unknown-status", {"status": "confirmed"}, "status"),
    # cancel
    ("cancel", "missing-eventId", {"eventId": MISSING}, "eventId"),
    ("cancel", "eventId-string", {"eventId": "1"}, "eventId"),
    ("cancel", "eventId-zero", {"eventId": 0}, "eventId"),
    ("cancel", "eventId-float", {"eventId": 2.5}, "eventId"),
    ("cancel", "eventId-huge", {"eventId": HUGE}, "eventId"),
    ("cancel", "bookingId-string", {"bookingId": "1"}, "bookingId"),
    ("cancel", "bookingId-zero", {"bookingId": 0}, "bookingId"),
    ("cancel", "bookingId-negative", {"bookingId": -1}, "bookingId"),
    ("cancel", "bookingId-float", {"bookingId": 1.5}, "bookingId"),
    ("cancel", "bookingId-bool", {"bookingId": True}, "bookingId"),
    ("cancel", "cancelAll-string", {"cancelAll": "true"}, "cancelAll"),
    ("cancel", "cancelAll-int", {"cancelAll": 1}, "cancelAll"),
    ("cancel", "cancelAll-null", {"cancelAll": None}, "cancelAll"),
    ("cancel", "unknown-seats", {"seats": 2}, "seats"),
]


@pytest.mark.parametrize(
    ("name", "changes", "field"),
    [(name, changes, field) for name, _case, changes, field in FIELD_CASES],
    ids=[f"{name}-{case}" for name, case, _changes, _field in FIELD_CASES],
)
def test_bad_field_is_400_naming_it_and_writes_nothing(client, world, name, changes, field):
    body = changed(ENDPOINTS[name].valid_body(world), changes)
    before = state(client, world)

    with unchanged():
        assert_error(send(client, world, name, body), 400, field)

    assert state(client, world) == before


def test_cancel_with_both_booking_id_and_cancel_all_is_400(client, world):
    before = state(client, world)
    body = {"eventId": world.event["id"], "bookingId": world.booking_id, "cancelAll": True}

    with unchanged():
        assert_error(send(client, world, "cancel", body), 400, "cancelAll")

    assert state(client, world) == before


def test_every_valid_body_in_this_battery_is_accepted(client, world):
    """The control: the bodies the cases above break are themselves good."""
    for name in ("register", "login", "update", "book", "cancel", "create", "delete"):
        response = send(client, world, name, ENDPOINTS[name].valid_body(world))
        assert response.status_code in (200, 201, 202), (name, response.get_json())


# --- out-of-range values that break below the schema ----------------------------------


@pytest.mark.parametrize(
    ("starts_at", "ends_at"),
    [
        ("0001-01-01T00:30:00+01:00", "0001-01-01T05:00:00+01:00"),
        ("9999-12-31T22:00:00-01:00", "9999-12-31T23:30:00-01:00"),
    ],
    ids=["before-year-1-in-utc", "after-year-9999-in-utc"],
)
def test_date_outside_the_utc_range_is_400_not_500(client, world, starts_at, ends_at):
    """AwareDateTime accepts it; converting it to UTC in models.UtcDateTime overflows."""
    before = state(client, world)

    with unchanged():
        response = send(client, world, "create", event_payload(startsAt=starts_at, endsAt=ends_at))

        assert_error(response, 400)
    assert state(client, world) == before


@pytest.mark.parametrize(
    ("name", "changes", "field"),
    [
        ("register", {"name": "nul\u0000byte"}, "name"),
        ("create", {"name": "nul\u0000byte"}, "name"),
        ("update", {"venue": "nul\u0000byte"}, "venue"),
    ],
    ids=["register-name", "create-name", "update-venue"],
)
def test_text_with_a_nul_character_is_400(client, world, name, changes, field):
    """PostgreSQL cannot store U+0000 in text (psycopg2 raises: 500 there), SQLite stores it:
    refusing it at the schema keeps both backends alike."""
    before = state(client, world)

    with unchanged():
        assert_error(send(client, world, name, changed(ENDPOINTS[name].valid_body(world), changes)), 400, field)

    assert state(client, world) == before


def test_login_with_a_nul_character_is_refused_without_a_500(client, world):
    before = state(client, world)

    response = send(client, world, "login", {"username": "nul\u0000byte", "password": PASSWORD})

    assert response.status_code in (400, 401), response.get_json()
    assert_error(response, response.status_code)
    assert state(client, world) == before


# --- unknown and deleted events -------------------------------------------------------


def test_booking_an_unknown_event_is_404_and_writes_nothing(client, world):
    before = state(client, world)

    with unchanged():
        response = send(client, world, "book", {"eventId": 999999, "numberOfSeats": 1})

        assert_error(response, 404)
    assert state(client, world) == before


def test_booking_a_deleted_event_is_404_and_writes_nothing(client, world):
    doomed = create_event(client, world.host)
    delete_event(client, world.host, doomed["id"])
    before = state(client, world)

    with unchanged():
        response = send(client, world, "book", {"eventId": doomed["id"], "numberOfSeats": 1})

        assert_error(response, 404)
    assert state(client, world) == before


@pytest.mark.parametrize("name", ["update", "delete", "cancel"])
def test_unknown_event_is_404_elsewhere_too(client, world, name):
    key = "eventId" if name == "cancel" else "id"
    body = changed(ENDPOINTS[name].valid_body(world), {key: 999999})
    before = state(client, world)

    with unchanged():
        assert_error(send(client, world, name, body), 404)

    assert state(client, world) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/events/{huge}"),
        ("GET", "/api/events/{huge}/roster"),
        ("POST", "/api/events/{huge}/waitlist/close"),
        ("POST", "/api/events/{huge}/waitlist/reopen"),
    ],
    ids=["get", "roster", "close", "reopen"],
)
def test_event_id_in_the_path_beyond_64_bits_is_404_not_500(client, world, method, path):
    """Werkzeug's int converter has no upper bound; SQLite cannot bind the number."""
    with unchanged():
        response = client.open(path.format(huge=10**25), method=method, headers=world.host.headers)

        assert_error(response, 404)


# --- headers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["", "   ", "k" * 256, "tab\there"], ids=["empty", "blank", "too-long", "control-character"]
)
def test_bad_idempotency_key_is_400_naming_it(client, world, key):
    before = state(client, world)
    headers = {**world.guest.headers, "Idempotency-Key": key}

    with unchanged():
        response = client.post(
            "/api/events/book", json={"eventId": world.event["id"], "numberOfSeats": 1}, headers=headers
        )

        assert_error(response, 400, "Idempotency-Key")
    assert state(client, world) == before


def test_longest_idempotency_key_is_accepted(client, world):
    headers = {**world.guest.headers, "Idempotency-Key": "k" * 255}

    response = client.post("/api/events/book", json={"eventId": world.event["id"], "numberOfSeats": 1}, headers=headers)

    assert_success(response, 202)


# --- query strings --------------------------------------------------------------------


def cursor_of(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


HISTORY_QUERIES = [
    ("limit-zero", {"limit": "0"}, "limit"),
    ("limit-101", {"limit": "101"}, "limit"),
    ("limit-word", {"limit": "abc"}, "limit"),
    ("limit-negative", {"limit": "-1"}, "limit"),
    ("limit-fraction", {"limit": "1.5"}, "limit"),
    ("limit-empty", {"limit": ""}, "limit"),
    ("limit-huge", {"limit": str(10**30)}, "limit"),
    ("view-bogus", {"view": "bogus"}, "view"),
    ("status-bogus", {"status": "pending"}, "status"),
    ("eventId-word", {"eventId": "abc"}, "eventId"),
    ("eventId-zero", {"eventId": "0"}, "eventId"),
    ("eventId-huge", {"eventId": str(10**30)}, "eventId"),
    ("cursor-garbage", {"cursor": "!!!not base64!!!"}, "cursor"),
    ("cursor-not-json", {"cursor": "abc"}, "cursor"),
    ("cursor-empty", {"cursor": ""}, "cursor"),
    ("cursor-list", {"cursor": cursor_of([1])}, "cursor"),
    ("cursor-string", {"cursor": cursor_of("x")}, "cursor"),
    ("cursor-id-string", {"cursor": cursor_of({"id": "5"})}, "cursor"),
    ("cursor-id-zero", {"cursor": cursor_of({"id": 0})}, "cursor"),
    ("cursor-id-bool", {"cursor": cursor_of({"id": True})}, "cursor"),
    ("cursor-id-float", {"cursor": cursor_of({"id": 2.5})}, "cursor"),
    ("cursor-no-id", {"cursor": cursor_of({"after": 5})}, "cursor"),
    ("cursor-too-long", {"cursor": "a" * 201}, "cursor"),
    ("from-garbage", {"from": "yesterday"}, "from"),
    ("to-garbage", {"to": "2030-02-30T00:00:00Z"}, "to"),
    ("unknown-parameter", {"page": "2"}, "page"),
]


@pytest.mark.parametrize(
    ("params", "field"),
    [(params, field) for _case, params, field in HISTORY_QUERIES],
    ids=[case for case, _params, _field in HISTORY_QUERIES],
)
def test_bad_history_query_is_400_naming_the_parameter(client, world, params, field):
    with unchanged():
        response = client.get("/api/user/bookings", query_string=params, headers=world.guest.headers)

        assert_error(response, 400, field)


@pytest.mark.parametrize("limit", ["1_0", "+5", " 5", "\u0665"], ids=["underscore", "plus", "space", "arabic-digit"])
def test_history_limit_takes_plain_decimal_digits_only(client, world, limit):
    """schemas.query_int promises "only plain decimal integers" but int() also takes these."""
    with unchanged():
        response = client.get("/api/user/bookings", query_string={"limit": limit}, headers=world.guest.headers)

        assert_error(response, 400, "limit")


def test_history_cursor_with_an_id_beyond_64_bits_is_400_not_500(client, world):
    """decode_cursor accepts any positive int; SQLite cannot bind 10**30."""
    with unchanged():
        response = client.get(
            "/api/user/bookings", query_string={"cursor": cursor_of({"id": 10**30})}, headers=world.guest.headers
        )

        assert_error(response, 400, "cursor")


def test_history_date_outside_the_utc_range_is_400_not_500(client, world):
    with unchanged():
        response = client.get(
            "/api/user/bookings", query_string={"from": "0001-01-01T00:00:00+01:00"}, headers=world.guest.headers
        )

        assert_error(response, 400, "from")


STATUS_QUERIES = [
    ("wait-negative", "-1"),
    ("wait-31", "31"),
    ("wait-word", "abc"),
    ("wait-nan", "nan"),
    ("wait-infinity", "inf"),
    ("wait-empty", ""),
]


@pytest.mark.parametrize("wait", [wait for _case, wait in STATUS_QUERIES], ids=[case for case, _ in STATUS_QUERIES])
def test_bad_wait_on_request_status_is_400(client, world, wait):
    accepted = book(client, world.guest, world.event["id"], 1)

    with unchanged():
        response = client.get(accepted["statusUrl"], query_string={"wait": wait}, headers=world.guest.headers)

        assert_error(response, 400, "wait")


def test_unknown_parameter_on_request_status_is_400(client, world):
    accepted = book(client, world.guest, world.event["id"], 1)

    with unchanged():
        response = client.get(accepted["statusUrl"], query_string={"timeout": "5"}, headers=world.guest.headers)

        assert_error(response, 400, "timeout")


@pytest.mark.parametrize(
    ("params", "field"),
    [({"hostId": "abc"}, "hostId"), ({"hostId": "0"}, "hostId"), ({"hostId": "-3"}, "hostId"), ({"page": "2"}, "page")],
    ids=["hostId-word", "hostId-zero", "hostId-negative", "unknown-parameter"],
)
def test_bad_event_list_query_is_400(client, params, field):
    with unchanged():
        assert_error(client.get("/api/events/all", query_string=params), 400, field)


# --- routing --------------------------------------------------------------------------


def test_wrong_method_is_405_in_the_envelope(client):
    with unchanged():
        response = client.get("/api/events/book")

        assert_error(response, 405)
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"POST", "DELETE"}


def test_unknown_api_path_is_404_in_the_envelope(client):
    with unchanged():
        assert_error(client.get("/api/no-such-thing"), 404)
