"""Booking over HTTP: requests and their outcomes, Idempotency-Key, cancellation with
waitlist promotion, and the booking history."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from tests.api.support import (
    all_history_items,
    assert_error,
    assert_refused_for_closed_waitlist,
    assert_success,
    cancel,
    history,
    request_status,
    roster,
)
from tests.helpers import account, book, create_event, event, unchanged

STATUS_FIELDS = {
    "requestId",
    "eventId",
    "status",
    "seatsRequested",
    "seatsConfirmed",
    "seatsWaitlisted",
    "bookingIds",
    "waitlistPosition",
    "reason",
}


def outcome(status: dict) -> tuple:
    return (status["status"], status["seatsConfirmed"], status["seatsWaitlisted"], status["waitlistPosition"])


# --- submitting and reading a request -------------------------------------------------


def test_book_answers_202_with_request_id_status_and_status_url(client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host, capacity=5)

    response = client.post(
        "/api/events/book", json={"eventId": created["id"], "numberOfSeats": 2}, headers=guest.headers
    )

    data = assert_success(response, 202)
    assert str(uuid.UUID(data["requestId"])) == data["requestId"]
    assert data["status"] in {"pending", "confirmed", "partial", "waitlisted", "rejected"}
    assert data["statusUrl"] == f"/api/bookings/requests/{data['requestId']}"


def test_status_url_returns_the_outcome_to_its_owner(client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host, capacity=5)
    accepted = book(client, guest, created["id"], 2)

    data = assert_success(client.get(accepted["statusUrl"], headers=guest.headers))

    assert set(data) >= STATUS_FIELDS
    assert data["requestId"] == accepted["requestId"]
    assert data["eventId"] == created["id"]
    assert data["seatsRequested"] == 2


def test_another_guest_cannot_see_the_request(client):
    host, guest, other = account(client, "host"), account(client, "guest"), account(client, "guest")
    created = create_event(client, host)
    accepted = book(client, guest, created["id"], 1)

    with unchanged():
        assert_error(client.get(accepted["statusUrl"], headers=other.headers), 404)


def test_the_events_host_cannot_see_a_guests_request(client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host)
    accepted = book(client, guest, created["id"], 1)

    with unchanged():
        assert_error(client.get(accepted["statusUrl"], headers=host.headers), 404)


def test_admin_can_see_any_request(client):
    host, guest, admin = account(client, "host"), account(client, "guest"), account(client, "admin")
    created = create_event(client, host)
    accepted = book(client, guest, created["id"], 1)

    data = assert_success(client.get(accepted["statusUrl"], headers=admin.headers))

    assert data["requestId"] == accepted["requestId"]


@pytest.mark.parametrize(
    "request_id",
    [str(uuid.uuid4()), "not-a-uuid", "0", "%00", "a" * 300],
    ids=["unknown-uuid", "garbage", "zero", "nul", "long"],
)
def test_unknown_or_garbage_request_id_is_404(client, request_id):
    guest = account(client, "guest")

    with unchanged():
        assert_error(client.get(f"/api/bookings/requests/{request_id}", headers=guest.headers), 404)


def test_request_id_is_found_in_upper_case_too(client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host)
    accepted = book(client, guest, created["id"], 1)

    data = assert_success(client.get(f"/api/bookings/requests/{accepted['requestId'].upper()}", headers=guest.headers))

    assert data["requestId"] == accepted["requestId"]


def test_long_poll_returns_at_once_when_the_outcome_is_final(client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host)
    accepted = book(client, guest, created["id"], 1)

    started = time.monotonic()
    data = request_status(client, guest, accepted["requestId"], "?wait=2")

    assert time.monotonic() - started < 1.0
    assert data["status"] == "confirmed"


def test_request_status_needs_a_token(app, client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host)
    accepted = book(client, guest, created["id"], 1)

    with unchanged():
        assert_error(app.test_client().get(accepted["statusUrl"]), 401)


# --- outcomes -------------------------------------------------------------------------


def test_enough_seats_confirms_the_whole_request(client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host, capacity=5, price=1200)

    accepted = book(client, guest, created["id"], 3)

    assert outcome(accepted) == ("confirmed", 3, 0, None)
    assert accepted["reason"] is None
    assert len(accepted["bookingIds"]) == 1
    ticket = history(client, guest)["items"][0]
    assert (ticket["id"], ticket["numberOfSeats"], ticket["cost"], ticket["status"]) == (
        accepted["bookingIds"][0],
        3,
        3600,
        "confirmed",
    )
    assert (event(client, created["id"])["reservedSeats"], event(client, created["id"])["seatsLeft"]) == (3, 2)


def test_too_few_seats_confirms_part_and_waitlists_the_rest(client):
    host, first, second = account(client, "host"), account(client, "guest"), account(client, "guest")
    created = create_event(client, host, capacity=5)
    book(client, first, created["id"], 3)

    accepted = book(client, second, created["id"], 4)

    assert outcome(accepted) == ("partial", 2, 2, 1)
    assert len(accepted["bookingIds"]) == 1
    assert history(client, second)["items"][0]["numberOfSeats"] == 2
    after = event(client, created["id"])
    assert (after["reservedSeats"], after["seatsLeft"], after["waitlistLength"]) == (5, 0, 1)


def test_no_seats_waitlists_the_request_behind_those_already_waiting(client):
    host = account(client, "host")
    first, second, third = (account(client, "guest") for _ in range(3))
    created = create_event(client, host, capacity=5)
    book(client, first, created["id"], 3)
    book(client, second, created["id"], 4)

    accepted = book(client, third, created["id"], 2)

    assert outcome(accepted) == ("waitlisted", 0, 2, 2)
    assert accepted["bookingIds"] == []
    assert history(client, third)["items"] == []
    assert event(client, created["id"])["waitlistLength"] == 2


def test_sold_out_with_the_waitlist_closed_is_rejected(client):
    host, first, late = account(client, "host"), account(client, "guest"), account(client, "guest")
    created = create_event(client, host, capacity=2, waitlistOpen=False)
    book(client, first, created["id"], 2)

    body = {"eventId": created["id"], "numberOfSeats": 1}
    response = client.post("/api/events/book", json=body, headers=late.headers)

    assert_refused_for_closed_waitlist(response)
    after = event(client, created["id"])
    assert (after["reservedSeats"], after["waitlistLength"]) == (2, 0)
    assert history(client, late)["items"] == []


def test_a_request_may_take_the_last_seats_exactly(client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host, capacity=10)

    accepted = book(client, guest, created["id"], 10)

    assert outcome(accepted) == ("confirmed", 10, 0, None)
    assert event(client, created["id"])["seatsLeft"] == 0


# --- Idempotency-Key ------------------------------------------------------------------


def test_same_idempotency_key_twice_is_one_request_and_one_booking(app, client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host, capacity=10)
    first = book(client, guest, created["id"], 2, **{"Idempotency-Key": "retry-me"})
    with unchanged():
        second = book(client, guest, created["id"], 2, **{"Idempotency-Key": "retry-me"})

        assert second["requestId"] == first["requestId"]
        assert second["bookingIds"] == first["bookingIds"]
    assert len(history(client, guest)["items"]) == 1
    assert event(client, created["id"])["reservedSeats"] == 2


@pytest.mark.parametrize("change", ["seats", "event"])
def test_same_idempotency_key_for_a_different_request_is_a_conflict(app, client, change):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host, capacity=10)
    other_event = create_event(client, host, capacity=10)
    book(client, guest, created["id"], 2, **{"Idempotency-Key": "k-1"})
    with unchanged():
        conflict = book(
            client,
            guest,
            other_event["id"] if change == "event" else created["id"],
            3 if change == "seats" else 2,
            expect=409,
            **{"Idempotency-Key": "k-1"},
        )

        assert conflict["statusCode"] == 409


def test_a_key_in_flight_for_another_body_is_a_conflict_even_for_an_unknown_event(app, client):
    """The Kafka path: the registry holds the key's first request before the bridge records
    it. Another body under that key is a 409 whatever that body says, never its own 404."""
    from atomicseats.services import booking
    from atomicseats.services.contracts import AcceptedRequest
    from atomicseats.services.ports import adapters

    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host, capacity=10)
    in_flight = AcceptedRequest(
        request_id=booking._request_id_for(guest.id, "k-in-flight"),
        user_id=guest.id,
        event_id=created["id"],
        seats=2,
        idempotency_key="k-in-flight",
        correlation_id=None,
        accepted_at=datetime.now(timezone.utc),
    )
    assert adapters().requests.claim(in_flight) is None  # the tests' app has the Redis registry
    with unchanged():
        conflict = book(client, guest, created["id"] + 1000, 2, expect=409, **{"Idempotency-Key": "k-in-flight"})

        assert conflict["statusCode"] == 409


def test_idempotency_key_is_scoped_to_its_user(client):
    host, alice, mallory = account(client, "host"), account(client, "guest"), account(client, "guest")
    created = create_event(client, host, capacity=10)
    alices = book(client, alice, created["id"], 2, **{"Idempotency-Key": "shared-key"})

    mallorys = book(client, mallory, created["id"], 5, **{"Idempotency-Key": "shared-key"})

    assert mallorys["requestId"] != alices["requestId"]
    assert outcome(mallorys) == ("confirmed", 5, 0, None)
    with unchanged():
        assert_error(client.get(alices["statusUrl"], headers=mallory.headers), 404)
    assert event(client, created["id"])["reservedSeats"] == 7
    assert [item["numberOfSeats"] for item in history(client, alice)["items"]] == [2]


def test_no_idempotency_key_means_every_post_is_a_new_request(client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host, capacity=10)

    first = book(client, guest, created["id"], 1)
    second = book(client, guest, created["id"], 1)

    assert first["requestId"] != second["requestId"]
    assert event(client, created["id"])["reservedSeats"] == 2


# --- cancelling -----------------------------------------------------------------------


def test_cancel_without_a_booking_id_cancels_the_latest(client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host, capacity=10)
    older = book(client, guest, created["id"], 2)
    newer = book(client, guest, created["id"], 3)

    data = cancel(client, guest, created["id"])

    assert (data["eventId"], data["seatsFreed"], data["bookingsCancelled"]) == (created["id"], 3, 1)
    statuses = {item["id"]: item["status"] for item in history(client, guest)["items"]}
    assert statuses == {older["bookingIds"][0]: "confirmed", newer["bookingIds"][0]: "cancelled"}
    assert event(client, created["id"])["reservedSeats"] == 2


def test_cancel_by_booking_id_cancels_that_booking(client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host, capacity=10)
    older = book(client, guest, created["id"], 2)
    book(client, guest, created["id"], 3)

    data = cancel(client, guest, created["id"], bookingId=older["bookingIds"][0])

    assert (data["seatsFreed"], data["bookingsCancelled"]) == (2, 1)
    assert event(client, created["id"])["reservedSeats"] == 3


def test_cancel_all_cancels_every_booking_and_leaves_the_waitlist(client):
    host, holder, guest = account(client, "host"), account(client, "guest"), account(client, "guest")
    created = create_event(client, host, capacity=5)
    book(client, guest, created["id"], 1)
    book(client, guest, created["id"], 1)
    book(client, holder, created["id"], 3)
    partial = book(client, guest, created["id"], 2)  # sold out: waits for 2
    assert outcome(partial) == ("waitlisted", 0, 2, 1)

    data = cancel(client, guest, created["id"], cancelAll=True)

    assert (data["seatsFreed"], data["bookingsCancelled"], data["waitlistEntriesCancelled"]) == (2, 2, 1)
    after = event(client, created["id"])
    assert (after["reservedSeats"], after["waitlistLength"]) == (3, 0)
    assert request_status(client, guest, partial["requestId"])["waitlistPosition"] is None
    assert roster(client, host, created["id"])["waitlist"] == []


def test_cancel_all_with_only_a_waitlist_place_leaves_the_waitlist(client):
    host, holder, guest = account(client, "host"), account(client, "guest"), account(client, "guest")
    created = create_event(client, host, capacity=1)
    book(client, holder, created["id"], 1)
    book(client, guest, created["id"], 1)

    data = cancel(client, guest, created["id"], cancelAll=True)

    assert (data["seatsFreed"], data["bookingsCancelled"], data["waitlistEntriesCancelled"]) == (0, 0, 1)
    assert event(client, created["id"])["waitlistLength"] == 0


def test_cancelling_a_cancelled_booking_is_a_conflict_and_frees_nothing(app, client):
    """The seed's double cancel freed the seats twice and let the next bookings oversell."""
    host, guest, other = account(client, "host"), account(client, "guest"), account(client, "guest")
    created = create_event(client, host, capacity=4)
    mine = book(client, guest, created["id"], 2)
    book(client, other, created["id"], 2)
    cancel(client, guest, created["id"], bookingId=mine["bookingIds"][0])
    before = event(client, created["id"])

    with unchanged():
        cancel(client, guest, created["id"], expect=409, bookingId=mine["bookingIds"][0])
        cancel(client, guest, created["id"], expect=409)
        cancel(client, guest, created["id"], expect=409, cancelAll=True)

    assert event(client, created["id"]) == before
    assert before["reservedSeats"] == 2


def test_double_cancel_cannot_lead_to_an_oversell(client):
    host, guest, late = account(client, "host"), account(client, "guest"), account(client, "guest")
    created = create_event(client, host, capacity=2)
    mine = book(client, guest, created["id"], 2)
    cancel(client, guest, created["id"], bookingId=mine["bookingIds"][0])
    with unchanged():
        cancel(client, guest, created["id"], expect=409, bookingId=mine["bookingIds"][0])
    book(client, late, created["id"], 2)

    extra = book(client, late, created["id"], 1)

    assert outcome(extra) == ("waitlisted", 0, 1, 1)
    assert event(client, created["id"])["reservedSeats"] == 2


def test_cancelling_someone_elses_booking_is_404_and_keeps_it(client):
    host, owner, intruder = account(client, "host"), account(client, "guest"), account(client, "guest")
    created = create_event(client, host, capacity=5)
    theirs = book(client, owner, created["id"], 2)

    with unchanged():
        cancel(client, intruder, created["id"], expect=404, bookingId=theirs["bookingIds"][0])

    assert history(client, owner)["items"][0]["status"] == "confirmed"
    assert event(client, created["id"])["reservedSeats"] == 2


def test_cancelling_a_booking_under_the_wrong_event_is_404(client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host)
    other_event = create_event(client, host)
    mine = book(client, guest, created["id"], 1)

    with unchanged():
        cancel(client, guest, other_event["id"], expect=404, bookingId=mine["bookingIds"][0])


def test_cancel_with_nothing_booked_is_a_conflict(client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host)

    with unchanged():
        cancel(client, guest, created["id"], expect=409)


def test_cancel_on_an_unknown_event_is_404(client):
    guest = account(client, "guest")

    with unchanged():
        cancel(client, guest, 999999, expect=404)


def test_cancellation_promotes_the_waitlist_head_and_nobody_behind_it(client):
    host = account(client, "host")
    holder, head, behind = (account(client, "guest") for _ in range(3))
    created = create_event(client, host, capacity=4)
    first = book(client, holder, created["id"], 2)
    book(client, holder, created["id"], 2)
    head_request = book(client, head, created["id"], 3)
    behind_request = book(client, behind, created["id"], 1)
    assert outcome(head_request) == ("waitlisted", 0, 3, 1)
    assert outcome(behind_request) == ("waitlisted", 0, 1, 2)

    cancel(client, holder, created["id"], bookingId=first["bookingIds"][0])

    # Both freed seats go to the head, which keeps its place for its third seat;
    # the one-seat request behind it fits but must not overtake it.
    head_now = request_status(client, head, head_request["requestId"])
    behind_now = request_status(client, behind, behind_request["requestId"])
    assert (head_now["seatsConfirmed"], head_now["seatsWaitlisted"], head_now["waitlistPosition"]) == (2, 1, 1)
    assert head_now["status"] == "partial"  # was waitlisted: its status follows the promoted seats
    assert len(head_now["bookingIds"]) == 1
    assert behind_now["status"] == "waitlisted"
    assert (behind_now["seatsConfirmed"], behind_now["bookingIds"], behind_now["waitlistPosition"]) == (0, [], 2)
    assert event(client, created["id"])["reservedSeats"] == 4


def test_next_cancellation_finishes_the_head_then_serves_the_one_behind(client):
    host = account(client, "host")
    holder, head, behind = (account(client, "guest") for _ in range(3))
    created = create_event(client, host, capacity=4)
    book(client, holder, created["id"], 2)
    book(client, holder, created["id"], 2)
    head_request = book(client, head, created["id"], 3)
    behind_request = book(client, behind, created["id"], 1)
    cancel(client, holder, created["id"])

    cancel(client, holder, created["id"])

    head_now = request_status(client, head, head_request["requestId"])
    behind_now = request_status(client, behind, behind_request["requestId"])
    assert (head_now["seatsConfirmed"], head_now["seatsWaitlisted"], head_now["waitlistPosition"]) == (3, 0, None)
    assert (head_now["status"], behind_now["status"]) == ("confirmed", "confirmed")
    assert len(head_now["bookingIds"]) == 2
    assert (behind_now["seatsConfirmed"], behind_now["waitlistPosition"], len(behind_now["bookingIds"])) == (1, None, 1)
    after = event(client, created["id"])
    assert (after["reservedSeats"], after["seatsLeft"], after["waitlistLength"]) == (4, 0, 0)
    assert sorted(item["numberOfSeats"] for item in history(client, head, status="confirmed")["items"]) == [1, 2]


def test_waitlist_position_moves_up_when_someone_ahead_leaves(client):
    host = account(client, "host")
    holder, first, second = (account(client, "guest") for _ in range(3))
    created = create_event(client, host, capacity=1)
    book(client, holder, created["id"], 1)
    book(client, first, created["id"], 1)
    second_request = book(client, second, created["id"], 1)
    assert second_request["waitlistPosition"] == 2

    cancel(client, first, created["id"], cancelAll=True)

    assert request_status(client, second, second_request["requestId"])["waitlistPosition"] == 1


# --- history --------------------------------------------------------------------------


def test_history_tickets_view(client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host, capacity=5, price=700, name="History Gig")
    accepted = book(client, guest, created["id"], 2)

    data = history(client, guest)

    assert data["pageInfo"] == {"hasMore": False, "nextCursor": None}
    (item,) = data["items"]
    assert {"id", "eventId", "numberOfSeats", "cost", "status", "createdAt", "cancelledAt"} <= set(item)
    assert (item["id"], item["eventId"], item["numberOfSeats"], item["cost"]) == (
        accepted["bookingIds"][0],
        created["id"],
        2,
        1400,
    )
    assert (item["status"], item["cancelledAt"]) == ("confirmed", None)
    assert item["event"]["name"] == "History Gig"


def test_history_shows_only_the_callers_bookings(client):
    host, guest, other = account(client, "host"), account(client, "guest"), account(client, "guest")
    created = create_event(client, host)
    book(client, other, created["id"], 1)

    assert history(client, guest)["items"] == []


def test_history_summary_view_groups_by_event(client):
    host, guest = account(client, "host"), account(client, "guest")
    first = create_event(client, host, capacity=10, price=100)
    second = create_event(client, host, capacity=10, price=1000)
    book(client, guest, first["id"], 2)
    book(client, guest, first["id"], 3)
    book(client, guest, second["id"], 1)
    cancel(client, guest, first["id"])  # the 3-seat booking

    data = history(client, guest, view="summary")

    summaries = {item["eventId"]: item for item in data["items"]}
    assert set(summaries) == {first["id"], second["id"]}
    assert (
        summaries[first["id"]]["totalTickets"],
        summaries[first["id"]]["activeTickets"],
        summaries[first["id"]]["cancelledTickets"],
        summaries[first["id"]]["totalCost"],
    ) == (5, 2, 3, 200)
    assert (summaries[second["id"]]["activeTickets"], summaries[second["id"]]["totalCost"]) == (1, 1000)


def test_history_pages_through_25_bookings_without_gaps_or_duplicates(client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host, capacity=30)
    booked = [book(client, guest, created["id"], 1)["bookingIds"][0] for _ in range(25)]

    pages = []
    cursor = None
    while True:
        page = history(client, guest, limit=10, **({"cursor": cursor} if cursor else {}))
        pages.append([item["id"] for item in page["items"]])
        if not page["pageInfo"]["hasMore"]:
            assert page["pageInfo"]["nextCursor"] is None
            break
        cursor = page["pageInfo"]["nextCursor"]
        assert cursor
        assert len(pages) < 5, "pagination does not end"

    assert [len(ids) for ids in pages] == [10, 10, 5]
    assert [item for ids in pages for item in ids] == sorted(booked, reverse=True)


def test_history_exactly_one_full_page_has_no_more(client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host, capacity=10)
    for _ in range(3):
        book(client, guest, created["id"], 1)

    page = history(client, guest, limit=3)

    assert len(page["items"]) == 3
    assert page["pageInfo"] == {"hasMore": False, "nextCursor": None}


def test_history_filters_by_event(client):
    host, guest = account(client, "host"), account(client, "guest")
    first = create_event(client, host)
    second = create_event(client, host)
    book(client, guest, first["id"], 1)
    wanted = book(client, guest, second["id"], 2)

    items = all_history_items(client, guest, eventId=second["id"])

    assert [item["id"] for item in items] == wanted["bookingIds"]


def test_history_filters_by_status(client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host, capacity=10)
    kept = book(client, guest, created["id"], 1)
    dropped = book(client, guest, created["id"], 2)
    cancel(client, guest, created["id"], bookingId=dropped["bookingIds"][0])

    confirmed = all_history_items(client, guest, status="confirmed")
    cancelled = all_history_items(client, guest, status="cancelled")

    assert [item["id"] for item in confirmed] == kept["bookingIds"]
    assert [item["id"] for item in cancelled] == dropped["bookingIds"]
    assert cancelled[0]["cancelledAt"] is not None


def test_history_filters_combine(client):
    host, guest = account(client, "host"), account(client, "guest")
    first = create_event(client, host, capacity=10)
    second = create_event(client, host, capacity=10)
    book(client, guest, first["id"], 1)
    gone = book(client, guest, first["id"], 1)
    book(client, guest, second["id"], 1)
    cancel(client, guest, first["id"])

    items = all_history_items(client, guest, eventId=first["id"], status="cancelled")

    assert [item["id"] for item in items] == gone["bookingIds"]


def test_history_paginates_within_a_filter(client):
    host, guest = account(client, "host"), account(client, "guest")
    first = create_event(client, host, capacity=10)
    second = create_event(client, host, capacity=10)
    wanted = []
    for _ in range(5):
        wanted += book(client, guest, first["id"], 1)["bookingIds"]
        book(client, guest, second["id"], 1)

    page_one = history(client, guest, limit=3, eventId=first["id"])
    page_two = history(client, guest, limit=3, eventId=first["id"], cursor=page_one["pageInfo"]["nextCursor"])

    ids = [item["id"] for item in page_one["items"] + page_two["items"]]
    assert ids == sorted(wanted, reverse=True)
    assert page_two["pageInfo"]["hasMore"] is False


def test_history_filters_by_creation_time(client):
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host, capacity=10)
    booked = book(client, guest, created["id"], 1)
    now = datetime.now(timezone.utc)

    around_now = all_history_items(
        client, guest, **{"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
    )
    future = all_history_items(client, guest, **{"from": (now + timedelta(hours=1)).isoformat()})
    past = all_history_items(client, guest, to=(now - timedelta(hours=1)).isoformat())

    assert [item["id"] for item in around_now] == booked["bookingIds"]
    assert (future, past) == ([], [])


def test_history_summary_totals_cover_every_booking_of_the_event(client):
    """The summary view groups one page of bookings (keyset on booking id), so an event
    with more bookings than the page size is split into several partial summaries."""
    host, guest = account(client, "host"), account(client, "guest")
    created = create_event(client, host, capacity=30, price=100)
    for _ in range(25):
        book(client, guest, created["id"], 1)

    data = history(client, guest, view="summary")

    assert [(item["eventId"], item["totalTickets"], item["totalCost"]) for item in data["items"]] == [
        (created["id"], 25, 2500)
    ]
    assert data["pageInfo"]["hasMore"] is False
