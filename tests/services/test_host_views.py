"""The host's queries (the host pages call them): their events, one event as managed, the
roster's guest names, and bookings over time per UTC day. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from atomicseats.domain.timeline import DayTotals
from atomicseats.errors import Forbidden, NotFound
from atomicseats.extensions import db
from atomicseats.models import Booking
from atomicseats.services import booking, events, users
from tests.helpers import account, book, create_event


def user(account_) -> object:
    return users.get_user(account_.id)


def made_on(booking_id: int, created: datetime, cancelled: datetime | None = None) -> None:
    """As if the booking had been made (and cancelled) then: the clock, moved for the test."""
    values = {"created_at": created} if cancelled is None else {"created_at": created, "cancelled_at": cancelled}
    db.session.execute(sa.update(Booking).where(Booking.id == booking_id).values(**values))
    db.session.commit()


def test_bookings_over_time_count_seats_per_utc_day_and_hold_the_level_between(client):
    host = account(client, "host")
    event_id = create_event(client, host, capacity=50)["id"]
    guests = [account(client) for _ in range(3)]
    seats = (2, 3, 4)
    ids = [book(client, guest, event_id, count)["bookingIds"][0] for guest, count in zip(guests, seats, strict=True)]
    booking.cancel_bookings(guests[2].id, event_id, ids[2], False)
    # 23:30 UTC is the 1st in UTC whatever the database session's time zone; the 3rd's cancellation
    # comes two days after the booking.
    made_on(ids[0], datetime(2026, 3, 1, 23, 30, tzinfo=UTC))
    made_on(ids[1], datetime(2026, 3, 3, 0, 15, tzinfo=UTC))
    made_on(ids[2], datetime(2026, 3, 1, 8, 0, tzinfo=UTC), datetime(2026, 3, 3, 12, 0, tzinfo=UTC))

    series = events.bookings_over_time(user(host), event_id)
    assert series == [
        DayTotals(date(2026, 3, 1), 6, 0, 6),
        DayTotals(date(2026, 3, 2), 0, 0, 6),
        DayTotals(date(2026, 3, 3), 3, 4, 5),
    ]
    assert series[-1].seats_held == events.hosted_event(user(host), event_id).event.reserved_seats


def test_an_event_without_bookings_has_an_empty_series(client):
    host = account(client, "host")
    event_id = create_event(client, host)["id"]
    assert events.bookings_over_time(user(host), event_id) == []


def test_only_the_host_or_an_admin_reads_an_events_figures(client):
    host, other_host, guest, admin = (account(client, role) for role in ("host", "host", "guest", "admin"))
    event_id = create_event(client, host)["id"]
    for outsider in (other_host, guest):
        with pytest.raises(Forbidden):
            events.bookings_over_time(user(outsider), event_id)
        with pytest.raises(Forbidden):
            events.hosted_event(user(outsider), event_id)
    assert events.hosted_event(user(admin), event_id).event.id == event_id
    assert events.bookings_over_time(user(admin), event_id) == []
    with pytest.raises(NotFound):
        events.hosted_event(user(host), event_id + 1000)


def test_a_host_lists_their_own_events_and_a_guest_has_no_dashboard(client):
    host, other_host, guest = (account(client, role) for role in ("host", "host", "guest"))
    mine = {create_event(client, host, name=f"Mine {number}")["id"] for number in range(3)}
    create_event(client, other_host, name="Theirs")
    page = events.host_events(user(host), limit=2)
    walked = [view.event.id for view in page.items]
    assert page.has_more
    walked += [view.event.id for view in events.host_events(user(host), 2, page.next_cursor).items]
    assert sorted(walked) == sorted(mine)
    with pytest.raises(Forbidden, match="Only hosts"):
        events.host_events(user(guest))


def test_the_roster_names_its_guests(client):
    host = account(client, "host")
    event_id = create_event(client, host, capacity=1)["id"]
    first, second = account(client), account(client)
    book(client, first, event_id, 1)
    book(client, second, event_id, 1)  # waitlisted
    roster = events.event_roster(user(host), event_id)
    assert [row.user_id for row in roster.bookings] == [first.id]
    assert [row.user_id for row in roster.waitlist] == [second.id]
    assert roster.guest_names == {first.id: user(first).name, second.id: user(second).name}


def test_the_roster_gives_each_page_its_first_place_in_line(client):
    host = account(client, "host")
    event_id = create_event(client, host, capacity=1)["id"]
    guests = [account(client) for _ in range(5)]
    for guest in guests:
        book(client, guest, event_id, 1)  # one booking, four waiting
    first = events.event_roster(user(host), event_id, limit=3)
    assert len(first.bookings) == 1 and len(first.waitlist) == 2 and first.waitlist_first_place == 1
    second = events.event_roster(user(host), event_id, 3, first.page.next_cursor)
    assert [row.user_id for row in second.waitlist] == [guest.id for guest in guests[3:]]
    assert second.waitlist_first_place == 3
