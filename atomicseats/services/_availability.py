"""Availability queries: what an event's seats and waitlist look like in Postgres, in the
shape the availability cache and admission control use (EventAvailability). Nothing here
writes or commits."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atomicseats.domain.states import WaitlistStatus
from atomicseats.models import Event, WaitlistEntry
from atomicseats.services.contracts import EventAvailability


def waitlist_totals(session: Session, event_ids: list[int]) -> dict[int, tuple[int, int]]:
    """(entries waiting, seats waiting) per event, in one grouped query."""
    if not event_ids:
        return {}
    statement = (
        select(
            WaitlistEntry.event_id,
            func.count(WaitlistEntry.id),
            func.coalesce(func.sum(WaitlistEntry.seats_remaining), 0),
        )
        .where(WaitlistEntry.event_id.in_(event_ids), WaitlistEntry.status == WaitlistStatus.WAITING)
        .group_by(WaitlistEntry.event_id)
    )
    return {event_id: (int(count), int(seats)) for event_id, count, seats in session.execute(statement)}


def availability_of(event: Event, waitlist_length: int) -> EventAvailability:
    return EventAvailability(
        event_id=event.id,
        capacity_seats=event.capacity_seats,
        reserved_seats=event.reserved_seats,
        is_waitlist_open=event.is_waitlist_open,
        is_deleted=event.is_deleted,
        waitlist_length=waitlist_length,
        sales_end_at=event.sales_end,
        seats_offered=event.seats_offered,
        version=event.version,
    )
