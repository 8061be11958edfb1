"""What operators watch: the platform's metrics, with its state read from the database.

The processes count what they do through the Metrics port (services and edges alike); the
gauges that describe the platform as a whole (requests waiting for a decision, the outbox,
the longest waitlists) are read from Postgres, the truth, when the API is scraped.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from atomicseats.domain.states import EventStatus, RequestStatus, WaitlistStatus
from atomicseats.extensions import db
from atomicseats.models import BookingRequest, Event, WaitlistEntry, utcnow
from atomicseats.services.contracts import PlatformGauges
from atomicseats.services.outbox import outbox_backlog
from atomicseats.services.ports import adapters
from atomicseats.services.unit_of_work import release_session

log = logging.getLogger(__name__)

WAITLIST_EVENTS_SHOWN_MAX = 20  # the waitlist gauge's label set: this many events at most


def exposition() -> tuple[bytes, str]:
    """The metrics in the Prometheus text format: (body, content type). Without the database
    the process's own counters are still served (the gauges are left out, and logged)."""
    try:
        gauges: PlatformGauges | None = platform_gauges()
    except Exception as error:  # noqa: BLE001 - a scrape must not fail with the database
        release_session()
        log.warning("metrics.gauges_unavailable", extra={"error": str(error)[:300]})
        gauges = None
    return adapters().metrics.render(gauges)


def platform_gauges() -> PlatformGauges:
    pending = db.session.execute(
        select(func.count(BookingRequest.id)).where(BookingRequest.status == RequestStatus.PENDING)
    ).scalar_one()
    return PlatformGauges(
        pending_requests=int(pending), outbox=outbox_backlog(), waitlist_lengths=longest_waitlists_on_sale()
    )


def longest_waitlists_on_sale(limit: int = WAITLIST_EVENTS_SHOWN_MAX) -> list[tuple[int, int]]:
    """(event id, waiting entries) of the events on sale with the longest waitlists, longest first."""
    length = func.count(WaitlistEntry.id)
    statement = (
        select(WaitlistEntry.event_id, length)
        .join(Event, Event.id == WaitlistEntry.event_id)
        .where(
            WaitlistEntry.status == WaitlistStatus.WAITING,
            Event.status != EventStatus.DELETED,
            Event.sales_end > utcnow(),
        )
        .group_by(WaitlistEntry.event_id)
        .order_by(length.desc(), WaitlistEntry.event_id)
        .limit(limit)
    )
    return [(int(event_id), int(count)) for event_id, count in db.session.execute(statement)]
