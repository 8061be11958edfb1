"""Admin analytics: totals, utilisation, revenue, waitlists and check-ins, computed in SQL.

Every platform-wide figure is one aggregate over all rows (never a sum in Python over a
page or a capped list); the per-event part is a keyset page by event id, its revenue,
waitlist and check-in figures grouped in SQL for the events of that page (and the top
events) only. All of them are read
from one snapshot, so they agree with each other while bookings go on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from atomicseats.domain import accounts, limits
from atomicseats.domain.states import BookingStatus, EventStatus, WaitlistStatus
from atomicseats.errors import Forbidden
from atomicseats.extensions import db
from atomicseats.models import Booking, BookingRequest, Event, User, WaitlistEntry
from atomicseats.services._availability import waitlist_totals
from atomicseats.services._check_ins import checked_in_by_event, checked_in_total
from atomicseats.services._pages import Page, cursor_id, decode_cursor, page_of


@dataclass(frozen=True)
class EventStats:
    event_id: int
    name: str
    capacity_seats: int
    reserved_seats: int
    utilisation: float
    revenue_minor: int
    waitlist_length: int
    waitlist_seats: int
    checked_in: int  # of its tickets (its reserved seats), those let in at the door


@dataclass(frozen=True)
class Analytics:
    totals: dict[str, int]
    capacity_utilisation: float
    revenue_minor: int
    top_events: list[EventStats]
    events: Page[EventStats]  # by event id
    request_outcomes: dict[str, int]


def platform_analytics(
    actor: User, limit: int = limits.ANALYTICS_PAGE_SIZE_DEFAULT, cursor: str | None = None
) -> Analytics:
    """Admins only (the API and the admin pages both ask here)."""
    if actor.role != accounts.ADMIN_ROLE:
        raise Forbidden("Only admins may see the platform's analytics")
    assert 1 <= limit <= limits.ANALYTICS_PAGE_SIZE_MAX
    after_id = cursor_id(decode_cursor(cursor)) if cursor else 0
    with _snapshot() as session:
        return _analytics(session, limit, after_id)


@contextmanager
def _snapshot() -> Iterator[Session]:
    """One REPEATABLE READ transaction on PostgreSQL (each statement of a READ COMMITTED one
    sees the commits made since the last: the revenue could count a booking the seat totals
    missed). SQLite's read transaction is a snapshot already. Nothing here writes."""
    session = db.session()  # the request's session itself, not its scoped proxy
    session.rollback()  # end what this request read before (its account): the snapshot starts here
    is_snapshot = not current_app.config.get("TESTING_SKIP_ANALYTICS_SNAPSHOT")  # negative control
    if is_snapshot and session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    try:
        yield session
    finally:
        session.rollback()


def _analytics(session: Session, limit: int, after_id: int) -> Analytics:
    capacity_total, reserved_total = session.execute(
        select(
            func.coalesce(func.sum(Event.capacity_seats), 0), func.coalesce(func.sum(Event.reserved_seats), 0)
        ).where(Event.status == EventStatus.PUBLISHED)
    ).one()
    pause_s = current_app.config.get("TESTING_PAUSE_IN_ANALYTICS_S", 0)
    if pause_s:  # negative control for the concurrency test: widen the window between reads
        time.sleep(pause_s)
    revenue_total = session.execute(
        select(func.coalesce(func.sum(Booking.cost_minor), 0)).where(Booking.status == BookingStatus.CONFIRMED)
    ).scalar_one()
    published = select(Event).where(Event.status == EventStatus.PUBLISHED)
    top = session.execute(
        published.order_by(Event.reserved_seats.desc(), Event.id).limit(limits.TOP_EVENTS_MAX)
    ).scalars()
    rows = session.execute(published.where(Event.id > after_id).order_by(Event.id).limit(limit + 1)).scalars()
    page = page_of(list(rows), limit, lambda event: {"id": event.id})
    top_events = list(top)
    stats = _event_stats(session, top_events + page.items)  # both lists: one grouped query per figure
    return Analytics(
        totals=_totals(session),
        capacity_utilisation=_ratio(int(reserved_total), int(capacity_total)),
        revenue_minor=int(revenue_total),
        top_events=[stats[event.id] for event in top_events],
        events=Page(
            items=[stats[event.id] for event in page.items], has_more=page.has_more, next_cursor=page.next_cursor
        ),
        request_outcomes=dict(
            session.execute(select(BookingRequest.status, func.count()).group_by(BookingRequest.status)).tuples().all()
        ),
    )


def _event_stats(session: Session, events: list[Event]) -> dict[int, EventStats]:
    """Figures of these events (the top ones and a page), by event id: revenue, waitlists and
    check-ins each grouped in SQL, one query for all of them."""
    event_ids = list(dict.fromkeys(event.id for event in events))
    revenue_by_event = (
        dict(
            session.execute(
                select(Booking.event_id, func.sum(Booking.cost_minor))
                .where(Booking.event_id.in_(event_ids), Booking.status == BookingStatus.CONFIRMED)
                .group_by(Booking.event_id)
            )
            .tuples()
            .all()
        )
        if event_ids
        else {}
    )
    waitlists = waitlist_totals(session, event_ids)
    checked_in = checked_in_by_event(session, event_ids)
    return {
        event.id: EventStats(
            event_id=event.id,
            name=event.name,
            capacity_seats=event.capacity_seats,
            reserved_seats=event.reserved_seats,
            utilisation=_ratio(event.reserved_seats, event.capacity_seats),
            revenue_minor=int(revenue_by_event.get(event.id, 0)),
            waitlist_length=waitlists.get(event.id, (0, 0))[0],
            waitlist_seats=waitlists.get(event.id, (0, 0))[1],
            checked_in=checked_in.get(event.id, 0),
        )
        for event in events
    }


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _totals(session: Session) -> dict[str, int]:
    users_by_role = dict(session.execute(select(User.role, func.count()).group_by(User.role)).tuples().all())
    bookings = session.execute(
        select(
            func.count(Booking.id),
            func.coalesce(func.sum(case((Booking.status == BookingStatus.CONFIRMED, Booking.seats), else_=0)), 0),
            func.coalesce(func.sum(case((Booking.status == BookingStatus.CANCELLED, 1), else_=0)), 0),
        )
    ).one()
    events_published = session.execute(
        select(func.count(Event.id)).where(Event.status == EventStatus.PUBLISHED)
    ).scalar_one()
    waiting = session.execute(
        select(func.count(WaitlistEntry.id), func.coalesce(func.sum(WaitlistEntry.seats_remaining), 0)).where(
            WaitlistEntry.status == WaitlistStatus.WAITING
        )
    ).one()
    return {
        "users": sum(users_by_role.values()),
        "guests": users_by_role.get("guest", 0),
        "hosts": users_by_role.get("host", 0),
        "admins": users_by_role.get("admin", 0),
        "events": int(events_published),
        "bookings": int(bookings[0]),
        "seatsConfirmed": int(bookings[1]),
        "bookingsCancelled": int(bookings[2]),
        "waitlistEntries": int(waiting[0]),
        "waitlistSeats": int(waiting[1]),
        "ticketsCheckedIn": checked_in_total(session),
    }
