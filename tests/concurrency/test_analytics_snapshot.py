"""The analytics agree with themselves while bookings commit, on real PostgreSQL.

A writer commits bookings (one seat, one price) and raises the event's sold seats in the
same transaction, as fast as it can; meanwhile the analytics are read again and again.
Revenue, seats confirmed (both from bookings) and the top event's sold seats (from the
event row) are separate statements: read from one snapshot they always agree. The
negative control reads without the snapshot and with a pause between statements: the
same check must then catch a report that disagrees with itself.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, update

from atomicseats.extensions import db
from atomicseats.models import Booking, Event
from atomicseats.services import analytics, users
from tests.api.support import insert_events
from tests.conftest import fresh_app
from tests.helpers import account

PRICE_MINOR = 100
READS = 25
WRITES_MAX = 100_000  # the writer stops when the reads are done, long before this


def disagreements_while_booking(app) -> tuple[list[str], int]:
    """Read the analytics READS times while bookings commit; what disagreed, and how many
    seats were sold during the reads (so the test knows the race really ran)."""
    client = app.test_client()
    host, guest = account(client, "host"), account(client, "guest")
    admin = users.get_user(account(client, "admin").id)
    [event_id] = insert_events(host.id, [datetime.now(UTC) + timedelta(days=3)], capacity_seats=1_000_000)
    is_done = threading.Event()

    def write() -> None:
        with app.app_context():
            for _ in range(WRITES_MAX):
                if is_done.is_set():
                    break
                booking = {"user_id": guest.id, "event_id": event_id, "seats": 1, "cost_minor": PRICE_MINOR}
                db.session.execute(insert(Booking).values(**booking))
                db.session.execute(
                    update(Event).where(Event.id == event_id).values(reserved_seats=Event.reserved_seats + 1)
                )
                db.session.commit()
            db.session.remove()

    writer = threading.Thread(target=write)
    writer.start()
    problems: list[str] = []
    seats_seen: list[int] = []
    try:
        for _ in range(READS):
            report = analytics.platform_analytics(admin)
            seats = report.totals["seatsConfirmed"]
            seats_seen.append(seats)
            if report.revenue_minor != seats * PRICE_MINOR or report.top_events[0].reserved_seats != seats:
                problems.append(f"revenue {report.revenue_minor}, seats {seats}, top {report.top_events[0]}")
    finally:
        is_done.set()
        writer.join()
    return problems, seats_seen[-1] - seats_seen[0]


@pytest.mark.slow
def test_every_figure_comes_from_one_snapshot_while_bookings_commit(postgres_url):
    with fresh_app(postgres_url) as app:
        problems, seats_sold_meanwhile = disagreements_while_booking(app)
        assert seats_sold_meanwhile > 0, "no booking committed during the reads: nothing was tested"
        assert problems == []


@pytest.mark.slow
def test_negative_control_without_the_snapshot_the_figures_disagree(postgres_url):
    overrides = {"TESTING_SKIP_ANALYTICS_SNAPSHOT": True, "TESTING_PAUSE_IN_ANALYTICS_S": 0.02}
    with fresh_app(postgres_url, **overrides) as app:
        problems, _seats = disagreements_while_booking(app)
        assert problems, "without the snapshot the reports still agreed: this test no longer exercises the race"
