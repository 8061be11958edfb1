"""The error envelope's `code`: stable, machine-readable, one catalogue (errors.ERROR_CODES).
Each code a client may branch on is produced where it is meant to be; every code named in
the source is in the catalogue (an unknown one fails when raised, and here before that)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from flask_jwt_extended import create_access_token

from atomicseats.errors import ERROR_CODES, Conflict, code_for_status
from atomicseats.models import utcnow
from atomicseats.services import users
from tests.api.support import assert_error, update_event
from tests.api.test_auth import unverified_claims
from tests.helpers import PASSWORD, account, admin_account, book, create_event, registration

SOURCE = Path(__file__).resolve().parents[2] / "atomicseats"


def test_codes_are_snake_case_and_every_code_the_source_names_is_in_the_catalogue():
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", code) for code in ERROR_CODES)
    named = {
        code
        for path in SOURCE.rglob("*.py")
        for code in re.findall(r"""\bcode=["']([a-z_]+)["']""", path.read_text(encoding="utf-8"))
    }
    assert named, "the scan found no code= at all: its pattern is stale"
    assert named <= set(ERROR_CODES), named - set(ERROR_CODES)


def test_every_status_the_api_answers_has_a_code_in_the_catalogue():
    for status in (400, 401, 403, 404, 405, 409, 413, 415, 429, 500, 503):
        assert code_for_status(status) in ERROR_CODES


def test_an_unknown_code_is_refused_where_it_is_raised():
    with pytest.raises(ValueError, match="unknown error code"):
        Conflict("nope", code="not_a_code")


def test_account_codes(client):
    taken = registration(f"dup{uuid.uuid4().hex[:6]}")
    assert client.post("/api/user/register", json=taken).status_code == 201
    assert_error(client.post("/api/user/register", json=taken), 409, code="already_exists")
    wrong = {"username": taken["username"], "password": PASSWORD + "x"}
    assert_error(client.post("/api/user/login", json=wrong), 401, code="invalid_credentials")
    assert_error(client.get("/api/user/bookings"), 401, code="not_authenticated")


def test_an_expired_access_token_says_token_expired(app, client):
    guest = account(client)
    claims = unverified_claims(guest.access_token)
    expired = create_access_token(
        identity=claims["sub"], additional_claims={"sid": claims["sid"]}, expires_delta=timedelta(seconds=-5)
    )
    response = app.test_client().get("/api/user/bookings", headers={"Authorization": f"Bearer {expired}"})
    assert_error(response, 401, code="token_expired")


def test_a_disabled_account_says_account_disabled(app, client):
    guest = account(client)
    with app.app_context():
        users.set_disabled_by_operator(guest.username, True)
    response = client.post("/api/user/login", json={"username": guest.username, "password": PASSWORD})
    assert_error(response, 403, code="account_disabled")


def test_booking_codes(client):
    host, guest = account(client, "host"), account(client)
    event = create_event(client, host, capacity=1)
    book(client, guest, event["id"], 1)
    client.post(f"/api/events/{event['id']}/waitlist/close", headers=host.headers)
    sold_out = client.post("/api/events/book", json={"eventId": event["id"], "numberOfSeats": 1}, headers=guest.headers)
    assert_error(sold_out, 409, "eventId", code="sold_out")

    closed = create_event(client, host)
    update_event(client, host, closed["id"], salesEndAt=(utcnow() - timedelta(seconds=1)).isoformat())
    ended = client.post("/api/events/book", json={"eventId": closed["id"], "numberOfSeats": 1}, headers=guest.headers)
    assert_error(ended, 409, "eventId", code="sales_ended")

    other = create_event(client, host, capacity=5)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    booking_id = book(client, guest, other["id"], 2, **key)["bookingIds"][0]
    reused = client.post(
        "/api/events/book", json={"eventId": other["id"], "numberOfSeats": 1}, headers={**guest.headers, **key}
    )
    assert_error(reused, 409, code="idempotency_key_reused")
    assert update_event(client, host, other["id"], expect=409, capacity=1)["code"] == "seats_confirmed"

    cancel = {"eventId": other["id"], "bookingId": booking_id}
    assert client.delete("/api/events/book", json=cancel, headers=guest.headers).status_code == 200
    assert_error(client.delete("/api/events/book", json=cancel, headers=guest.headers), 409, code="already_cancelled")
    nothing = client.delete("/api/events/book", json={"eventId": other["id"]}, headers=guest.headers)
    assert_error(nothing, 409, code="nothing_to_cancel")


def test_the_last_admin_says_last_admin(client):
    admin = admin_account(client)
    response = client.patch(f"/api/admin/users/{admin.id}", json={"role": "guest"}, headers=admin.headers)
    assert_error(response, 409, "role", code="last_admin")


def test_http_level_codes(client):
    assert_error(client.put("/api/events/book", json={}), 405, code="method_not_allowed")
    assert_error(client.get("/api/no-such-route"), 404, code="not_found")
    guest = account(client)
    huge = client.post(
        "/api/events/book",
        data=b"[" + b"1," * 40_000 + b"1]",
        headers={**guest.headers, "Content-Type": "application/json"},
    )
    assert_error(huge, 413, code="payload_too_large")
    assert_error(client.get("/api/events/all?limit=abc"), 400, "limit", code="invalid_input")
