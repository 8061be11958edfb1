"""Admin analytics: totals, utilisation, revenue and waitlists, computed in SQL."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select

from atomicseats.extensions import db
from atomicseats.models import Booking, BookingRequest, Event, User
from atomicseats.services._allocation import waitlist_totals

TOP_EVENTS_MAX = 10
EVENTS_REPORTED_MAX = 500


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


@dataclass(frozen=True)
class Analytics:
    totals: dict[str, int]
    capacity_utilisation: float
    revenue_minor: int
    top_events: list[EventStats]
    events: list[EventStats]
    request_outcomes: dict[str, int]


def platform_analytics() -> Analytics:
    session = db.session
    events = list(
        session.execute(
            select(Event).where(Event.status == "published").order_by(Event.id).limit(EVENTS_REPORTED_MAX)
        ).scalars()
    )
    revenue_by_event = dict(
        session.execute(
            select(Booking.event_id, func.coalesce(func.sum(Booking.cost_minor), 0))
            .where(Booking.status == "confirmed")
            .group_by(Booking.event_id)
        ).all()
    )
    waitlists = waitlist_totals(session, [event.id for event in events])
    stats = [
        _event_stats(event, int(revenue_by_event.get(event.id, 0)), waitlists.get(event.id, (0, 0))) for event in events
    ]
    capacity_total = sum(event.capacity_seats for event in events)
    reserved_total = sum(event.reserved_seats for event in events)
    return Analytics(
        totals=_totals(session),
        capacity_utilisation=round(reserved_total / capacity_total, 4) if capacity_total else 0.0,
        revenue_minor=sum(int(value) for value in revenue_by_event.values()),
        top_events=sorted(stats, key=lambda item: (-item.reserved_seats, item.event_id))[:TOP_EVENTS_MAX],
        events=stats,
        request_outcomes=dict(
            session.execute(select(BookingRequest.status, func.count()).group_by(BookingRequest.status)).all()
        ),
    )


def _event_stats(event: Event, revenue_minor: int, waitlist: tuple[int, int]) -> EventStats:
    utilisation = event.reserved_seats / event.capacity_seats if event.capacity_seats else 0.0
    return EventStats(
        event_id=event.id,
        name=event.name,
        capacity_seats=event.capacity_seats,
        reserved_seats=event.reserved_seats,
        utilisation=round(utilisation, 4),
        revenue_minor=revenue_minor,
        waitlist_length=waitlist[0],
        waitlist_seats=waitlist[1],
    )


def _totals(session) -> dict[str, int]:
    users_by_role = dict(session.execute(select(User.role, func.count()).group_by(User.role)).all())
    bookings = session.execute(
        select(
            func.count(Booking.id),
            func.coalesce(func.sum(case((Booking.status == "confirmed", Booking.seats), else_=0)), 0),
            func.coalesce(func.sum(case((Booking.status == "cancelled", 1), else_=0)), 0),
        )
    ).one()
    events_published = session.execute(select(func.count(Event.id)).where(Event.status == "published")).scalar_one()
    return {
        "users": sum(users_by_role.values()),
        "guests": users_by_role.get("guest", 0),
        "hosts": users_by_role.get("host", 0),
        "admins": users_by_role.get("admin", 0),
        "events": int(events_published),
        "bookings": int(bookings[0]),
        "seatsConfirmed": int(bookings[1]),
        "bookingsCancelled": int(bookings[2]),
    }
