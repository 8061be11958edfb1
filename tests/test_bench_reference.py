"""`make bench`'s bare-SQL reference (scripts/bench/reference.py): its pure parts (the rows it
builds, COPY's text format, the share), and one run against the test PostgreSQL with a small
backlog whose rows are counted against the decisions and audited. Nothing is timed."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime

import psycopg2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scripts.bench.reference import (
    ONE_TRANSACTION,
    PER_BATCH,
    HotEvent,
    ModeResult,
    Recorded,
    ReferenceResult,
    batch_rows,
    copy_text,
    copy_value,
    decide,
    measure,
    seat_mix,
    share_line,
    share_percent,
)
from tests.conftest import fresh_app

NOW = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
EVENT = HotEvent(7, "Reference hot event 1", "Bench Arena", datetime(2026, 12, 30, 19, 0, tzinfo=UTC), 5, 2500)


def unescape(field: str) -> str | None:
    """COPY's text format read back (the escapes copy_value writes)."""
    if field == "\\N":
        return None
    out, chars = [], iter(field)
    for char in chars:
        if char == "\\":
            out.append({"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}[next(chars)])
        else:
            out.append(char)
    return "".join(out)


def parsed(text: str) -> list[list[str | None]]:
    return [[unescape(field) for field in line.split("\t")] for line in text.splitlines()]


def pending(seats: list[int]) -> list[Recorded]:
    return [Recorded(100 + i, f"req-{i}", 10 + i % 3, n) for i, n in enumerate(seats)]


# ----------------------------------------------------------------------------- COPY's text format


@given(st.text())
def test_a_text_value_survives_copy_s_format_and_never_breaks_a_row(value):
    field = copy_value(value)
    assert "\t" not in field and "\n" not in field and "\r" not in field
    assert unescape(field) == value


def test_copy_values_of_other_types():
    assert copy_value(None) == "\\N"
    assert copy_value(True) == "t" and copy_value(False) == "f"
    assert copy_value(12) == "12"
    assert copy_value(NOW) == "2026-11-30T06:00:00+00:00"
    assert copy_text([(1, None, "a\tb"), (2, "x", "y")]) == "1\t\\N\ta\\tb\n2\tx\ty\n"


# ----------------------------------------------------------------------------- the decisions and rows


def test_the_seat_mix_is_the_backlog_s_draw_from_the_same_seed():
    rng = random.Random(3)
    assert seat_mix(500, 3) == [rng.randint(1, 4) for _ in range(500)]
    assert set(seat_mix(500, 3)) == {1, 2, 3, 4}


def test_decisions_come_in_the_worker_s_batches_each_on_the_seats_the_last_left():
    plan = decide(5, pending([2, 2, 2, 3, 1]), batch_size=2)
    assert [len(batch) for batch, _ in plan] == [2, 2, 1]
    assert [allocation.reserved_seats for _, allocation in plan] == [4, 5, 5]
    outcomes = [d.outcome.value for _, allocation in plan for d in allocation.decisions]
    assert outcomes == ["confirmed", "confirmed", "partial", "waitlisted", "waitlisted"]


def test_a_batch_writes_what_the_worker_writes_for_each_decision():
    from atomicseats.models import Event
    from atomicseats.services._notification_rows import Notification, outbox_values

    requests = pending([2, 2, 2, 3])
    ((batch, allocation),) = decide(5, requests, batch_size=500)
    rows = batch_rows(EVENT, batch, allocation, iter([901, 902, 903]), NOW)
    assert rows.reserved_seats == 5
    assert dict(rows.outcomes) == {"confirmed": 2, "partial": 1, "waitlisted": 1}
    assert parsed(rows.decided) == [
        ["100", "confirmed", "2", "0", None],
        ["101", "confirmed", "2", "0", None],
        ["102", "partial", "1", "1", None],
        ["103", "waitlisted", "0", "3", None],
    ]
    stamp = NOW.isoformat()
    assert parsed(rows.bookings) == [
        ["901", "10", "7", "100", "2", "5000", "confirmed", stamp],
        ["902", "11", "7", "101", "2", "5000", "confirmed", stamp],
        ["903", "12", "7", "102", "1", "2500", "confirmed", stamp],
    ]
    assert parsed(rows.waitlist) == [
        ["7", "12", "102", "1", "1", "waiting", stamp, stamp],
        ["7", "10", "103", "3", "3", "waiting", stamp, stamp],
    ]
    assert (rows.bookings_n, rows.waitlist_n, rows.outbox_n) == (3, 2, 4)
    outbox = [dict(zip(rows.outbox_columns, row, strict=True)) for row in parsed(rows.outbox)]
    event = Event(id=EVENT.id, name=EVENT.name, venue=EVENT.venue, starts_at=EVENT.starts_at)
    fields = {"requestId": "req-2", "seatsRequested": 2, "seatsConfirmed": 1, "seatsWaitlisted": 1, "reason": None}
    worker = outbox_values(Notification("booking.partial", 12, event, "req-2", {**fields, "bookingIds": [903]}))
    assert outbox[2]["payload"] == worker["payload"]  # the same payload, byte for byte
    assert outbox[2]["message_id"] == worker["message_id"] == "<booking.partial.req-2@atomicseats.local>"
    assert {key: outbox[2][key] for key in ("channel", "kind", "user_id", "event_id", "status", "attempts")} == {
        "channel": "email",
        "kind": "booking.partial",
        "user_id": "12",
        "event_id": "7",
        "status": "pending",
        "attempts": "0",
    }
    assert [json.loads(row["payload"])["bookingIds"] for row in outbox] == [[901], [902], [903], []]


# ----------------------------------------------------------------------------- the share and the result


def test_our_rate_is_a_share_of_the_reference():
    assert share_percent(5000, 20000) == 25
    assert share_percent(12000, 10000) == 120
    assert math.isnan(share_percent(5000, 0)) and math.isnan(share_percent(float("nan"), 100))


def result() -> ReferenceResult:
    return ReferenceResult(
        count=30000,
        batch_size=500,
        durability="synchronous_commit=on fsync=on",
        outcomes={"confirmed": 399, "partial": 1, "waitlisted": 29600},
        rows={"bookings": 400, "waitlist_entries": 29601, "outbox": 30000, "booking_requests": 30000},
        modes=[ModeResult(PER_BATCH, 1.5, 60, 0.06, 1.8, 3.0), ModeResult(ONE_TRANSACTION, 1.2, 1, 0.06, 1.7, 2.9)],
    )


def test_the_reference_prints_both_modes_and_the_worker_s_share_of_the_per_batch_one():
    reference = result()
    assert reference.decided_per_s == 20000
    lines = reference.lines()
    assert lines[0].startswith("reference: bare SQL (COPY) wrote 30000 decisions in 1.50 s = 20000/s (commit per batch")
    assert lines[1].startswith("reference: bare SQL (COPY) wrote 30000 decisions in 1.20 s = 25000/s (one transaction")
    assert (
        "0.060 ms in its PostgreSQL backend, 0.100 ms in the whole server, 0.002 ms in the script: "
        "9804/s were CPU the only limit)" in lines[0]
    )
    assert share_line(5000, reference).startswith("worker alone = 25% of the bare-SQL reference")
    assert share_line(float("nan"), reference).startswith("worker alone = - of")
    assert ReferenceResult.from_json(reference.to_json()) == reference


def test_the_last_line_gains_the_reference_after_the_named_fields():
    from types import SimpleNamespace

    from scripts.bench.report import full_final_line, reference_field
    from tests.bench_support import full_result

    full = full_result(reference=result(), stages=SimpleNamespace(decided_per_s=5000.4))
    line = full_final_line(full, 3500.2, 0)
    assert line == (
        "accepted_per_s=1150 decided_per_s=3500 worker_decided_per_s=5000 p50_ms=95 p99_ms=410 "
        "oversold=0 lost=0 reference_decided_per_s=20000"
    )
    full.many = SimpleNamespace(decided_per_s=900.0, memory=None)
    assert " lost=0 reference_decided_per_s=20000 many_decided_per_s=900" in full_final_line(full, 3500.2, 0)
    assert reference_field(None) == ""  # --skip-reference: no figure, no field


# ----------------------------------------------------------------------------- against PostgreSQL


def test_the_reference_writes_every_row_its_decisions_name_on_postgres(postgres_url):
    from atomicseats.services.audit import run_audit

    with fresh_app(postgres_url):
        reference = measure(postgres_url, count=300, capacity=100, seed=3, batch_size=50)
        assert [m.mode for m in reference.modes] == [PER_BATCH, ONE_TRANSACTION]
        assert [m.commits for m in reference.modes] == [6, 1]
        assert all(m.seconds > 0 for m in reference.modes)
        connection = psycopg2.connect(postgres_url)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT id, capacity_seats, reserved_seats FROM events ORDER BY id")
                events = cursor.fetchall()
                assert [(capacity, reserved) for _, capacity, reserved in events] == [(100, 100), (100, 100)]
                for event_id, _, _ in events:
                    check_event_rows(cursor, event_id, reference)
        finally:
            connection.close()
        audit = run_audit(pending_grace_s=0)  # the rows pass the checks the worker's rows pass
        assert audit.is_clean, str(audit)


def check_event_rows(cursor, event_id: int, reference: ReferenceResult) -> None:
    cursor.execute("SELECT status, count(*) FROM booking_requests WHERE event_id = %s GROUP BY status", (event_id,))
    assert dict(cursor.fetchall()) == reference.outcomes
    cursor.execute(
        "SELECT count(*), coalesce(sum(seats), 0) FROM bookings WHERE event_id = %s AND status = 'confirmed'",
        (event_id,),
    )
    assert cursor.fetchone() == (reference.rows["bookings"], 100)
    cursor.execute("SELECT count(*) FROM waitlist_entries WHERE event_id = %s AND status = 'waiting'", (event_id,))
    assert cursor.fetchone()[0] == reference.rows["waitlist_entries"]
    # Every decision has its e-mail, naming the booking it made (none when it made none).
    cursor.execute(
        "SELECT r.status, r.seats_confirmed, o.payload, b.id FROM booking_requests r"
        " JOIN outbox o ON o.message_id = '<booking.' || r.status || '.' || r.request_id || '@atomicseats.local>'"
        " LEFT JOIN bookings b ON b.booking_request_id = r.id WHERE r.event_id = %s",
        (event_id,),
    )
    rows = cursor.fetchall()
    assert len(rows) == 300
    for status, confirmed, payload, booking_id in rows:
        message = json.loads(payload)
        assert message["kind"] == f"booking.{status}" and message["seatsConfirmed"] == confirmed
        assert message["bookingIds"] == ([] if booking_id is None else [booking_id])


@pytest.mark.parametrize("bad", [0, -1])
def test_the_command_refuses_an_empty_backlog(bad, capsys):
    from scripts.bench.reference import main

    with pytest.raises(SystemExit) as exit_:
        main(["--count", str(bad)])
    assert exit_.value.code == 2
