"""The services the pipeline calls, on SQLite and on real PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from atomicseats.domain import limits
from atomicseats.extensions import db
from atomicseats.models import Booking, BookingRequest, Event, EventTier, OutboxMessage, WaitlistEntry, utcnow
from atomicseats.services import _allocation, audit, booking, unit_of_work
from atomicseats.services.ports import adapters
from tests.conftest import fresh_app
from tests.helpers import accepted, account, book, create_event, statements_seen, unchanged


@pytest.fixture
def sale(client):
    host = account(client, "host")
    guests = [account(client, "guest") for _ in range(3)]
    event_id = create_event(client, host, capacity=5)["id"]
    return event_id, guests


def test_a_redelivered_request_is_recorded_once_and_books_once(app, sale):
    event_id, guests = sale
    request = accepted(guests[0].id, event_id, 2)
    assert booking.record_requests([request]) == [event_id]
    assert booking.record_requests([request]) == []  # redelivery: nothing new
    booking.allocate_pending(event_id)
    booking.record_requests([request])
    booking.allocate_pending(event_id)
    assert db.session.execute(select(func.count(BookingRequest.id))).scalar_one() == 1
    assert db.session.execute(select(func.sum(Booking.seats))).scalar_one() == 2
    assert audit.run_audit().is_clean


def test_one_allocation_decides_a_batch_in_arrival_order(app, sale):
    event_id, guests = sale
    requests = [accepted(guests[index % 3].id, event_id, seats) for index, seats in enumerate([3, 3, 1, 2])]
    booking.record_requests(requests)
    summary = booking.allocate_pending(event_id)
    assert summary.requests_decided == 4
    rows = db.session.execute(select(BookingRequest).order_by(BookingRequest.id)).scalars().all()
    assert [(row.status, row.seats_confirmed, row.seats_waitlisted) for row in rows] == [
        ("confirmed", 3, 0),
        ("partial", 2, 1),
        ("waitlisted", 0, 1),  # one seat would fit nowhere: the earlier remainder waits ahead of it
        ("waitlisted", 0, 2),
    ]
    assert audit.run_audit().is_clean


def test_a_backlog_larger_than_a_batch_is_decided_batch_by_batch(app, sale, monkeypatch):
    event_id, guests = sale
    monkeypatch.setattr(limits, "ALLOCATION_BATCH_SIZE_MAX", 2)
    booking.record_requests([accepted(guests[0].id, event_id, 1) for _ in range(2)])
    booking.record_requests([accepted(guests[1].id, event_id, 1) for _ in range(2)])
    assert booking.allocate_pending(event_id).requests_decided == 2
    assert [pending for pending, _ in booking.stranded_events(older_than_s=0)] == [event_id]
    assert booking.allocate_pending(event_id).requests_decided == 2
    assert booking.stranded_events(older_than_s=0) == []


def _decided_rows(event_id: int) -> dict[str, list[tuple]]:
    """What deciding an event's requests wrote, in id order, ids and times left out."""
    requests = db.session.execute(
        select(BookingRequest.status, BookingRequest.seats_confirmed, BookingRequest.seats_waitlisted)
        .where(BookingRequest.event_id == event_id)
        .order_by(BookingRequest.id)
    ).all()
    entries = db.session.execute(
        select(WaitlistEntry.seats_remaining, WaitlistEntry.status)
        .where(WaitlistEntry.event_id == event_id)
        .order_by(WaitlistEntry.id)
    ).all()
    kinds = db.session.execute(
        select(OutboxMessage.kind).where(OutboxMessage.event_id == event_id).order_by(OutboxMessage.id)
    ).all()
    return {"requests": [tuple(row) for row in requests], "entries": [tuple(row) for row in entries], "kinds": kinds}


def test_a_big_batch_written_alongside_its_rows_writes_what_one_written_in_line_does(app, client, monkeypatch):
    """A batch of WRITES_ALONGSIDE_ROWS_MIN or more runs its requests' UPDATE on a helper thread
    (on Postgres) while its entries and e-mails are built: the same rows as one after the other."""
    host = account(client, "host")
    guests = [account(client, "guest") for _ in range(4)]
    seats = [1 + index % 4 for index in range(40)]
    started: list[int] = []
    original_start = unit_of_work.StatementAside.start

    def counted_start(self) -> None:
        started.append(1)
        original_start(self)

    monkeypatch.setattr(unit_of_work.StatementAside, "start", counted_start)
    written = {}
    for mode, rows_min in (("in line", len(seats) + 1), ("alongside", len(seats))):
        monkeypatch.setattr(limits, "WRITES_ALONGSIDE_ROWS_MIN", rows_min)
        event_id = create_event(client, host, capacity=32)["id"]
        booking.record_requests([accepted(guests[i % 4].id, event_id, count) for i, count in enumerate(seats)])
        started.clear()
        assert booking.allocate_pending(event_id).requests_decided == len(seats)
        assert len(started) == (1 if mode == "alongside" and db.engine.dialect.name == "postgresql" else 0)
        written[mode] = _decided_rows(event_id)
    assert written["alongside"] == written["in line"]
    assert {status for status, *_ in written["alongside"]["requests"]} == {"confirmed", "partial", "waitlisted"}
    assert audit.run_audit().is_clean


def test_marking_a_batch_decided_reads_only_the_events_pending_rows_never_the_whole_table(postgres_url):
    """The planner, knowing the batch's size, hash-joined a sequential scan of every request ever
    recorded when the rows were named by id alone; named as the events' pending rows in the
    batch's id range too, and as the batch's ids, it reads the batch's rows alone: for one event
    (from ix_booking_requests_event_status_id) and for a partition's events whose requests lie
    far apart, a big backlog of another event's between them (never the range between)."""
    with fresh_app(postgres_url) as application:
        client = application.test_client()
        host = account(client, "host")
        guest = account(client, "guest")
        hot_event, busy_event, small_event = (create_event(client, host, capacity=10)["id"] for _ in range(3))
        db.session.execute(  # the hot event's 2,500 pending, 60,000 of another's, then one of a small event
            sa.text(
                "INSERT INTO booking_requests (request_id, user_id, event_id, seats_requested, status,"
                " seats_confirmed, seats_waitlisted, created_at)"
                " SELECT gen_random_uuid()::text, :user_id,"
                " CASE WHEN n <= 2500 THEN :hot WHEN n <= 62500 THEN :busy ELSE :small END, 1,"
                " CASE WHEN n <= 2500 OR n > 62500 THEN 'pending' ELSE 'waitlisted' END, 0,"
                " CASE WHEN n <= 2500 OR n > 62500 THEN 0 ELSE 1 END,"
                " now() FROM generate_series(1, 62501) AS n"
            ),
            {"user_id": guest.id, "hot": hot_event, "busy": busy_event, "small": small_event},
        )
        db.session.commit()
        db.session.execute(sa.text("ANALYZE booking_requests"))
        pending = {
            event_id: db.session.execute(
                select(BookingRequest.id)
                .where(BookingRequest.event_id == event_id, BookingRequest.status == "pending")
                .order_by(BookingRequest.id)
            )
            .scalars()
            .all()
            for event_id in (hot_event, small_event)
        }
        plans = []
        for event_ids in ([hot_event], [hot_event, small_event]):  # one event's batch; a partition's events
            decided = [
                (row_id, "waitlisted", 0, 1, None, None) for event_id in event_ids for row_id in pending[event_id]
            ]
            statement, parameters = _allocation._decided_statement(
                unit_of_work.UnitOfWork(session=db.session()), event_ids, decided, utcnow()
            )
            plans.append("\n".join(db.session.execute(sa.text(f"EXPLAIN {statement.text}"), parameters).scalars()))
        db.session.rollback()
    for plan in plans:
        assert "Seq Scan on booking_requests" not in plan, plan
        rows_read = max(int(rows) for rows in re.findall(r"Scan[^\n]*on booking_requests[^\n]*rows=(\d+)", plan))
        assert rows_read <= 2501 * 2, plan  # the batch's rows, not the 60,000 between them


def test_promotion_serves_a_long_waitlist_in_bounded_rounds(app, client, monkeypatch):
    monkeypatch.setattr(limits, "WAITLIST_PROMOTION_BATCH_MAX", 2)
    host = account(client, "host")
    guest = account(client, "guest")
    event_id = create_event(client, host, capacity=1)["id"]
    for _ in range(8):
        book(client, guest, event_id, 1)
    response = client.post("/api/events/update", json={"id": event_id, "capacity": 6}, headers=host.headers)
    assert response.status_code == 200
    assert response.get_json()["data"]["waitlistLength"] == 2
    assert audit.run_audit().is_clean


def test_a_batch_reads_the_waitlist_only_when_someone_waits(app, sale):
    """Seats left and nobody waiting: serving the waitlist head first has nothing to read (the
    event's waitlist_length says so), so the batch costs no query over the entries."""
    event_id, guests = sale  # 5 seats
    booking.record_requests([accepted(guests[0].id, event_id, 4)])
    with statements_seen() as statements:
        booking.allocate_pending(event_id)
    assert statements and not [s for s in statements if "FROM waitlist_entries" in s]

    booking.record_requests([accepted(guests[1].id, event_id, 3)])  # 1 seat confirmed, 2 wait
    booking.allocate_pending(event_id)
    booking.record_requests([accepted(guests[2].id, event_id, 1)])  # sold out: the head is not read
    with statements_seen() as statements:
        booking.allocate_pending(event_id)
    assert statements and not [s for s in statements if "FROM waitlist_entries" in s]
    assert audit.run_audit().is_clean


def test_every_decision_writes_its_notification_in_the_same_transaction(app, sale):
    event_id, guests = sale
    booking.record_requests([accepted(guests[0].id, event_id, 4), accepted(guests[1].id, event_id, 4)])
    booking.allocate_pending(event_id)
    kinds = db.session.execute(select(OutboxMessage.kind).order_by(OutboxMessage.id)).scalars().all()
    assert kinds == ["booking.confirmed", "booking.partial"]
    message_ids = db.session.execute(select(OutboxMessage.message_id)).scalars().all()
    assert all(message_id.startswith("<booking.") and message_id.endswith(">") for message_id in message_ids)


def test_requests_for_an_event_deleted_after_acceptance_are_rejected(app, client, sale):
    event_id, guests = sale
    booking.record_requests([accepted(guests[0].id, event_id, 1)])
    host_event = db.session.get(Event, event_id)
    host_event.status = "deleted"
    db.session.commit()
    booking.allocate_pending(event_id)
    request = db.session.execute(select(BookingRequest)).scalar_one()
    assert (request.status, request.reason) == ("rejected", "event_deleted")


def test_the_database_refuses_an_oversold_event_even_if_the_code_tried(app, sale):
    event_id, _ = sale
    with unchanged():
        with pytest.raises(sa.exc.IntegrityError):
            db.session.execute(sa.update(Event).where(Event.id == event_id).values(reserved_seats=6))
            db.session.commit()
        db.session.rollback()


def test_audit_reports_a_counter_that_drifted_from_the_bookings(app, client, sale):
    event_id, guests = sale
    book(client, guests[0], event_id, 2)
    db.session.execute(sa.update(Event).where(Event.id == event_id).values(reserved_seats=1))
    db.session.commit()
    report = audit.run_audit()
    invariants = {violation.invariant for violation in report.violations}
    assert "2-reserved-equals-confirmed" in invariants
    # Redis mirrors the old truth; the event's counter is no longer its tiers' sum either.
    assert invariants <= {"2-reserved-equals-confirmed", "6-cache-agrees", "tier-invariants"}
    result = app.test_cli_runner().invoke(args=["audit"])
    assert result.exit_code == 1
    assert "reserved_seats=1, confirmed bookings=2" in result.output


def test_audit_reports_a_waitlist_length_that_drifted_from_the_waiting_entries(app, client, sale):
    event_id, guests = sale
    book(client, guests[0], event_id, 5)
    book(client, guests[1], event_id, 2)
    book(client, guests[2], event_id, 1)
    assert audit.run_audit().is_clean
    db.session.execute(sa.update(Event).where(Event.id == event_id).values(waitlist_length=1))
    db.session.commit()
    details = [str(violation) for violation in audit.run_audit().violations]
    assert details == [f"[2-waitlist-length-equals-waiting] event {event_id}: waitlist_length=1, waiting entries=2"]


def test_audit_reports_seats_left_free_while_people_wait(app, client, sale):
    event_id, guests = sale
    book(client, guests[0], event_id, 5)
    book(client, guests[1], event_id, 2)
    db.session.execute(sa.update(Event).where(Event.id == event_id).values(capacity_seats=6))
    db.session.execute(sa.update(EventTier).where(EventTier.event_id == event_id).values(quota_seats=6))  # its one tier
    db.session.commit()
    assert "4-fifo" in {violation.invariant for violation in audit.run_audit().violations}


def test_audit_cli_is_clean_after_a_normal_day(app, client, sale):
    event_id, guests = sale
    book(client, guests[0], event_id, 4)
    book(client, guests[1], event_id, 3)
    client.delete("/api/events/book", json={"eventId": event_id}, headers=guests[0].headers)
    assert db.session.execute(select(func.count(WaitlistEntry.id))).scalar_one() == 1
    result = app.test_cli_runner().invoke(args=["audit"])
    assert result.exit_code == 0, result.output
    assert "audit clean" in result.output


def test_audit_reports_a_waitlist_out_of_arrival_order(app, client, sale):
    event_id, guests = sale
    book(client, guests[0], event_id, 5)
    book(client, guests[1], event_id, 1)
    book(client, guests[2], event_id, 2)
    first_id, second_id = db.session.execute(select(WaitlistEntry.id).order_by(WaitlistEntry.id)).scalars().all()
    spare_id = second_id + 1000
    for old_id, new_id in ((first_id, spare_id), (second_id, first_id), (spare_id, second_id)):  # swap queue places
        db.session.execute(sa.update(WaitlistEntry).where(WaitlistEntry.id == old_id).values(id=new_id))
    db.session.commit()
    details = [str(violation) for violation in audit.run_audit().violations if violation.invariant == "4-fifo"]
    assert details == [
        f"[4-fifo] event {event_id}: waitlist entry {first_id} queued before {second_id} but arrived after it"
    ]


def test_recording_drops_orphans_and_costs_the_same_statements_for_one_event_or_many(app, client, sale):
    """A request whose user or event is gone is left out (it could never be recorded); the
    rest are. One statement checks users and events, one takes every event's arrival lock."""
    event_id, guests = sale
    host = account(client, "host")
    others = [create_event(client, host, capacity=5)["id"] for _ in range(2)]
    missing_event, missing_user = max([event_id, *others]) + 1000, max(guest.id for guest in guests) + 1000
    batch = [
        accepted(guests[0].id, event_id, 1),
        accepted(guests[1].id, others[0], 1),
        accepted(missing_user, others[1], 1),  # an account deleted after the API took it
        accepted(guests[2].id, missing_event, 1),  # an event deleted likewise
        accepted(guests[2].id, others[1], 2),
    ]
    statements: list[str] = []

    def remember(_connection, _cursor, statement, *_args) -> None:
        statements.append(statement.lower())

    sa.event.listen(db.engine, "before_cursor_execute", remember)
    try:
        assert booking.record_requests(batch) == sorted([event_id, *others])
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", remember)
    recorded = db.session.execute(select(BookingRequest.request_id)).scalars().all()
    assert sorted(recorded) == sorted(batch[index].request_id for index in (0, 1, 4))
    (check,) = [statement for statement in statements if "from users" in statement]
    assert "from events" in check  # users and events checked in one statement
    locks = [statement for statement in statements if "pg_advisory_xact_lock" in statement]
    assert len(locks) == (1 if db.engine.dialect.name == "postgresql" else 0)  # three events, one statement


@contextmanager
def commits_and_event_locks() -> Iterator[tuple[list[str], list[int]]]:
    """The commits (one entry each) and the statements that read event rows for their lock (the
    ids each names, in order) while the block runs."""
    commits: list[str] = []
    locked: list[int] = []

    def on_commit(_connection) -> None:
        commits.append("commit")

    def on_execute(_connection, _cursor, statement, parameters, *_args) -> None:
        if "FROM events" in statement and "WHERE events.id IN" in statement:  # FOR NO KEY UPDATE on Postgres
            assert "ORDER BY events.id" in statement  # the rows are locked in the order they are read
            values = list(parameters.values() if isinstance(parameters, dict) else parameters)
            locked.append(values)  # the events' ids, the statement's only parameters

    sa.event.listen(db.engine, "commit", on_commit)
    sa.event.listen(db.engine, "before_cursor_execute", on_execute)
    try:
        yield commits, locked
    finally:
        sa.event.remove(db.engine, "commit", on_commit)
        sa.event.remove(db.engine, "before_cursor_execute", on_execute)


def test_a_partitions_events_are_decided_together_in_one_commit_locked_in_id_order(app, client, sale, monkeypatch):
    """One transaction for several events' batches: one commit, each event decided as alone."""
    monkeypatch.setattr(type(adapters().wakeups), "wake_outbox", lambda _self: None)  # the sender's commits
    first_id, guests = sale
    host = account(client, "host")
    second_id = create_event(client, host, capacity=1)["id"]
    booking.record_requests([accepted(guests[0].id, first_id, 4), accepted(guests[1].id, first_id, 3)])
    booking.record_requests([accepted(guests[2].id, second_id, 2)])
    with commits_and_event_locks() as (commits, locked):
        summaries = booking.allocate_pending_together({second_id: 500, first_id: 500})
    assert len(commits) == 1
    assert locked == [[first_id, second_id]]  # one read, in id order whatever the caller's: no cycle of waits
    assert {event_id: summary.requests_decided for event_id, summary in summaries.items()} == {
        first_id: 2,
        second_id: 1,
    }
    statuses = db.session.execute(
        select(BookingRequest.event_id, BookingRequest.status).order_by(BookingRequest.id)
    ).all()
    assert [tuple(row) for row in statuses] == [(first_id, "confirmed"), (first_id, "partial"), (second_id, "partial")]
    assert audit.run_audit().is_clean


def test_a_partitions_events_cost_the_statements_of_one_event_each_table_written_once(postgres_url, monkeypatch):
    """What deciding reads (the events' rows, pending requests, tiers) is read for all of the
    transaction's events at once and their decisions are written together: three events with
    confirmed seats and waiting ones cost the statements one such event costs, not three times
    them (a round trip each on a busy machine is what a decision waits for at half load)."""
    with fresh_app(postgres_url) as application:
        monkeypatch.setattr(type(adapters().wakeups), "wake_outbox", lambda _self: None)  # the sender's
        client = application.test_client()
        host = account(client, "host")
        guests = [account(client, "guest") for _ in range(2)]
        events = [create_event(client, host, capacity=3)["id"] for _ in range(4)]
        for event_id in events:  # 2 seats confirmed, then 1 confirmed and 1 waiting
            booking.record_requests([accepted(guests[0].id, event_id, 2), accepted(guests[1].id, event_id, 2)])
        with statements_seen() as alone:
            booking.allocate_pending_together({events[0]: 500})
        with statements_seen() as together:
            booking.allocate_pending_together(dict.fromkeys(events[1:], 500))
        assert len(together) == len(alone), (alone, together)
        statuses = db.session.execute(
            select(BookingRequest.event_id, BookingRequest.status).order_by(BookingRequest.id)
        ).all()
        assert [status for _, status in statuses] == ["confirmed", "partial"] * 4
        waiting = db.session.execute(
            select(WaitlistEntry.event_id, WaitlistEntry.seats_remaining).order_by(WaitlistEntry.id)
        ).all()
        assert [tuple(row) for row in waiting] == [(event_id, 1) for event_id in events]
        lengths = db.session.execute(select(Event.waitlist_length).order_by(Event.id)).scalars().all()
        assert lengths == [1, 1, 1, 1]
        assert audit.run_audit().is_clean


def test_a_partitions_events_are_cached_and_announced_in_one_call_each_after_the_commit(app, client, monkeypatch):
    """The effects of one transaction's events: their availability stored in one call, their
    lines left (and outcomes announced) in one call, whatever the number of events."""
    effects = adapters()
    stored: list[list[int]] = []
    left: list[list[tuple[int, int, int]]] = []
    store, leave = effects.availability.store, effects.line.leave

    def spy_store(availability):
        stored.append([item.event_id for item in availability])
        store(availability)

    def spy_leave(departures):
        left.append([(item.event_id, item.decided, len(item.announced)) for item in departures])
        leave(departures)

    monkeypatch.setattr(effects.availability, "store", spy_store)
    monkeypatch.setattr(effects.line, "leave", spy_leave)
    host = account(client, "host")
    guests = [account(client, "guest") for _ in range(2)]
    events = [create_event(client, host, capacity=3)["id"] for _ in range(3)]
    for event_id in events:
        booking.record_requests([accepted(guests[0].id, event_id, 2), accepted(guests[1].id, event_id, 1)])
    stored.clear()
    booking.allocate_pending_together(dict.fromkeys(events, 500))
    assert stored == [events]
    assert left == [[(event_id, 2, 2) for event_id in events]]


def _failing_on(monkeypatch, failing_event_id: int) -> list[int]:
    """settle_event raises for one event; returns the ids of the events settled (in order)."""
    settle = _allocation.settle_event
    settled: list[int] = []

    def fail_on_one(work, event, pending, *args, **kwargs):
        settled.append(event.id)
        if event.id == failing_event_id:
            raise RuntimeError("this event's allocation failed")
        return settle(work, event, pending, *args, **kwargs)

    monkeypatch.setattr(booking, "settle_event", fail_on_one)
    return settled


def test_events_decided_in_one_transaction_are_written_all_or_none(app, client, sale, monkeypatch):
    """A failure once every event's decisions are written (the second event's effects fail to
    register) rolls back the first event's too."""
    first_id, guests = sale
    second_id = create_event(client, account(client, "host"), capacity=3)["id"]
    booking.record_requests([accepted(guests[0].id, first_id, 2), accepted(guests[1].id, second_id, 2)])
    announce = booking.announce_decisions_after_commit
    written: list[int] = []

    def fail_on_second(work, event, settlement):
        written.append(db.session.execute(select(func.count(Booking.id))).scalar_one())
        if event.id == second_id:
            raise RuntimeError("this event's effects failed")
        announce(work, event, settlement)

    monkeypatch.setattr(booking, "announce_decisions_after_commit", fail_on_second)
    with pytest.raises(RuntimeError):
        booking._decide_batches({first_id: 500, second_id: 500})
    assert written == [2, 2]  # both events' bookings were in the transaction when it failed
    db.session.rollback()
    statuses = db.session.execute(select(BookingRequest.status)).scalars().all()
    assert statuses == ["pending", "pending"]  # the first event's decision went with the second's failure
    assert db.session.execute(select(func.count(Booking.id))).scalar_one() == 0


def test_a_deleted_events_requests_are_rejected_beside_a_live_events_decided_in_the_same_transaction(app, client, sale):
    deleted_id, guests = sale
    live_id = create_event(client, account(client, "host"), capacity=3)["id"]
    booking.record_requests([accepted(guests[0].id, deleted_id, 1), accepted(guests[1].id, live_id, 2)])
    db.session.get(Event, deleted_id).status = "deleted"
    db.session.commit()
    summaries = booking.allocate_pending_together({deleted_id: 500, live_id: 500})
    assert (summaries[deleted_id].requests_decided, summaries[live_id].requests_decided) == (0, 1)
    rows = db.session.execute(
        select(BookingRequest.event_id, BookingRequest.status, BookingRequest.reason).order_by(BookingRequest.id)
    ).all()
    assert [tuple(row) for row in rows] == [(deleted_id, "rejected", "event_deleted"), (live_id, "confirmed", None)]
    assert booking.stranded_events(older_than_s=0) == []


def test_one_events_failure_holds_back_none_of_the_others_decided_with_it(app, client, sale, monkeypatch):
    """The transaction of all of them fails: each is then decided alone, and the failure is raised
    once the others are written (a lock held too long on one event, or an error of its own)."""
    first_id, guests = sale
    host = account(client, "host")
    second_id, third_id = (create_event(client, host, capacity=3)["id"] for _ in range(2))
    booking.record_requests(
        [accepted(guests[index].id, event_id, 2) for index, event_id in enumerate([first_id, second_id, third_id])]
    )
    settled = _failing_on(monkeypatch, second_id)
    with pytest.raises(RuntimeError):
        booking.allocate_pending_together({third_id: 500, second_id: 500, first_id: 500})
    assert settled == [first_id, second_id, first_id, second_id, third_id]  # together, then each alone
    db.session.rollback()
    statuses = db.session.execute(
        select(BookingRequest.event_id, BookingRequest.status).order_by(BookingRequest.id)
    ).all()
    assert [tuple(row) for row in statuses] == [
        (first_id, "confirmed"),
        (second_id, "pending"),
        (third_id, "confirmed"),
    ]
    assert audit.run_audit().is_clean


def test_an_event_that_does_not_exist_decides_nothing_and_stops_no_other(app, sale):
    event_id, guests = sale
    booking.record_requests([accepted(guests[0].id, event_id, 1)])
    summaries = booking.allocate_pending_together({event_id: 500, 999_999: 500})
    assert summaries[event_id].requests_decided == 1
    assert summaries[999_999].requests_decided == 0
    assert db.session.execute(select(BookingRequest.status)).scalar_one() == "confirmed"
