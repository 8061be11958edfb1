"""Real answers match the OpenAPI document: every operation is called through a whole
on-sale story (and its usual mistakes), and each answer must be a status the document lists
for that operation, with a body that validates against the schema it gives for that status
and the headers it promises. Schemathesis explores the same document with generated input;
this walks it deliberately, with the states generated input rarely reaches (partial,
waitlisted, withdrawn, cancelled, deleted).
"""

from __future__ import annotations

import re
import uuid

import pytest
from openapi_schema_validator import OAS30Validator

from tests.helpers import account, admin_account, create_event

_PATH_PARAMETER = re.compile(r"\{[^}]+\}")


class Contract:
    """The client, checking every answer against the document; remembers what it called."""

    def __init__(self, client, spec: dict) -> None:
        self.client = client
        self.spec = spec
        self.called: set[str] = set()
        self.statuses: set[tuple[str, int]] = set()
        self._routes = [(re.compile("^" + _PATH_PARAMETER.sub("[^/]+", path) + "$"), path) for path in spec["paths"]]

    def __call__(self, method: str, url: str, expect: int, via=None, **kwargs):
        """`via`: another client (say, one without cookies) instead of the usual one."""
        response = (via or self.client).open(url, method=method, **kwargs)
        assert response.status_code == expect, (method, url, response.status_code, response.get_data(as_text=True))
        path = url.split("?", 1)[0]
        template = next(template for pattern, template in self._routes if pattern.match(path))
        operation = self.spec["paths"][template][method.lower()]
        where = f"{method} {url} -> {response.status_code}"
        documented = operation["responses"].get(str(response.status_code))
        assert documented is not None, f"{where}: status not in the document ({sorted(operation['responses'])})"
        for name, header in documented.get("headers", {}).items():
            required = self.spec["components"]["headers"][name].get("required", False) if "$ref" in header else False
            assert not required or name in response.headers, f"{where}: no {name} header"
        ((media_type, content),) = documented["content"].items()
        assert response.mimetype == media_type, where
        body = response.get_json() if media_type == "application/json" else response.get_data(as_text=True)
        schema = {**content["schema"], "components": self.spec["components"]}
        errors = list(OAS30Validator(schema).iter_errors(body))
        assert not errors, f"{where}: " + "; ".join(f"{list(error.path)}: {error.message}" for error in errors[:3])
        self.called.add(operation["operationId"])
        self.statuses.add((operation["operationId"], response.status_code))
        return body


@pytest.fixture
def contract(app, client) -> Contract:
    return Contract(client, client.get("/api/openapi.json").get_json())


def test_every_operation_answers_as_documented_through_an_on_sale(app, client, contract):
    anonymous = app.test_client(use_cookies=False)
    host, guest, other = account(client, "host"), account(client), account(client)
    admin = admin_account(client)

    # Accounts and tokens.
    name = f"fan{uuid.uuid4().hex[:8]}"
    registration = {"username": name, "name": "A Fan", "email": f"{name}@example.com", "password": "pale blue dot 42"}
    contract("POST", "/api/user/register", 201, json=registration)
    contract("POST", "/api/user/register", 409, json=registration)
    contract("POST", "/api/user/register", 400, json={**registration, "email": "not an address"})
    credentials = {"username": name, "password": registration["password"]}
    tokens = contract("POST", "/api/user/login", 200, via=anonymous, json=credentials)["data"]
    contract("POST", "/api/user/login", 401, json={**credentials, "password": "wrong password 1"})
    refreshed = contract("POST", "/api/user/refresh", 200, via=anonymous, json={"refreshToken": tokens["refreshToken"]})
    fan = {"Authorization": f"Bearer {refreshed['data']['accessToken']}"}

    # The host publishes; everyone reads.
    event = create_event(client, host, capacity=2, price=1500)
    event_id = event["id"]
    contract("POST", "/api/events/create", 403, headers=guest.headers, json={"name": "x"})
    contract("POST", "/api/events/create", 400, headers=host.headers, json={"name": "No venue"})
    contract("POST", "/api/events/update", 200, headers=host.headers, json={"id": event_id, "capacity": 3})
    contract("POST", "/api/events/update", 404, headers=host.headers, json={"id": 10**12, "capacity": 3})
    contract("GET", f"/api/events/{event_id}", 200)
    contract("GET", f"/api/events/{10**12}", 404)
    contract("GET", "/api/events/all?limit=1&when=all", 200)
    contract("GET", "/api/events/all?limit=0", 400)

    # An on-sale: confirmed, partial with a waitlist, then the waitlist closed.
    booked = contract(
        "POST", "/api/events/book", 202, headers=guest.headers, json={"eventId": event_id, "numberOfSeats": 2}
    )
    key = {"Idempotency-Key": str(uuid.uuid4())}
    partial = contract(
        "POST",
        "/api/events/book",
        202,
        headers={**other.headers, **key},
        json={"eventId": event_id, "numberOfSeats": 3},
    )["data"]
    contract(
        "POST",
        "/api/events/book",
        409,
        headers={**other.headers, **key},
        json={"eventId": event_id, "numberOfSeats": 1},
    )
    contract("POST", "/api/events/book", 400, headers=guest.headers, json={"eventId": event_id, "numberOfSeats": 11})
    contract("POST", "/api/events/book", 404, headers=guest.headers, json={"eventId": 10**12, "numberOfSeats": 1})
    contract("POST", "/api/events/book", 401, json={"eventId": event_id, "numberOfSeats": 1})
    booked_status = contract(
        "GET", f"/api/bookings/requests/{booked['data']['requestId']}", 200, headers=guest.headers
    )["data"]
    contract("GET", f"/api/bookings/requests/{partial['requestId']}?wait=0", 200, headers=other.headers)
    contract("GET", f"/api/bookings/requests/{partial['requestId']}", 404, headers=guest.headers)
    contract("GET", f"/api/events/{event_id}/roster", 200, headers=host.headers)
    contract("GET", f"/api/events/{event_id}/roster", 403, headers=guest.headers)
    contract("POST", f"/api/events/{event_id}/waitlist/close", 200, headers=host.headers)
    contract("POST", "/api/events/book", 409, headers=fan, json={"eventId": event_id, "numberOfSeats": 1})
    contract("POST", f"/api/events/{event_id}/waitlist/reopen", 200, headers=host.headers)
    contract("DELETE", f"/api/bookings/requests/{partial['requestId']}/waitlist", 200, headers=other.headers)
    contract("DELETE", f"/api/bookings/requests/{partial['requestId']}/waitlist", 409, headers=other.headers)

    # Tickets: the guest's, checked in at the door by the host.
    booking_id = booked_status["bookingIds"][0]
    tickets = contract("GET", f"/api/bookings/{booking_id}/tickets", 200, headers=guest.headers)["data"]["tickets"]
    contract("GET", f"/api/bookings/{booking_id}/tickets", 404, headers=other.headers)
    contract("GET", f"/api/bookings/{booking_id}/tickets.ics", 200, headers=guest.headers)
    contract("GET", f"/api/bookings/{booking_id}/tickets.ics", 404, headers=other.headers)
    check_ins = f"/api/events/{event_id}/check-ins"
    contract("POST", check_ins, 200, headers=host.headers, json={"code": tickets[0]["code"], "door": "North"})
    contract("POST", check_ins, 200, headers=host.headers, json={"code": tickets[0]["code"]})
    contract("POST", check_ins, 404, headers=host.headers, json={"code": "not a ticket"})
    contract("POST", check_ins, 403, headers=guest.headers, json={"code": tickets[0]["code"]})
    contract("POST", check_ins, 400, headers=host.headers, json={"door": "North"})

    # Waitlist offers: an event in offer mode; a seat comes free; the head of the line answers.
    offering = create_event(client, host, capacity=1)["id"]
    mode = {"id": offering, "waitlistMode": "offer", "offerWindowMinutes": 60}
    contract("POST", "/api/events/update", 200, headers=host.headers, json=mode)
    contract("POST", "/api/events/update", 400, headers=host.headers, json={**mode, "offerWindowMinutes": 1})
    contract("POST", "/api/events/book", 202, headers=guest.headers, json={"eventId": offering, "numberOfSeats": 1})
    waiting = contract(
        "POST", "/api/events/book", 202, headers=other.headers, json={"eventId": offering, "numberOfSeats": 1}
    )["data"]
    contract("DELETE", "/api/events/book", 200, headers=guest.headers, json={"eventId": offering, "cancelAll": True})
    offer_url = f"/api/bookings/requests/{waiting['requestId']}/offer"
    offered = contract("GET", f"/api/bookings/requests/{waiting['requestId']}", 200, headers=other.headers)["data"]
    assert offered["offer"]["seatsOffered"] == 1
    contract("POST", offer_url, 400, headers=other.headers, json={"answer": "maybe"})
    contract("POST", offer_url, 404, headers=guest.headers, json={"answer": "accepted"})
    contract("POST", offer_url, 200, headers=other.headers, json={"answer": "accepted"})
    contract("POST", offer_url, 404, headers=other.headers, json={"answer": "declined"})

    # Guests look back and cancel.
    contract("GET", "/api/user/bookings", 200, headers=guest.headers)
    contract("GET", "/api/user/bookings?view=summary", 200, headers=guest.headers)
    contract("GET", "/api/user/bookings?view=everything", 400, headers=guest.headers)
    contract("DELETE", "/api/events/book", 200, headers=guest.headers, json={"eventId": event_id, "cancelAll": True})
    contract("DELETE", "/api/events/book", 409, headers=guest.headers, json={"eventId": event_id})
    contract("POST", check_ins, 409, headers=host.headers, json={"code": tickets[1]["code"]})  # cancelled

    # Admins.
    contract("GET", "/api/admin/analytics?limit=2", 200, headers=admin.headers)
    contract("GET", "/api/admin/analytics", 403, headers=host.headers)
    contract("GET", "/api/admin/users?q=fan", 200, headers=admin.headers)
    contract("PATCH", f"/api/admin/users/{guest.id}", 200, headers=admin.headers, json={"role": "host"})
    contract("PATCH", f"/api/admin/users/{admin.id}", 409, headers=admin.headers, json={"role": "guest"})
    contract("PATCH", f"/api/admin/users/{10**12}", 404, headers=admin.headers, json={"role": "host"})

    # The event is withdrawn; the fan logs out; the probes.
    contract("POST", "/api/events/delete", 200, headers=host.headers, json={"id": event_id})
    contract("POST", "/api/events/book", 404, headers=fan, json={"eventId": event_id, "numberOfSeats": 1})
    contract("POST", "/api/user/logout", 200, headers=fan)
    contract("POST", "/api/user/logout", 401, headers=fan)
    contract("GET", "/healthz", 200)
    contract("GET", "/readyz", 200)
    contract("GET", "/metrics", 200)

    operation_ids = {
        operation["operationId"] for item in contract.spec["paths"].values() for operation in item.values()
    }
    assert contract.called == operation_ids, f"never called: {sorted(operation_ids - contract.called)}"


def test_a_body_over_the_limit_and_unreadable_json_answer_as_documented(client, contract):
    guest = account(client)
    contract(
        "POST",
        "/api/events/book",
        413,
        headers=guest.headers,
        data=b"{" + b" " * 70_000 + b"}",
        content_type="application/json",
    )
    body = contract(
        "POST", "/api/events/book", 400, headers=guest.headers, data=b"{not json", content_type="application/json"
    )
    assert body["code"] == "invalid_input"


@pytest.mark.parametrize("view", ["tickets", "summary"])
def test_an_empty_history_page_answers_as_documented_in_either_view(client, contract, view):
    """Found by Schemathesis (tests/contract): a page with no items is a tickets page and a
    summary page at once, so a document offering the two as `oneOf` refused it."""
    guest = account(client)

    body = contract("GET", f"/api/user/bookings?view={view}", 200, headers=guest.headers)

    assert body["data"]["items"] == []


def test_the_contract_check_catches_an_undocumented_answer(client, contract):
    """Negative control: a status the document does not list for an operation fails the check."""
    with pytest.raises(AssertionError, match="status not in the document"):
        contract("GET", "/api/events/all?limit=1", 200)  # fine so far
        contract.spec["paths"]["/api/events/all"]["get"]["responses"].pop("200")
        contract("GET", "/api/events/all?limit=1", 200)
