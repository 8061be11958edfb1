"""The request page shows the buyer's place in line (issue 13 point 1), over the test client
with the real Redis line: "N people ahead of you" while pending, in the part htmx polls every
second; the waitlist place and the seats asked ahead once waitlisted."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from atomicseats.adapters.redis_cache import connect
from atomicseats.adapters.redis_line import RedisLine
from atomicseats.adapters.redis_state import RedisOutcomeChannel
from atomicseats.models import utcnow
from atomicseats.services import booking
from atomicseats.services.contracts import AcceptedRequest
from atomicseats.services.ports import EXTENSION_KEY
from tests.helpers import account, create_event
from tests.web.test_pages import sign_in


@pytest.fixture
def with_line(app, redis_url):
    client = connect(redis_url)
    client.flushdb()
    app.extensions[EXTENSION_KEY] = dataclasses.replace(
        app.extensions[EXTENSION_KEY], line=RedisLine(client), outcomes=RedisOutcomeChannel(client)
    )
    yield
    client.close()


def test_the_request_page_counts_the_people_ahead_and_the_poll_sees_them_leave(app, client, with_line):
    host = account(client, "host")
    others, buyer = account(client, "guest"), account(client, "guest")
    event_id = create_event(client, host, capacity=2)["id"]
    requests = [
        AcceptedRequest(str(uuid.uuid4()), user.id, event_id, 1, None, None, utcnow())
        for user in [others, others, buyer]
    ]
    with app.app_context():
        booking.record_requests(requests)
    sign_in(client, buyer.username)
    path = f"/requests/{requests[2].request_id}"
    page = client.get(path).get_data(as_text=True)
    assert "2 people ahead of you" in page
    assert 'hx-trigger="every 1s"' in page  # the live part: polled while pending
    second = AcceptedRequest(str(uuid.uuid4()), buyer.id, event_id, 2, None, None, utcnow())
    with app.app_context():
        booking.allocate_pending(event_id)  # the two ahead are decided; the buyer's too (waitlisted)
        booking.record_requests([second])
    polled = client.get(path, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "people ahead" not in polled
    assert "Waitlisted: place 1 in line." in polled
    assert "You are first in line" in polled
    with app.app_context():
        booking.allocate_pending(event_id)  # the buyer's second request waits behind the first
    behind = client.get(f"/requests/{second.request_id}").get_data(as_text=True)
    assert "Waitlisted: place 2 in line." in behind
    assert "1 seat is asked for ahead of you." in behind


def test_a_request_not_counted_yet_says_so(app, client, with_line):
    host, buyer = account(client, "host"), account(client, "guest")
    event_id = create_event(client, host, capacity=2)["id"]
    request = AcceptedRequest(str(uuid.uuid4()), buyer.id, event_id, 1, None, None, utcnow())
    with app.app_context():
        booking.record_requests([request])
        app.extensions[EXTENSION_KEY].line.client.flushdb()  # the line was lost
    sign_in(client, buyer.username)
    page = client.get(f"/requests/{request.request_id}").get_data(as_text=True)
    assert "In the queue, being counted" in page


def test_the_event_page_shows_the_guests_own_place_live(app, client, with_line):
    host, other, buyer = account(client, "host"), account(client, "guest"), account(client, "guest")
    event_id = create_event(client, host, capacity=2)["id"]
    ahead = AcceptedRequest(str(uuid.uuid4()), other.id, event_id, 1, None, None, utcnow())
    mine = AcceptedRequest(str(uuid.uuid4()), buyer.id, event_id, 1, None, None, utcnow())
    with app.app_context():
        booking.record_requests([ahead, mine])
    assert "ahead of you" not in client.get(f"/events/{event_id}").get_data(as_text=True)  # nobody signed in
    sign_in(client, buyer.username)
    page = client.get(f"/events/{event_id}").get_data(as_text=True)
    assert "1 person ahead of you" in page
    assert f'href="/requests/{mine.request_id}"' in page
    with app.app_context():
        booking.allocate_pending(event_id, 1)  # the one ahead is decided
    polled = client.get(f"/events/{event_id}/availability", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "You are next" in polled
    with app.app_context():
        booking.allocate_pending(event_id)
    polled = client.get(f"/events/{event_id}/availability", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Your request" not in polled  # decided: the request page tells the outcome
