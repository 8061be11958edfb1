"""Tickets: a booking's tickets and calendar entry (its owner), and check-in at the door (the
event's host): GET /api/bookings/<id>/tickets, GET /api/bookings/<id>/tickets.ics,
POST /api/events/<id>/check-ins."""

from __future__ import annotations

from flask import Blueprint, Response, url_for

from atomicseats.api import schemas
from atomicseats.api._io import load_body, schema
from atomicseats.api.openapi import documented
from atomicseats.auth import current_account, login_required
from atomicseats.domain import accounts
from atomicseats.errors import Conflict, NotFound
from atomicseats.http import envelope
from atomicseats.services import tickets
from atomicseats.services.tickets import CheckInOutcome

bp = Blueprint("api_tickets", __name__, url_prefix="/api")

# Refused check-ins: the status, and the message the door reads (under `errors.code`).
REFUSALS: dict[CheckInOutcome, tuple[type[NotFound] | type[Conflict], str]] = {
    CheckInOutcome.UNKNOWN: (NotFound, "Not a ticket: check the code"),
    CheckInOutcome.WRONG_EVENT: (NotFound, "A ticket of another event"),
    CheckInOutcome.CANCELLED: (Conflict, "This ticket was cancelled (its booking, or the event)"),
}


@bp.get(f"/bookings/<int(max={schemas.ID_MAX}):booking_id>/tickets")
@login_required
@documented(
    "A booking's tickets, one a seat, with their codes (yours, or any as an admin)",
    "tickets",
    response=schemas.BookingTicketsOut,
    errors=(404,),
)
def booking_tickets(booking_id: int):
    account = current_account()
    view = tickets.booking_tickets(account.id, accounts.is_admin(account.role), booking_id)
    data = schema(schemas.BookingTicketsOut).dump(
        {
            **vars(view),
            "view": view,
            "is_valid": not view.is_cancelled,
            "calendar_url": url_for("api_tickets.booking_calendar", booking_id=booking_id),
        }
    )
    return envelope(200, data, f"{len(view.tickets)} tickets")


@bp.get(f"/bookings/<int(max={schemas.ID_MAX}):booking_id>/tickets.ics")
@login_required
@documented(
    "The booking's event as an iCalendar file (text/calendar), to add to a calendar",
    "tickets",
    response=None,
    errors=(404, 503),  # errors in the JSON envelope, as everywhere
    is_enveloped=False,
    media_type="text/calendar",
)
def booking_calendar(booking_id: int):
    account = current_account()
    filename, data = tickets.booking_calendar(account.id, accounts.is_admin(account.role), booking_id)
    return Response(
        data,
        content_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.post(f"/events/<int(max={schemas.ID_MAX}):event_id>/check-ins")
@login_required
@documented(
    "Check a ticket in at the door (the event's host or an admin): 200 admitted or already checked in; "
    "404 not a ticket of this event; 409 cancelled",
    "tickets",
    body=schemas.CheckInSchema,
    response=schemas.CheckInOut,
    errors=(403, 404, 409),
)
def check_in(event_id: int):
    body = load_body(schema(schemas.CheckInSchema))
    actor = current_account()
    result = tickets.check_in(actor, event_id, body["code"], body["door"])
    refusal = REFUSALS.get(result.outcome)
    if refusal is not None:
        error, message = refusal
        raise error(message, {"code": [f"{result.outcome.value}: {message}."]})
    counts = tickets.check_in_counts([event_id])[event_id]
    data = schema(schemas.CheckInOut).dump({**vars(result), "counts": counts})
    message = "Admitted" if result.outcome is CheckInOutcome.ADMITTED else "Already checked in"
    return envelope(200, data, message)
