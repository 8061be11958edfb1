"""Over HTTP: a request's status follows its seats; cancelling gives up the waiting remainder;
leaving the waitlist keeps the confirmed seats (issue 8 points 4 and 5)."""

from __future__ import annotations

import uuid

from tests.api.support import assert_error, assert_success, cancel, history, request_status
from tests.helpers import account, book, create_event, event, unchanged


def seats(status: dict) -> tuple:
    return (
        status["status"],
        status["seatsConfirmed"],
        status["seatsCancelled"],
        status["seatsHeld"],
        status["seatsWaitlisted"],
        status["waitlistPosition"],
        status["reason"],
    )


def leave(client, guest, request_id: str, expect: int = 200) -> dict:
    response = client.delete(f"/api/bookings/requests/{request_id}/waitlist", headers=guest.headers)
    if expect == 200:
        return assert_success(response)
    return assert_error(response, expect)


def test_a_request_shows_its_seats_through_promotion_cancellation_and_deletion(client):
    host = account(client, "host")
    holder, guest = account(client, "guest"), account(client, "guest")
    created = create_event(client, host, capacity=4)
    book(client, holder, created["id"], 2)
    book(client, holder, created["id"], 2)
    request = book(client, guest, created["id"], 3)
    assert seats(request) == ("waitlisted", 0, 0, 0, 3, 1, None)

    cancel(client, holder, created["id"])  # 2 freed: promoted
    assert seats(request_status(client, guest, request["requestId"])) == ("partial", 2, 0, 2, 1, 1, None)

    cancel(client, holder, created["id"])  # 2 freed: the last one it waits for, and one spare
    assert seats(request_status(client, guest, request["requestId"])) == ("confirmed", 3, 0, 3, 0, None, None)

    response = client.post("/api/events/delete", json={"id": created["id"]}, headers=host.headers)
    assert_success(response)
    after = request_status(client, guest, request["requestId"])
    assert seats(after) == ("cancelled", 3, 3, 0, 0, None, "event_deleted")
    assert len(after["bookingIds"]) == 2


def test_cancelling_a_partial_requests_booking_frees_the_seats_for_the_next_in_line(client):
    """The exact scenario of point 5: today the guest is promoted into the seats they gave back."""
    host = account(client, "host")
    holder, guest, next_in_line = (account(client, "guest") for _ in range(3))
    created = create_event(client, host, capacity=4)
    book(client, holder, created["id"], 2)
    partial = book(client, guest, created["id"], 4)
    waiting = book(client, next_in_line, created["id"], 2)
    assert seats(partial) == ("partial", 2, 0, 2, 2, 1, None)
    assert seats(waiting) == ("waitlisted", 0, 0, 0, 2, 2, None)

    result = cancel(client, guest, created["id"], bookingId=partial["bookingIds"][0])

    assert (result["seatsFreed"], result["bookingsCancelled"], result["seatsWithdrawn"]) == (2, 1, 2)
    assert seats(request_status(client, guest, partial["requestId"])) == ("cancelled", 2, 2, 0, 0, None, "withdrawn")
    assert request_status(client, guest, partial["requestId"])["bookingIds"] == partial["bookingIds"]
    assert seats(request_status(client, next_in_line, waiting["requestId"])) == ("confirmed", 2, 0, 2, 0, None, None)
    after = event(client, created["id"])
    assert (after["reservedSeats"], after["waitlistLength"]) == (4, 0)
    assert [item["status"] for item in history(client, guest)["items"]] == ["cancelled"]


def test_leaving_the_waitlist_keeps_the_confirmed_seats(client):
    host = account(client, "host")
    holder, guest, behind = (account(client, "guest") for _ in range(3))
    created = create_event(client, host, capacity=4)
    book(client, holder, created["id"], 2)
    partial = book(client, guest, created["id"], 4)
    waiting = book(client, behind, created["id"], 1)

    data = leave(client, guest, partial["requestId"])

    assert data["seatsWithdrawn"] == 2
    assert seats(data) == ("partial", 2, 0, 2, 0, None, "withdrawn")
    assert seats(request_status(client, guest, partial["requestId"])) == seats(data)
    assert request_status(client, behind, waiting["requestId"])["waitlistPosition"] == 1
    after = event(client, created["id"])
    assert (after["reservedSeats"], after["waitlistLength"]) == (4, 1)
    assert [item["status"] for item in history(client, guest)["items"]] == ["confirmed"]

    with unchanged():
        leave(client, guest, partial["requestId"], expect=409)  # nothing waits any more


def test_leaving_the_waitlist_holding_nothing_cancels_the_request(client):
    host, holder, guest = account(client, "host"), account(client, "guest"), account(client, "guest")
    created = create_event(client, host, capacity=1)
    book(client, holder, created["id"], 1)
    waiting = book(client, guest, created["id"], 1)

    data = leave(client, guest, waiting["requestId"])

    assert seats(data) == ("cancelled", 0, 0, 0, 0, None, "withdrawn")
    assert event(client, created["id"])["waitlistLength"] == 0


def test_leaving_someone_elses_or_an_unknown_place_is_404_and_changes_nothing(client):
    host, holder, guest, intruder = (account(client, role) for role in ("host", "guest", "guest", "guest"))
    created = create_event(client, host, capacity=1)
    book(client, holder, created["id"], 1)
    waiting = book(client, guest, created["id"], 1)
    with unchanged():
        leave(client, intruder, waiting["requestId"], expect=404)
        leave(client, guest, str(uuid.uuid4()), expect=404)
        leave(client, guest, "not-a-request", expect=404)
    assert seats(request_status(client, guest, waiting["requestId"])) == ("waitlisted", 0, 0, 0, 1, 1, None)


def test_leaving_a_confirmed_request_is_409_and_leaving_needs_a_token(client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host, capacity=2)
    confirmed = book(client, guest, created["id"], 2)

    with unchanged():
        leave(client, guest, confirmed["requestId"], expect=409)
        assert_error(client.delete(f"/api/bookings/requests/{confirmed['requestId']}/waitlist"), 401)


def test_history_agrees_with_the_request(client):
    host = account(client, "host")
    holder, guest = account(client, "guest"), account(client, "guest")
    created = create_event(client, host, capacity=3)
    book(client, holder, created["id"], 2)
    partial = book(client, guest, created["id"], 3)  # 1 confirmed, 2 waiting

    (ticket,) = history(client, guest)["items"]
    assert (ticket["requestId"], ticket["requestStatus"]) == (partial["requestId"], "partial")
    (line,) = history(client, guest, view="summary")["items"]
    assert (line["activeTickets"], line["seatsWaitlisted"]) == (1, 2)

    cancel(client, holder, created["id"])  # promotes 2: the request is confirmed
    tickets = history(client, guest)["items"]
    assert {ticket["requestStatus"] for ticket in tickets} == {"confirmed"}
    (line,) = history(client, guest, view="summary")["items"]
    assert (line["activeTickets"], line["seatsWaitlisted"]) == (3, 0)

    cancel(client, guest, created["id"], cancelAll=True)
    status = request_status(client, guest, partial["requestId"])
    assert (
        {ticket["requestStatus"] for ticket in history(client, guest)["items"]} == {status["status"]} == {"cancelled"}
    )
    (line,) = history(client, guest, view="summary")["items"]
    assert (line["activeTickets"], line["cancelledTickets"], line["seatsWaitlisted"]) == (0, 3, 0)


def test_the_openapi_document_has_the_waitlist_withdrawal_and_the_request_fields(client):
    spec = client.get("/api/openapi.json").get_json()
    operation = spec["paths"]["/api/bookings/requests/{request_id}/waitlist"]["delete"]
    assert {"200", "401", "404", "409"} <= set(operation["responses"])
    schemas = spec["components"]["schemas"]
    assert {"seatsCancelled", "seatsHeld", "seatsWaitlisted", "waitlistPosition", "reason"} <= set(
        schemas["RequestStatusOut"]["properties"]
    )
    assert "cancelled" in schemas["RequestStatusOut"]["properties"]["status"]["enum"]
    assert "seatsWithdrawn" in schemas["WaitlistWithdrawalOut"]["properties"]
    assert "seatsWithdrawn" in schemas["CancelOut"]["properties"]
