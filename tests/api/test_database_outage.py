"""A database outage is a 503 with Retry-After on every route, never a 500 (issue 8 point 11).

Against the real PostgreSQL: the test database stops taking connections (ALLOW_CONNECTIONS
false, and every open connection of it terminated, as a crash or restart would), so each
request meets a refused connection or a connection killed under it; then it is allowed
again and the very next requests work (the broken pooled connections are not reused).
An app pointed at a closed port is the other form of "unreachable". SQLite has no outage
of this kind (a file), so these run on PostgreSQL only; its "database is locked" is the
busy case tested elsewhere.
"""

from __future__ import annotations

import base64
import json
import socket

import pytest
import redis
import sqlalchemy as sa
from flask_jwt_extended import create_access_token

from atomicseats import tasks
from atomicseats.adapters.redis_cache import session_key
from atomicseats.domain import limits
from atomicseats.errors import ServiceBusy
from atomicseats.extensions import db
from atomicseats.services import booking, users
from tests.api.support import assert_error, assert_success
from tests.conftest import fresh_app, make_app
from tests.helpers import PASSWORD, account, create_event, event_payload
from tests.outage import database_down

RETRY_AFTER = str(limits.DATABASE_RETRY_AFTER_S)


def forget_cached_sessions(app) -> None:
    """Empty the test Redis: the session check and admission must then ask the database."""
    client = redis.Redis.from_url(app.config["REDIS_URL"])
    client.flushdb()
    client.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends: nothing listens there


def assert_busy(response) -> None:
    assert_error(response, 503)
    assert response.headers.get("Retry-After") == RETRY_AFTER, dict(response.headers)


@pytest.fixture
def pg_app(postgres_url):
    """No app context is held open: each request pushes its own and ends it, as in production
    (its session is removed at the end of the request)."""
    with fresh_app(postgres_url, hold_context=False) as application:
        forget_cached_sessions(application)
        yield application


def every_route(host, guest, admin, event_id: int, request_id: str) -> list[tuple[str, str, dict | None, object]]:
    """(method, path, JSON body, account) for every API route that reads or writes the database."""
    return [
        ("GET", "/api/events/all", None, None),
        ("GET", f"/api/events/{event_id}", None, None),
        ("POST", "/api/events/create", event_payload(), host),
        ("POST", "/api/events/update", {"id": event_id, "name": "Renamed"}, host),
        ("POST", f"/api/events/{event_id}/waitlist/close", None, host),
        ("POST", f"/api/events/{event_id}/waitlist/reopen", None, host),
        ("GET", f"/api/events/{event_id}/roster", None, host),
        ("POST", "/api/events/delete", {"id": event_id}, host),
        ("POST", "/api/events/book", {"eventId": event_id, "numberOfSeats": 1}, guest),
        ("DELETE", "/api/events/book", {"eventId": event_id}, guest),
        ("GET", f"/api/bookings/requests/{request_id}", None, guest),
        ("GET", "/api/user/bookings", None, guest),
        ("POST", "/api/user/login", {"username": guest.username, "password": PASSWORD}, None),
        ("POST", "/api/user/refresh", None, "refresh"),
        ("POST", "/api/user/logout", None, guest),
        (
            "POST",
            "/api/user/register",
            {
                "username": "newcomer",
                "name": "New Comer",
                "email": "newcomer@example.test",
                "password": PASSWORD,
                "role": "guest",
            },
            None,
        ),
        ("GET", "/api/admin/analytics", None, admin),
    ]


def call(client, method: str, path: str, body: dict | None, who, guest):
    if who == "refresh":
        headers = {"Authorization": f"Bearer {guest.refresh_token}"}
    else:
        headers = who.headers if who is not None else {}
    return client.open(path, method=method, json=body, headers=headers)


def test_every_route_answers_503_with_retry_after_while_the_database_is_down_and_works_after(pg_app, postgres_url):
    client = pg_app.test_client()
    host, guest = account(client, "host"), account(client)
    with pg_app.app_context():
        admin = account(client, "admin")
    event_id = create_event(client, host)["id"]
    request_id = assert_success(
        client.post("/api/events/book", json={"eventId": event_id, "numberOfSeats": 1}, headers=guest.headers), 202
    )["requestId"]
    routes = every_route(host, guest, admin, event_id, request_id)
    forget_cached_sessions(pg_app)  # the session check falls back to the database (the reported 500)

    with database_down(postgres_url):
        answers = {(method, path): call(client, method, path, body, who, guest) for method, path, body, who in routes}
        readiness = client.get("/readyz")

    statuses = {route: response.status_code for route, response in answers.items()}
    assert {route: status for route, status in statuses.items() if status != 503} == {}
    for response in answers.values():
        assert_busy(response)
    assert readiness.status_code == 503

    # Back: the very next requests are served (no broken pooled connection is handed out again).
    assert client.get("/api/events/all").status_code == 200
    assert_success(
        client.post("/api/events/book", json={"eventId": event_id, "numberOfSeats": 1}, headers=guest.headers), 202
    )
    assert assert_success(client.get("/api/user/bookings", headers=guest.headers))
    assert client.get("/readyz").status_code == 200


def test_a_connection_killed_between_requests_is_replaced_not_answered_with_an_error(pg_app, postgres_url):
    client = pg_app.test_client()
    guest = account(client)
    assert client.get("/api/events/all").status_code == 200  # the pool now holds a connection
    url = sa.engine.make_url(postgres_url)
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        killed = connection.execute(
            # Each ended before this returns (the timeout form waits): "between two requests".
            sa.text("SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE datname = :name"),
            {"name": url.database},
        ).scalar_one()
    admin.dispose()
    assert killed >= 1
    forget_cached_sessions(pg_app)
    assert client.get("/api/events/all").status_code == 200
    assert_success(client.get("/api/user/bookings", headers=guest.headers))


def test_an_unreachable_database_server_is_503_on_every_kind_of_route():
    """An app whose database server is not even listening (connection refused), with a valid
    access token whose session is not in the Redis cache: the session check's fallback to the
    database is what answered 500 under load."""
    app = make_app(f"postgresql://atomicseats:atomicseats@127.0.0.1:{closed_port()}/atomicseats")
    with app.app_context():
        token = create_access_token(identity="1", additional_claims={"sid": "no-such-session", "role": "guest"})
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        assert_busy(client.post("/api/events/book", json={"eventId": 1, "numberOfSeats": 1}, headers=headers))
        assert_busy(
            client.post(
                "/api/events/book",
                json={"eventId": 1, "numberOfSeats": 1},
                headers={**headers, "Idempotency-Key": "k1"},
            )
        )
        assert_busy(client.get("/api/events/all"))
        assert_busy(client.get("/api/user/bookings", headers=headers))
        assert_busy(client.post("/api/user/login", json={"username": "nobody", "password": PASSWORD}))
        page = client.get("/api/events/all", headers={"Accept": "text/html"})
        assert page.status_code == 503 and page.headers.get("Retry-After") == RETRY_AFTER
        db.engine.dispose()


def test_the_pipeline_services_raise_service_busy_while_the_database_is_down(pg_app, postgres_url):
    """What the Celery allocation task retries on (and the bridge backs off on)."""
    client = pg_app.test_client()
    guest = account(client)
    event_id = create_event(client, account(client, "host"))["id"]
    with pg_app.app_context():
        assert booking.allocate_pending(event_id).requests_decided == 0  # the session holds a connection
        with database_down(postgres_url):
            with pytest.raises(ServiceBusy) as raised:
                booking.allocate_pending(event_id)
            assert raised.value.headers["Retry-After"] == RETRY_AFTER
            with pytest.raises(ServiceBusy):
                booking.cancel_bookings(guest.id, event_id, None, cancel_all=True)
            assert tasks.sweep_pending() == 0  # skipped, not failed: the next sweep after the outage wakes
        assert booking.allocate_pending(event_id).requests_decided == 0  # the same session works again


def _session_id(token: str) -> str:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]


def test_a_session_postgres_found_live_lately_still_counts_while_it_is_down(pg_app, postgres_url):
    """The 10-second live answer has run out, Postgres cannot be asked: a session it found live
    a moment ago still counts (a restart does not sign every buyer out); one that logged out
    since, or one it never saw, is a 503, never let in."""
    client = pg_app.test_client()
    guest, leaver = account(client), account(client)
    for someone in (guest, leaver):
        assert_success(client.get("/api/user/bookings", headers=someone.headers))  # Postgres finds it live
    assert_success(client.post("/api/user/logout", headers=leaver.headers))
    cache = redis.Redis.from_url(pg_app.config["REDIS_URL"])
    cache.delete(session_key(_session_id(guest.access_token)))  # its live answer ran out
    cache.close()
    with pg_app.app_context(), database_down(postgres_url):
        assert users.is_session_live(_session_id(guest.access_token), guest.id) is True
        with pytest.raises(ServiceBusy):
            users.is_session_live(_session_id(leaver.access_token), leaver.id)
        with pytest.raises(ServiceBusy):
            users.is_session_live(_session_id(guest.access_token), leaver.id)  # not that user's session
        with pytest.raises(ServiceBusy):
            users.is_session_live("never-seen", guest.id)


def test_a_connect_to_a_database_host_that_does_not_answer_gives_up_in_seconds(pg_app):
    """Refused is immediate; a silent host (a network partition) would otherwise hold the
    request's thread for the kernel's minutes of retries before any 503."""
    with pg_app.app_context():
        parameters = db.session.connection().connection.dbapi_connection.get_dsn_parameters()
        assert parameters["connect_timeout"] == str(limits.DATABASE_CONNECT_TIMEOUT_S)
