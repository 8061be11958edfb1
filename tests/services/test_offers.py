"""Waitlist offers (issue 13 point 2) through the services, on SQLite and PostgreSQL with the
real Redis adapters: freed seats are offered to the head (held, not sold), answered by the
guest or its signed link (once), expired by the beat, and what is released passes on in line.
`flask audit` stays clean after every scenario."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from atomicseats.domain import offers as offer_rules
from atomicseats.errors import Conflict, InvalidInput, NotFound
from atomicseats.extensions import db
from atomicseats.models import Booking, BookingRequest, Event, EventTier, OutboxMessage, WaitlistEntry, utcnow
from atomicseats.services import audit, offers
from atomicseats.services.ports import adapters
from tests.helpers import account, book, create_event, unchanged

HOUR = 3600


@pytest.fixture
def people(client):
    host = account(client, "host")
    guests = [account(client, "guest") for _ in range(4)]
    return host, guests


def offer_mode(event_id: int, window_s: int = HOUR) -> None:
    db.session.execute(
        sa.update(Event).where(Event.id == event_id).values(waitlist_mode="offer", offer_window_s=window_s)
    )
    db.session.commit()
    adapters().availability.forget(event_id)


def entry_of(request_id: str) -> WaitlistEntry:
    db.session.rollback()
    return db.session.execute(
        select(WaitlistEntry).join(BookingRequest).where(BookingRequest.request_id == request_id)
    ).scalar_one()


def event_row(event_id: int) -> Event:
    db.session.rollback()
    return db.session.get(Event, event_id)


def offer_mails(request_id: str) -> list[dict]:
    db.session.rollback()
    rows = db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == "waitlist.offered")).scalars()
    payloads = [json.loads(row.payload) for row in rows]
    return [payload for payload in payloads if payload.get("requestId") == request_id]


def cancel_all(client, guest, event_id: int) -> None:
    response = client.delete("/api/events/book", json={"eventId": event_id, "cancelAll": True}, headers=guest.headers)
    assert response.status_code == 200, response.get_json()


def assert_audit_clean() -> None:
    report = audit.run_audit(pending_grace_s=0)
    assert report.is_clean, [str(violation) for violation in report.violations]


def sold_out_with_a_line(client, people, capacity: int = 3, waiting: tuple[int, ...] = (2, 2)):
    """An event in offer mode, sold out to guest 0, with guests 1.. waiting for `waiting` seats."""
    host, guests = people
    event_id = create_event(client, host, capacity=capacity)["id"]
    offer_mode(event_id)
    book(client, guests[0], event_id, capacity)
    line = [
        book(client, guest, event_id, seats)["requestId"] for guest, seats in zip(guests[1:], waiting, strict=False)
    ]
    assert all(entry_of(request_id).seats_offered == 0 for request_id in line)
    return event_id, line


def test_freed_seats_are_offered_to_the_head_and_held_not_sold(app, client, people):
    event_id, (first, second) = sold_out_with_a_line(client, people, capacity=3, waiting=(2, 2))
    before = utcnow()
    cancel_all(client, people[1][0], event_id)  # 3 seats free: 2 offered to the head, 1 to the next
    head, next_ = entry_of(first), entry_of(second)
    assert (head.seats_offered, next_.seats_offered) == (2, 1)
    assert before + timedelta(seconds=HOUR) <= head.offer_expires_at <= utcnow() + timedelta(seconds=HOUR)
    event = event_row(event_id)
    assert (event.reserved_seats, event.seats_offered, event.seats_left) == (0, 3, 0)
    (mail,) = offer_mails(first)
    assert mail["seatsOffered"] == 2 and mail["seatsWaiting"] == 2
    assert offers.offer_for_token(mail["offerToken"]).seats_offered == 2
    assert_audit_clean()


def test_a_new_booking_cannot_take_seats_held_by_an_offer(app, client, people):
    event_id, (first,) = sold_out_with_a_line(client, people, capacity=2, waiting=(2,))
    cancel_all(client, people[1][0], event_id)
    late = book(client, people[1][3], event_id, 1)
    assert late["status"] == "waitlisted"
    assert entry_of(first).seats_offered == 2
    assert_audit_clean()


def test_accepting_every_seat_books_them_and_ends_the_wait(app, client, people):
    event_id, (first, second) = sold_out_with_a_line(client, people, capacity=2, waiting=(2, 1))
    cancel_all(client, people[1][0], event_id)
    answer = offers.answer_by_owner(people[1][1].id, first, "accepted")
    assert (answer.answer, answer.seats_confirmed, answer.seats_still_waiting) == ("accepted", 2, 0)
    db.session.rollback()
    booking = db.session.get(Booking, answer.booking_id)
    assert (booking.seats, booking.status) == (2, "confirmed")
    request = db.session.execute(select(BookingRequest).where(BookingRequest.request_id == first)).scalar_one()
    assert (request.status, request.seats_confirmed, request.seats_waitlisted) == ("confirmed", 2, 0)
    assert entry_of(first).status == "served"
    assert entry_of(second).seats_offered == 0  # nothing came free for it
    event = event_row(event_id)
    assert (event.reserved_seats, event.seats_offered) == (2, 0)
    assert_audit_clean()


def test_accepting_fewer_passes_the_rest_on_in_line(app, client, people):
    event_id, (first, second) = sold_out_with_a_line(client, people, capacity=2, waiting=(2, 2))
    cancel_all(client, people[1][0], event_id)
    answer = offers.answer_by_owner(people[1][1].id, first, "accepted", seats=1)
    assert (answer.seats_confirmed, answer.seats_still_waiting) == (1, 0)
    assert entry_of(first).status == "served"
    assert entry_of(second).seats_offered == 1  # the seat not taken, offered to the next in line
    assert offer_mails(second)[-1]["seatsOffered"] == 1
    assert_audit_clean()


def test_accepting_a_partial_offer_keeps_the_place_for_the_rest(app, client, people):
    host, guests = people
    event_id = create_event(client, host, capacity=3)["id"]
    offer_mode(event_id)
    book(client, guests[0], event_id, 1)
    book(client, guests[3], event_id, 2)
    first = book(client, guests[1], event_id, 3)["requestId"]
    second = book(client, guests[2], event_id, 1)["requestId"]
    cancel_all(client, guests[0], event_id)  # 1 seat free: offered to the head, which wants 3
    answer = offers.answer_by_owner(guests[1].id, first, "accepted")
    assert (answer.seats_confirmed, answer.seats_still_waiting) == (1, 2)
    head = entry_of(first)
    assert (head.status, head.seats_remaining, head.seats_offered) == ("waiting", 2, 0)
    cancel_all(client, guests[3], event_id)  # 2 more free: the head first, still at its place
    assert entry_of(first).seats_offered == 2
    assert entry_of(second).seats_offered == 0
    assert_audit_clean()


def test_an_open_offer_grows_before_anyone_behind_is_offered(app, client, people):
    host, guests = people
    event_id = create_event(client, host, capacity=2)["id"]
    offer_mode(event_id)
    book(client, guests[0], event_id, 1)
    book(client, guests[3], event_id, 1)
    first = book(client, guests[1], event_id, 2)["requestId"]
    second = book(client, guests[2], event_id, 1)["requestId"]
    cancel_all(client, guests[0], event_id)
    head = entry_of(first)
    assert head.seats_offered == 1
    deadline = head.offer_expires_at
    cancel_all(client, guests[3], event_id)  # one more seat free: the head's offer grows
    head = entry_of(first)
    assert (head.seats_offered, head.offer_expires_at) == (2, deadline)  # same deadline
    assert entry_of(second).seats_offered == 0
    assert [mail["seatsOffered"] for mail in offer_mails(first)] == [1, 2]
    assert_audit_clean()


def test_declining_releases_the_seats_to_the_next_and_leaves_the_waitlist(app, client, people):
    event_id, (first, second) = sold_out_with_a_line(client, people, capacity=2, waiting=(2, 2))
    cancel_all(client, people[1][0], event_id)
    token = offer_mails(first)[-1]["offerToken"]
    answer = offers.answer_by_token(token, "declined")
    assert (answer.answer, answer.seats_confirmed) == ("declined", 0)
    assert entry_of(first).status == "cancelled"
    db.session.rollback()
    request = db.session.execute(select(BookingRequest).where(BookingRequest.request_id == first)).scalar_one()
    assert (request.status, request.reason) == ("cancelled", offer_rules.REASON_OFFER_DECLINED)
    assert entry_of(second).seats_offered == 2
    assert_audit_clean()


def test_a_signed_link_opens_its_offer_once(app, client, people):
    event_id, (first, _) = sold_out_with_a_line(client, people, capacity=2, waiting=(2, 2))
    cancel_all(client, people[1][0], event_id)
    token = offer_mails(first)[-1]["offerToken"]
    offers.answer_by_token(token, "accepted", seats=1)
    with unchanged(), pytest.raises(NotFound):
        offers.answer_by_token(token, "accepted")
    with pytest.raises(NotFound):
        offers.offer_for_token(token)
    for forged in ("", "x" * 300, token[:-2] + "AA", token.replace(".", "-", 1)):
        with pytest.raises(NotFound):
            offers.offer_for_token(forged)


def test_only_the_guest_answers_through_the_pages_and_the_api(app, client, people):
    event_id, (first, _) = sold_out_with_a_line(client, people, capacity=2, waiting=(2, 2))
    cancel_all(client, people[1][0], event_id)
    with unchanged(), pytest.raises(NotFound):
        offers.answer_by_owner(people[1][2].id, first, "accepted")


@pytest.mark.parametrize("seats", [0, 3])
def test_accepting_no_seat_or_more_than_offered_is_refused(app, client, people, seats):
    event_id, (first, _) = sold_out_with_a_line(client, people, capacity=2, waiting=(2, 2))
    cancel_all(client, people[1][0], event_id)
    with unchanged(), pytest.raises(InvalidInput):
        offers.answer_by_owner(people[1][1].id, first, "accepted", seats=seats)


def test_an_answer_after_the_deadline_is_refused_and_the_beat_passes_the_seats_on(app, client, people):
    event_id, (first, second) = sold_out_with_a_line(client, people, capacity=2, waiting=(2, 2))
    cancel_all(client, people[1][0], event_id)
    db.session.execute(
        sa.update(WaitlistEntry)
        .where(WaitlistEntry.id == entry_of(first).id)
        .values(offer_expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
    with pytest.raises(Conflict) as refused:
        offers.answer_by_owner(people[1][1].id, first, "accepted")
    assert refused.value.code == "offer_ended"
    assert offers.expire_due_offers() == 1
    assert entry_of(first).status == "expired"
    db.session.rollback()
    request = db.session.execute(select(BookingRequest).where(BookingRequest.request_id == first)).scalar_one()
    assert (request.status, request.reason) == ("rejected", offer_rules.REASON_OFFER_EXPIRED)
    assert entry_of(second).seats_offered == 2
    ended = db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == "waitlist.offer_ended")).scalars()
    assert [json.loads(row.payload)["answer"] for row in ended] == ["expired"]
    assert offers.expire_due_offers() == 0  # idempotent
    assert_audit_clean()


def test_leaving_the_waitlist_with_an_open_offer_passes_it_on(app, client, people):
    event_id, (first, second) = sold_out_with_a_line(client, people, capacity=2, waiting=(2, 2))
    cancel_all(client, people[1][0], event_id)
    response = client.delete(f"/api/bookings/requests/{first}/waitlist", headers=people[1][1].headers)
    assert response.status_code == 200, response.get_json()
    assert entry_of(second).seats_offered == 2
    assert event_row(event_id).seats_offered == 2
    assert_audit_clean()


def test_capacity_cannot_drop_below_the_seats_sold_and_offered(app, client, people):
    event_id, _ = sold_out_with_a_line(client, people, capacity=3, waiting=(2,))
    cancel_all(client, people[1][0], event_id)  # 2 offered, 1 free
    host = people[0]
    refused = client.post("/api/events/update", json={"id": event_id, "capacity": 1}, headers=host.headers)
    assert refused.status_code == 409, refused.get_json()
    accepted = client.post("/api/events/update", json={"id": event_id, "capacity": 2}, headers=host.headers)
    assert accepted.status_code == 200, accepted.get_json()
    assert_audit_clean()


def test_the_sales_end_ends_open_offers_with_the_waitlist(app, client, people):
    from atomicseats.services import sales

    event_id, (first, _) = sold_out_with_a_line(client, people, capacity=2, waiting=(2, 2))
    cancel_all(client, people[1][0], event_id)
    db.session.execute(sa.update(Event).where(Event.id == event_id).values(sales_end_at=utcnow()))
    db.session.commit()
    adapters().availability.forget(event_id)
    assert sales.close_due_sales().entries_expired == 2
    event = event_row(event_id)
    assert (event.seats_offered, event.reserved_seats) == (0, 0)
    assert entry_of(first).seats_offered == 0
    assert_audit_clean()


def test_in_a_tiered_event_a_seat_freed_in_a_tier_is_offered_in_that_tiers_line(app, client, people):
    from tests.services.test_tiers import book_tier, tiered_event

    host, guests = people
    created = tiered_event(
        client, host, [{"name": "Early", "price": 1000, "quota": 1}, {"name": "Standard", "price": 2000, "quota": 1}]
    )
    event_id = created["id"]
    early, standard = (tier["id"] for tier in created["tiers"])
    offer_mode(event_id)
    book_tier(client, guests[0], event_id, 1, early)
    book_tier(client, guests[3], event_id, 1, standard)
    waits_standard = book_tier(client, guests[1], event_id, 1, standard)["requestId"]
    waits_early = book_tier(client, guests[2], event_id, 1, early)["requestId"]
    cancel_all(client, guests[0], event_id)  # the Early seat comes free: offered in Early's line only
    assert (entry_of(waits_early).seats_offered, entry_of(waits_standard).seats_offered) == (1, 0)
    db.session.rollback()
    offered = {tier.name: tier.seats_offered for tier in db.session.execute(select(EventTier)).scalars()}
    assert offered == {"Early": 1, "Standard": 0}
    answer = offers.answer_by_owner(guests[2].id, waits_early, "accepted")
    db.session.rollback()
    assert db.session.get(Booking, answer.booking_id).cost_minor == 1000  # at its tier's price
    assert_audit_clean()


def test_the_audit_finds_offered_seats_that_drifted_from_the_open_offers(app, client, people):
    event_id, (first, _) = sold_out_with_a_line(client, people, capacity=2, waiting=(2, 2))
    cancel_all(client, people[1][0], event_id)
    assert_audit_clean()
    db.session.execute(sa.update(EventTier).where(EventTier.event_id == event_id).values(seats_offered=1))
    db.session.execute(sa.update(Event).where(Event.id == event_id).values(seats_offered=1))
    db.session.commit()
    found = {(violation.invariant, violation.subject.split()[0]) for violation in audit.run_audit().violations}
    assert {("4-offers", "event"), ("4-offers", "tier")} <= found
