"""Check-in counts: which check-ins count, once for the check-in page, the dashboard and the
analytics. A check-in counts while its booking is confirmed (one of a booking cancelled
afterwards no longer does: its ticket is void). Nothing here writes or commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from atomicseats.domain.states import BookingStatus
from atomicseats.models import Booking, TicketCheckIn


def _counted(statement: Select[Any]) -> Select[Any]:
    """The statement over the check-ins that count (the one place that says which)."""
    return (
        statement.select_from(TicketCheckIn)
        .join(Booking, Booking.id == TicketCheckIn.booking_id)
        .where(Booking.status == BookingStatus.CONFIRMED)
    )


def checked_in_by_event(session: Session, event_ids: Sequence[int]) -> dict[int, int]:
    """Tickets checked in per event, in one grouped query (events with none are absent)."""
    if not event_ids:
        return {}
    statement = (
        _counted(select(TicketCheckIn.event_id, func.count()))
        .where(TicketCheckIn.event_id.in_(list(event_ids)))
        .group_by(TicketCheckIn.event_id)
    )
    return {event_id: int(count) for event_id, count in session.execute(statement)}


def checked_in_total(session: Session) -> int:
    """Tickets checked in over all events."""
    return int(session.execute(_counted(select(func.count()))).scalar_one())
