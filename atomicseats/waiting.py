"""The API's ASGI front: waiting for an outcome holds no thread (issue 8 point 12).

Full mode runs the API under granian's ASGI interface with this front app. It serves
one route itself, asynchronously: `GET /api/bookings/requests/<id>?wait=N` with N > 0,
the long poll. Every other request goes to the Flask (WSGI) app on a pool of threads,
as before; so does a long poll on the embedded default (`make run`: the same server, no
Redis), which keeps the simple blocking wait of `booking.request_status`.

A long poll here:
  1. joins the process's outcome hub (one Redis pub/sub connection per process, shared by
     every waiter: `AsyncOutcomeHub`) and waits until Redis confirmed the subscription;
  2. reads the status by calling the Flask app itself, in a thread, for the same URL
     with `wait=0`: the same authentication (JWT verified, session live), the same
     ownership check, the same service function and the same JSON envelope. A 4xx, or
     a status that is no longer `pending`, is the answer;
  3. otherwise awaits the announcement (no thread held), re-reads, and so on until the
     deadline; at the deadline the last read is the answer (still `pending`).
Re-reads happen on an announcement, after the pub/sub connection was lost (then every
DEGRADED_RECHECK_S while it is down) and at the deadline: no polling while Redis is up.
Reads run on their own small pool, so a burst of wake-ups never queues ahead of the
other routes' requests. When they queue instead (thousands of outcomes announced at once
on an overloaded machine, or thousands of waits opened at once), a read still waiting
DEADLINE_GRACE_S after the deadline is given up, and the read it gave up is never run: a
re-read's wait answers with the last read (`pending`), a first read's, which has nothing to
fall back on, with the 503 (`busy`, Retry-After) of an overloaded server. Either way a wait
of N s answers within N + that, as the client was promised, and the reads that queue are
shed rather than all run long after their callers stopped caring.

The bridge to the WSGI app is a2wsgi's environ (the ASGI→WSGI mapping, pinned) with a
leaner hand-off than its middleware: the body (at most MAX_CONTENT_LENGTH + 1 bytes) is
read before the thread starts and the response is collected in the thread, so a request
costs one thread hand-off instead of one per body read and per response part. Responses
are small JSON documents or static files; a streaming response would need a2wsgi's
middleware. The hand-off itself is `ThreadLane`, not `run_in_executor`: under load the
loop is woken once per batch of finished requests instead of once per request (each
wake-up is a system call on both sides), and no concurrent.futures.Future is chained
to the asyncio one.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import json
import logging
import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from a2wsgi.asgi_typing import HTTPRequestEvent, Receive, Send
from a2wsgi.wsgi import Body, build_environ
from flask import Flask

from atomicseats.adapters.redis_state import AsyncOutcomeHub
from atomicseats.domain import limits
from atomicseats.domain.states import RequestStatus
from atomicseats.errors import ServiceBusy
from atomicseats.names import CORRELATION_HEADER

log = logging.getLogger(__name__)

WAIT_PATH_PREFIX = "/api/bookings/requests/"
API_THREADS_DEFAULT = 8  # as granian's --blocking-threads for the WSGI interface
WAIT_READ_THREADS = 2  # the waiters' status reads, apart from the other routes' threads
DEADLINE_GRACE_S = 2.0  # a read not done this long after the wait's deadline is given up
UNREAD_RETRY_AFTER_S = 2  # a wait whose first read was given up: when to ask again

Scope = dict


@dataclass
class Captured:
    """A whole WSGI response."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    chunks: list[bytes] = field(default_factory=list)


class ThreadLane:
    """A fixed set of threads that run blocking calls for an event loop.

    `run` queues a call and awaits its result. A thread that finishes a call wakes the loop
    only if no wake-up is already on its way; the loop then settles every finished call at
    once. Threads start with the first call (after granian forks its workers). Each event
    loop gets a crew of its own (tests run one loop per asyncio.run): a thread of an
    earlier loop never takes a later loop's call nor touches its wake-up state."""

    def __init__(self, threads: int, name: str) -> None:
        assert threads >= 1
        self.thread_count = threads
        self.name = name
        self._crew: _LoopCrew | None = None

    async def run(self, function: Callable, *args):
        loop = asyncio.get_running_loop()
        crew = self._crew
        if crew is None or crew.loop is not loop:
            self.close()
            crew = self._crew = _LoopCrew(loop, self.thread_count, self.name)
        return await crew.run(function, args)

    def close(self) -> None:
        crew, self._crew = self._crew, None
        if crew is not None:
            crew.stop()


class _LoopCrew:
    """The threads, the call queue and the wake-up state of a ThreadLane for one loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, threads: int, name: str) -> None:
        self.loop = loop
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._finished: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._is_wake_pending = False
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}_{number}", daemon=True) for number in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    async def run(self, function: Callable, args: tuple):
        future = self.loop.create_future()
        self._calls.put((future, function, args))
        return await future

    def stop(self) -> None:
        for _ in self._threads:
            self._calls.put(None)

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            future, function, args = call
            # Its awaiter gave up while it queued (a long poll past its deadline, a client gone):
            # not run. (Only the loop changes a future; reading its state here is a plain read.)
            if future.cancelled():
                continue
            outcome: tuple[object, BaseException | None]
            try:
                outcome = (function(*args), None)
            except BaseException as error:  # handed to the awaiting coroutine, raised there
                outcome = (None, error)
            self._finished.append((future, outcome))
            with self._lock:
                if self._is_wake_pending:
                    continue  # the wake-up on its way settles this call too
                self._is_wake_pending = True
            try:
                self.loop.call_soon_threadsafe(self._settle)
            except RuntimeError:  # the loop is closed: nobody awaits its calls any more
                return

    def _settle(self) -> None:
        with self._lock:
            self._is_wake_pending = False
        while self._finished:
            future, (result, error) = self._finished.popleft()
            if future.cancelled():
                continue  # its awaiter has gone (the client hung up)
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)


class WaitingFront:
    """ASGI app: the long poll served asynchronously, everything else by the WSGI app."""

    def __init__(self, flask_app: Flask, threads: int, hub: AsyncOutcomeHub | None) -> None:
        assert threads >= 1
        self.flask_app = flask_app
        self.hub = hub
        self.body_bytes_max = int(flask_app.config.get("MAX_CONTENT_LENGTH") or limits.JSON_BODY_BYTES_MAX)
        self.lane = ThreadLane(threads, "wsgi")
        self.read_lane = ThreadLane(WAIT_READ_THREADS, "wait-read")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            wait_s = self._async_wait_of(scope)
            if wait_s is not None:
                await self._long_poll(scope, receive, send, wait_s)
                return
            response = await self._call_flask(scope, receive, self.lane)
            await _send_response(send, response)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def close(self) -> None:
        if self.hub is not None:
            await self.hub.close()
        self.lane.close()
        self.read_lane.close()

    # -- the long poll -----------------------------------------------------------------

    def _async_wait_of(self, scope: Scope) -> float | None:
        """The wait of a long poll this front serves itself, or None (the WSGI app answers:
        not the route, no Redis, no wait, or a wait the query schema will refuse)."""
        if self.hub is None or scope["method"] != "GET" or not scope["path"].startswith(WAIT_PATH_PREFIX):
            return None
        request_id = scope["path"][len(WAIT_PATH_PREFIX) :]
        if "/" in request_id or _canonical_uuid(request_id) is None:
            return None  # unknown route or unknown request: the WSGI app answers at once
        raw_wait = _first_query_value(scope["query_string"], "wait")
        try:
            wait_s = float(raw_wait) if raw_wait is not None else 0.0
        except ValueError:
            return None
        return wait_s if 0 < wait_s <= limits.LONG_POLL_WAIT_S_MAX else None

    async def _long_poll(self, scope: Scope, receive: Receive, send: Send, wait_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        await _discard_body(receive)
        request_id = _canonical_uuid(scope["path"][len(WAIT_PATH_PREFIX) :])
        assert request_id is not None  # _async_wait_of sent only a request id here
        assert self.hub is not None  # and only with a hub
        read_scope = {**scope, "query_string": _with_query_value(scope["query_string"], "wait", "0")}
        # A client that hangs up stops its wait (and leaves its channel) at once.
        disconnected = loop.create_task(_until_disconnected(receive))
        response: Captured | None = None
        try:
            async with self.hub.listen(request_id) as listener:
                while True:
                    read = self._call_flask(read_scope, _no_body, self.read_lane)
                    try:
                        response = await asyncio.wait_for(read, max(0.0, deadline - loop.time()) + DEADLINE_GRACE_S)
                    except TimeoutError:  # the reads queue past the deadline: the last read answers
                        if response is None:
                            response = _unread()
                        break
                    if not _is_pending(response) or loop.time() >= deadline or disconnected.done():
                        break
                    # One correlation id for the whole wait: each re-read logs under it.
                    read_scope = _with_header(read_scope, CORRELATION_HEADER, _header_of(response, CORRELATION_HEADER))
                    remaining_s = min(max(0.0, deadline - loop.time()), limits.LONG_POLL_WAIT_S_MAX)
                    waiting = loop.create_task(listener.wait(remaining_s))
                    await asyncio.wait((waiting, disconnected), return_when=asyncio.FIRST_COMPLETED)
                    if not waiting.done():
                        waiting.cancel()
                        break
        finally:
            is_gone = disconnected.done()
            disconnected.cancel()
        assert response is not None  # the loop's first turn read one, or gave it up
        if not is_gone:
            await _send_response(send, response)
        late_s = loop.time() - deadline
        if late_s > DEADLINE_GRACE_S:  # a read given up (503: the first), or the loop lagged
            log.warning(
                "http.long_poll.late", extra={"wait_s": wait_s, "late_s": round(late_s, 3), "status": response.status}
            )

    # -- the WSGI app ------------------------------------------------------------------

    async def _call_flask(self, scope: Scope, receive: Receive, lane: ThreadLane) -> Captured:
        loop = asyncio.get_running_loop()
        body, is_whole = await _read_body(receive, self.body_bytes_max + 1)
        stream = _PrefetchedBody(loop, receive, body, has_more=not is_whole)
        # Scope is the plain dict the server hands us (copied with changes for re-reads), which
        # a2wsgi types as its HTTPScope TypedDict; its Environ does not list the WSGI extension key.
        environ = build_environ(scope, stream)  # type: ignore[arg-type]
        environ["wsgi.input_terminated"] = True  # type: ignore[typeddict-unknown-key]  # body ends where it ends
        # A fresh context per request, as a WSGI server's thread has: nothing of the event
        # loop's context (or of an earlier request) is visible to Flask's context variables.
        return await lane.run(contextvars.Context().run, self._run_wsgi, environ)

    def _run_wsgi(self, environ: dict) -> Captured:
        started: list[Captured] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info=None):
            response = Captured(
                int(status.split(" ", 1)[0]),
                [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers],
            )
            started[:] = [response]
            return response.chunks.append

        try:
            iterable = self.flask_app(environ, start_response)
            try:
                chunks = [chunk for chunk in iterable if chunk]
            finally:
                getattr(iterable, "close", lambda: None)()
        except Exception:  # Flask renders every error itself; this is the server's last resort
            log.exception("http.wsgi_failed", extra={"path": environ.get("PATH_INFO")})
            return _internal_error()
        if not started:
            return _internal_error()
        response = started[0]
        response.body = b"".join([*response.chunks, *chunks])
        return response


class _PrefetchedBody(Body):
    """a2wsgi's request body stream, starting with what was already read."""

    def __init__(self, loop: asyncio.AbstractEventLoop, receive: Receive, prefetched: bytes, has_more: bool) -> None:
        super().__init__(loop, receive)
        self.buffer.extend(prefetched)
        self._has_more = has_more


async def _read_body(receive: Receive, bytes_max: int) -> tuple[bytes, bool]:
    """Up to `bytes_max` bytes of the body, and whether that was all of it."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(parts), True  # disconnected: what there is, is all there is
        chunk = message.get("body", b"")
        parts.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(parts), True
        if size >= bytes_max:
            return b"".join(parts), False


async def _discard_body(receive: Receive) -> None:
    """A GET's body (there should be none) is read and ignored, as Flask does."""
    await _read_body(receive, 0)


async def _until_disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _no_body() -> HTTPRequestEvent:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send_response(send: Send, response: Captured) -> None:
    await send({"type": "http.response.start", "status": response.status, "headers": response.headers})
    await send({"type": "http.response.body", "body": response.body, "more_body": False})


def _internal_error() -> Captured:
    return _error_response(500, "internal", "Internal error")


def _unread() -> Captured:
    """A wait whose first read was not done by its deadline and grace: the server is too busy to
    read the status in time. The API's 503 (`errors.ServiceBusy`: its code, its message, its
    Retry-After)."""
    busy = ServiceBusy(retry_after_s=UNREAD_RETRY_AFTER_S)
    return _error_response(busy.status, busy.code, busy.message, busy.headers)


def _error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Captured:
    """The API's error envelope (`http.error_response`), built without a Flask request."""
    body = json.dumps({"statusCode": status, "code": code, "message": message, "errors": {}}).encode()
    extra = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()]
    return Captured(
        status, [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra], body
    )


def _is_pending(response: Captured) -> bool:
    if response.status != 200:
        return False
    try:
        return json.loads(response.body)["data"]["status"] == RequestStatus.PENDING
    except (ValueError, KeyError, TypeError):
        return False


def _canonical_uuid(text: str) -> str | None:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def _first_query_value(query_string: bytes, name: str) -> str | None:
    """As Flask's `request.args.to_dict(flat=True)` reads it: the first value of `name`."""
    for pair in query_string.decode("latin-1").split("&"):
        key, _, value = pair.partition("=")
        if unquote_plus(key) == name:
            return unquote_plus(value)
    return None


def _with_query_value(query_string: bytes, name: str, value: str) -> bytes:
    """The query string with the first `name` set to `value`, everything else as sent."""
    pairs = query_string.decode("latin-1").split("&")
    for index, pair in enumerate(pairs):
        if unquote_plus(pair.partition("=")[0]) == name:
            pairs[index] = f"{name}={value}"
            break
    return "&".join(pairs).encode("latin-1")


def _header_of(response: Captured, name: str) -> str | None:
    wanted = name.lower().encode("latin-1")
    return next((value.decode("latin-1") for key, value in response.headers if key == wanted), None)


def _with_header(scope: Scope, name: str, value: str | None) -> Scope:
    if not value:
        return scope
    wanted = name.lower().encode("latin-1")
    headers = [(key, item) for key, item in scope.get("headers", []) if key != wanted]
    return {**scope, "headers": [*headers, (wanted, value.encode("latin-1"))]}


def create_asgi_app(flask_app: Flask | None = None, threads: int | None = None) -> WaitingFront:
    """The composition root of the ASGI front: the Flask app (create_app), its WSGI threads
    (API_THREADS, as granian's --blocking-threads) and, with Redis, the outcome hub."""
    from atomicseats import create_app
    from config import env_int

    flask_app = flask_app if flask_app is not None else create_app()
    threads = threads if threads is not None else env_int("API_THREADS", API_THREADS_DEFAULT, 1, 256)
    redis_url = flask_app.config.get("REDIS_URL")
    hub = AsyncOutcomeHub(redis_url) if redis_url else None
    return WaitingFront(flask_app, threads, hub)
