"""What every request pays at the edge: no cookie signer without a cookie, no database
session where nothing read the database, no account loaded where the token says enough."""

from __future__ import annotations

import re

from flask import session

from atomicseats.extensions import db
from atomicseats.services.unit_of_work import release_session
from tests.api.support import assert_success
from tests.helpers import account, book, create_event, statements_seen


def test_a_request_without_a_session_cookie_builds_no_signer_and_one_with_it_reads_it(app, monkeypatch):
    interface = app.session_interface
    with app.test_request_context("/"):
        session["seen"] = "yes"
        cookie_value = interface.get_signing_serializer(app).dumps(dict(session))
    built = []
    real_signer = interface.get_signing_serializer
    monkeypatch.setattr(interface, "get_signing_serializer", lambda app: built.append(1) or real_signer(app))

    with app.test_request_context("/api/events/all"):
        assert dict(session) == {} and not session.modified
    assert built == []

    cookie = f"{app.config['SESSION_COOKIE_NAME']}={cookie_value}"
    with app.test_request_context("/", headers={"Cookie": cookie}):
        assert session["seen"] == "yes"
    assert built == [1]


def test_releasing_a_session_nobody_opened_opens_none(app):
    with app.app_context():
        assert not db.session.registry.has()
        release_session()
        assert not db.session.registry.has()
        db.session.execute(db.text("SELECT 1"))
        assert db.session.registry.has()
        release_session()  # an opened one is rolled back, still usable
        assert db.session.execute(db.text("SELECT 1")).scalar() == 1


def test_an_untouched_session_writes_nothing_and_a_changed_one_is_saved(app):
    interface = app.session_interface
    with app.test_request_context("/api/events/all"):
        untouched = interface.open_session(app, app.request_class({}))
        response = app.response_class()
        interface.save_session(app, untouched, response)
        assert "Set-Cookie" not in response.headers and "Vary" not in response.headers

        changed = interface.open_session(app, app.request_class({}))
        changed["seen"] = "yes"
        response = app.response_class()
        interface.save_session(app, changed, response)
        assert response.headers["Set-Cookie"].startswith(f"{app.config['SESSION_COOKIE_NAME']}=")
        assert "HttpOnly" in response.headers["Set-Cookie"]


def test_reading_ones_own_request_loads_no_account_and_an_admin_reading_anothers_does(client):
    """A long poll re-reads its request on every announcement: the owner's read is the
    request's rows only. Whether the viewer is an admin is asked (the account loaded) only
    for someone else's request."""
    host, guest, admin = account(client, "host"), account(client, "guest"), account(client, "admin")
    accepted = book(client, guest, create_event(client, host)["id"], 1)

    with statements_seen() as owners:
        assert assert_success(client.get(accepted["statusUrl"], headers=guest.headers))["status"] == "confirmed"
    with statements_seen() as admins:
        assert assert_success(client.get(accepted["statusUrl"], headers=admin.headers))["status"] == "confirmed"

    def account_reads(statements: list[str]) -> int:
        return sum(1 for statement in statements if "FROM users" in statement)

    assert account_reads(owners) == 0, owners
    assert account_reads(admins) == 1, admins


def test_the_routes_make_no_schema_per_request(client, monkeypatch):
    """Marshmallow builds a schema's fields when an instance is made (0.1-0.5 ms): every route
    uses the one instance of each schema class (`api._io.schema`), made by the first request."""
    from marshmallow import Schema

    host, guest = account(client, "host"), account(client, "guest")
    event_id = create_event(client, host)["id"]

    def requests() -> None:
        accepted = book(client, guest, event_id, 1)
        assert_success(client.get(accepted["statusUrl"], headers=guest.headers))
        assert_success(client.get("/api/events/all?limit=5"))
        assert_success(client.get(f"/api/events/{event_id}"))

    requests()  # the first requests make them
    made: list[str] = []
    real_init = Schema.__init__

    def counted(self, *args, **kwargs):
        made.append(type(self).__name__)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(Schema, "__init__", counted)
    requests()
    assert made == []


def test_every_answer_carries_the_edge_headers_once_and_a_route_keeps_its_own(client):
    """The correlation id (ours), nosniff and the referrer policy on every answer, pages too;
    `no-store` on the API's unless the route chose (the Swagger assets cache for an hour); each
    header once.
    A bearer-token answer reads no session: no cookie, no `Vary: Cookie` (a hook reading the
    session on every request would add it)."""
    host, guest = account(client, "host"), account(client, "guest")
    booked = client.post(
        "/api/events/book",
        json={"eventId": create_event(client, host)["id"], "numberOfSeats": 1},
        headers={**guest.headers, "X-Request-ID": "edge-1"},
    )
    html = client.get("/api/docs").get_data(as_text=True)
    asset = client.get(re.findall(r'(?:src|href)="(/api/docs/assets/[^"]+)"', html)[0])
    page = client.get("/login")

    assert booked.status_code == 202 and page.status_code == 200
    for response in (booked, asset, page):
        assert response.headers.getlist("X-Content-Type-Options") == ["nosniff"]
        assert response.headers.getlist("Referrer-Policy") == ["same-origin"]
        assert len(response.headers.getlist("X-Request-ID")) == 1
    assert booked.headers["X-Request-ID"] == "edge-1"
    assert booked.headers.getlist("Cache-Control") == ["no-store"]
    assert asset.headers.getlist("Cache-Control") == ["public, max-age=3600"]
    assert "Set-Cookie" not in booked.headers
    assert "Cookie" not in booked.headers.get("Vary", "")
