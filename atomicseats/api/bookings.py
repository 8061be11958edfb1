"""Booking: POST/DELETE /api/events/book, a request's outcome, and leaving the waitlist."""

from __future__ import annotations

from flask import Blueprint, url_for

from atomicseats.api import schemas
from atomicseats.api._io import correlation_id, idempotency_key, load_body, load_query, schema
from atomicseats.api.openapi import documented
from atomicseats.auth import (
    current_account_is_admin,
    current_session_id,
    current_user_id,
    login_required,
    token_required,
)
from atomicseats.http import envelope
from atomicseats.services import booking, offers

bp = Blueprint("api_bookings", __name__, url_prefix="/api")


@bp.post("/events/book")
@token_required  # the session is confirmed by submit_request, in the claim's round trip
@documented(
    "Request seats; answers 202 with the request id (send Idempotency-Key to retry safely)",
    "bookings",
    body=schemas.BookSchema,
    response=schemas.AcceptedOut,
    status=202,
    errors=(404, 409, 429),
    takes_idempotency_key=True,
)
def book_seats():
    body = load_body(schema(schemas.BookSchema))
    status = booking.submit_request(
        user_id=current_user_id(),
        event_id=body["event_id"],
        seats=body["seats"],
        idempotency_key=idempotency_key(),
        correlation_id=correlation_id(),
        tier_id=body.get("tier_id"),
        session_id=current_session_id(),
    )
    status_url = url_for("api_bookings.request_status", request_id=status.request_id)
    data = schema(schemas.AcceptedOut).dump({**vars(status), "status_url": status_url})  # shallow: asdict() deep-copies
    return envelope(202, data, "Booking request accepted")


@bp.delete("/events/book")
@login_required
@documented(
    "Cancel a booking (bookingId), your latest, or all of yours for the event (cancelAll)",
    "bookings",
    body=schemas.CancelSchema,
    response=schemas.CancelOut,
    errors=(404, 409),
)
def cancel_booking():
    body = load_body(schema(schemas.CancelSchema))
    result = booking.cancel_bookings(current_user_id(), body["event_id"], body.get("booking_id"), body["cancel_all"])
    return envelope(200, schema(schemas.CancelOut).dump(result), "Booking cancelled successfully")


@bp.get("/bookings/requests/<request_id>")
@login_required
@documented(
    "The outcome of a booking request; ?wait=N waits up to N s for a final one",
    "bookings",
    query=schemas.RequestStatusQuery,
    response=schemas.RequestStatusOut,
    errors=(404,),
)
def request_status(request_id: str):
    query = load_query(schema(schemas.RequestStatusQuery))
    # The account is loaded only to look at someone else's request (an admin may).
    status = booking.request_status(request_id, current_user_id(), current_account_is_admin, query["wait"])
    return envelope(200, schema(schemas.RequestStatusOut).dump(status), f"Request {status.status}")


@bp.delete("/bookings/requests/<request_id>/waitlist")
@login_required
@documented(
    "Leave the waitlist: give up the seats this request still waits for; its confirmed seats stay yours",
    "bookings",
    response=schemas.WaitlistWithdrawalOut,
    errors=(404, 409),
)
def leave_waitlist(request_id: str):
    withdrawal = booking.leave_waitlist(current_user_id(), request_id)
    data = schema(schemas.WaitlistWithdrawalOut).dump(
        {**vars(withdrawal.request), "seats_withdrawn": withdrawal.seats_withdrawn}
    )
    return envelope(200, data, "Left the waitlist")


@bp.post("/bookings/requests/<request_id>/offer")
@login_required
@documented(
    "Answer a waitlist offer of this request (offer mode): accept its seats (or fewer), or decline",
    "bookings",
    body=schemas.OfferAnswerSchema,
    response=schemas.OfferAnswerOut,
    errors=(404, 409),
)
def answer_offer(request_id: str):
    body = load_body(schema(schemas.OfferAnswerSchema))
    answer = offers.answer_by_owner(current_user_id(), request_id, body["answer"], body.get("seats"))
    return envelope(200, schema(schemas.OfferAnswerOut).dump(answer), f"Offer {answer.answer}")
