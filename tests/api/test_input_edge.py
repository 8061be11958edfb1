"""Input at the edge (issue 8 point 7): identities matched in full and unique whatever
their case, one-line names and venues, no key given twice, the body limit for streamed
bodies too, and passwords that are long and not common."""

from __future__ import annotations

import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from atomicseats.domain import limits
from atomicseats.extensions import db
from atomicseats.models import BookingRequest, Event, User
from tests.api.support import assert_error, assert_success
from tests.conftest import fresh_app
from tests.helpers import (
    PASSWORD,
    account,
    create_admin_args,
    create_event,
    event_payload,
    register,
    registration,
    served_over_http,
    unchanged,
)


def register_response(client, username: str, email: str | None = None, password: str = PASSWORD, **extra):
    body = registration(username, role=None, name="Someone", password=password)
    if email:
        body["email"] = email
    return client.post("/api/user/register", json={**body, **extra})


# --- usernames and e-mails ------------------------------------------------------------


@pytest.mark.parametrize(
    "username",
    [
        "gary\n",
        "gary\r\n",
        "\ngary",
        " gary",
        "gary ",
        "ga ry",
        "g" * (limits.USERNAME_LENGTH_MAX + 1),
        "g" * limits.USERNAME_LENGTH_MAX + "\n",
        "gü",
    ],
    ids=[
        "trailing-newline",
        "trailing-crlf",
        "leading-newline",
        "leading-space",
        "trailing-space",
        "space",
        "33-chars",
        "32-chars-and-newline",
        "non-ascii",
    ],
)
def test_a_username_must_match_its_pattern_in_full(app, client, username):
    register(client, "guest", username="gary")
    with unchanged():
        assert_error(register_response(client, username, email="other@example.test"), 400, "username")


def test_gary_with_a_newline_is_not_a_second_account_and_cannot_log_in(app, client):
    register(client, "guest", username="gary")

    with unchanged():
        assert_error(register_response(client, "gary\n", email="gary2@example.test"), 400, "username")
        assert_error(client.post("/api/user/login", json={"username": "gary\n", "password": PASSWORD}), 401)
    assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_the_longest_username_fits_its_column(app, client):
    username = "g" * limits.USERNAME_LENGTH_MAX

    assert assert_success(register_response(client, username), 201)["username"] == username


@pytest.mark.parametrize("email", ["gary@example.test\n", "gary@example.test ", "gary\n@example.test", "gary"])
def test_an_email_must_match_its_pattern_in_full(app, client, email):
    with unchanged():
        assert_error(register_response(client, "gary", email=email), 400, "email")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("Gary", "gary1@example.test"), ("gary", "gary2@example.test")),
        (("gary1", "Gary@Example.test"), ("gary2", "gary@example.test")),
    ],
    ids=["username", "email"],
)
def test_usernames_and_emails_are_unique_whatever_their_case(app, client, first, second):
    assert_success(register_response(client, first[0], email=first[1]), 201)

    with unchanged():
        assert_error(register_response(client, second[0], email=second[1]), 409)


def test_login_by_username_or_email_ignores_case(app, client):
    user = assert_success(register_response(client, "GaryBuys", email="Gary.Buys@Example.test"), 201)

    for login in ("garybuys", "GARYBUYS", "gary.buys@example.test", "GARY.BUYS@EXAMPLE.TEST"):
        response = client.post("/api/user/login", json={"username": login, "password": PASSWORD})
        assert assert_success(response)["user"]["id"] == user["id"]


PAIRS = 12  # racing pairs of case variants: enough for several to meet in the database


def test_concurrent_case_variants_are_one_201_and_one_409_never_a_500(database_url, redis_url):
    """Both variants pass the look-up before either commits; the unique index on
    lower(username) decides, and the loser must hear 409, not an IntegrityError's 500."""
    with fresh_app(database_url, hold_context=False, REDIS_URL=redis_url) as app:
        variants = [(f"Racer{pair}", f"racer{pair}") for pair in range(PAIRS)]
        start = threading.Barrier(2 * PAIRS)

        def sign_up(username: str) -> int:
            client = app.test_client()
            start.wait()
            return register_response(client, username, email=f"{username}.{id(client)}@example.test").status_code

        with ThreadPoolExecutor(2 * PAIRS) as pool:
            statuses = list(pool.map(sign_up, [name for pair in variants for name in pair]))
        pairs = [sorted(statuses[2 * index : 2 * index + 2]) for index in range(PAIRS)]
        assert pairs == [[201, 409]] * PAIRS, statuses
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(User)) == PAIRS


# --- passwords ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    ["nine-char", "password123", "PASSWORD123", "qwertyuiop", "1234567890", "p" * (limits.PASSWORD_LENGTH_MAX + 1)],
    ids=["too-short", "common", "common-any-case", "common-keyboard", "common-digits", "too-long"],
)
def test_a_password_is_long_enough_and_not_common(app, client, password):
    with unchanged():
        assert_error(register_response(client, "gary", password=password), 400, "password")


def test_a_long_uncommon_password_is_accepted(app, client):
    assert_success(register_response(client, "gary", password="ten-chars!"), 201)


def test_the_cli_applies_the_same_password_rule(app):
    result = CliRunner().invoke(app.cli, create_admin_args("root", "password123"), catch_exceptions=False)

    assert result.exit_code != 0 and "password" in result.output.lower()
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_the_demo_accounts_meet_the_password_rule(app):
    from atomicseats.services import demo

    demo.seed_demo()

    assert db.session.scalar(select(func.count()).select_from(User)) == len(demo.DEMO_ACCOUNTS)


# --- event names and venues --------------------------------------------------------------


def test_event_names_and_venues_are_trimmed(app, client):
    host = account(client, "host")

    created = create_event(client, host, name="  Midnight Jazz \t", venue="\u00a0Atomic Club  ")

    assert (created["name"], created["venue"]) == ("Midnight Jazz", "Atomic Club")
    stored = db.session.get(Event, created["id"])
    assert (stored.name, stored.venue) == ("Midnight Jazz", "Atomic Club")


@pytest.mark.parametrize("field", ["name", "venue"])
@pytest.mark.parametrize(
    "value", ["Jazz\nNight", "Jazz\rNight", "Jazz\x1b[31mNight", "Jazz\tNight", "Jazz\u2028Night", "   ", "\x85"]
)
def test_event_names_and_venues_refuse_control_characters_and_blank_text(app, client, field, value):
    host = account(client, "host")
    with unchanged():
        response = client.post("/api/events/create", json=event_payload(**{field: value}), headers=host.headers)

        assert_error(response, 400, field)


def test_an_event_update_refuses_a_control_character_in_the_name(app, client):
    host = account(client, "host")
    created = create_event(client, host)

    with unchanged():
        response = client.post(
            "/api/events/update", json={"id": created["id"], "name": "New\nName"}, headers=host.headers
        )

        assert_error(response, 400, "name")
    assert db.session.get(Event, created["id"]).name == "Test Concert"


# --- duplicate keys ----------------------------------------------------------------------


def test_a_key_given_twice_in_a_json_object_is_400(app, client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host)
    with unchanged():
        body = f'{{"eventId": {created["id"]}, "numberOfSeats": 1, "numberOfSeats": 9}}'

        response = client.post(
            "/api/events/book", data=body, headers={**guest.headers, "Content-Type": "application/json"}
        )

        assert_error(response, 400, "numberOfSeats")


def test_a_key_given_twice_in_a_nested_object_is_400_too(app, client):
    body = '{"username": "gary", "name": "G", "email": "g@example.test", "password": "%s", "x": {"a": 1, "a": 2}}'

    with unchanged():
        response = client.post("/api/user/register", data=body % PASSWORD, headers={"Content-Type": "application/json"})

        assert_error(response, 400, "a")


# --- the body limit for streamed (chunked) bodies ----------------------------------------


@pytest.fixture
def served(app):
    """The app behind a real HTTP server (Werkzeug's, which, like granian, hands the app a
    chunked body as a stream without Content-Length)."""
    with served_over_http(app) as port:
        yield port


def post_chunked(port: int, path: str, chunks: list[bytes], headers: dict) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            "POST",
            path,
            body=iter(chunks),
            headers={"Content-Type": "application/json", **headers},
            encode_chunked=True,
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_chunked_body_past_the_limit_is_413_and_books_nothing(app, client, served):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host)
    booking = json.dumps({"eventId": created["id"], "numberOfSeats": 2}).encode()
    padding = [b" " * 8192] * (limits.JSON_BODY_BYTES_MAX // 8192 + 2)  # valid JSON whitespace, past the limit

    with unchanged():
        status, body = post_chunked(served, "/api/events/book", [booking, *padding], guest.headers)

    assert status == 413, body
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(BookingRequest)) == 0


@pytest.mark.parametrize("size", ["small", "exactly-the-limit"])
def test_a_chunked_body_within_the_limit_is_read_whole(app, client, served, size):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host)
    booking = json.dumps({"eventId": created["id"], "numberOfSeats": 2}).encode()
    if size == "exactly-the-limit":
        booking += b" " * (limits.JSON_BODY_BYTES_MAX - len(booking))

    status, body = post_chunked(served, "/api/events/book", [booking[:10], booking[10:]], guest.headers)

    assert status == 202, body
    assert body["data"]["seatsRequested"] == 2


# --- text that is not Unicode --------------------------------------------------------------

# JSON's escape of half a UTF-16 pair, alone: Python reads it, UTF-8 cannot encode it. A body
# names it with the marker, replaced after json.dumps (which would escape the backslash).
MARKER = "<lone-surrogate>"
LONE_SURROGATE = "\\ud800"


def with_lone_surrogate(payload: dict) -> str:
    return json.dumps(payload).replace(MARKER, LONE_SURROGATE)


@pytest.mark.parametrize(
    ("route", "role", "payload", "field"),
    [
        ("/api/user/register", None, {**registration("gary"), "name": f"G{MARKER}"}, "name"),
        ("/api/user/register", None, {**registration("gary"), "password": PASSWORD + MARKER}, "password"),
        ("/api/user/login", None, {"username": f"gary{MARKER}", "password": PASSWORD}, "username"),
        ("/api/user/login", None, {"email": f"g{MARKER}@example.test", "password": PASSWORD}, "email"),
        ("/api/events/create", "host", event_payload(venue=f"Hall {MARKER}"), "venue"),
        ("/api/events/book", "guest", {"eventId": 1, "numberOfSeats": 1, "note": ["ok", [MARKER]]}, "note"),
    ],
    ids=["register-name", "register-password", "login-username", "login-email", "event-venue", "in-a-nested-list"],
)
def test_a_lone_surrogate_in_any_json_string_is_400_naming_it_and_changes_nothing(
    app, client, route, role, payload, field
):
    """Found by probing beside the fuzzing of the live server (tests/contract): such a string
    reached the database driver or the password hash, which cannot encode it: a 500."""
    headers = {"Content-Type": "application/json", **(account(client, role).headers if role else {})}

    with unchanged():
        response = client.post(route, data=with_lone_surrogate(payload), headers=headers)

        assert_error(response, 400, field)


def test_a_lone_surrogate_as_a_key_is_400_too(app, client):
    body = with_lone_surrogate({"username": "gary", "password": PASSWORD, MARKER: 1})

    with unchanged():
        response = client.post("/api/user/login", data=body, headers={"Content-Type": "application/json"})

        assert_error(response, 400, LONE_SURROGATE)


def test_a_surrogate_pair_is_one_character_and_welcome(app, client):
    host = account(client, "host")
    body = json.dumps(event_payload(name="Concert \U0001f3b8"))  # json.dumps writes it as a pair of escapes

    response = client.post(
        "/api/events/create", data=body, headers={**host.headers, "Content-Type": "application/json"}
    )

    assert assert_success(response, 201)["name"] == "Concert \U0001f3b8"
