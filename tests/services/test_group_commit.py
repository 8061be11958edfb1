"""The embedded pipeline's group commit (adapters/embedded.py GroupCommit, booking.record_and_decide).

Bookings submitted concurrently in one process are recorded and decided together, in one
transaction. The threaded tests run on SQLite with real threads and the real app: a test
holds SQLite's write lock while the submissions arrive one after another, so the group's
leader waits for the lock with its own request and every later one queues behind it, in
a known order; once the lock is released the queued ones are decided as one batch.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from atomicseats.adapters.embedded import GroupCommit, InProcessPipeline, WritersLock
from atomicseats.domain import limits
from atomicseats.errors import NotFound
from atomicseats.extensions import db
from atomicseats.models import Booking, BookingRequest, OutboxMessage
from atomicseats.services import audit, booking
from atomicseats.services.contracts import AcceptedRequest
from atomicseats.services.ports import EXTENSION_KEY
from atomicseats.services.unit_of_work import one_transaction
from tests.conftest import fresh_app
from tests.helpers import accepted, account, create_event, statements_seen

SUBMITTERS = 10
NO_SUCH_EVENT = 999_999
WAIT_GIVE_UP_S = 60  # a bound on waiting for the threads, never a measurement


@pytest.fixture
def sqlite_path(sqlite_template, tmp_path) -> Path:
    path = tmp_path / "atomicseats.db"
    shutil.copyfile(sqlite_template, path)
    return path


@pytest.fixture
def threaded_app(sqlite_path, monkeypatch) -> Iterator[Flask]:
    # The leader waits for the lock the test holds: give that wait room on a busy machine.
    monkeypatch.setattr(limits, "STATEMENT_TIMEOUT_MS", WAIT_GIVE_UP_S * 1000)
    pool = {"pool_size": SUBMITTERS + 5, "max_overflow": 5}
    with fresh_app(
        f"sqlite:///{sqlite_path}", hold_context=False, REDIS_URL="", SQLALCHEMY_ENGINE_OPTIONS=pool
    ) as app:  # the embedded default as make run serves it: no Redis
        yield app


@contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Hold SQLite's write lock from a connection of the test's own."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        connection.rollback()
        connection.close()


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_GIVE_UP_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.002)


def submit_in_order(app: Flask, path: Path, jobs: list[Callable[[], object]]) -> list[object]:
    """Run each job in a thread of its own, the next one only once the previous one waits in
    the group (the first as the leader, blocked on the write lock with its lone request; each
    later one queued), then let the lock go. Returns each job's result or exception."""
    group = app.extensions[EXTENSION_KEY].pipeline.group
    results: list[object] = [None] * len(jobs)

    def run(index: int) -> None:
        try:
            results[index] = jobs[index]()
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(jobs))]
    with write_lock_held(path):
        threads[0].start()
        wait_until(lambda: group.leading and group.queued == 0, "the leader took its request")
        for index, thread in enumerate(threads[1:], start=1):
            thread.start()
            wait_until(lambda index=index: group.queued == index, f"submission {index} queued")
    for thread in threads:
        thread.join(WAIT_GIVE_UP_S)
        assert not thread.is_alive()
    return results


def batches(app: Flask) -> list[list[int]]:
    """The recorded requests' row ids, grouped by the batch that recorded them (one
    `created_at` per record_requests call), in commit order."""
    with app.app_context():
        rows = db.session.execute(select(BookingRequest.id, BookingRequest.created_at).order_by(BookingRequest.id))
        grouped: dict[object, list[int]] = {}
        for row_id, created_at in rows:
            grouped.setdefault(created_at, []).append(row_id)
        return list(grouped.values())


def test_concurrent_bookings_are_decided_together_in_arrival_order_each_caller_its_own(threaded_app, sqlite_path):
    setup = threaded_app.test_client()
    host = account(setup, "host")
    guests = [account(setup, "guest") for _ in range(SUBMITTERS)]
    event_id = create_event(setup, host, capacity=9)["id"]

    def booking_of(guest) -> Callable[[], object]:
        def post() -> object:
            client = threaded_app.test_client()
            response = client.post(
                "/api/events/book", json={"eventId": event_id, "numberOfSeats": 2}, headers=guest.headers
            )
            assert response.status_code == 202, response.get_json()
            return response.get_json()["data"]

        return post

    answers = submit_in_order(threaded_app, sqlite_path, [booking_of(guest) for guest in guests])

    assert [len(batch) for batch in batches(threaded_app)] == [1, SUBMITTERS - 1]  # the lone leader, then all
    with threaded_app.app_context():
        rows = db.session.execute(select(BookingRequest).order_by(BookingRequest.id)).scalars().all()
        assert [row.user_id for row in rows] == [guest.id for guest in guests]  # arrival order kept
        assert [(row.status, row.seats_confirmed, row.seats_waitlisted) for row in rows] == (
            [("confirmed", 2, 0)] * 4 + [("partial", 1, 1)] + [("waitlisted", 0, 2)] * (SUBMITTERS - 5)
        )
        by_id = {row.request_id: row for row in rows}
        for guest, answer in zip(guests, answers, strict=True):
            assert isinstance(answer, dict)
            row = by_id[answer["requestId"]]  # each caller got its own request's final status
            assert row.user_id == guest.id
            assert (answer["status"], answer["seatsConfirmed"], answer["seatsWaitlisted"]) == (
                row.status,
                row.seats_confirmed,
                row.seats_waitlisted,
            )
        assert audit.run_audit().is_clean


def test_an_invalid_request_fails_alone_and_a_crash_mid_batch_leaves_nothing_half_written(threaded_app, sqlite_path):
    setup = threaded_app.test_client()
    host = account(setup, "host")
    guests = [account(setup, "guest") for _ in range(4)]
    event_id = create_event(setup, host, capacity=3)["id"]
    pipeline = threaded_app.extensions[EXTENSION_KEY].pipeline
    requests = [
        accepted(guests[0].id, event_id, 2),  # the leader, alone
        accepted(guests[1].id, event_id, 1),
        accepted(guests[2].id, event_id, 0),  # invalid: the database refuses 0 seats
        accepted(guests[3].id, event_id, 2),
        # Its event is gone: recording leaves it out, deciding it fails after the batch's
        # real event was decided (events go in id order): a crash in the middle of the batch.
        accepted(guests[1].id, NO_SUCH_EVENT, 1),
        accepted(guests[2].id, event_id, 1),
    ]

    def submission(request: AcceptedRequest) -> Callable[[], object]:
        def submit() -> object:
            with threaded_app.app_context():
                return pipeline.submit(request)

        return submit

    results = submit_in_order(threaded_app, sqlite_path, [submission(request) for request in requests])

    statuses = [(result.status, result.seats_confirmed, result.seats_waitlisted) for result in results[:2]]
    assert statuses == [("confirmed", 2, 0), ("confirmed", 1, 0)]  # each caller its own request's status
    assert [(results[index].request_id, results[index].status) for index in (3, 5)] == [
        (requests[3].request_id, "waitlisted"),
        (requests[5].request_id, "waitlisted"),
    ]
    assert isinstance(results[2], IntegrityError)  # only its own caller hears of it
    assert isinstance(results[4], NotFound)
    with threaded_app.app_context():
        rows = db.session.execute(select(BookingRequest).order_by(BookingRequest.id)).scalars().all()
        assert [row.request_id for row in rows] == [requests[index].request_id for index in (0, 1, 3, 5)]
        assert [(row.status, row.seats_confirmed, row.seats_waitlisted) for row in rows] == [
            ("confirmed", 2, 0),
            ("confirmed", 1, 0),
            ("waitlisted", 0, 2),
            ("waitlisted", 0, 1),
        ]
        # The failed batch wrote nothing: one booking per confirmed request, one decision
        # e-mail per request, no more.
        assert db.session.execute(select(func.count(Booking.id))).scalar_one() == 2
        assert db.session.execute(select(func.count(OutboxMessage.id))).scalar_one() == 4
        assert audit.run_audit().is_clean


def test_a_batch_that_fails_is_rolled_back_whole(app, client):
    """On SQLite and PostgreSQL: the batch's event was decided (bookings, waitlist, e-mails
    written) before the failure, and none of it stays."""
    host = account(client, "host")
    guests = [account(client, "guest") for _ in range(3)]
    event_id = create_event(client, host, capacity=2)["id"]
    batch = [accepted(guest.id, event_id, 1) for guest in guests]

    with pytest.raises(NotFound):
        booking.record_and_decide([*batch, accepted(guests[0].id, NO_SUCH_EVENT, 1)])

    for model in (BookingRequest, Booking, OutboxMessage):
        assert db.session.execute(select(func.count()).select_from(model)).scalar_one() == 0
    assert audit.run_audit().is_clean
    booking.record_and_decide(batch)
    statuses = db.session.execute(select(BookingRequest.status).order_by(BookingRequest.id)).scalars().all()
    assert statuses == ["confirmed", "confirmed", "waitlisted"]
    # The leader's read of the batch's statuses: each as the request's own status reads it.
    read = booking.recorded_statuses([request.request_id for request in batch] + [str(uuid.uuid4())])
    assert [read[request.request_id] for request in batch] == [
        booking.request_status(request.request_id, request.user_id, viewer_is_admin=False) for request in batch
    ]
    assert [read[request.request_id].waitlist_position for request in batch] == [None, None, 1]
    assert len(read) == len(batch)  # a request never recorded is left out
    assert audit.run_audit().is_clean


def test_a_committed_batch_whose_statuses_cannot_be_read_answers_pending_not_an_error():
    """The batch is committed: an error now would read as "not booked" to a client, who might
    book again. Each caller gets no status (its request answers pending) instead."""
    processed: list[AcceptedRequest] = []

    def unreadable(request_ids: list[str]) -> dict:
        raise RuntimeError("database went away after the commit")

    group = GroupCommit(processed.extend, unreadable, batch_max=10)
    request = accepted(1, 1, 1)
    assert group.submit(request) is None
    assert processed == [request]


def test_one_transaction_does_not_nest(app):
    with one_transaction(), pytest.raises(RuntimeError), one_transaction():
        pass


def test_the_writers_lock_is_exclusive_across_processes(tmp_path):
    """What the server processes of one SQLite file take turns on: while one holds it, another
    process cannot take it; once released, it can."""
    path = str(tmp_path / "atomicseats.db-writers.lock")
    lock = WritersLock(path)
    probe = [
        sys.executable,
        "-c",
        "import fcntl, os, sys; fcntl.flock(os.open(sys.argv[1], os.O_RDWR), fcntl.LOCK_EX | fcntl.LOCK_NB)",
        path,
    ]
    with lock.held():
        assert subprocess.run(probe, capture_output=True, check=False).returncode != 0  # BlockingIOError
    assert subprocess.run(probe, capture_output=True, check=False).returncode == 0
    with lock.held():  # and again in this process
        pass


def test_the_pipeline_of_a_sqlite_file_takes_turns_with_the_other_processes(threaded_app, sqlite_path):
    pipeline = threaded_app.extensions[EXTENSION_KEY].pipeline
    assert isinstance(pipeline, InProcessPipeline)
    setup = threaded_app.test_client()
    guest = account(setup, "guest")
    event_id = create_event(setup, account(setup, "host"), capacity=3)["id"]
    lock_file = Path(f"{sqlite_path}-writers.lock")
    with threaded_app.app_context():
        assert pipeline.submit(accepted(guest.id, event_id, 1)).status == "confirmed"
        assert audit.run_audit().is_clean
    assert lock_file.exists()  # opened by the batch's leader for its turn
    probe = [
        sys.executable,
        "-c",
        "import fcntl, os, sys; fcntl.flock(os.open(sys.argv[1], os.O_RDWR), fcntl.LOCK_EX | fcntl.LOCK_NB)",
    ]
    assert subprocess.run([*probe, str(lock_file)], capture_output=True, check=False).returncode == 0  # released


def test_deciding_counts_no_waitlist_where_nothing_keeps_the_count(database_url):
    """The embedded default (no Redis) keeps no availability cache nor waitlist mirror: deciding
    a batch does not total the event's waiting entries (a hot event's waitlist only grows)."""
    with fresh_app(database_url, REDIS_URL="") as app:
        decide_and_watch_the_statements(app.test_client())


def decide_and_watch_the_statements(client) -> None:
    host = account(client, "host")
    guests = [account(client, "guest") for _ in range(3)]
    event_id = create_event(client, host, capacity=1)["id"]
    batch = [accepted(guest.id, event_id, 1) for guest in guests]
    with statements_seen() as seen:
        booking.record_and_decide(batch)
    deciding = [statement.lower() for statement in seen]
    assert any("insert into waitlist_entries" in statement for statement in deciding)
    assert not [statement for statement in deciding if "count(waitlist_entries.id)" in statement]
    with statements_seen() as seen:
        booking.recorded_statuses([request.request_id for request in batch])
    reading = [statement.lower() for statement in seen]
    # The callers' places in line (their statuses, read by the leader after the commit):
    # counted once for the event's new entries, not once for each waiting request.
    assert len([statement for statement in reading if "count(waitlist_entries.id)" in statement]) == 1
    assert audit.run_audit().is_clean
