"""Many doors scan the same ticket at the same moment (issue 13 point 3), on PostgreSQL: one
door admits it, every other one says "already checked in" with the first one's time, and the
audit is clean. The negative control decides from a read and then writes (a plain SELECT then
INSERT): with it on, the same race admits the seat more than once, so this test would see it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from atomicseats.domain.tickets import CheckInOutcome
from atomicseats.extensions import db
from atomicseats.models import TicketCheckIn, User
from atomicseats.services import tickets
from atomicseats.services.audit import run_audit
from tests.conftest import fresh_app
from tests.helpers import account, book, create_event

DOORS = 16


def doors_race(app) -> tuple[list[tickets.CheckInResult], int]:
    setup_client = app.test_client()
    host = account(setup_client, "host")
    guest = account(setup_client)
    event_id = create_event(setup_client, host, capacity=10)["id"]
    booking_id = book(setup_client, guest, event_id, 2)["bookingIds"][0]
    code = tickets.codes_of(tickets.current_code_key(), booking_id, 2)[1]
    start = threading.Barrier(DOORS)

    def scan(door: int) -> tickets.CheckInResult:
        with app.app_context():
            actor = db.session.get(User, host.id)
            start.wait()
            return tickets.check_in(actor, event_id, code, f"door {door}")

    with ThreadPoolExecutor(DOORS) as pool:
        results = list(pool.map(scan, range(DOORS)))
    db.session.rollback()
    rows = db.session.execute(select(func.count()).select_from(TicketCheckIn)).scalar_one()
    return results, rows


def overrides(**extra):
    return {"SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": DOORS + 5, "max_overflow": 10}, **extra}


@pytest.mark.slow
def test_many_doors_scanning_one_ticket_admit_it_once(postgres_url):
    with fresh_app(postgres_url, **overrides()) as app:
        results, rows = doors_race(app)
        outcomes = [result.outcome for result in results]
        assert outcomes.count(CheckInOutcome.ADMITTED) == 1, outcomes
        assert outcomes.count(CheckInOutcome.ALREADY_CHECKED_IN) == DOORS - 1, outcomes
        (admitted,) = [result for result in results if result.outcome is CheckInOutcome.ADMITTED]
        assert all(result.record == admitted.record for result in results)  # everyone names the one check-in
        assert rows == 1
        assert run_audit().is_clean


@pytest.mark.slow
def test_negative_control_a_read_then_write_check_in_admits_twice(postgres_url):
    with fresh_app(
        postgres_url, **overrides(TESTING_CHECK_IN_SELECT_THEN_INSERT=True, TESTING_PAUSE_AFTER_READ_S=0.3)
    ) as app:
        results, rows = doors_race(app)
        outcomes = [result.outcome for result in results]
        assert outcomes.count(CheckInOutcome.ADMITTED) > 1, outcomes  # the race this test exists to catch
        assert rows == 1  # the key still kept one row: only the door's verdict was wrong
