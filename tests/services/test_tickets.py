"""Tickets and check-in (services/tickets.py), on SQLite and PostgreSQL: codes of a booking's
seats, the check-in outcomes, cancelled bookings and withdrawn events, another event's ticket,
host-only, and the counts."""

from __future__ import annotations

import pytest

from atomicseats.domain.tickets import CheckInOutcome, Ticket, parse_ticket_code
from atomicseats.errors import Forbidden, NotFound
from atomicseats.extensions import db
from atomicseats.models import User
from atomicseats.services import tickets
from atomicseats.services.audit import run_audit
from tests.helpers import account, book, create_event


def user(account_) -> User:
    found = db.session.get(User, account_.id)
    assert found is not None
    return found


@pytest.fixture
def sale(client):
    host = account(client, "host")
    guest = account(client)
    event_id = create_event(client, host, capacity=10)["id"]
    booking_id = book(client, guest, event_id, 3)["bookingIds"][0]
    return host, guest, event_id, booking_id


def test_a_booking_has_one_ticket_a_seat_each_with_its_own_code(client, sale):
    _, guest, event_id, booking_id = sale
    view = tickets.booking_tickets(guest.id, False, booking_id)
    assert (view.booking_id, view.event_id, view.is_cancelled) == (booking_id, event_id, False)
    assert [ticket.seat_no for ticket in view.tickets] == [1, 2, 3]
    assert len({ticket.code for ticket in view.tickets}) == 3
    key = tickets.current_code_key()
    assert [parse_ticket_code(key, ticket.code) for ticket in view.tickets] == [
        Ticket(booking_id, seat_no) for seat_no in (1, 2, 3)
    ]
    assert all(ticket.checked_in_at is None for ticket in view.tickets)
    assert list(tickets.user_tickets(guest.id)) == [booking_id]


def test_only_the_owner_or_an_admin_sees_a_bookings_tickets(client, sale):
    _, _, _, booking_id = sale
    stranger = account(client)
    with pytest.raises(NotFound):
        tickets.booking_tickets(stranger.id, False, booking_id)
    assert tickets.booking_tickets(stranger.id, True, booking_id).booking_id == booking_id
    with pytest.raises(NotFound):
        tickets.booking_tickets(stranger.id, True, booking_id + 1000)


def test_a_ticket_is_admitted_once_then_already_checked_in_with_when_and_where(client, sale):
    host, guest, event_id, booking_id = sale
    code = tickets.booking_tickets(guest.id, False, booking_id).tickets[1].code

    first = tickets.check_in(user(host), event_id, code.lower().replace("-", " "), "North door")
    assert first.outcome is CheckInOutcome.ADMITTED
    assert first.ticket == Ticket(booking_id, 2) and first.seats == 3
    assert first.record is not None and first.record.door == "North door"

    second = tickets.check_in(user(host), event_id, code, "South door")
    assert second.outcome is CheckInOutcome.ALREADY_CHECKED_IN
    assert second.record == first.record  # when, by whom and where the first one was let in
    assert second.checked_in_by_name == user(host).name

    view = tickets.booking_tickets(guest.id, False, booking_id)
    assert [ticket.checked_in_at is not None for ticket in view.tickets] == [False, True, False]
    assert tickets.check_in_counts([event_id]) == {event_id: tickets.CheckInCounts(checked_in=1, tickets=3)}
    assert run_audit().is_clean


def test_a_cancelled_booking_and_a_withdrawn_event_say_cancelled(client, sale):
    host, guest, event_id, booking_id = sale
    code = tickets.booking_tickets(guest.id, False, booking_id).tickets[0].code
    cancelled = client.delete(
        "/api/events/book", json={"eventId": event_id, "bookingId": booking_id}, headers=guest.headers
    )
    assert cancelled.status_code == 200, cancelled.get_json()
    assert tickets.check_in(user(host), event_id, code, None).outcome is CheckInOutcome.CANCELLED

    other_guest = account(client)
    other_booking = book(client, other_guest, event_id, 1)["bookingIds"][0]
    other_code = tickets.booking_tickets(other_guest.id, False, other_booking).tickets[0].code
    deleted = client.post("/api/events/delete", json={"id": event_id}, headers=host.headers)
    assert deleted.status_code == 200, deleted.get_json()
    assert tickets.check_in(user(host), event_id, other_code, None).outcome is CheckInOutcome.CANCELLED
    assert tickets.check_in_counts([event_id])[event_id].checked_in == 0


def test_another_events_ticket_and_what_is_not_a_ticket(client, sale):
    host, guest, event_id, booking_id = sale
    other_event = create_event(client, host, name="Other")["id"]
    code = tickets.booking_tickets(guest.id, False, booking_id).tickets[0].code

    wrong = tickets.check_in(user(host), other_event, code, None)
    assert wrong.outcome is CheckInOutcome.WRONG_EVENT
    assert (wrong.ticket, wrong.holder_name, wrong.record) == (None, None, None)  # nothing of another event told
    for text in ("", "hello", code[:-1] + ("0" if code[-1] != "0" else "1")):
        assert tickets.check_in(user(host), event_id, text, None).outcome is CheckInOutcome.UNKNOWN
    missing = tickets.codes_of(tickets.current_code_key(), booking_id + 1000, 1)[0]  # well made, no booking
    assert tickets.check_in(user(host), event_id, missing, None).outcome is CheckInOutcome.UNKNOWN
    beyond = tickets.codes_of(tickets.current_code_key(), booking_id, 4)[3]  # seat 4 of a 3-seat booking
    assert tickets.check_in(user(host), event_id, beyond, None).outcome is CheckInOutcome.UNKNOWN
    assert tickets.check_in_counts([event_id, other_event]) == {
        event_id: tickets.CheckInCounts(0, 3),
        other_event: tickets.CheckInCounts(0, 0),
    }


def test_only_the_events_host_or_an_admin_checks_in(client, sale):
    _, guest, event_id, booking_id = sale
    code = tickets.booking_tickets(guest.id, False, booking_id).tickets[0].code
    other_host = account(client, "host")
    for stranger in (guest, other_host):
        with pytest.raises(Forbidden):
            tickets.check_in(user(stranger), event_id, code, None)
    with pytest.raises(NotFound):
        tickets.check_in(user(other_host), event_id + 1000, code, None)
    assert tickets.check_in_counts([event_id])[event_id].checked_in == 0
    admin = account(client, "admin")
    assert tickets.check_in(user(admin), event_id, code, None).outcome is CheckInOutcome.ADMITTED


def test_the_calendar_entry_names_the_event_and_is_the_same_every_time(client, sale):
    _, guest, event_id, booking_id = sale
    name, data = tickets.booking_calendar(guest.id, False, booking_id)
    assert name == f"booking-{booking_id}.ics"
    assert data == tickets.booking_calendar(guest.id, False, booking_id)[1]
    import icalendar

    (entry,) = icalendar.Calendar.from_ical(data).walk("VEVENT")
    assert str(entry["UID"]) == f"booking-{booking_id}@atomicseats.local"
    assert str(entry["SUMMARY"]) == "Test Concert" and str(entry["LOCATION"]) == "Test Hall"
    assert entry.decoded("DTEND") > entry.decoded("DTSTART")
    for ticket in tickets.booking_tickets(guest.id, False, booking_id).tickets:
        assert ticket.code in str(entry["DESCRIPTION"])


def test_the_audit_finds_a_check_in_of_another_event_or_beyond_the_seats(client, sale):
    from datetime import UTC, datetime

    from atomicseats.models import TicketCheckIn

    host, _, event_id, booking_id = sale
    other_event = create_event(client, host, name="Other")["id"]
    at = datetime.now(UTC)
    db.session.add(TicketCheckIn(booking_id=booking_id, seat_no=1, event_id=other_event, checked_in_at=at))
    db.session.add(TicketCheckIn(booking_id=booking_id, seat_no=9, event_id=event_id, checked_in_at=at))
    db.session.commit()
    found = {(violation.subject, violation.detail) for violation in run_audit().violations}
    assert found == {
        (f"booking {booking_id} seat 1", f"checked in at event {other_event}, but the booking is of event {event_id}"),
        (f"booking {booking_id} seat 9", "seat 9 of a booking of 3 seats"),
    }
