"""/api/events: list, read, create, update, delete, waitlist switch, host roster."""

from __future__ import annotations

from flask import Blueprint

from atomicseats.api import schemas
from atomicseats.api._io import load_body, load_query, schema
from atomicseats.api.openapi import documented
from atomicseats.api.schemas import ID_MAX
from atomicseats.auth import current_account, login_required, role_required, signed_in_account
from atomicseats.http import envelope
from atomicseats.services import events

bp = Blueprint("api_events", __name__, url_prefix="/api/events")


@bp.get("/all")
@documented(
    "The catalogue, a page at a time: upcoming events soonest first by default (keyset pagination); "
    "status=deleted needs an admin's token",
    "events",
    query=schemas.EventListQuery,
    response=schemas.EventPageOut,
    is_authenticated=False,
    errors=(401, 403),
)
def list_events():
    query = load_query(schema(schemas.EventListQuery))
    limit, cursor = query.pop("limit"), query.pop("cursor", None)
    viewer = signed_in_account() if query.get("status") == "deleted" else None
    page = events.list_events(events.EventFilter(**query), limit, cursor, viewer)
    return envelope(200, schema(schemas.EventPageOut).dump(page), "Events found")


@bp.get(f"/<int(max={ID_MAX}):event_id>")
@documented(
    "One event with live availability", "events", response=schemas.EventOut, is_authenticated=False, errors=(404,)
)
def get_event(event_id: int):
    return envelope(200, schema(schemas.EventOut).dump(events.get_event(event_id)), "Event found")


@bp.post("/create")
@role_required("host", "admin")
@documented(
    "Publish an event (hosts)",
    "events",
    body=schemas.EventCreateSchema,
    response=schemas.EventOut,
    status=201,
    errors=(403,),
)
def create_event():
    body = load_body(schema(schemas.EventCreateSchema))
    view = events.create_event(current_account(), body)
    return envelope(201, schema(schemas.EventOut).dump(view), "Event created successfully")


@bp.post("/update")
@login_required
@documented(
    "Change an event (its host or an admin); capacity never below seats sold",
    "events",
    body=schemas.EventUpdateSchema,
    response=schemas.EventOut,
    errors=(403, 404, 409),
)
def update_event():
    body = load_body(schema(schemas.EventUpdateSchema))
    event_id = body.pop("event_id")
    if "is_waitlist_closed" in body:
        body["is_waitlist_open"] = not body.pop("is_waitlist_closed")
    view = events.update_event(current_account(), event_id, body)
    return envelope(200, schema(schemas.EventOut).dump(view), "Event updated successfully")


@bp.post("/delete")
@login_required
@documented(
    "Withdraw an event: cancels its bookings and tells every guest",
    "events",
    body=schemas.EventIdSchema,
    response=schemas.EventOut,
    errors=(403, 404),
)
def delete_event():
    body = load_body(schema(schemas.EventIdSchema))
    view = events.delete_event(current_account(), body["event_id"])
    return envelope(200, schema(schemas.EventOut).dump(view), "Event deleted successfully")


@bp.post(f"/<int(max={ID_MAX}):event_id>/waitlist/close")
@login_required
@documented(
    "Close the waitlist: new requests beyond the free seats are rejected",
    "events",
    response=schemas.EventOut,
    errors=(403, 404),
)
def close_waitlist(event_id: int):
    view = events.set_waitlist_open(current_account(), event_id, False)
    return envelope(200, schema(schemas.EventOut).dump(view), "Waitlist closed")


@bp.post(f"/<int(max={ID_MAX}):event_id>/waitlist/reopen")
@login_required
@documented(
    "Reopen the waitlist (free seats go to its head first)", "events", response=schemas.EventOut, errors=(403, 404)
)
def reopen_waitlist(event_id: int):
    view = events.set_waitlist_open(current_account(), event_id, True)
    return envelope(200, schema(schemas.EventOut).dump(view), "Waitlist reopened")


@bp.get(f"/<int(max={ID_MAX}):event_id>/roster")
@login_required
@documented(
    "The host's view: confirmed bookings, then the waitlist in queue order, one cursor walking both",
    "events",
    query=schemas.RosterQuery,
    response=schemas.RosterOut,
    errors=(403, 404),
)
def roster(event_id: int):
    query = load_query(schema(schemas.RosterQuery))
    view = events.event_roster(current_account(), event_id, query["limit"], query.get("cursor"))
    return envelope(200, schema(schemas.RosterOut).dump(view), "Event roster")
