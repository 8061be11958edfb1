"""A booking's session is confirmed in the request registry's claim (services/booking.py
`submit_request(session_id=...)`, auth.py `token_required`): one Redis round trip a booking
instead of a session read and then the claim, with the same answers as every other route.

The real app on SQLite and PostgreSQL, with the full mode's Redis registry and with none
(embedded: the service asks the session cache / database first). What is checked: a revoked
session's booking is a 401 that counts, claims and records nothing, even for a token this
process verified before; a session whose live answer left the cache is asked of the database
and books; a warm session's booking reads no session on its own round trip.
"""

from __future__ import annotations

from collections.abc import Iterator

import jwt as pyjwt
import pytest

from atomicseats.adapters.redis_cache import RedisSessionCache, session_key
from atomicseats.extensions import db
from atomicseats.models import BookingRequest
from atomicseats.services.ports import adapters
from tests.api.support import assert_error, assert_success
from tests.conftest import fresh_app
from tests.helpers import account, create_event, login, unchanged

LIMITED = {"RATELIMIT_ENABLED": True, "RATELIMIT_BOOKING": "2 per minute"}


@pytest.fixture(params=["redis-registry", "embedded"])
def setup(request, database_url, redis_url) -> Iterator[tuple]:
    overrides = {"REDIS_URL": redis_url if request.param == "redis-registry" else ""}
    with fresh_app(database_url, **LIMITED, **overrides) as app:
        client = app.test_client()
        host = account(client, "host")
        guest = account(client, "guest")
        yield app, client, guest, create_event(client, host, capacity=50)["id"]


def book(client, who, event_id: int, key: str | None = None):
    headers = {**who.headers, **({"Idempotency-Key": key} if key else {})}
    return client.post("/api/events/book", json={"eventId": event_id, "numberOfSeats": 1}, headers=headers)


def session_of(who) -> str:
    return pyjwt.decode(who.access_token, options={"verify_signature": False})["sid"]


def requests_of(who) -> int:
    db.session.rollback()
    return db.session.query(BookingRequest).filter_by(user_id=who.id).count()


def test_a_revoked_session_books_nothing_and_counts_no_quota(setup):
    app, client, guest, event_id = setup
    assert_success(book(client, guest, event_id, "first"), 202)  # the token is now verified and remembered
    other = login(client, guest.username)
    assert_success(app.test_client().post("/api/user/logout", headers=guest.headers))

    with unchanged():  # no claim, no quota counted, no row
        for key in (None, "second", "third"):
            assert_error(book(client, guest, event_id, key), 401)

    # The user's quota (2 a minute) lost nothing to the refused tries: the other session books its second.
    assert_success(book(client, other, event_id, "fourth"), 202)
    assert_error(book(client, other, event_id, "fifth"), 429)
    assert requests_of(guest) == 2


def test_a_session_whose_live_answer_left_the_cache_is_asked_of_the_database_and_books(setup):
    app, client, guest, event_id = setup
    assert_success(book(client, guest, event_id, "first"), 202)
    store = adapters().sessions
    if isinstance(store, RedisSessionCache):
        store.client.delete(session_key(session_of(guest)))  # its few seconds are over

    assert_success(book(client, guest, event_id, "second"), 202)

    if isinstance(store, RedisSessionCache):
        assert store.client.get(session_key(session_of(guest))) == str(guest.id)  # remembered again
    assert requests_of(guest) == 2


def test_a_disabled_accounts_remembered_token_cannot_book(setup):
    app, client, guest, event_id = setup
    assert_success(book(client, guest, event_id), 202)
    assert app.test_cli_runner().invoke(args=["users", "disable", guest.username]).exit_code == 0
    db.session.rollback()

    with unchanged():
        assert_error(book(client, guest, event_id, "after"), 401)


def test_a_warm_sessions_booking_asks_the_session_cache_nothing_of_its_own(setup, monkeypatch):
    """With the Redis registry the claim confirms the session; embedded, the service asks."""
    app, client, guest, event_id = setup
    assert_success(book(client, guest, event_id, "warm"), 202)
    asked: list[str] = []
    store = adapters().sessions
    original = type(store).is_live
    monkeypatch.setattr(type(store), "is_live", lambda self, sid, uid: asked.append(sid) or original(self, sid, uid))

    assert_success(book(client, guest, event_id, "hot"), 202)
    booking_asked = len(asked)
    assert_success(client.get("/api/user/bookings", headers=guest.headers))  # control: any other route asks

    assert booking_asked == (0 if isinstance(store, RedisSessionCache) else 1)
    assert len(asked) == booking_asked + 1


def test_without_redis_the_session_is_asked_of_the_database(database_url):
    """A registry that cannot be reached claims nothing: the session is checked without it."""
    dead = "redis://127.0.0.1:9/0"  # the discard port: nothing listens
    with fresh_app(database_url, REDIS_URL=dead) as app:
        client = app.test_client()
        host, guest = account(client, "host"), account(client, "guest")
        event_id = create_event(client, host, capacity=5)["id"]
        assert_success(book(client, guest, event_id), 202)
        assert_success(app.test_client().post("/api/user/logout", headers=guest.headers))
        assert_error(book(client, guest, event_id), 401)
        assert requests_of(guest) == 1
