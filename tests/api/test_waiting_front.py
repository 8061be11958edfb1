"""The ASGI front (atomicseats/waiting.py), in-process on SQLite and PostgreSQL with the real Redis.

The long poll is served on the event loop: it answers with the same envelope, the same
authentication and the same ownership rule as the Flask route, wakes on the outcome
announcement, and many waiters share one pub/sub connection and no thread each. Every
other request goes through to the Flask app unchanged. (The e2e test holds 1,000 waits
open against the real platform.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import uuid

import pytest
import redis

from atomicseats.adapters.redis_state import outcome_channel
from atomicseats.errors import ServiceBusy
from atomicseats.extensions import db
from atomicseats.models import utcnow
from atomicseats.services import booking
from atomicseats.services.contracts import AcceptedRequest
from atomicseats.services.ports import adapters
from atomicseats.waiting import DEADLINE_GRACE_S, UNREAD_RETRY_AFTER_S, WAIT_READ_THREADS, create_asgi_app
from tests.helpers import account, book, create_event

FRONT_THREADS = 4
ANSWER_TIMEOUT_S = 25  # a generous bound for an answer that an announcement wakes (wait=30)
WAITERS = 200


async def call(front, method: str, path: str, query: str = "", headers: dict | None = None, body: bytes = b""):
    """One request through the ASGI app; (status, headers, parsed JSON body)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 5000),
    }
    chunks = [body]

    async def receive():
        if chunks:
            return {"type": "http.request", "body": chunks.pop(), "more_body": False}
        await asyncio.Event().wait()  # the client stays connected

    messages = []

    async def send(message):
        messages.append(message)

    await front(scope, receive, send)
    start, rest = messages[0], messages[1:]
    raw = b"".join(message.get("body", b"") for message in rest)
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, json.loads(raw) if raw else None


@pytest.fixture
def front(app):
    application = create_asgi_app(app, threads=FRONT_THREADS)
    assert application.hub is not None, "these tests need Redis (TEST_REDIS_URL)"
    yield application
    asyncio.run(application.close())


def pending_request(guest, event_id: int) -> AcceptedRequest:
    """Accepted by the API, not recorded yet (the Kafka path): known from the request registry."""
    accepted = AcceptedRequest(
        request_id=str(uuid.uuid4()),
        user_id=guest.id,
        event_id=event_id,
        seats=1,
        idempotency_key=None,
        correlation_id=None,
        accepted_at=utcnow(),
    )
    assert adapters().requests.claim(accepted) is None
    return accepted


def decide(app, accepted_requests: list[AcceptedRequest], event_id: int) -> None:
    """What the bridge and the worker do; the commit announces the outcomes."""
    with app.app_context():
        booking.record_requests(accepted_requests)
        booking.allocate_pending(event_id)


def subscribed(app, request_ids: list[str]) -> int:
    client = redis.Redis.from_url(app.config["REDIS_URL"])
    try:
        replies = client.pubsub_numsub(*[outcome_channel(request_id) for request_id in request_ids])
        return sum(1 for _, count in replies if count > 0)
    finally:
        client.close()


def one_connection_holds(app, channel_count: int) -> bool:
    """Some pub/sub connection of the server is subscribed to at least `channel_count` channels."""
    client = redis.Redis.from_url(app.config["REDIS_URL"])
    try:
        return any(int(entry["sub"]) >= channel_count for entry in client.client_list(_type="pubsub"))
    finally:
        client.close()


async def until(predicate, what: str) -> None:
    for _ in range(400):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def test_a_long_poll_wakes_on_the_announcement_with_the_routes_envelope(app, client, front):
    host, guest = account(client, "host"), account(client, "guest")
    event_id = create_event(client, host, capacity=5)["id"]
    accepted = pending_request(guest, event_id)
    path = f"/api/bookings/requests/{accepted.request_id}"

    async def scenario():
        poll = asyncio.create_task(call(front, "GET", path, "wait=30", guest.headers))
        await until(lambda: subscribed(app, [accepted.request_id]) == 1, "the waiter subscribed")
        assert not poll.done()
        await asyncio.to_thread(decide, app, [accepted], event_id)
        return await asyncio.wait_for(poll, ANSWER_TIMEOUT_S)

    status, headers, body = asyncio.run(scenario())
    assert status == 200
    assert body["data"]["status"] == "confirmed"
    assert headers["cache-control"] == "no-store"
    db.session.rollback()  # the test's own session: end its snapshot
    same = client.get(path, headers=guest.headers)  # what the Flask route answers now
    assert body == same.get_json()
    assert subscribed(app, [accepted.request_id]) == 0  # the waiter left the channel


def test_many_waiters_share_one_connection_and_hold_no_thread(app, client, front):
    host, guest = account(client, "host"), account(client, "guest")
    event_id = create_event(client, host, capacity=WAITERS // 2)["id"]
    requests = [pending_request(guest, event_id) for _ in range(WAITERS)]
    ids = [accepted.request_id for accepted in requests]
    threads_before = threading.active_count()

    async def scenario():
        polls = [
            asyncio.create_task(call(front, "GET", f"/api/bookings/requests/{rid}", "wait=30", guest.headers))
            for rid in ids
        ]
        await until(lambda: subscribed(app, ids) == WAITERS, "every waiter subscribed")
        assert one_connection_holds(app, WAITERS), "the waiters' channels are spread over connections"
        # Threads: the front's pools at most, never one per waiter.
        assert threading.active_count() <= threads_before + FRONT_THREADS + WAIT_READ_THREADS
        assert not any(poll.done() for poll in polls)
        # Another route answers meanwhile.
        catalogue = await call(front, "GET", "/api/events/all", headers=guest.headers)
        assert catalogue[0] == 200
        await asyncio.to_thread(decide, app, requests, event_id)
        return await asyncio.wait_for(asyncio.gather(*polls), ANSWER_TIMEOUT_S)

    answers = asyncio.run(scenario())
    statuses = [body["data"]["status"] for status, _, body in answers if status == 200]
    assert statuses == ["confirmed"] * (WAITERS // 2) + ["waitlisted"] * (WAITERS // 2)
    assert [body["data"]["requestId"] for _, _, body in answers] == ids


def test_a_long_poll_authenticates_and_checks_ownership_like_the_route(app, client, front):
    host, guest, other = account(client, "host"), account(client, "guest"), account(client, "guest")
    event_id = create_event(client, host, capacity=5)["id"]
    accepted = pending_request(guest, event_id)
    path = f"/api/bookings/requests/{accepted.request_id}"

    async def scenario():
        return (
            await call(front, "GET", path, "wait=30"),
            await call(front, "GET", path, "wait=30", {"Authorization": "Bearer forged.token.value"}),
            await call(front, "GET", path, "wait=30", other.headers),
            await call(front, "GET", path, "wait=31", guest.headers),
            await call(front, "GET", path, "wait=abc", guest.headers),
        )

    anonymous, forged, foreign, too_long, not_a_number = asyncio.run(scenario())
    assert (anonymous[0], forged[0], foreign[0], too_long[0], not_a_number[0]) == (401, 401, 404, 400, 400)
    assert foreign[2] == client.get(path, headers=other.headers).get_json()
    assert too_long[2] == client.get(path + "?wait=31", headers=guest.headers).get_json()
    assert subscribed(app, [accepted.request_id]) == 0


def test_a_final_outcome_answers_at_once_and_the_deadline_answers_pending(app, client, front):
    host, guest = account(client, "host"), account(client, "guest")
    event_id = create_event(client, host, capacity=5)["id"]
    decided = book(client, guest, event_id, 2)  # the embedded pipeline decides before it answers
    accepted = pending_request(guest, event_id)

    async def scenario():
        final = await call(front, "GET", f"/api/bookings/requests/{decided['requestId']}", "wait=30", guest.headers)
        pending = await call(front, "GET", f"/api/bookings/requests/{accepted.request_id}", "wait=0.2", guest.headers)
        return final, pending

    final, pending = asyncio.run(scenario())
    assert final[0] == 200 and final[2]["data"]["status"] == "confirmed"
    assert pending[0] == 200 and pending[2]["data"]["status"] == "pending"
    assert pending[2]["data"]["requestId"] == accepted.request_id


def pending_wait(client):
    """A guest's pending request for a fresh event: (event id, guest, the request, its status path)."""
    host, guest = account(client, "host"), account(client, "guest")
    event_id = create_event(client, host, capacity=5)["id"]
    accepted = pending_request(guest, event_id)
    return event_id, guest, accepted, f"/api/bookings/requests/{accepted.request_id}"


def count_reads(front) -> list[int]:
    """The statuses of the reads the front runs from now on, in the order they were done."""
    reads_done: list[int] = []
    run_wsgi = front._run_wsgi

    def counted(environ):
        response = run_wsgi(environ)
        reads_done.append(response.status)
        return response

    front._run_wsgi = counted  # what the read lane's threads run, looked up per request
    return reads_done


@contextlib.asynccontextmanager
async def every_read_thread_busy(front):
    """Every thread of the front's read lane busy for the block; after it, they are let go and
    a read still queued has had the time to run."""
    release = threading.Event()
    busy = [asyncio.ensure_future(front.read_lane.run(release.wait, 30)) for _ in range(WAIT_READ_THREADS)]
    try:
        yield
    finally:
        release.set()
        await asyncio.gather(*busy)
        await asyncio.sleep(0.3)


def test_a_long_poll_answers_by_its_deadline_when_its_reads_queue(app, client, front, caplog):
    """Thousands of outcomes announced at once on an overloaded machine queue their re-reads
    behind each other (a 30 s wait once answered after 79 s in `make bench`). A wait still
    answers within its deadline and DEADLINE_GRACE_S, with its last read (pending), and says
    so in the log; the re-read it gave up is never run; asked again, it answers the outcome."""
    caplog.set_level(logging.WARNING, logger="atomicseats.waiting")
    event_id, guest, accepted, path = pending_wait(client)
    wait_s = 2
    reads_done = count_reads(front)

    async def scenario():
        loop = asyncio.get_running_loop()
        poll = asyncio.create_task(call(front, "GET", path, f"wait={wait_s}", guest.headers))
        await until(lambda: len(reads_done) == 1, "the first read answered pending")
        opened = loop.time()
        async with every_read_thread_busy(front):  # the re-read the announcement asks for queues
            await asyncio.to_thread(decide, app, [accepted], event_id)
            answer = await asyncio.wait_for(poll, ANSWER_TIMEOUT_S)
            took_s = loop.time() - opened
        reads_after = len(reads_done)
        again = await call(front, "GET", path, "wait=5", guest.headers)
        return answer, took_s, reads_after, again

    (status, _, body), took_s, reads_after, again = asyncio.run(scenario())
    assert status == 200 and body["data"]["status"] == "pending"
    assert took_s < wait_s + DEADLINE_GRACE_S + 1.0, took_s
    assert reads_after == 1, "the re-read given up at the deadline ran anyway"
    late = [record for record in caplog.records if record.getMessage() == "http.long_poll.late"]
    assert len(late) == 1 and DEADLINE_GRACE_S <= late[0].late_s < DEADLINE_GRACE_S + 1.0
    assert late[0].status == 200
    assert again[0] == 200 and again[2]["data"]["status"] == "confirmed"


def test_a_long_poll_whose_first_read_queues_past_its_deadline_answers_busy(app, client, front, caplog):
    """Thousands of waits opened at once queue their first reads (37 s behind in `make bench`
    on a slow machine). A first read has no earlier answer to fall back on: one not done by the
    deadline and its grace is given up, never run, and the wait answers the API's 503 with
    Retry-After, in time; asked again once the reads flow, it answers."""
    caplog.set_level(logging.WARNING, logger="atomicseats.waiting")
    event_id, guest, accepted, path = pending_wait(client)
    wait_s = 1
    reads_done = count_reads(front)

    async def scenario():
        loop = asyncio.get_running_loop()
        async with every_read_thread_busy(front):  # the wait's first read queues
            opened = loop.time()
            poll = call(front, "GET", path, f"wait={wait_s}", guest.headers)
            answer = await asyncio.wait_for(poll, ANSWER_TIMEOUT_S)
            took_s = loop.time() - opened
        reads_after = len(reads_done)
        again = await call(front, "GET", path, "wait=0.5", guest.headers)
        return answer, took_s, reads_after, again

    (status, headers, body), took_s, reads_after, again = asyncio.run(scenario())
    assert status == 503 and headers["retry-after"] == str(UNREAD_RETRY_AFTER_S), (status, headers)
    assert body == {"statusCode": 503, "code": "busy", "message": ServiceBusy().message, "errors": {}}
    assert wait_s + DEADLINE_GRACE_S <= took_s < wait_s + DEADLINE_GRACE_S + 1.0, took_s
    assert reads_after == 0, "the first read given up at the deadline ran anyway"
    late = [record for record in caplog.records if record.getMessage() == "http.long_poll.late"]
    assert [record.status for record in late] == [503]
    assert again[0] == 200 and again[2]["data"]["status"] == "pending"


def test_every_other_request_goes_through_to_the_flask_app(app, client, front):
    host, guest = account(client, "host"), account(client, "guest")
    event_id = create_event(client, host, capacity=5)["id"]
    body = json.dumps({"eventId": event_id, "numberOfSeats": 2}).encode()
    json_headers = {**guest.headers, "Content-Type": "application/json", "Content-Length": str(len(body))}
    too_big = b'{"eventId": 1, "pad": "' + b"x" * (70 * 1024) + b'"}'
    chunked_headers = {**guest.headers, "Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    expected_catalogue = client.get("/api/events/all").get_json()

    async def scenario():
        return (
            await call(front, "GET", "/api/events/all"),
            await call(front, "POST", "/api/events/book", headers=json_headers, body=body),
            await call(front, "POST", "/api/events/book", headers=chunked_headers, body=too_big),
            await call(front, "GET", "/healthz"),
        )

    catalogue, booked, refused, health = asyncio.run(scenario())
    assert catalogue[0] == 200
    assert catalogue[2] == expected_catalogue
    assert booked[0] == 202 and booked[2]["data"]["status"] == "confirmed"
    assert refused[0] == 413
    assert health[0] == 200


def test_without_redis_the_front_leaves_waiting_to_the_flask_app(database_url):
    """The embedded default has no pub/sub: the Flask route's own (blocking) wait answers."""
    from tests.conftest import fresh_app

    with fresh_app(database_url, hold_context=False, REDIS_URL="") as application:
        web = application.test_client()
        host, guest = account(web, "host"), account(web, "guest")
        with application.app_context():
            decided = book(web, guest, create_event(web, host, capacity=5)["id"], 1)
        front = create_asgi_app(application, threads=2)
        assert front.hub is None
        path = f"/api/bookings/requests/{decided['requestId']}"
        status, _, body = asyncio.run(call(front, "GET", path, "wait=1", guest.headers))
        asyncio.run(front.close())
    assert status == 200 and body["data"]["status"] == "confirmed"


def test_a_client_that_hangs_up_stops_its_wait_and_leaves_the_channel(app, client, front):
    host, guest = account(client, "host"), account(client, "guest")
    event_id = create_event(client, host, capacity=5)["id"]
    accepted = pending_request(guest, event_id)
    hang_up = asyncio.Event()
    sent = []

    async def scenario():
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": f"/api/bookings/requests/{accepted.request_id}",
            "query_string": b"wait=30",
            "root_path": "",
            "headers": [(b"authorization", guest.headers["Authorization"].encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 5000),
        }
        messages = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive():
            if messages:
                return messages.pop()
            await hang_up.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        poll = asyncio.create_task(front(scope, receive, send))
        await until(lambda: subscribed(app, [accepted.request_id]) == 1, "the waiter subscribed")
        hang_up.set()
        await asyncio.wait_for(poll, ANSWER_TIMEOUT_S)
        await until(lambda: subscribed(app, [accepted.request_id]) == 0, "the channel released")

    asyncio.run(scenario())
    assert sent == []  # nobody to answer
    assert subscribed(app, [accepted.request_id]) == 0


# --- the thread hand-off ------------------------------------------------------------------


def test_the_thread_lane_returns_each_result_to_its_caller_and_raises_its_errors():
    from atomicseats.waiting import ThreadLane

    lane = ThreadLane(3, "test-lane")
    release = threading.Event()

    def work(number: int) -> int:
        release.wait(5)
        if number % 7 == 0:
            raise ValueError(number)
        return number * number

    async def scenario():
        calls = [asyncio.ensure_future(lane.run(work, number)) for number in range(1, 200)]
        await asyncio.sleep(0.05)
        release.set()  # every call finishes in a burst: wake-ups are shared, nothing is lost
        return await asyncio.gather(*calls, return_exceptions=True)

    for _ in range(5):  # each event loop gets threads of its own (a thread of an earlier one once hung a later)
        release.clear()
        answers = asyncio.run(scenario())
        for number, answer in zip(range(1, 200), answers, strict=True):
            if number % 7 == 0:
                assert isinstance(answer, ValueError) and answer.args == (number,)
            else:
                assert answer == number * number
    lane.close()


def test_the_thread_lane_never_runs_a_call_whose_caller_gave_up_while_it_queued():
    from atomicseats.waiting import ThreadLane

    lane = ThreadLane(1, "test-lane")
    release = threading.Event()
    ran: list[int] = []

    async def scenario():
        busy = asyncio.ensure_future(lane.run(release.wait, 5))
        queued = [asyncio.ensure_future(lane.run(ran.append, number)) for number in range(3)]
        await asyncio.sleep(0.05)
        queued[1].cancel()  # its caller gives up while the only thread is busy
        release.set()
        await busy
        return await asyncio.gather(*queued, return_exceptions=True)

    answers = asyncio.run(scenario())
    lane.close()
    assert ran == [0, 2]
    assert answers[0] is None and isinstance(answers[1], asyncio.CancelledError) and answers[2] is None
