"""The idle phase, "a decision within milliseconds when there is no load": one booking at a time
on the idle full stack. Each is POSTed on a kept-alive connection, then waited for with
GET /api/bookings/requests/<id>?wait (the buyer's view), then a short gap lets the decision's
side work (its e-mail) finish, so every booking meets a quiet pipeline.

202 -> decided is measured against the platform's own record: decided_at (written by the
allocation worker, microseconds, this machine's clock) minus the moment the client read the 202
(the same clock). accepted_at -> decided_at (accepted_at is taken when the API starts on the
request, before Kafka's acknowledgement) and the client's 202 -> answer of the wait are printed
beside it."""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from scripts.bench.accounts import create_event
from scripts.bench.common import API_URL, BenchError, fmt, percentile, say
from scripts.bench.outcomes import wait_final
from scripts.bench.stack import Db

WAIT_S = 10  # each booking's ?wait=: far above any idle decision
HTTP_TIMEOUT_S = WAIT_S + 20
FLOOR_IDLE_P99_MS = 30.0  # issue 12: one booking at a time on an idle stack, p99 202 -> decided
QUANTILES = (50, 99, 99.9)


@dataclass
class IdleResult:
    count: int
    gap_ms: float
    from_202_ms: list[float] = field(default_factory=list)  # 202 read by the client -> decided_at
    accepted_ms: list[float] = field(default_factory=list)  # accepted_at -> decided_at
    recorded_ms: list[float] = field(default_factory=list)  # 202 read -> created_at (the bridge's recording)
    seen_ms: list[float] = field(default_factory=list)  # 202 read -> the wait's answer read
    http_ms: list[float] = field(default_factory=list)  # the POST's round trip
    not_final: int = 0  # bookings whose wait answered without a final outcome
    lost: int = 0  # bookings with no decision even after the drain
    booked_ids: list[str] = field(default_factory=list)

    def p99_ms(self) -> float:
        return percentile(self.from_202_ms, 99)

    def quantiles(self, values: list[float]) -> str:
        return " / ".join(fmt(percentile(values, q), 1) for q in QUANTILES)

    def lines(self) -> list[str]:
        floor = "ok" if self.p99_ms() <= FLOOR_IDLE_P99_MS else "ABOVE FLOOR"
        return [
            f"idle phase: {self.count} bookings one at a time, {self.gap_ms:g} ms apart; "
            f"p50 / p99 / p99.9 (ms; with {self.count} samples p99.9 is the slowest):",
            f"  202 -> decided (decided_at - 202 read)   {self.quantiles(self.from_202_ms)}   "
            f"floor p99 <= {FLOOR_IDLE_P99_MS:g}: {floor}",
            f"  202 -> recorded by the bridge (created_at) {self.quantiles(self.recorded_ms)}",
            f"  accepted_at -> decided_at                {self.quantiles(self.accepted_ms)}",
            f"  202 -> ?wait answered (client)           {self.quantiles(self.seen_ms)}",
            f"  POST /api/events/book (client)           {self.quantiles(self.http_ms)}",
            f"  not final when the wait answered: {self.not_final}; lost: {self.lost}",
        ]


def measure_idle(
    db: Db, host_token: str, guest_tokens: list[str], count: int, gap_ms: float, drain_timeout_s: float
) -> IdleResult:
    """`count` bookings of one seat for a fresh event, strictly one after another."""
    event_id = create_event(API_URL, host_token, "Idle bookings", max(count, 1) * 2)
    say(f"idle phase: {count} bookings one at a time ({gap_ms:g} ms apart), event {event_id}")
    result = IdleResult(count=count, gap_ms=gap_ms)
    read_202_at: dict[str, float] = {}
    client = Client(API_URL)
    run_tag = f"{time.time_ns():x}"
    try:
        for index in range(count):
            token = guest_tokens[index % len(guest_tokens)]
            started = time.monotonic()
            request_id = client.book(token, event_id, f"idle-{run_tag}-{index}")
            read_202_at[request_id] = time.time()
            answered = time.monotonic()
            status = client.wait(token, request_id)
            result.http_ms.append((answered - started) * 1000)
            result.seen_ms.append((time.monotonic() - answered) * 1000)
            result.not_final += status == "pending"
            result.booked_ids.append(request_id)
            time.sleep(gap_ms / 1000)
    finally:
        client.close()
    wait_final(db, [event_id], set(result.booked_ids), drain_timeout_s, "idle drain")
    rows = db.rows(
        "SELECT request_id, accepted_at, created_at, decided_at FROM booking_requests WHERE request_id = ANY(%s)",
        (result.booked_ids,),
    )
    result.from_202_ms, result.recorded_ms, result.accepted_ms = idle_latencies(rows, read_202_at)
    result.lost = count - len(result.from_202_ms)
    return result


def idle_latencies(rows: list[tuple], read_202_at: dict[str, float]) -> tuple[list[float], list[float], list[float]]:
    """(202 read -> decided_at, 202 read -> created_at, accepted_at -> decided_at) in ms, for the
    rows (request_id, accepted_at, created_at, decided_at) with a decision."""
    from_202, to_recorded, from_accepted = [], [], []
    for request_id, accepted_at, created_at, decided_at in rows:
        if decided_at is None or request_id not in read_202_at:
            continue
        decided_s, read_s = epoch_s(decided_at), read_202_at[request_id]
        from_202.append((decided_s - read_s) * 1000)
        to_recorded.append((epoch_s(created_at) - read_s) * 1000)
        if accepted_at is not None:
            from_accepted.append((decided_s - epoch_s(accepted_at)) * 1000)
    return from_202, to_recorded, from_accepted


def epoch_s(moment: datetime) -> float:
    """Seconds since the epoch of a stored UTC time (aware, or naive UTC)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class Client:
    """One kept-alive HTTP/1.1 connection to the API (no connect in any measured round trip)."""

    def __init__(self, api: str) -> None:
        url = urlsplit(api)
        self.connection = http.client.HTTPConnection(url.hostname, url.port, timeout=HTTP_TIMEOUT_S)

    def call(self, method: str, path: str, token: str, body: dict | None = None, key: str | None = None) -> dict:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        if key:
            headers["Idempotency-Key"] = key
        data = None if body is None else json.dumps(body).encode()
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        payload = response.read()
        if response.status >= 300:
            raise BenchError(f"idle phase: {method} {path} -> {response.status}: {payload[:300]!r}")
        return json.loads(payload)

    def book(self, token: str, event_id: int, key: str) -> str:
        body = {"eventId": event_id, "numberOfSeats": 1}
        return self.call("POST", "/api/events/book", token, body, key)["data"]["requestId"]

    def wait(self, token: str, request_id: str) -> str:
        return self.call("GET", f"/api/bookings/requests/{request_id}?wait={WAIT_S}", token)["data"]["status"]

    def close(self) -> None:
        self.connection.close()
