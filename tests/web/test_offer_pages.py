"""Waitlist offers on the pages (issue 13 point 2), over Flask's test client on both backends:
the page behind the offer e-mail's link (a GET shows and changes nothing; the three answers
POST with CSRF; a used or forged link is a 404 page), the same answers from My bookings, and
the refusals' words. The rules themselves: tests/services/test_offers.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy import select

from atomicseats import names
from atomicseats.extensions import db
from atomicseats.models import Booking, BookingRequest, OutboxMessage, WaitlistEntry, utcnow
from tests.helpers import account, book, create_event, unchanged
from tests.web.test_pages import CSRF, sign_in


@pytest.fixture
def browser(app):
    return app.test_client()


def text(response) -> str:
    return response.get_data(as_text=True)


@contextmanager
def unchanged_by(app: Flask) -> Iterator[None]:
    """tests.helpers.unchanged around requests that push their own app context."""
    with app.app_context():
        check = unchanged()
        check.__enter__()
    yield
    with app.app_context():
        check.__exit__(None, None, None)


def offered(app: Flask, browser, capacity: int = 3, waiting: int = 2, freed: int = 2):
    """An event in offer mode sold out to one guest; another waits for `waiting` seats; the first
    cancels `freed` seats, so the second is offered them. Returns (event id, the waiting guest,
    its request id, the offer e-mail's token)."""
    host, holder, guest = account(browser, "host"), account(browser), account(browser)
    event_id = create_event(
        browser, host, capacity=capacity, name="Harbour lights", waitlistMode="offer", offerWindowMinutes=60
    )["id"]
    book(browser, holder, event_id, capacity - freed)
    to_free = book(browser, holder, event_id, freed)["bookingIds"][0]
    request_id = book(browser, guest, event_id, waiting)["requestId"]
    response = browser.delete(
        "/api/events/book", json={"eventId": event_id, "bookingId": to_free}, headers=holder.headers
    )
    assert response.status_code == 200, response.get_json()
    return event_id, guest, request_id, offer_token(app, request_id)


def offer_token(app: Flask, request_id: str) -> str:
    with app.app_context():
        rows = db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == "waitlist.offered")).scalars()
        payloads = [json.loads(row.payload) for row in rows]
    tokens = [payload["offerToken"] for payload in payloads if payload.get("requestId") == request_id]
    assert tokens, "no offer e-mail for the request"
    return tokens[-1]


def entry(app: Flask, request_id: str) -> tuple[str, int, int]:
    """(status, seats offered, seats still waited for) of the request's waitlist entry."""
    with app.app_context():
        row = db.session.execute(
            select(WaitlistEntry).join(BookingRequest).where(BookingRequest.request_id == request_id)
        ).scalar_one()
        return row.status, row.seats_offered, row.seats_remaining


def seats_booked(app: Flask, user_id: int, event_id: int) -> int:
    with app.app_context():
        rows = db.session.execute(
            select(Booking.seats).where(
                Booking.user_id == user_id, Booking.event_id == event_id, Booking.status == "confirmed"
            )
        ).scalars()
        return sum(rows)


def page_path(token: str) -> str:
    return names.OFFER_PAGE_PATH.format(token=token)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def answer(browser, path: str, action: str, seats: int | None = None, csrf: bool = True):
    page = browser.get(path)
    data = {"action": action}
    if csrf:
        data["csrf_token"] = csrf_of(text(page))
    if seats is not None:
        data["seats"] = str(seats)
    return browser.post(path, data=data)


def test_the_link_shows_the_offer_and_opening_it_changes_nothing(app, browser):
    _event_id, _guest, request_id, token = offered(app, browser)
    assert entry(app, request_id)[:2] == ("waiting", 2)
    with unchanged_by(app):
        page = browser.get(page_path(token))  # a mail scanner prefetching the link: no answer
        again = browser.get(page_path(token))
    assert page.status_code == 200 and again.status_code == 200
    html = text(page)
    assert "Harbour lights" in html and 'data-testid="seats-offered">2<' in html
    assert re.search(r'data-testid="offer-deadline"><time datetime="[^"]+\+00:00">[^<]+ UTC</time>', html)
    assert 'value="all"' in html and 'value="some"' in html and 'value="decline"' in html
    assert 'max="2"' in html
    assert page.headers["Cache-Control"] == "no-store"


def test_accepting_all_books_the_seats_and_the_link_then_opens_nothing(app, browser):
    event_id, guest, request_id, token = offered(app, browser)
    response = answer(browser, page_path(token), "all")
    assert response.status_code == 200, text(response)
    assert 'data-answer="accepted"' in text(response) and "Booked: 2 seats for Harbour lights" in text(response)
    assert 'href="/bookings"' in text(response)
    assert seats_booked(app, guest.id, event_id) == 2
    assert entry(app, request_id)[0] == "served"
    with unchanged_by(app):
        reused = browser.get(page_path(token))
        reposted = browser.post(page_path(token), data={"action": "all"})
    assert reused.status_code == 404 and "no longer open" in text(reused)
    assert reposted.status_code == 404


def test_accepting_fewer_books_those_and_passes_the_rest_on(app, browser):
    event_id, guest, request_id, token = offered(app, browser)
    with unchanged_by(app):
        too_many = answer(browser, page_path(token), "some", seats=3)
        none_given = answer(browser, page_path(token), "some")
    assert too_many.status_code == 400 and "Must be between 1 and 2." in text(too_many)
    assert none_given.status_code == 400 and "Enter how many" in text(none_given)
    response = answer(browser, page_path(token), "some", seats=1)
    assert response.status_code == 200, text(response)
    assert "Booked: 1 seat for Harbour lights" in text(response)
    assert seats_booked(app, guest.id, event_id) == 1
    assert entry(app, request_id) == ("served", 0, 0)


def test_declining_leaves_the_waitlist(app, browser):
    event_id, guest, request_id, token = offered(app, browser)
    response = answer(browser, page_path(token), "decline")
    assert response.status_code == 200 and 'data-answer="declined"' in text(response)
    assert seats_booked(app, guest.id, event_id) == 0
    assert entry(app, request_id)[0] == "cancelled"
    assert browser.get(page_path(token)).status_code == 404


def test_a_forged_or_tampered_link_is_a_404_page(app, browser):
    _event_id, _guest, _request_id, token = offered(app, browser)
    with unchanged_by(app):
        for bad in ("nonsense", token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "x" * 500):
            page = browser.get(page_path(bad))
            assert page.status_code == 404 and "no longer open" in text(page), bad
            assert browser.post(page_path(bad), data={"action": "all"}).status_code == 404


def test_an_answer_needs_the_csrf_token_and_a_known_action(app, browser):
    _event_id, _guest, request_id, token = offered(app, browser)
    with unchanged_by(app):
        no_token = answer(browser, page_path(token), "all", csrf=False)
        odd = answer(browser, page_path(token), "maybe")
    assert no_token.status_code == 400 and "This form expired" in text(no_token)
    assert odd.status_code == 400 and "Choose one of the answers" in text(odd)
    assert entry(app, request_id)[:2] == ("waiting", 2)


def test_my_bookings_shows_the_offer_and_answers_it(app, browser):
    event_id, guest, request_id, _token = offered(app, browser, waiting=3, freed=1)
    sign_in(browser, guest.username)
    html = text(browser.get("/bookings"))
    row = re.search(rf'<tr data-request-id="{request_id}">.*?</tr>', html, re.S).group(0)
    assert 'data-testid="offer">1 seat offered to you until <time' in row
    assert f'href="/bookings/offers/{request_id}"' in row
    status_page = text(browser.get(f"/requests/{request_id}"))
    assert 'data-testid="request-offer"><strong>1 seat is offered to you</strong> until <time' in status_page
    assert f'href="/bookings/offers/{request_id}"' in status_page
    with unchanged_by(app):
        page = browser.get(f"/bookings/offers/{request_id}")
    assert page.status_code == 200 and 'data-testid="seats-offered">1<' in text(page)
    assert 'value="some"' not in text(page)  # one seat offered: accept it or decline
    response = answer(browser, f"/bookings/offers/{request_id}", "all")
    assert response.status_code == 200 and "Booked: 1 seat" in text(response)
    assert "other 2 seats" in text(response)  # all of the offer taken: still in line for the rest
    assert seats_booked(app, guest.id, event_id) == 1
    assert entry(app, request_id) == ("waiting", 0, 2)
    assert browser.get(f"/bookings/offers/{request_id}").status_code == 404  # no open offer now


def test_another_guest_cannot_open_an_offer_by_request_id_and_visitors_sign_in(app, browser):
    _event_id, _guest, request_id, _token = offered(app, browser)
    visitor = browser.get(f"/bookings/offers/{request_id}")
    assert visitor.status_code == 302 and "/login" in visitor.headers["Location"]
    other = account(browser)
    sign_in(browser, other.username)
    assert browser.get(f"/bookings/offers/{request_id}").status_code == 404
    assert answer_without_page(browser, f"/bookings/offers/{request_id}").status_code == 404
    assert entry(app, request_id)[:2] == ("waiting", 2)


def answer_without_page(browser, path: str):
    token = CSRF.search(text(browser.get("/account/password"))).group(1)
    return browser.post(path, data={"csrf_token": token, "action": "all"})


def test_an_offer_past_its_deadline_says_it_ended(app, browser):
    _event_id, guest, request_id, _token = offered(app, browser)
    sign_in(browser, guest.username)
    page = browser.get(f"/bookings/offers/{request_id}")
    with app.app_context():  # its time ran out (the beat has not expired it yet)
        db.session.execute(
            sa.update(WaitlistEntry)
            .where(
                WaitlistEntry.booking_request_id
                == select(BookingRequest.id).where(BookingRequest.request_id == request_id).scalar_subquery()
            )
            .values(offer_expires_at=utcnow() - timedelta(seconds=5))
        )
        db.session.commit()
    with unchanged_by(app):
        response = browser.post(
            f"/bookings/offers/{request_id}", data={"csrf_token": csrf_of(text(page)), "action": "all"}
        )
    assert response.status_code == 409 and "This offer has ended" in text(response)
