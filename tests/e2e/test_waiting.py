"""Waiting never blocks the API (issue 8 point 12), on the real platform.

With decisions paused (the Celery worker stopped), 1,000 clients long-poll their pending
requests at once. Meanwhile the other routes must keep answering quickly: under the WSGI
front end each wait held one of the API's 24 threads (3 workers x 8) and the catalogue
timed out. Then the worker is started again and every one of the 1,000 waits that is
still open must answer with its request's final outcome, as Postgres has it.

The waiters are raw HTTP/1.1 connections driven by asyncio (no extra client library):
1,000 threads would measure the test, not the API.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import redis

from atomicseats.adapters.redis_state import HUB_CHANNEL, outcome_channel
from atomicseats.domain import limits
from tests.e2e.support import FINAL_STATUSES, Platform, poll, unique

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

WAITERS = 1000
GUESTS = 100
CAPACITY = 700  # some waiters end confirmed, the rest waitlisted
WAIT_S = limits.LONG_POLL_WAIT_S_MAX
OTHER_ROUTE_S_MAX = 3.0  # each answer of another route while the waits are open
OTHER_ROUTE_SAMPLES = 5
OPEN_TIMEOUT_S = 20.0  # until every wait is subscribed


@dataclass
class Answer:
    status: int
    body: dict | None
    elapsed_s: float


async def _long_poll(host: str, port: int, path: str, token: str) -> Answer:
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
                "Accept: application/json\r\nConnection: close\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), WAIT_S + 30)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    return Answer(status, json.loads(body) if body else None, time.monotonic() - started)


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return bytes(out)


class Waiters:
    """WAITERS long polls on one asyncio loop in a background thread."""

    def __init__(self, api_url: str, polls: list[tuple[str, str]]) -> None:
        url = urlsplit(api_url)
        self.host, self.port = url.hostname, url.port
        self.polls = polls
        self.answers: list[Answer | BaseException] = []
        self.thread = threading.Thread(target=self._run, name="e2e-waiters", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout_s: float) -> None:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the long polls did not all answer"

    def _run(self) -> None:
        async def everyone():
            return await asyncio.gather(
                *(
                    _long_poll(self.host, self.port, f"/api/bookings/requests/{request_id}?wait={WAIT_S}", token)
                    for request_id, token in self.polls
                ),
                return_exceptions=True,
            )

        self.answers = asyncio.run(everyone())


def _subscribed(client: redis.Redis, request_ids: list[str]) -> int:
    """How many of these requests' outcome channels have a subscriber."""
    count = 0
    for first in range(0, len(request_ids), 200):
        channels = [outcome_channel(request_id) for request_id in request_ids[first : first + 200]]
        replies = client.pubsub_numsub(*channels)
        count += sum(1 for _, subscribers in replies if subscribers > 0)
    return count


def test_a_thousand_waits_hold_no_thread_and_all_get_their_outcome(platform: Platform):
    host = platform.register("host")
    guests = platform.seed_guests(GUESTS, prefix="e2ewait")
    event_id = platform.create_event(host, CAPACITY, name=unique("Waiting room "))["id"]
    client = redis.Redis.from_url(platform.env["REDIS_URL"], decode_responses=True, socket_timeout=10)
    platform.platform_sh("stop", "worker")  # decisions pause; the bridge still records requests
    try:
        plan = [guests[index % GUESTS] for index in range(WAITERS)]
        with ThreadPoolExecutor(16) as pool:
            request_ids = list(pool.map(lambda guest: platform.book_accepted(guest, event_id, 1), plan))
        assert len(set(request_ids)) == WAITERS

        waiters = Waiters(
            platform.api_url, [(rid, guest.access_token) for rid, guest in zip(request_ids, plan, strict=True)]
        )
        waiters.start()
        poll(
            lambda: _subscribed(client, request_ids) == WAITERS,
            OPEN_TIMEOUT_S,
            interval_s=0.5,
            what=f"{WAITERS} waits subscribed",
        )
        # One pub/sub connection per API process, not one per waiter.
        hubs = client.pubsub_numsub(HUB_CHANNEL)[0][1]
        pubsub_clients = [line for line in client.client_list(_type="pubsub")]
        assert 1 <= hubs <= 8 and len(pubsub_clients) <= 8, (hubs, len(pubsub_clients))

        # The other routes keep answering, quickly, while the 1,000 waits are open.
        other = platform.register("guest")
        for _ in range(OTHER_ROUTE_SAMPLES):
            catalogue = platform.http.request("GET", "/api/events/all", token=other.access_token)
            assert catalogue.status == 200, (catalogue.status, catalogue.body)
            assert catalogue.elapsed_s < OTHER_ROUTE_S_MAX, catalogue.elapsed_s
            booking = platform.book(other, event_id, 1)
            assert booking.status == 202, (booking.status, booking.body)
            assert booking.elapsed_s < OTHER_ROUTE_S_MAX, booking.elapsed_s
            request_ids.append(booking.data["requestId"])
        assert waiters.thread.is_alive(), "waits answered before any decision was made"
        assert _subscribed(client, request_ids[:WAITERS]) == WAITERS
    finally:
        platform.start("worker")

    waiters.join(WAIT_S + 60)
    failures = [answer for answer in waiters.answers if not isinstance(answer, Answer)]
    assert not failures, failures[:5]
    assert [answer.status for answer in waiters.answers] == [200] * WAITERS
    statuses = [answer.body["data"]["status"] for answer in waiters.answers]
    assert set(statuses) <= FINAL_STATUSES, {status: statuses.count(status) for status in set(statuses)}
    decided = dict(
        platform.sql("SELECT request_id, status FROM booking_requests WHERE request_id = ANY(%s)", (request_ids,))
    )
    assert [decided[request_id] for request_id in request_ids[:WAITERS]] == statuses
    assert [answer.body["data"]["requestId"] for answer in waiters.answers] == request_ids[:WAITERS]
    assert statuses.count("confirmed") == CAPACITY  # one seat each, in arrival order
    # Every waiter left the hub: no subscription is left behind.
    poll(lambda: _subscribed(client, request_ids[:WAITERS]) == 0, 10, what="subscriptions released")
