"""The bare-SQL reference (issue 12 point 3): how fast PostgreSQL itself writes the rows the
allocation worker writes for a hot event's backlog, so the worker's rate reads as a share of it.

    .venv/bin/python -m scripts.bench.reference [--count 30000] [--capacity 1000] [--seed 3]
        [--database-url postgresql://...] [--json FILE]

On a fresh database (`atomicseats_reference`, migrated as the bench's) on the bench stack's
PostgreSQL (or beside the one --database-url names): a host and 200 guests, then per mode one
event like the decide phase's hot events (same capacity, name length, venue, price) and N pending
requests recorded as the bridge records them (same 1-4 seat mix from the same seed as
produce_backlog, so the same split of confirmed / partial / waitlisted / rejected). The decisions
are made before the clock by the allocator itself (domain/allocator.py, the one home of the
rules), in batches of the worker's size (limits.ALLOCATION_BATCH_SIZE_MAX), and every row is
built: the request's outcome, a booking with its id (reserved from the sequence: the e-mail names
it), a waitlist entry, the outbox row the worker writes (services/_notification_rows.py's
outbox_values, the one definition of its payload) and the event's reserved_seats and
waitlist_length.

On the clock, only the writing, with PostgreSQL's fastest bulk path: per batch the event row
locked (SELECT ... FOR UPDATE, as the worker does), COPY FROM STDIN of the outcomes into a
temporary table + one UPDATE booking_requests ... FROM it, COPY into bookings, waitlist_entries
and outbox, the event's reserved_seats and waitlist_length updated. Two modes, each on its own
event: a commit per batch (as the worker commits: the headline) and every batch in one
transaction (what durable commits cost). Commits are durable as the bench's (the server's
synchronous_commit and fsync are printed). Not on the clock: the worker's reads (the pending
requests, the waitlist head) and its work in Python. Then the rows are counted against the
decisions (a mismatch is an error).

CPU: of this process and of its PostgreSQL backend (/proc, same machine) per decision.
A benchmark, not a test: the figure depends on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scripts.bench.common import ROOT, STACK_ENV

DATABASE = "atomicseats_reference"
GUESTS = 200
EVENT_NAME = "Reference hot event {}"  # as long as the decide phase's "Backlog hot event N"
VENUE = "Bench Arena"
PRICE_MINOR = 2500
PER_BATCH, ONE_TRANSACTION = "commit per batch", "one transaction"


# ----------------------------------------------------------------------------- pure: the rows


def seat_mix(count: int, seed: int) -> list[int]:
    """The seats of `count` requests, as produce_backlog draws them from the same seed."""
    rng = random.Random(seed)
    return [rng.randint(1, 4) for _ in range(count)]


@dataclass(frozen=True)
class Recorded:
    """A pending request as the bridge recorded it."""

    row_id: int
    request_id: str
    user_id: int
    seats: int


@dataclass(frozen=True)
class HotEvent:
    id: int
    name: str
    venue: str
    starts_at: datetime
    capacity_seats: int
    price_minor: int


@dataclass
class Batch:
    """One transaction's rows, as COPY text, and the event's reserved seats after it."""

    decided: str
    bookings: str
    waitlist: str
    outbox: str
    reserved_seats: int
    outbox_columns: tuple[str, ...] = ()  # in the order outbox_values gives them
    outcomes: Counter = field(default_factory=Counter)
    bookings_n: int = 0
    waitlist_n: int = 0
    outbox_n: int = 0


def decide(capacity: int, pending: Sequence[Recorded], batch_size: int) -> list[tuple[list[Recorded], object]]:
    """The allocator's decisions, batch after batch as the worker takes them: (batch, Allocation)."""
    from atomicseats.domain import allocator

    state = allocator.EventState(capacity_seats=capacity, reserved_seats=0, is_waitlist_open=True)
    out = []
    for start in range(0, len(pending), batch_size):
        batch = list(pending[start : start + batch_size])
        allocation = allocator.allocate(state, [], [allocator.SeatRequest(r.request_id, r.seats) for r in batch])
        state = allocator.EventState(capacity, allocation.reserved_seats, is_waitlist_open=True)
        out.append((batch, allocation))
    return out


def copy_value(value: object) -> str:
    """One value in COPY's text format: NULL as \\N; backslash, tab, newline and CR escaped."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def copy_text(rows: Iterable[Sequence[object]]) -> str:
    return "".join("\t".join(copy_value(value) for value in row) + "\n" for row in rows)


BOOKING_COLUMNS = ("id", "user_id", "event_id", "booking_request_id", "seats", "cost_minor", "status", "created_at")
WAITLIST_COLUMNS = (
    *("event_id", "user_id", "booking_request_id", "seats_waitlisted", "seats_remaining", "status"),
    *("created_at", "updated_at"),
)


def decision_outbox_values(event: HotEvent, request: Recorded, decision, booking_id: int | None) -> dict[str, object]:
    """The outbox row the worker writes for a decision (services/_allocation.py _write_decisions):
    the same Notification, made into a row by the one definition of the payload."""
    from atomicseats.models import Event
    from atomicseats.services._notification_rows import Notification, outbox_values

    fields = {
        "requestId": request.request_id,
        "seatsRequested": decision.seats_requested,
        "seatsConfirmed": decision.seats_confirmed,
        "seatsWaitlisted": decision.seats_waitlisted,
        "reason": decision.reason,
        "bookingIds": [] if booking_id is None else [booking_id],
    }
    model = Event(id=event.id, name=event.name, venue=event.venue, starts_at=event.starts_at)
    kind = f"booking.{decision.outcome.value}"
    return outbox_values(Notification(kind, request.user_id, model, request.request_id, fields))


def batch_rows(
    event: HotEvent, batch: Sequence[Recorded], allocation, booking_ids: Iterator[int], now: datetime
) -> Batch:
    """Every row one batch's decisions write, as the worker writes them; a booking takes the
    next of `booking_ids` (reserved from the table's sequence)."""
    decided, bookings, waitlist, outbox = [], [], [], []
    outbox_columns: tuple[str, ...] = ()
    outcomes: Counter = Counter()
    for request, decision in zip(batch, allocation.decisions, strict=True):
        assert request.request_id == decision.request_id
        outcome = decision.outcome.value
        outcomes[outcome] += 1
        decided.append((request.row_id, outcome, decision.seats_confirmed, decision.seats_waitlisted, decision.reason))
        booking_id = None
        if decision.seats_confirmed:
            booking_id = next(booking_ids)
            cost = decision.seats_confirmed * event.price_minor
            bookings.append(
                (
                    booking_id,
                    request.user_id,
                    event.id,
                    request.row_id,
                    decision.seats_confirmed,
                    cost,
                    "confirmed",
                    now,
                )
            )
        if decision.seats_waitlisted:
            seats = decision.seats_waitlisted
            waitlist.append((event.id, request.user_id, request.row_id, seats, seats, "waiting", now, now))
        values = decision_outbox_values(event, request, decision, booking_id)
        outbox.append(tuple(values.values()))
        outbox_columns = tuple(values)
    return Batch(
        decided=copy_text(decided),
        bookings=copy_text(bookings),
        waitlist=copy_text(waitlist),
        outbox=copy_text(outbox),
        reserved_seats=allocation.reserved_seats,
        outbox_columns=outbox_columns,
        outcomes=outcomes,
        bookings_n=len(bookings),
        waitlist_n=len(waitlist),
        outbox_n=len(outbox),
    )


def bookings_needed(plan: Sequence[tuple[list[Recorded], object]]) -> int:
    return sum(1 for _batch, allocation in plan for d in allocation.decisions if d.seats_confirmed)


def share_percent(ours_per_s: float, reference_per_s: float) -> float:
    """Our rate as a percentage of the reference's (nan when either is not a positive rate)."""
    if not ours_per_s > 0 or not reference_per_s > 0:
        return float("nan")
    return 100 * ours_per_s / reference_per_s


# ----------------------------------------------------------------------------- results


@dataclass
class ModeResult:
    mode: str
    seconds: float
    commits: int
    client_cpu_s: float  # this process while writing
    backend_cpu_s: float  # its PostgreSQL backend while writing
    server_cpu_s: float = 0.0  # every process of that PostgreSQL server (WAL writer, checkpointer, other backends)

    def per_s(self, count: int) -> float:
        return count / self.seconds if self.seconds > 0 else float("nan")

    def cpu_bound_per_s(self, count: int) -> float:
        """The rate were CPU the only limit (the server's and the script's, no waiting for the
        disk or for a core): what a busy machine's wall rate cannot show."""
        cpu = max(self.server_cpu_s, self.backend_cpu_s) + self.client_cpu_s
        return count / cpu if cpu > 0 else float("nan")


@dataclass
class ReferenceResult:
    count: int
    batch_size: int
    durability: str
    outcomes: dict[str, int]
    rows: dict[str, int]  # rows written per table, each mode alike
    modes: list[ModeResult]

    def mode(self, name: str) -> ModeResult | None:
        return next((m for m in self.modes if m.mode == name), None)

    @property
    def decided_per_s(self) -> float:
        """The headline: a commit per batch, as the worker commits."""
        headline = self.mode(PER_BATCH)
        return headline.per_s(self.count) if headline else float("nan")

    def lines(self) -> list[str]:
        out = []
        for m in self.modes:
            out.append(
                f"reference: bare SQL (COPY) wrote {self.count} decisions in {m.seconds:.2f} s = "
                f"{m.per_s(self.count):.0f}/s ({m.mode}, {m.commits} commits, {self.batch_size} a batch; "
                f"CPU per decision: {1000 * m.backend_cpu_s / self.count:.3f} ms in its PostgreSQL backend, "
                f"{1000 * m.server_cpu_s / self.count:.3f} ms in the whole server, "
                f"{1000 * m.client_cpu_s / self.count:.3f} ms in the script: "
                f"{m.cpu_bound_per_s(self.count):.0f}/s were CPU the only limit)"
            )
        out.append(f"  rows each: {self.rows}; outcomes {self.outcomes}; {self.durability}")
        return out

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ReferenceResult:
        data = json.loads(text)
        data["modes"] = [ModeResult(**m) for m in data["modes"]]
        return cls(**data)


def share_line(worker_per_s: float, reference: ReferenceResult) -> str:
    share = share_percent(worker_per_s, reference.decided_per_s)
    shown = "-" if share != share else f"{share:.0f}%"
    return f"worker alone = {shown} of the bare-SQL reference ({reference.decided_per_s:.0f}/s, {PER_BATCH})"


# ----------------------------------------------------------------------------- PostgreSQL

COPY_DECIDED = "COPY reference_decided (id, status, seats_confirmed, seats_waitlisted, reason) FROM STDIN"
UPDATE_DECIDED = """
UPDATE booking_requests AS request
SET status = decided.status, seats_confirmed = decided.seats_confirmed,
    seats_waitlisted = decided.seats_waitlisted, reason = decided.reason, decided_at = now()
FROM reference_decided AS decided
WHERE request.id = decided.id;
TRUNCATE reference_decided
"""


def copy_sql(table: str, columns: Sequence[str]) -> str:
    return f"COPY {table} ({', '.join(columns)}) FROM STDIN"


def seed_users(cursor, guests: int) -> tuple[int, list[int]]:
    """A host and `guests` guests (whose ids the requests take in turn); returns their ids."""
    tag = uuid.uuid4().hex[:8]
    cursor.execute(
        "INSERT INTO users (username, name, email, password_hash, role, created_at)"
        " SELECT 'ref_' || %s || '_' || i, 'Reference Guest ' || i, 'ref_' || %s || '_' || i || '@bench.example',"
        " 'x', CASE WHEN i = 0 THEN 'host' ELSE 'guest' END, now() FROM generate_series(0, %s) AS i RETURNING id",
        (tag, tag, guests),
    )
    ids = sorted(row[0] for row in cursor.fetchall())
    return ids[0], ids[1:]


def create_event(cursor, host_id: int, capacity: int, number: int) -> HotEvent:
    from atomicseats.domain.search import event_search_text

    name = EVENT_NAME.format(number)
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    cursor.execute(
        "INSERT INTO events (host_id, name, description, venue, search_text, starts_at, ends_at, capacity_seats,"
        " reserved_seats, price_minor, is_waitlist_open, status, created_at, updated_at)"
        " VALUES (%s, %s, 'benchmark event', %s, %s, %s, %s, %s, 0, %s, true, 'published', now(), now()) RETURNING id",
        (
            host_id,
            name,
            VENUE,
            event_search_text(name, VENUE),
            starts,
            starts + timedelta(hours=3),
            capacity,
            PRICE_MINOR,
        ),
    )
    return HotEvent(cursor.fetchone()[0], name, VENUE, starts, capacity, PRICE_MINOR)


def record_pending(cursor, event_id: int, user_ids: list[int], seats: list[int]) -> list[Recorded]:
    """The pending requests as the bridge records them (one COPY; not on the clock), in arrival order."""
    now = datetime.now(UTC)
    rows = []
    for i, n in enumerate(seats):
        request_id = str(uuid.uuid4())
        rows.append(
            (request_id, user_ids[i % len(user_ids)], event_id, n, "pending", 0, 0, 0)
            + (f"bench-{request_id[:8]}", now, 0, i, now)
        )
    columns = (
        *("request_id", "user_id", "event_id", "seats_requested", "status", "seats_confirmed", "seats_waitlisted"),
        *("seats_cancelled", "correlation_id", "accepted_at", "kafka_partition", "kafka_offset", "created_at"),
    )
    cursor.copy_expert(copy_sql("booking_requests", columns), io.StringIO(copy_text(rows)))
    cursor.execute(
        "SELECT id, request_id, user_id, seats_requested FROM booking_requests WHERE event_id = %s ORDER BY id",
        (event_id,),
    )
    return [Recorded(*row) for row in cursor.fetchall()]


def reserve_ids(cursor, table: str, count: int) -> list[int]:
    cursor.execute(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, %s)", (count,))
    return [row[0] for row in cursor.fetchall()]


def proc_stat(pid: int) -> tuple[int, float]:
    """(parent pid, user + system CPU seconds) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    return proc_stat(pid)[1]


def server_cpu_s(backend_pid: int) -> float:
    """CPU seconds of the backend's PostgreSQL server: its postmaster and every child (the
    processes alive now; a backend that ended meanwhile is not counted)."""
    postmaster = proc_stat(backend_pid)[0]
    total = 0.0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            parent, cpu = proc_stat(int(name))
        except (OSError, ValueError, IndexError):
            continue
        if parent == postmaster or int(name) == postmaster:
            total += cpu
    return total


def write(cursor, event_id: int, batches: list[Batch], one_transaction: bool, backend_pid: int | None) -> ModeResult:
    """The clock: every batch's rows written with COPY (autocommit connection: BEGIN/COMMIT are ours)."""
    backend0 = proc_cpu_s(backend_pid) if backend_pid else 0.0
    server0 = server_cpu_s(backend_pid) if backend_pid else 0.0
    client0 = time.process_time()
    started = time.perf_counter()
    try:
        if one_transaction:
            cursor.execute("BEGIN")
        for batch in batches:
            lock = "SELECT reserved_seats FROM events WHERE id = %s FOR UPDATE"
            cursor.execute(lock if one_transaction else "BEGIN; " + lock, (event_id,))
            cursor.copy_expert(COPY_DECIDED, io.StringIO(batch.decided))
            cursor.execute(UPDATE_DECIDED)
            if batch.bookings_n:
                cursor.copy_expert(copy_sql("bookings", BOOKING_COLUMNS), io.StringIO(batch.bookings))
            if batch.waitlist_n:
                cursor.copy_expert(copy_sql("waitlist_entries", WAITLIST_COLUMNS), io.StringIO(batch.waitlist))
            cursor.copy_expert(copy_sql("outbox", batch.outbox_columns), io.StringIO(batch.outbox))
            update = (
                "UPDATE events SET reserved_seats = %s, waitlist_length = waitlist_length + %s, updated_at = now()"
                " WHERE id = %s"
            )
            parameters = (batch.reserved_seats, batch.waitlist_n, event_id)
            cursor.execute(update if one_transaction else update + "; COMMIT", parameters)
        if one_transaction:
            cursor.execute("COMMIT")
    except BaseException:
        cursor.execute("ROLLBACK")
        raise
    seconds = time.perf_counter() - started
    return ModeResult(
        mode=ONE_TRANSACTION if one_transaction else PER_BATCH,
        seconds=seconds,
        commits=1 if one_transaction else len(batches),
        client_cpu_s=time.process_time() - client0,
        backend_cpu_s=(proc_cpu_s(backend_pid) - backend0) if backend_pid else 0.0,
        server_cpu_s=(server_cpu_s(backend_pid) - server0) if backend_pid else 0.0,
    )


def written(cursor, event_id: int) -> tuple[dict[str, int], dict[str, int], int]:
    """(requests per status, rows per table, reserved_seats) of an event, from the database."""
    cursor.execute("SELECT status, count(*) FROM booking_requests WHERE event_id = %s GROUP BY status", (event_id,))
    statuses = dict(cursor.fetchall())
    rows = {}
    for table in ("bookings", "waitlist_entries", "outbox"):
        cursor.execute(f"SELECT count(*) FROM {table} WHERE event_id = %s", (event_id,))  # noqa: S608 - our names
        rows[table] = cursor.fetchone()[0]
    cursor.execute("SELECT reserved_seats FROM events WHERE id = %s", (event_id,))
    return statuses, rows, cursor.fetchone()[0]


def expected(batches: list[Batch]) -> tuple[dict[str, int], dict[str, int], int]:
    outcomes: Counter = Counter()
    for batch in batches:
        outcomes.update(batch.outcomes)
    rows = {
        "bookings": sum(b.bookings_n for b in batches),
        "waitlist_entries": sum(b.waitlist_n for b in batches),
        "outbox": sum(b.outbox_n for b in batches),
    }
    return dict(outcomes), rows, batches[-1].reserved_seats if batches else 0


def backend_pid_here(cursor) -> int | None:
    """The connection's PostgreSQL backend, when it runs on this machine (its /proc is readable)."""
    cursor.execute("SELECT pg_backend_pid()")
    pid = cursor.fetchone()[0]
    return pid if Path(f"/proc/{pid}/stat").exists() else None


def measure(url: str, count: int, capacity: int, seed: int, batch_size: int | None = None) -> ReferenceResult:
    """Both modes on the migrated database at `url`; raises RuntimeError when the rows written
    do not match the decisions."""
    import psycopg2

    from atomicseats.domain import limits

    batch_size = batch_size or limits.ALLOCATION_BATCH_SIZE_MAX
    seats = seat_mix(count, seed)
    connection = psycopg2.connect(url, connect_timeout=10)
    connection.autocommit = True
    modes, outcomes, rows = [], {}, {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            durability = f"synchronous_commit={cursor.fetchone()[0]}"
            cursor.execute("SHOW fsync")
            durability += f" fsync={cursor.fetchone()[0]}"
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS reference_decided (id bigint PRIMARY KEY, status text,"
                " seats_confirmed integer, seats_waitlisted integer, reason text)"
            )
            host_id, user_ids = seed_users(cursor, GUESTS)
            backend_pid = backend_pid_here(cursor)
            for number, one_transaction in ((1, False), (2, True)):
                event = create_event(cursor, host_id, capacity, number)
                plan = decide(capacity, record_pending(cursor, event.id, user_ids, seats), batch_size)
                booking_ids = iter(reserve_ids(cursor, "bookings", bookings_needed(plan)))
                now = datetime.now(UTC)
                batches = [batch_rows(event, batch, allocation, booking_ids, now) for batch, allocation in plan]
                os.sync()  # the COPY of the pending requests is not the writing we time
                modes.append(write(cursor, event.id, batches, one_transaction, backend_pid))
                want, got = expected(batches), written(cursor, event.id)
                if want != got:
                    raise RuntimeError(f"reference rows do not match the decisions: expected {want}, wrote {got}")
                outcomes, rows = want[0], {**want[1], "booking_requests": count}
    finally:
        connection.close()
    return ReferenceResult(count, batch_size, durability, outcomes, rows, modes)


# ----------------------------------------------------------------------------- make bench's phase


def reference_phase(server_url: str, args) -> ReferenceResult | None:
    """make bench's reference, after the decide phase's e-mails are out (a quiet stack): this
    module as a process of its own on a fresh database beside the bench's, the stages phase's
    backlog size, capacity and seed. A failure is reported; the other phases' figures stand."""
    from scripts.bench.common import BIN, WORK, BenchError, run, say

    out = WORK / "reference.json"
    say(f"reference: {args.backlog} decisions written by bare SQL (COPY), per batch and in one transaction")
    command = [str(BIN / "python"), "-m", "scripts.bench.reference", "--database-url", server_url]
    command += ["--count", str(args.backlog), "--capacity", str(args.hot_capacity), "--seed", str(args.seed + 2)]
    try:
        run([*command, "--json", str(out)], {**os.environ, **STACK_ENV}, args.drain_timeout + 300, "reference.log")
        result = ReferenceResult.from_json(out.read_text())
    except (BenchError, OSError, ValueError, TypeError) as error:
        say(f"reference FAILED: {error}")
        return None
    for line in result.lines():
        say(f"  {line}")
    return result


# ----------------------------------------------------------------------------- command


def migrated_database(server_url: str | None) -> str:
    """A fresh `atomicseats_reference` on the bench stack's PostgreSQL (started if need be) or
    beside `server_url`, migrated as the bench's database is."""
    from scripts.bench.stack import fresh_database

    url = fresh_database(server_url, DATABASE)
    from flask_migrate import upgrade

    from atomicseats import create_app

    app = create_app("development", overrides={"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
    return url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.reference", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="a PostgreSQL URL: its server gets a fresh database (the bench stack's)")
    parser.add_argument("--count", type=int, default=30000, help="decisions written in each mode (30000)")
    parser.add_argument("--capacity", type=int, default=1000, help="seats of the hot event (1000)")
    parser.add_argument("--seed", type=int, default=3, help="seed of the seat mix (3: make bench's stages phase)")
    parser.add_argument("--json", help="also write the result to this file as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.count <= 1_000_000 or args.capacity < 1:
        parser.error("out-of-range option")
    url = migrated_database(args.database_url)
    result = measure(url, args.count, args.capacity, args.seed)
    for line in result.lines():
        print(line, flush=True)
    if args.json:
        Path(args.json).write_text(result.to_json())
    print(f"reference_decided_per_s={result.decided_per_s:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
