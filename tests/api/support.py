"""Helpers for the HTTP API tests: error envelopes, row counts, and thin wrappers over the
endpoints the tests call again and again. They build on tests/helpers.py."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import insert, update

from atomicseats.domain.search import event_search_text
from atomicseats.errors import ERROR_CODES
from atomicseats.extensions import db
from atomicseats.models import Booking, BookingRequest, Event, WaitlistEntry
from tests.helpers import Account


def assert_error(response, status: int, field: str | None = None, code: str | None = None) -> dict:
    """The error envelope `{statusCode, code, message, errors}` with `status`, naming `field`
    if given; its `code` is one of the catalogue's (errors.ERROR_CODES), `code` if given."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    body = response.get_json()
    assert body is not None, f"not JSON: {response.get_data(as_text=True)[:200]!r}"
    assert set(body) == {"statusCode", "code", "message", "errors"}, body
    assert body["statusCode"] == status
    assert body["code"] in ERROR_CODES, body
    if code is not None:
        assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["errors"], dict)
    if field is not None:
        assert field in body["errors"], body
        assert all(isinstance(text, str) and text for text in body["errors"][field]), body
    return body


def assert_success(response, status: int = 200):
    """The success envelope `{statusCode, data, message}`; returns `data`."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    body = response.get_json()
    assert set(body) == {"statusCode", "data", "message"}, body
    assert body["statusCode"] == status
    assert isinstance(body["message"], str) and body["message"]
    return body["data"]


def request_status(client, owner: Account, request_id: str, query: str = "") -> dict:
    response = client.get(f"/api/bookings/requests/{request_id}{query}", headers=owner.headers)
    return assert_success(response)


def cancel(client, guest: Account, event_id: int, expect: int = 200, **fields):
    response = client.delete("/api/events/book", json={"eventId": event_id, **fields}, headers=guest.headers)
    if expect == 200:
        return assert_success(response)
    return assert_error(response, expect)


def update_event(client, actor: Account, event_id: int, expect: int = 200, **fields):
    response = client.post("/api/events/update", json={"id": event_id, **fields}, headers=actor.headers)
    if expect == 200:
        return assert_success(response)
    return assert_error(response, expect)


def delete_event(client, actor: Account, event_id: int, expect: int = 200):
    response = client.post("/api/events/delete", json={"id": event_id}, headers=actor.headers)
    if expect == 200:
        return assert_success(response)
    return assert_error(response, expect)


def roster(client, actor: Account, event_id: int) -> dict:
    return assert_success(client.get(f"/api/events/{event_id}/roster", headers=actor.headers))


def history(client, guest: Account, **params) -> dict:
    response = client.get("/api/user/bookings", query_string=params, headers=guest.headers)
    return assert_success(response)


def all_history_items(client, guest: Account, **params) -> list[dict]:
    """Every ticket of `guest`, walking the pages (newest first)."""
    items: list[dict] = []
    cursor = None
    for _ in range(100):
        page = history(client, guest, limit=100, **({"cursor": cursor} if cursor else {}), **params)
        items.extend(page["items"])
        if not page["pageInfo"]["hasMore"]:
            return items
        cursor = page["pageInfo"]["nextCursor"]
    raise AssertionError("history did not end within 100 pages")


def assert_refused_for_closed_waitlist(response) -> None:
    """A sold-out request with the waitlist closed gets no seat and no place: either
    refused at the door (409, admission control) or accepted and then rejected by the
    allocator with reason `waitlist_closed` (the path a stale availability cache takes)."""
    if response.status_code == 409:
        assert_error(response, 409, "eventId")
        return
    data = assert_success(response, 202)
    assert (data["status"], data["reason"]) == ("rejected", "waitlist_closed")
    assert (data["seatsConfirmed"], data["seatsWaitlisted"], data["bookingIds"]) == (0, 0, [])
    assert data["waitlistPosition"] is None


# --- bulk rows (fast setup for lists of any size) -------------------------------------


def insert_events(host_id: int, starts: list, **fields) -> list[int]:
    """One published event per start time, all alike but for `fields`; see `insert_event_rows`."""
    return insert_event_rows(host_id, [{"starts_at": starts_at, **fields} for starts_at in starts])


def insert_event_rows(host_id: int, shapes: list[dict]) -> list[int]:
    """One event per shape (`starts_at` and any column to override), inserted in one statement;
    returns their ids in order. Seat numbers come from the rows (the availability cache has
    none of them yet)."""
    rows = [
        {
            "name": f"Bulk event {number}",
            "description": "",
            "venue": "Bulk Hall",
            "ends_at": shape["starts_at"] + timedelta(hours=2),
            "sales_end_at": None,
            "capacity_seats": 100,
            "reserved_seats": 0,
            "price_minor": 1000,
            "is_waitlist_open": True,
            "status": "published",
            **shape,
            "host_id": host_id,
        }
        for number, shape in enumerate(shapes)
    ]
    for row in rows:
        row["search_text"] = event_search_text(row["name"], row["venue"])
    ids = list(db.session.scalars(insert(Event).returning(Event.id, sort_by_parameter_order=True), rows))
    db.session.commit()
    return ids


def insert_bookings(event_id: int, user_id: int, seats: list[int], price_minor: int) -> list[int]:
    """Confirmed bookings (one per seat count), and the event's reserved seats raised to match."""
    rows = [
        {"user_id": user_id, "event_id": event_id, "seats": count, "cost_minor": count * price_minor} for count in seats
    ]
    ids = list(db.session.scalars(insert(Booking).returning(Booking.id, sort_by_parameter_order=True), rows))
    db.session.execute(
        update(Event).where(Event.id == event_id).values(reserved_seats=Event.reserved_seats + sum(seats))
    )
    db.session.commit()
    return ids


def insert_waitlist(event_id: int, user_id: int, seats: list[int]) -> list[int]:
    """Waiting entries in this queue order, each with the waitlisted request it came from."""
    requests = [
        {
            "request_id": str(uuid.uuid4()),
            "user_id": user_id,
            "event_id": event_id,
            "seats_requested": count,
            "status": "waitlisted",
            "seats_waitlisted": count,
        }
        for count in seats
    ]
    request_ids = db.session.scalars(
        insert(BookingRequest).returning(BookingRequest.id, sort_by_parameter_order=True), requests
    ).all()
    entries = [
        {
            "event_id": event_id,
            "user_id": user_id,
            "booking_request_id": request_id,
            "seats_waitlisted": count,
            "seats_remaining": count,
        }
        for request_id, count in zip(request_ids, seats, strict=True)
    ]
    ids = list(
        db.session.scalars(insert(WaitlistEntry).returning(WaitlistEntry.id, sort_by_parameter_order=True), entries)
    )
    db.session.commit()
    return ids
