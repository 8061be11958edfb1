"""A guest's booking history: tickets newest first, or one line per event; keyset-paginated."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict, TypeVar

from sqlalchemy import ColumnElement, Select, and_, case, func, select

from atomicseats.domain import limits
from atomicseats.domain.states import BookingStatus, EventStatus
from atomicseats.extensions import db
from atomicseats.models import Booking, BookingRequest, Event, EventTier
from atomicseats.services._pages import Page, cursor_id, decode_cursor, page_of

AnySelect = TypeVar("AnySelect", bound=Select[Any])  # a filter narrows whatever the statement selects


class Ticket(TypedDict):
    id: int
    event_id: int
    event: Event
    seats: int
    cost_minor: int
    status: str
    created_at: datetime
    cancelled_at: datetime | None
    request_id: str | None
    request_status: str | None
    tier_id: int | None
    tier_name: str | None  # the price tier the seats were booked in


class EventSummary(TypedDict):
    event: Event
    total_tickets: int
    active_tickets: int
    cancelled_tickets: int
    total_cost: int
    seats_waitlisted: int
    first_booked_at: datetime
    last_booked_at: datetime


@dataclass(frozen=True)
class HistoryFilter:
    event_id: int | None = None
    status: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None

    def apply(self, statement: AnySelect) -> AnySelect:
        if self.event_id is not None:
            statement = statement.where(Booking.event_id == self.event_id)
        if self.status is not None:
            statement = statement.where(Booking.status == self.status)
        if self.created_from is not None:
            statement = statement.where(Booking.created_at >= self.created_from)
        if self.created_to is not None:
            statement = statement.where(Booking.created_at <= self.created_to)
        return statement


def booking_history(
    user_id: int, view: str, limit: int, cursor: str | None, filters: HistoryFilter
) -> Page[Ticket] | Page[EventSummary]:
    """A user's bookings, newest first (tickets), or one line per event (summary), keyset-paginated."""
    assert 1 <= limit <= limits.HISTORY_PAGE_SIZE_MAX
    if view == "summary":
        return _summary_page(user_id, limit, cursor, filters)
    statement = filters.apply(
        select(Booking, BookingRequest.request_id, BookingRequest.status, EventTier.name)
        .outerjoin(BookingRequest, BookingRequest.id == Booking.booking_request_id)
        .outerjoin(EventTier, EventTier.id == Booking.tier_id)
        .where(Booking.user_id == user_id)
    )
    if cursor:
        statement = statement.where(Booking.id < cursor_id(decode_cursor(cursor)))
    rows = db.session.execute(statement.order_by(Booking.id.desc()).limit(limit + 1)).all()
    tickets = [
        _ticket(booking, request_id, request_status, tier_name)
        for booking, request_id, request_status, tier_name in rows
    ]
    return page_of(tickets, limit, lambda ticket: {"id": ticket["id"]})


def _ticket(booking: Booking, request_id: str | None, request_status: str | None, tier_name: str | None) -> Ticket:
    """A booking, with the request it came from and that request's status now (as its page shows)."""
    return {
        "id": booking.id,
        "event_id": booking.event_id,
        "event": booking.event,
        "seats": booking.seats,
        "cost_minor": booking.cost_minor,
        "status": booking.status,
        "created_at": booking.created_at,
        "cancelled_at": booking.cancelled_at,
        "request_id": request_id,
        "request_status": request_status,
        "tier_id": booking.tier_id,
        "tier_name": tier_name,
    }


def _summary_page(user_id: int, limit: int, cursor: str | None, filters: HistoryFilter) -> Page[EventSummary]:
    """Totals per event over all of the user's bookings (not per page), newest event first."""
    is_confirmed = Booking.status == BookingStatus.CONFIRMED
    statement = filters.apply(
        select(
            Booking.event_id,
            func.sum(Booking.seats),
            func.sum(case((is_confirmed, Booking.seats), else_=0)),
            func.sum(case((is_confirmed, Booking.cost_minor), else_=0)),
            func.min(Booking.created_at),
            func.max(Booking.created_at),
        ).where(Booking.user_id == user_id)
    )
    if cursor:
        statement = statement.where(Booking.event_id < cursor_id(decode_cursor(cursor)))
    statement = statement.group_by(Booking.event_id).order_by(Booking.event_id.desc()).limit(limit + 1)
    rows = db.session.execute(statement).all()
    event_ids = [row[0] for row in rows]
    events = {event.id: event for event in db.session.execute(select(Event).where(Event.id.in_(event_ids))).scalars()}
    waiting = dict(
        db.session.execute(
            select(BookingRequest.event_id, func.sum(BookingRequest.seats_waitlisted))
            .where(BookingRequest.user_id == user_id, BookingRequest.event_id.in_(event_ids))
            .group_by(BookingRequest.event_id)
        )
        .tuples()
        .all()
    )
    summaries: list[EventSummary] = [
        {
            "event": events[event_id],
            "total_tickets": int(total),
            "active_tickets": int(active),
            "cancelled_tickets": int(total) - int(active),
            "total_cost": int(cost),
            "seats_waitlisted": int(waiting.get(event_id) or 0),
            "first_booked_at": _as_utc(first),
            "last_booked_at": _as_utc(last),
        }
        for event_id, total, active, cost, first, last in rows
    ]
    return page_of(summaries, limit, lambda summary: {"id": summary["event"].id})


def _as_utc(value: datetime) -> datetime:
    """Aggregates bypass the column type on SQLite, which returns naive or text values."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- "My bookings": a guest's bookings grouped by event, upcoming and past ----------------


@dataclass(frozen=True)
class EventBookings:
    """A guest's bookings for one event, newest first, and what they hold now."""

    event: Event
    tickets: list[Ticket]
    seats_held: int  # confirmed seats
    cost_minor: int  # what the confirmed seats cost
    is_upcoming: bool  # the event is live and has not ended: its bookings still count

    @property
    def bookings_held(self) -> list[Ticket]:
        return [ticket for ticket in self.tickets if ticket["status"] == BookingStatus.CONFIRMED]


@dataclass(frozen=True)
class BookingTotals:
    """Over all of a guest's confirmed bookings, not only those shown."""

    events_upcoming: int
    seats_upcoming: int
    cost_upcoming_minor: int
    cost_total_minor: int


@dataclass(frozen=True)
class GuestBookings:
    upcoming: list[EventBookings]  # soonest first
    past: list[EventBookings]  # most recent first
    totals: BookingTotals
    has_more: bool  # the guest has more than GUEST_BOOKINGS_SHOWN_MAX bookings: the oldest are left out


def guest_bookings(user_id: int, now: datetime, limit: int = limits.GUEST_BOOKINGS_SHOWN_MAX) -> GuestBookings:
    """The user's bookings (the newest `limit`) grouped by event: upcoming (the event is live
    and ends after `now`), soonest first; past (ended or withdrawn), most recent first."""
    assert 1 <= limit <= limits.GUEST_BOOKINGS_SHOWN_MAX
    statement = (
        select(Booking, BookingRequest.request_id, BookingRequest.status, EventTier.name, _is_upcoming(now))
        .join(Event, Event.id == Booking.event_id)
        .outerjoin(BookingRequest, BookingRequest.id == Booking.booking_request_id)
        .outerjoin(EventTier, EventTier.id == Booking.tier_id)
        .where(Booking.user_id == user_id)
        .order_by(Booking.id.desc())
        .limit(limit + 1)
    )
    rows = db.session.execute(statement).all()
    by_event: dict[int, list[Ticket]] = {}
    upcoming_ids: set[int] = set()
    for booking, request_id, request_status, tier_name, is_upcoming in rows[:limit]:
        by_event.setdefault(booking.event_id, []).append(_ticket(booking, request_id, request_status, tier_name))
        if is_upcoming:
            upcoming_ids.add(booking.event_id)
    groups = [_event_bookings(tickets, event_id in upcoming_ids) for event_id, tickets in by_event.items()]
    upcoming = sorted((group for group in groups if group.is_upcoming), key=_soonest_first)
    past = sorted((group for group in groups if not group.is_upcoming), key=_soonest_first, reverse=True)
    return GuestBookings(upcoming, past, _totals(user_id, now), has_more=len(rows) > limit)


def _is_upcoming(now: datetime) -> ColumnElement[bool]:
    """An event's bookings are upcoming while it is live (not withdrawn) and has not ended."""
    return and_(Event.status != EventStatus.DELETED, Event.ends_at > now)


def _event_bookings(tickets: list[Ticket], is_upcoming: bool) -> EventBookings:
    event = tickets[0]["event"]
    held = [ticket for ticket in tickets if ticket["status"] == BookingStatus.CONFIRMED]
    return EventBookings(
        event=event,
        tickets=tickets,
        seats_held=sum(ticket["seats"] for ticket in held),
        cost_minor=sum(ticket["cost_minor"] for ticket in held),
        is_upcoming=is_upcoming,
    )


def _soonest_first(group: EventBookings) -> tuple[datetime, int]:
    return group.event.starts_at, group.event.id


def _totals(user_id: int, now: datetime) -> BookingTotals:
    is_upcoming = _is_upcoming(now)
    statement = (
        select(
            func.count(func.distinct(case((is_upcoming, Booking.event_id)))),
            func.coalesce(func.sum(case((is_upcoming, Booking.seats), else_=0)), 0),
            func.coalesce(func.sum(case((is_upcoming, Booking.cost_minor), else_=0)), 0),
            func.coalesce(func.sum(Booking.cost_minor), 0),
        )
        .join(Event, Event.id == Booking.event_id)
        .where(Booking.user_id == user_id, Booking.status == BookingStatus.CONFIRMED)
    )
    events_upcoming, seats_upcoming, cost_upcoming, cost_total = db.session.execute(statement).one()
    return BookingTotals(int(events_upcoming), int(seats_upcoming), int(cost_upcoming), int(cost_total))
