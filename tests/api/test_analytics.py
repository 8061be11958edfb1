"""Admin analytics over every event: SQL aggregates, the per-event part a page at a time.
Hundreds of events are bulk-inserted rows, not HTTP calls."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert

from atomicseats.extensions import db
from atomicseats.models import Booking
from tests.api.support import (
    assert_error,
    assert_success,
    insert_bookings,
    insert_event_rows,
    insert_events,
    insert_waitlist,
)
from tests.helpers import account, book, create_event, unchanged

PAGES_MAX = 100


def analytics(client, admin, **params) -> dict:
    return assert_success(client.get("/api/admin/analytics", query_string=params, headers=admin.headers))


def every_event_stat(client, admin, limit: int) -> list[dict]:
    stats: list[dict] = []
    cursor = None
    for _ in range(PAGES_MAX):
        page = analytics(client, admin, limit=limit, **({"cursor": cursor} if cursor else {}))
        stats += page["events"]
        if not page["pageInfo"]["hasMore"]:
            return stats
        cursor = page["pageInfo"]["nextCursor"]
    raise AssertionError("the analytics did not end")


def test_a_new_event_with_the_most_seats_sold_leads_the_top_events_among_600_older_ones(client):
    admin = account(client, "admin")
    host, guest = account(client, "host"), account(client, "guest")
    start = datetime.now(timezone.utc) + timedelta(days=30)
    insert_events(host.id, [start] * 600, capacity_seats=100, reserved_seats=20)
    [newest] = insert_events(host.id, [start + timedelta(days=1)], capacity_seats=100, price_minor=700)
    insert_bookings(newest, guest.id, [10, 10, 10, 5], 700)

    report = analytics(client, admin)

    assert report["topEvents"][0]["eventId"] == newest
    assert (report["topEvents"][0]["reservedSeats"], report["topEvents"][0]["revenue"]) == (35, 35 * 700)
    assert len(report["topEvents"]) == 10
    assert report["totals"]["events"] == 601


def test_every_figure_is_the_sum_over_all_events(client):
    admin = account(client, "admin")
    host, guest = account(client, "host"), account(client, "guest")
    start = datetime.now(timezone.utc) + timedelta(days=5)
    count = 650
    capacities = [50 + number % 7 for number in range(count)]
    reserved = [number % 5 for number in range(count)]
    prices = [100 * (1 + number % 3) for number in range(count)]
    shapes = zip(capacities, reserved, prices, strict=True)
    event_ids = insert_event_rows(
        host.id,
        [
            {"starts_at": start, "capacity_seats": capacity, "reserved_seats": seats, "price_minor": price}
            for capacity, seats, price in shapes
        ],
    )
    bookings = [
        {"user_id": guest.id, "event_id": event_id, "seats": seats, "cost_minor": seats * price}
        for event_id, seats, price in zip(event_ids, reserved, prices, strict=True)
        if seats
    ]
    db.session.execute(insert(Booking), bookings)
    db.session.commit()
    insert_waitlist(event_ids[0], guest.id, [3, 2])
    insert_waitlist(event_ids[-1], guest.id, [1])
    insert_events(host.id, [start], status="deleted", capacity_seats=1000)  # counts nowhere

    report = analytics(client, admin)
    stats = every_event_stat(client, admin, limit=200)

    revenue = sum(seats * price for seats, price in zip(reserved, prices, strict=True))
    assert report["revenue"] == revenue
    assert report["capacityUtilisation"] == round(sum(reserved) / sum(capacities), 4)
    assert report["totals"]["events"] == count
    assert report["totals"]["seatsConfirmed"] == sum(reserved)
    assert report["totals"]["bookings"] == len(bookings)
    assert (report["totals"]["waitlistEntries"], report["totals"]["waitlistSeats"]) == (3, 6)
    assert [item["eventId"] for item in stats] == event_ids  # each event once, by id
    assert sum(item["revenue"] for item in stats) == revenue
    assert sum(item["reservedSeats"] for item in stats) == sum(reserved)
    assert sum(item["capacity"] for item in stats) == sum(capacities)
    assert sum(item["waitlistLength"] for item in stats) == 3
    assert (stats[0]["waitlistLength"], stats[0]["waitlistSeats"]) == (2, 5)
    assert stats[1]["utilisation"] == round(reserved[1] / capacities[1], 4)
    assert [item["reservedSeats"] for item in report["topEvents"]] == [max(reserved)] * 10


def ticket_code(client, guest, booking_id: int, seat_no: int) -> str:
    tickets = assert_success(client.get(f"/api/bookings/{booking_id}/tickets", headers=guest.headers))["tickets"]
    return next(ticket["code"] for ticket in tickets if ticket["seatNo"] == seat_no)


def check_in(client, host, event_id: int, code: str, outcome: str) -> None:
    data = assert_success(client.post(f"/api/events/{event_id}/check-ins", json={"code": code}, headers=host.headers))
    assert data["outcome"] == outcome


def test_checked_in_tickets_per_event_and_in_the_totals(client):
    """One ticket let in (twice at the door: counted once); one of a booking cancelled after its
    check-in, and another event's, count nowhere."""
    admin = account(client, "admin")
    host, guest = account(client, "host"), account(client, "guest")
    door_event = create_event(client, host, capacity=10)["id"]
    other_event = create_event(client, host, capacity=10)["id"]
    kept = book(client, guest, door_event, 3)["bookingIds"][0]
    cancelled = book(client, guest, door_event, 2)["bookingIds"][0]
    book(client, guest, other_event, 1)
    check_in(client, host, door_event, ticket_code(client, guest, kept, 2), "admitted")
    check_in(client, host, door_event, ticket_code(client, guest, kept, 2), "already_checked_in")
    check_in(client, host, door_event, ticket_code(client, guest, cancelled, 1), "admitted")
    assert analytics(client, admin)["totals"]["ticketsCheckedIn"] == 2  # before the cancellation
    cancel = {"eventId": door_event, "bookingId": cancelled}
    assert_success(client.delete("/api/events/book", json=cancel, headers=guest.headers))

    report = analytics(client, admin)

    assert report["totals"]["ticketsCheckedIn"] == 1
    by_event = {stats["eventId"]: stats for stats in report["events"]}
    assert (by_event[door_event]["checkedIn"], by_event[door_event]["reservedSeats"]) == (1, 3)
    assert by_event[other_event]["checkedIn"] == 0
    top = {stats["eventId"]: stats["checkedIn"] for stats in report["topEvents"]}
    assert top == {door_event: 1, other_event: 0}
    second_page = analytics(client, admin, limit=1, cursor=analytics(client, admin, limit=1)["pageInfo"]["nextCursor"])
    assert [(stats["eventId"], stats["checkedIn"]) for stats in second_page["events"]] == [(other_event, 0)]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": "0"}, "limit"), ({"limit": "501"}, "limit"), ({"cursor": "%%"}, "cursor"), ({"page": "1"}, "page")],
    ids=["limit-zero", "limit-over-max", "cursor-garbage", "unknown"],
)
def test_bad_analytics_query_is_400(client, params, field):
    admin = account(client, "admin")

    with unchanged():
        assert_error(client.get("/api/admin/analytics", query_string=params, headers=admin.headers), 400, field)
