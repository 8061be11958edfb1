"""Outcomes, read from Postgres: waiting until requests are final (the drain), the outbox,
accepted -> final latencies, decision rates, and the checks (oversold seats, lost requests)."""

from __future__ import annotations

import bisect
import math
import time
from dataclasses import dataclass
from datetime import datetime

from scripts.bench.common import fmt, percentile, say
from scripts.bench.cpu import CpuReport
from scripts.bench.stack import Db


def wait_final(db: Db, event_ids: list[int], expected_ids: set[str], deadline_s: float, what: str) -> float:
    """Wait until every expected id is final and nothing of these events is pending.
    Gives up at the deadline, or after 60 s with nothing pending and no progress."""
    started = time.monotonic()
    last_progress, last_final = started, -1
    while True:
        final, pending = db.one(
            "SELECT count(*) FILTER (WHERE status <> 'pending'), count(*) FILTER (WHERE status = 'pending')"
            " FROM booking_requests WHERE event_id = ANY(%s)",
            (event_ids,),
        )
        now = time.monotonic()
        if final != last_final:
            last_final, last_progress = final, now
        if final >= len(expected_ids) and pending == 0:
            missing = expected_ids - final_ids(db, event_ids)
            if not missing:
                return now - started
        if now - started > deadline_s:
            say(f"{what}: deadline {deadline_s:.0f}s reached with {pending} pending")
            return now - started
        if pending == 0 and now - last_progress > 60:
            say(f"{what}: nothing pending and no progress for 60s; some requests never arrived")
            return now - started
        time.sleep(0.25)


BATCH_EMAILS = 200  # the outbox's batch (limits.OUTBOX_BATCH_SIZE_MAX): a mailer with this many waiting is busy


@dataclass
class MailerFigures:
    """The e-mails of one window of decisions, from the timestamps the outbox records: the
    mailer's rate while it had work, and the lag from the decision (the row is written with it)
    to the SMTP server's acceptance (`sent_at`)."""

    sent: int
    unsent: int
    busy_s: int
    busy_per_s: float
    lag_p50_ms: float
    lag_p99_ms: float

    def describe(self) -> str:
        unsent = f", {self.unsent} not sent" if self.unsent else ""
        return (
            f"{self.sent} e-mails{unsent}: mailer {fmt(self.busy_per_s)} e-mails/s over {self.busy_s}s with "
            f"a backlog; decided -> sent p50 {fmt(self.lag_p50_ms)} ms, p99 {fmt(self.lag_p99_ms)} ms"
        )


def mailer_figures(
    rows: list[tuple[datetime, datetime | None]], paused: tuple[datetime, datetime] | None = None
) -> MailerFigures:
    """rows: (created_at, sent_at) of a window's e-mails. The rate counts only the seconds the
    mailer had at least a batch waiting at their start and at their end (the whole second busy),
    so neither an empty outbox nor a trickle of new decisions makes it look slower than it is; if
    no second was that busy, it is e-mails over the span from the first to the last send.
    `paused`: while the bench had the mailer stopped (the stages phase), whose seconds are left
    out of the rate (the lags keep them: an e-mail waited that long)."""
    sent = sorted((created, done) for created, done in rows if done is not None)
    lags = [(done - created).total_seconds() * 1000 for created, done in sent]
    unsent = len(rows) - len(sent)
    if not sent:
        return MailerFigures(0, unsent, 0, float("nan"), float("nan"), float("nan"))
    created_times = sorted(created.timestamp() for created, _ in rows)
    sent_times = sorted(done.timestamp() for _, done in sent)
    first, last = math.floor(sent_times[0]), math.floor(sent_times[-1])

    def backlog(moment: float) -> int:
        return bisect.bisect_right(created_times, moment) - bisect.bisect_right(sent_times, moment)

    def running(second: int) -> bool:
        return paused is None or not (paused[0].timestamp() < second + 1 and second < paused[1].timestamp())

    busy_s, busy_sent = 0, 0
    for second in range(first, last):
        if running(second) and backlog(second) >= BATCH_EMAILS and backlog(second + 1) >= BATCH_EMAILS:
            busy_s += 1
            busy_sent += bisect.bisect_left(sent_times, second + 1) - bisect.bisect_left(sent_times, second)
    if busy_s:
        rate = busy_sent / busy_s
    else:
        span = sent_times[-1] - sent_times[0]
        rate = len(sent) / span if span > 0 else float("nan")
    return MailerFigures(len(sent), unsent, busy_s, rate, percentile(lags, 50), percentile(lags, 99))


@dataclass
class OutboxDrain:
    emails_at_start: int
    unpublished_at_start: int
    seconds: float
    emails_left: int
    unpublished_left: int
    mailer: MailerFigures | None = None  # the window's e-mails, when wait_outbox was given one
    cpu: CpuReport | None = None  # each process group's CPU while waiting, when measured

    def describe(self) -> str:
        rate = (self.emails_at_start - self.emails_left) / self.seconds if self.seconds > 0 else float("nan")
        left = (
            ""
            if not (self.emails_left or self.unpublished_left)
            else f"; NOT drained: {self.emails_left} e-mails, {self.unpublished_left} domain events left"
        )
        return (
            f"{self.emails_at_start} e-mails and {self.unpublished_at_start} domain events pending; "
            f"waited {self.seconds:.1f}s ({fmt(rate)} e-mails/s){left}"
        )


def wait_outbox(
    db: Db,
    deadline_s: float,
    window: tuple[datetime, datetime | None] | None = None,
    paused: tuple[datetime, datetime] | None = None,
) -> OutboxDrain:
    """Wait until the outbox has sent every e-mail and published every domain event; with a
    `window` (decisions made from .. to, None: until now), the mailer's figures for its e-mails
    (`paused`: see mailer_figures)."""
    query = (
        "SELECT count(*) FILTER (WHERE channel = 'email' AND status = 'pending'),"
        " count(*) FILTER (WHERE published_at IS NULL) FROM outbox"
    )
    started = time.monotonic()
    emails0, unpublished0 = db.one(query)
    emails, unpublished = emails0, unpublished0
    while (emails or unpublished) and time.monotonic() - started < deadline_s:
        time.sleep(0.5)
        emails, unpublished = db.one(query)
    drain = OutboxDrain(emails0, unpublished0, time.monotonic() - started, emails, unpublished)
    if window is not None:
        since, until = window
        drain.mailer = mailer_figures(
            db.rows(
                "SELECT created_at, sent_at FROM outbox WHERE channel = 'email' AND created_at >= %s"
                " AND (%s::timestamptz IS NULL OR created_at < %s)",
                (since, until, until),
            ),
            paused,
        )
    return drain


def final_ids(db: Db, event_ids: list[int]) -> set[str]:
    rows = db.rows(
        "SELECT request_id FROM booking_requests WHERE event_id = ANY(%s) AND status <> 'pending'", (event_ids,)
    )
    return {row[0] for row in rows}


@dataclass
class Latency:
    count: int
    p50_ms: float
    p99_ms: float
    record_p50_ms: float
    record_p99_ms: float
    max_ms: float


def request_times(db: Db, event_ids: list[int]) -> list[tuple]:
    """(request_id, accepted_at, created_at, decided_at) of every request for these events: the
    platform's own timestamps (accepted by the API, recorded by the bridge, decided)."""
    return db.rows(
        "SELECT request_id, accepted_at, created_at, decided_at FROM booking_requests WHERE event_id = ANY(%s)",
        (event_ids,),
    )


def latencies_ms(rows: list[tuple], ids: set[str]) -> tuple[list[float], list[float]]:
    """(accepted -> decided, accepted -> recorded) in ms, from request_times' rows, of the
    requests in `ids` (every row when `ids` is empty)."""
    decided, recorded = [], []
    for request_id, accepted_at, created_at, decided_at in rows:
        if ids and request_id not in ids or accepted_at is None:
            continue
        if decided_at is not None:
            decided.append((decided_at - accepted_at).total_seconds() * 1000)
        if created_at is not None:
            recorded.append((created_at - accepted_at).total_seconds() * 1000)
    return decided, recorded


def outcome_latency(rows: list[tuple], ids: set[str]) -> Latency:
    """rows: (request_id, accepted_at, created_at, decided_at)."""
    decided, recorded = latencies_ms(rows, ids)
    return Latency(
        count=len(decided),
        p50_ms=percentile(decided, 50),
        p99_ms=percentile(decided, 99),
        record_p50_ms=percentile(recorded, 50),
        record_p99_ms=percentile(recorded, 99),
        max_ms=max(decided) if decided else float("nan"),
    )


def oversold_pg(db: Db) -> tuple[int, int, list[str]]:
    rows = db.rows(
        "SELECT e.id, e.capacity_seats, e.reserved_seats,"
        " COALESCE((SELECT sum(b.seats) FROM bookings b WHERE b.event_id = e.id AND b.status = 'confirmed'), 0)"
        " FROM events e"
    )
    return count_oversold(rows)


def count_oversold(rows) -> tuple[int, int, list[str]]:
    oversold, mismatched, notes = 0, 0, []
    for event_id, capacity, reserved, confirmed in rows:
        confirmed = int(confirmed)
        if confirmed > capacity:
            oversold += confirmed - capacity
            notes.append(f"event {event_id}: {confirmed} confirmed > capacity {capacity}")
        if confirmed != reserved:
            mismatched += 1
            notes.append(f"event {event_id}: reserved_seats {reserved} != confirmed {confirmed}")
    return oversold, mismatched, notes


def decided_rate(db: Db, event_ids: list[int], count: int, started_wall: datetime) -> tuple[float, float, float, float]:
    """(decided/s between the first and the last decision of these events, wall-clock decided/s
    from `started_wall`, the span, the wall time). The first batch is left out of the span
    rate: its decisions carry the span's start time."""
    first, last = db.one(
        "SELECT min(decided_at), max(decided_at) FROM booking_requests"
        " WHERE event_id = ANY(%s) AND status <> 'pending'",
        (event_ids,),
    )
    if first is None:
        return 0.0, 0.0, 0.0, 0.0
    (in_first,) = db.one(
        "SELECT count(*) FROM booking_requests WHERE event_id = ANY(%s) AND decided_at = %s", (event_ids, first)
    )
    span = (last - first).total_seconds()
    wall = (last - started_wall).total_seconds()
    rate = (count - in_first) / span if span > 0 else float("nan")
    return rate, count / wall if wall > 0 else float("nan"), span, wall


def status_counts(db: Db, event_id: int) -> dict[str, int]:
    return dict(
        db.rows("SELECT status, count(*) FROM booking_requests WHERE event_id = %s GROUP BY status", (event_id,))
    )
