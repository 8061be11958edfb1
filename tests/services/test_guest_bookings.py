"""What "My bookings" reads (issue 10 point 2), on SQLite and PostgreSQL: a guest's bookings
grouped by event (upcoming and past) with totals, and their waiting places with the place
in line the request's status shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from atomicseats.domain import limits
from atomicseats.errors import Conflict, NotFound
from atomicseats.models import utcnow
from atomicseats.services import booking, history
from tests.helpers import account, book, create_event


def test_bookings_are_grouped_by_event_with_what_they_hold_and_totals_over_all(client):
    host = account(client, "host")
    guest, other = account(client), account(client)
    soon = create_event(client, host, name="Soon", price=1250, **_starting_in(days=3))["id"]
    later = create_event(client, host, name="Later", price=2000, **_starting_in(days=20))["id"]
    first = book(client, guest, soon, 2)
    second = book(client, guest, soon, 1)
    book(client, guest, later, 3)
    book(client, other, soon, 4)  # someone else's: never shown
    cancelled = client.delete(
        "/api/events/book", json={"eventId": soon, "bookingId": second["bookingIds"][0]}, headers=guest.headers
    )
    assert cancelled.status_code == 200, cancelled.get_json()

    mine = history.guest_bookings(guest.id, utcnow())

    assert [group.event.name for group in mine.upcoming] == ["Soon", "Later"]  # soonest first
    assert mine.past == [] and mine.has_more is False
    soon_group = mine.upcoming[0]
    assert [ticket["id"] for ticket in soon_group.tickets] == [second["bookingIds"][0], first["bookingIds"][0]]
    assert [ticket["status"] for ticket in soon_group.tickets] == ["cancelled", "confirmed"]
    assert [ticket["id"] for ticket in soon_group.bookings_held] == first["bookingIds"]
    assert (soon_group.seats_held, soon_group.cost_minor) == (2, 2500)
    assert soon_group.tickets[1]["request_id"] == first["requestId"]
    assert mine.totals == history.BookingTotals(
        events_upcoming=2, seats_upcoming=5, cost_upcoming_minor=2 * 1250 + 3 * 2000, cost_total_minor=8500
    )


def test_ended_and_withdrawn_events_are_past_most_recent_first(client):
    host = account(client, "host")
    guest = account(client)
    early = create_event(client, host, name="Early", **_starting_in(days=2))["id"]
    late = create_event(client, host, name="Late", **_starting_in(days=5))["id"]
    withdrawn = create_event(client, host, name="Withdrawn", **_starting_in(days=30))["id"]
    for event_id in (early, late, withdrawn):
        book(client, guest, event_id, 1)
    deleted = client.post("/api/events/delete", json={"id": withdrawn}, headers=host.headers)
    assert deleted.status_code == 200, deleted.get_json()

    now = utcnow()
    assert [group.event.name for group in history.guest_bookings(guest.id, now).upcoming] == ["Early", "Late"]
    assert [group.event.name for group in history.guest_bookings(guest.id, now).past] == ["Withdrawn"]
    in_ten_days = history.guest_bookings(guest.id, now + timedelta(days=10))
    assert in_ten_days.upcoming == []
    assert [group.event.name for group in in_ten_days.past] == ["Withdrawn", "Late", "Early"]
    assert in_ten_days.totals.events_upcoming == 0
    assert in_ten_days.totals.cost_total_minor == 2 * 1500  # the withdrawn event's booking was cancelled


def test_the_newest_bookings_are_shown_up_to_the_limit_and_the_totals_count_them_all(client):
    host = account(client, "host")
    guest = account(client)
    event_id = create_event(client, host, capacity=10)["id"]
    booked = [book(client, guest, event_id, 1)["bookingIds"][0] for _ in range(3)]

    mine = history.guest_bookings(guest.id, utcnow(), limit=2)
    assert mine.has_more is True
    assert [ticket["id"] for ticket in mine.upcoming[0].tickets] == booked[:0:-1]
    assert mine.totals.seats_upcoming == 3
    assert history.guest_bookings(guest.id, utcnow()).has_more is False


def test_waiting_places_carry_the_place_in_line_the_request_status_shows(client):
    host = account(client, "host")
    first, second, third = account(client), account(client), account(client)
    full = create_event(client, host, name="Full", capacity=2)["id"]
    also_full = create_event(client, host, name="Also full", capacity=1)["id"]
    book(client, first, full, 2)
    book(client, second, full, 1)  # place 1
    partial = book(client, third, full, 3)  # place 2
    book(client, first, also_full, 1)
    waiting_too = book(client, third, also_full, 2)  # place 1 there

    places = booking.waitlist_places(third.id).items
    assert [(place.event.name, place.seats_waiting, place.place) for place in places] == [
        ("Full", 3, 2),
        ("Also full", 2, 1),
    ]
    assert [place.request_id for place in places] == [partial["requestId"], waiting_too["requestId"]]
    for place in places:
        assert place.place == booking.request_status(place.request_id, third.id, False).waitlist_position

    booking.leave_waitlist(second.id, booking.waitlist_places(second.id).items[0].request_id)
    assert [place.place for place in booking.waitlist_places(third.id).items] == [1, 1]  # moved up
    assert booking.waitlist_places(second.id).items == []


def test_waiting_places_past_the_limit_are_said_to_be_more(client):
    host = account(client, "host")
    guest = account(client)
    for _ in range(3):
        book(client, guest, create_event(client, host, capacity=1)["id"], 2)  # 1 held, 1 waiting each
    page = booking.waitlist_places(guest.id, limit=2)
    assert len(page.items) == 2 and page.has_more is True
    assert all(place.seats_held == 1 and place.seats_requested == 2 for place in page.items)
    assert booking.waitlist_places(guest.id, limit=limits.WAITLIST_PLACES_SHOWN_MAX).has_more is False


def _starting_in(days: int) -> dict:
    starts_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)
    return {"startsAt": starts_at.isoformat(), "endsAt": (starts_at + timedelta(hours=2)).isoformat()}


def test_a_cancel_preview_promises_what_the_cancellation_then_does(client):
    host = account(client, "host")
    guest, other = account(client), account(client)
    event_id = create_event(client, host, capacity=3)["id"]
    held = book(client, guest, event_id, 2)
    partial = book(client, guest, event_id, 3)  # 1 held, 2 waiting
    book(client, other, event_id, 1)  # waiting behind: not the guest's

    one = booking.cancel_preview(guest.id, event_id, partial["bookingIds"][0], cancel_all=False)
    assert [row.id for row in one.bookings] == partial["bookingIds"]
    assert [(place.request_id, place.seats_waiting, place.place) for place in one.waiting] == [
        (partial["requestId"], 2, 1)
    ]  # cancelling a booking gives up its request's waiting seats too
    assert booking.cancel_preview(guest.id, event_id, held["bookingIds"][0], cancel_all=False).waiting == []
    everything = booking.cancel_preview(guest.id, event_id, None, cancel_all=True)
    assert [row.id for row in everything.bookings] == partial["bookingIds"] + held["bookingIds"]  # newest first
    assert everything.event.id == event_id

    with pytest.raises(NotFound):
        booking.cancel_preview(other.id, event_id, held["bookingIds"][0], cancel_all=False)
    with pytest.raises(NotFound):
        booking.cancel_preview(guest.id, 10**12, None, cancel_all=True)
    result = booking.cancel_bookings(guest.id, event_id, None, cancel_all=True)
    assert (result.bookings_cancelled, result.seats_freed, result.seats_withdrawn) == (2, 3, 2)
    with pytest.raises(Conflict):
        booking.cancel_preview(guest.id, event_id, held["bookingIds"][0], cancel_all=False)
    with pytest.raises(Conflict):
        booking.cancel_preview(guest.id, event_id, None, cancel_all=True)
