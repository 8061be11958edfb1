"""Small HTTP helpers shared by the API tests (through Flask's test client)."""

from __future__ import annotations

import itertools
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import redis
import sqlalchemy as sa
from flask import Flask, current_app
from werkzeug.serving import make_server

from atomicseats.models import utcnow
from atomicseats.services.contracts import AcceptedRequest

_counter = itertools.count(1)
PASSWORD = "correct-horse-battery"


@dataclass(frozen=True)
class Account:
    """A signed-in test user: the one account type of every test, in-process or end-to-end."""

    id: int
    username: str
    email: str
    role: str
    access_token: str
    refresh_token: str = ""
    name: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    @classmethod
    def from_login(cls, data: dict, name: str = "") -> Account:
        """From the `data` of a 200 answer to POST /api/user/login."""
        user = data["user"]
        return cls(
            user["id"],
            user["username"],
            user["email"],
            user["role"],
            data["accessToken"],
            data["refreshToken"],
            name or user.get("name", ""),
        )


def registration(username: str, role: str | None = "guest", name: str | None = None, password: str = PASSWORD) -> dict:
    """The body of POST /api/user/register for `username` (e-mail at example.test); `role=None`
    leaves the role out (the server's default)."""
    body = {
        "username": username,
        "name": name or f"User {username}",
        "email": f"{username.strip().lower()}@example.test",
        "password": password,
    }
    if role is not None:
        body["role"] = role
    return body


def create_admin_args(username: str, password: str = PASSWORD) -> list[str]:
    """`flask users create-admin` arguments for a test admin (in-process runner or subprocess)."""
    return [
        "users",
        "create-admin",
        "--username",
        username,
        "--email",
        f"{username}@example.test",
        "--password",
        password,
    ]


def register(client, role: str = "guest", username: str | None = None) -> dict:
    number = next(_counter)
    username = username or f"{role}{number}"
    response = client.post("/api/user/register", json=registration(username, role, name=f"User {number}"))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def login(client, username: str, password: str = PASSWORD) -> Account:
    response = client.post("/api/user/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.get_json()
    return Account.from_login(response.get_json()["data"])


def account(client, role: str = "guest") -> Account:
    if role == "admin":
        return admin_account(client)
    return login(client, register(client, role)["username"])


def admin_account(client) -> Account:
    from atomicseats.services import users

    number = next(_counter)
    users.create_admin(f"admin{number}", "Admin", f"admin{number}@example.test", PASSWORD)
    return login(client, f"admin{number}")


def event_payload(**overrides) -> dict:
    starts_at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=10)
    payload = {
        "name": "Test Concert",
        "description": "A test event",
        "venue": "Test Hall",
        "startsAt": starts_at.isoformat(),
        "endsAt": (starts_at + timedelta(hours=2)).isoformat(),
        "capacity": 10,
        "price": 1500,
    }
    payload.update(overrides)
    return payload


def create_event(client, host: Account, **overrides) -> dict:
    response = client.post("/api/events/create", json=event_payload(**overrides), headers=host.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def book(client, guest: Account, event_id: int, seats: int, expect: int = 202, **headers) -> dict:
    response = client.post(
        "/api/events/book", json={"eventId": event_id, "numberOfSeats": seats}, headers={**guest.headers, **headers}
    )
    assert response.status_code == expect, response.get_json()
    return response.get_json()["data"] if expect < 300 else response.get_json()


def event(client, event_id: int) -> dict:
    response = client.get(f"/api/events/{event_id}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


@contextmanager
def served_over_http(app: Flask) -> Iterator[int]:
    """`app` behind a real HTTP server on a free loopback port (Werkzeug's, threaded: like
    granian, it hands the app chunked bodies as streams), in a thread; yields the port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join(timeout=10)


# --- "a refused request changed nothing" --------------------------------------------------

# Read-through caches a refused request may fill by reading (they hold nothing that is not in
# Postgres already): an event's availability, a session found live.
READ_THROUGH_CACHE_KEY = re.compile(rb"atomicseats:event:\d+:availability|atomicseats:session:[^:]+:(live|known)")


def stored_state(ignoring: re.Pattern[bytes] | None = None) -> dict[str, object]:
    """Everything a request may write, as committed now: every row of every table (outbox rows,
    the e-mails queued, included) and every Redis key of the app with its value, but for the
    read-through caches. Call inside the app context."""
    from atomicseats.extensions import db

    db.session.rollback()  # read what is committed now, not an older snapshot
    state: dict[str, object] = {}
    for table in db.metadata.sorted_tables:
        rows = db.session.execute(sa.select(table).order_by(*table.primary_key.columns)).all()
        state[table.name] = [tuple(row) for row in rows]
    db.session.rollback()
    url = current_app.config.get("REDIS_URL")
    if url:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        try:
            keys = sorted(
                key
                for key in client.keys("*")
                if not READ_THROUGH_CACHE_KEY.fullmatch(key) and not (ignoring and ignoring.fullmatch(key))
            )
            state["redis"] = {key: client.dump(key) for key in keys}
        except redis.ConnectionError:
            state["redis"] = "unreachable"
        finally:
            client.close()
    return state


def accepted(user_id: int, event_id: int, seats: int = 1) -> AcceptedRequest:
    """A booking request as the API accepted it (the pipeline's input), with a fresh request id."""
    return AcceptedRequest(str(uuid.uuid4()), user_id, event_id, seats, None, "test-correlation", utcnow())


@contextmanager
def statements_seen() -> Iterator[list[str]]:
    """The SQL statements sent to the database while the block runs, as sent."""
    from atomicseats.extensions import db

    seen: list[str] = []

    def remember(_connection, _cursor, statement, *_args) -> None:
        seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", remember)
    try:
        yield seen
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", remember)


@contextmanager
def unchanged(ignoring: bytes | None = None) -> Iterator[None]:
    """Assert that what runs inside (a refused request) wrote nothing: no row added, changed or
    removed in any table, no e-mail queued, no Redis key set or deleted (but for the keys the
    pattern `ignoring` matches, e.g. a rate limiter's own counter)."""
    pattern = re.compile(ignoring) if ignoring else None
    before = stored_state(pattern)
    yield
    after = stored_state(pattern)
    changed = {name: _difference(before.get(name), after.get(name)) for name in before.keys() | after.keys()}
    changed = {name: difference for name, difference in changed.items() if difference and difference != EMPTY}
    assert not changed, f"a refused request changed {sorted(changed)}: {str(changed)[:1500]}"


EMPTY = {"gone": [], "new": []}


def _difference(before, after) -> object:
    """What differs: the rows or keys only one side holds (or the values, if not collections)."""
    if isinstance(before, list) and isinstance(after, list):
        return {"gone": [row for row in before if row not in after], "new": [row for row in after if row not in before]}
    if isinstance(before, dict) and isinstance(after, dict):
        keys = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
        return {key: (key in before, key in after) for key in sorted(keys)}
    return None if before == after else (before, after)
