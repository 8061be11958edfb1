"""The waits phase, "waiting never blocks the API": with decisions paused, W requests wait as
`pending`; the other routes are sampled with no wait open, then with W long polls open; then the
decisions resume and every wait must answer with its final outcome (a wait whose deadline comes
first answers `pending` and is asked again, as a client does: counted apart)."""

from __future__ import annotations

import collections
import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from scripts.bench.accounts import Events
from scripts.bench.backlog import produce_backlog
from scripts.bench.common import API_URL, fmt, percentile, say
from scripts.bench.outcomes import final_ids, wait_final
from scripts.bench.stack import Db, Stack

WAIT_S = 30  # each long poll's ?wait= (LONG_POLL_WAIT_S_MAX)
ASK_FOR_S = 2 * WAIT_S  # a poll answered `pending` asks again until then (decisions resumed late)
BUSY = "HTTP 503"  # the server could not read the status by the wait's deadline: ask again after Retry-After
ASK_AGAIN = frozenset({"pending", BUSY})
SAMPLE_CLIENTS = 4  # clients of the other routes, each back to back
SAMPLE_TIMEOUT_S = 30.0


@dataclass
class RouteSample:
    """Answer times of the other routes over a few seconds."""

    ms: dict[str, list[float]]
    failures: int

    def quantile(self, q: float, route: str | None = None) -> float:
        values = self.ms.get(route, []) if route else [v for vs in self.ms.values() for v in vs]
        return percentile(values, q)

    def describe(self) -> str:
        parts = [
            f"{route} p50 {fmt(percentile(values, 50), 1)} / p99 {fmt(percentile(values, 99), 1)} ms "
            f"({len(values)} answers)"
            for route, values in self.ms.items()
        ]
        return "; ".join(parts) + f"; failures {self.failures}"


@dataclass
class WaitsResult:
    count: int
    open_s: float
    subscribed: int
    idle: RouteSample
    waiting: RouteSample
    answered_final: int
    answered_final_first: int  # at the first wait; the others asked again after `pending`
    asked_again: int
    busy: int  # waits answered 503 (the first read given up) and asked again
    answered_pending: int
    errors: int
    error_kinds: dict[str, int]  # an HTTP status or the client's exception, and how many
    last_answer_s: float  # after decisions resumed
    slowest_answer_s: float  # the longest time from a poll's request to its answer (a wait is WAIT_S)
    lost: int
    booked_ids: list[str]


def sample_routes(api: str, tokens: list[str], event_id: int, seconds: float) -> tuple[RouteSample, list[str]]:
    """SAMPLE_CLIENTS clients alternate GET /api/events/all and POST /api/events/book for
    `seconds`; returns the answer times and the ids of the bookings accepted."""
    ms: dict[str, list[float]] = {"GET /api/events/all": [], "POST /api/events/book": []}
    booked: list[str] = []
    failures = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        turn = index
        while time.monotonic() < deadline:
            token = tokens[turn % len(tokens)]
            is_book = turn % 2 == 1
            route = "POST /api/events/book" if is_book else "GET /api/events/all"
            body = json.dumps({"eventId": event_id, "numberOfSeats": 1}).encode() if is_book else None
            request = urllib.request.Request(f"{api}{route.split(' ')[1]}", data=body, method=route.split(" ")[0])
            request.add_header("Authorization", f"Bearer {token}")
            request.add_header("Content-Type", "application/json")
            started = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=SAMPLE_TIMEOUT_S) as response:
                    payload = json.loads(response.read() or b"{}")
                    elapsed_ms = (time.monotonic() - started) * 1000
                with lock:
                    ms[route].append(elapsed_ms)
                    if is_book:
                        booked.append(payload["data"]["requestId"])
            except (urllib.error.URLError, OSError, ValueError, KeyError):
                with lock:
                    failures[0] += 1
                    ms[route].append(SAMPLE_TIMEOUT_S * 1000)
            turn += SAMPLE_CLIENTS

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(SAMPLE_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + SAMPLE_TIMEOUT_S + 5)
    return RouteSample(ms, failures[0]), booked


class LongPolls:
    """`count` long polls on one asyncio loop in a thread: raw HTTP/1.1, one connection each."""

    def __init__(self, api: str, polls: list[tuple[str, str]]) -> None:
        from urllib.parse import urlsplit

        url = urlsplit(api)
        self.host, self.port = url.hostname, url.port
        self.polls = polls
        self.answers: list = []
        self.answered_at: list[float] = []
        self.took_s: list[float] = []  # each answer's time from its request
        self.final_first = 0  # polls whose first wait answered a final outcome
        self.asked_again = 0  # waits that answered `pending` and were asked again
        self.busy = 0  # waits whose first read the server gave up (503), asked again after Retry-After
        self.thread = threading.Thread(target=self._run, name="bench-long-polls", daemon=True)

    def start(self) -> None:
        self.thread.start()

    @property
    def slowest_s(self) -> float:
        """The longest time from a request to its answer (a wait is WAIT_S)."""
        return max(self.took_s, default=0.0)

    async def _one(self, request_id: str, token: str):
        """Long-polls until the request is final, as a client does: a wait that answers
        `pending` (its deadline came first) is asked again, and so is one the server was too
        busy to read (503: after its Retry-After), until ASK_FOR_S have passed."""
        import asyncio

        started = time.monotonic()
        answer, retry_after_s = await self._ask(request_id, token)
        if answer not in ASK_AGAIN:
            self.final_first += 1
        while answer in ASK_AGAIN and time.monotonic() - started < ASK_FOR_S:
            if answer == BUSY:
                self.busy += 1
                await asyncio.sleep(retry_after_s)
            else:
                self.asked_again += 1
            answer, retry_after_s = await self._ask(request_id, token)
        return answer

    async def _ask(self, request_id: str, token: str) -> tuple[str, float]:
        """One wait: (the request's status, or `HTTP <status>`; the answer's Retry-After in seconds, or 0)."""
        import asyncio

        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(
                (
                    f"GET /api/bookings/requests/{request_id}?wait={WAIT_S} HTTP/1.1\r\n"
                    f"Host: {self.host}:{self.port}\r\nAuthorization: Bearer {token}\r\n"
                    "Connection: close\r\n\r\n"
                ).encode()
            )
            await writer.drain()
            sent = time.monotonic()
            raw = await asyncio.wait_for(reader.read(), WAIT_S + 60)
        finally:
            writer.close()
        self.answered_at.append(time.monotonic())
        self.took_s.append(self.answered_at[-1] - sent)
        head, _, body = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 200:
            return f"HTTP {status}", _retry_after_s(head)
        return json.loads(body)["data"]["status"], 0.0

    def _run(self) -> None:
        import asyncio

        async def everyone():
            return await asyncio.gather(*(self._one(rid, token) for rid, token in self.polls), return_exceptions=True)

        self.answers = asyncio.run(everyone())


def _retry_after_s(head: bytes) -> float:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"retry-after":
            return float(value.strip())
    return 1.0


def subscribed_count(client, request_ids: list[str]) -> int:
    from atomicseats.adapters.redis_state import outcome_channel

    count = 0
    for first in range(0, len(request_ids), 500):
        channels = [outcome_channel(rid) for rid in request_ids[first : first + 500]]
        count += sum(1 for _, subscribers in client.pubsub_numsub(*channels) if subscribers > 0)
    return count


def measure_waits(stack: Stack, db: Db, service_env: dict, events: Events, accounts: dict, args) -> WaitsResult:
    """Decisions are paused by stopping the bridge (it starts again in ~3 s; the worker takes
    10-30 s on a busy 2-core machine, as long as a whole wait): the requests wait in Kafka,
    and the API knows them from the request registry, as it knows every request it accepted."""
    import redis

    count = args.waits
    say(f"waits phase: bridge stopped, {count} requests for a fresh event accepted (pending), then {count} long polls")
    stack.platform("stop", "bridge")
    tokens = accounts["guest_tokens"]
    idle, booked_idle = sample_routes(API_URL, tokens, events.warmup, args.waits_sample)
    say(f"  other routes, no wait open: {idle.describe()}")
    client = redis.Redis.from_url(service_env["REDIS_URL"], socket_timeout=10)
    ids = pending_requests(client, service_env, events.waits, accounts, args)
    polls, subscribed, open_s = open_waits(client, ids, tokens)
    waiting, booked_waiting = sample_routes(API_URL, tokens, events.warmup, args.waits_sample)
    say(f"  other routes, {subscribed} waits open: {waiting.describe()}")
    final, pending, last_s = resume_decisions(stack, polls, len(ids))
    wait_final(db, [events.waits], set(ids), args.drain_timeout, "waits-phase requests")
    lost = len(set(ids) - final_ids(db, [events.waits]))
    client.close()
    return WaitsResult(
        count=count,
        open_s=open_s,
        subscribed=subscribed,
        idle=idle,
        waiting=waiting,
        answered_final=final,
        answered_final_first=polls.final_first,
        asked_again=polls.asked_again,
        busy=polls.busy,
        answered_pending=pending,
        errors=len(ids) - final - pending,
        error_kinds=error_kinds(polls.answers),
        last_answer_s=last_s,
        slowest_answer_s=polls.slowest_s,
        lost=lost,
        booked_ids=booked_idle + booked_waiting,
    )


def pending_requests(client, service_env: dict, event_id: int, accounts: dict, args) -> list[str]:
    """args.waits requests for the event, on Kafka and claimed in the request registry as the
    API does (so they read `pending`); their ids."""
    from atomicseats.adapters.redis_state import RedisRequestRegistry

    ids, _ = produce_backlog(
        service_env["KAFKA_BROKERS"],
        event_id,
        accounts["guest_ids"],
        args.waits,
        args.seed + 7,
        registry=RedisRequestRegistry(client),
    )
    return ids


def open_waits(client, ids: list[str], tokens: list[str]) -> tuple[LongPolls, int, float]:
    """A long poll per request, each with its owner's token; returns once all are subscribed
    (or after half a wait): (the polls, how many are subscribed, seconds it took)."""
    polls = LongPolls(API_URL, [(rid, tokens[index % len(tokens)]) for index, rid in enumerate(ids)])
    opened = time.monotonic()
    polls.start()
    subscribed = 0
    while time.monotonic() - opened < WAIT_S / 2:
        subscribed = subscribed_count(client, ids)
        if subscribed >= len(ids):
            break
        time.sleep(0.5)
    open_s = time.monotonic() - opened
    say(f"  {subscribed} of {len(ids)} waits open and subscribed after {open_s:.1f}s")
    return polls, subscribed, open_s


def error_kinds(answers: list) -> dict[str, int]:
    """What the polls that did not answer with a status got instead: `HTTP 503`, or the
    client's exception (`TimeoutError`: no answer within WAIT_S + 60 s)."""
    kinds = collections.Counter(
        type(answer).__name__ if isinstance(answer, BaseException) else answer
        for answer in answers
        if isinstance(answer, BaseException) or str(answer).startswith("HTTP ")
    )
    return dict(kinds.most_common())


def described(kinds: dict[str, int]) -> str:
    """` (HTTP 503 3, TimeoutError 2)`, or nothing when there were none."""
    return f" ({', '.join(f'{kind} {number}' for kind, number in kinds.items())})" if kinds else ""


def resume_decisions(stack: Stack, polls: LongPolls, count: int) -> tuple[int, int, float]:
    """Start the bridge and collect the waits' answers: (final, still pending, seconds from the
    bridge start to the last answer)."""
    started = time.monotonic()
    finish = stack.start_async("bridge")
    polls.thread.join(ASK_FOR_S + WAIT_S + 90)
    finish()
    answers = polls.answers
    final = sum(1 for answer in answers if answer in ("confirmed", "partial", "waitlisted", "rejected"))
    pending = sum(1 for answer in answers if answer == "pending")
    last_s = max(polls.answered_at, default=started) - started
    say(
        f"  decisions resumed: {final} waits answered final ({polls.final_first} at the first wait, the others "
        f"after {polls.asked_again} waits that answered pending and {polls.busy} answered busy (503) were asked "
        f"again), {pending} pending, "
        f"{count - final - pending} errors{described(error_kinds(answers))}; last answer {last_s:.1f}s after "
        f"the bridge start, slowest {polls.slowest_s:.1f}s after its request (wait={WAIT_S})"
    )
    return final, pending, last_s
