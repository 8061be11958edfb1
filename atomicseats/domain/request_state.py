"""A booking request's status, from its seats: one pure rule, applied after every change.

Pure: no I/O, no clock. Every service that changes a decided request (promotion,
cancellation, leaving the waitlist, deleting the event, closing sales) calls
`request_status` with the request's counters and writes what it returns.

The counters (DESIGN.md / booking_requests):
- seats_confirmed: seats ever confirmed to the request (= its bookings' seats, any status);
- seats_waitlisted: seats still waiting now (its waitlist entry's remainder while waiting);
- seats_cancelled: confirmed seats later cancelled (by the guest, or by deleting the event).
Seats held now = seats_confirmed - seats_cancelled.

`pending` is only the state before the first decision: the rule never returns it.
"""

from __future__ import annotations

from atomicseats.domain.allocator import REASON_EVENT_STARTED, REASON_WAITLIST_CLOSED
from atomicseats.domain.offers import REASON_OFFER_ACCEPTED_FEWER, REASON_OFFER_DECLINED, REASON_OFFER_EXPIRED
from atomicseats.domain.states import RequestStatus
from atomicseats.domain.tiers import REASON_TIER_NOT_ON_SALE

# Why seats were not (or are no longer) served.
REASON_EVENT_DELETED = "event_deleted"
REASON_WITHDRAWN = "withdrawn"  # the guest left the waitlist, or cancelled
REASONS = (
    REASON_WAITLIST_CLOSED,
    REASON_EVENT_DELETED,
    REASON_EVENT_STARTED,
    REASON_WITHDRAWN,
    REASON_TIER_NOT_ON_SALE,
    REASON_OFFER_DECLINED,  # waitlist offers (domain/offers.py)
    REASON_OFFER_EXPIRED,
    REASON_OFFER_ACCEPTED_FEWER,
)


def seats_held(seats_confirmed: int, seats_cancelled: int) -> int:
    """Seats the request holds now."""
    assert 0 <= seats_cancelled <= seats_confirmed
    return seats_confirmed - seats_cancelled


def request_status(
    seats_requested: int,
    seats_confirmed: int,
    seats_waitlisted: int,
    seats_cancelled: int,
    is_withdrawn: bool,
) -> RequestStatus:
    """The status of a decided request.

    `is_withdrawn`: the request's waiting seats were given up (the guest left the
    waitlist or cancelled, or the event was deleted: its waitlist entry is `cancelled`).

    - seats waiting > 0: `partial` if seats are held, else `waitlisted`;
    - nothing waiting: `confirmed` if every requested seat is held; `partial` if some
      are; none held: `cancelled` if seats were given back or the request withdrawn,
      else `rejected`.
    """
    assert seats_requested >= 1
    assert seats_waitlisted >= 0
    assert seats_confirmed + seats_waitlisted <= seats_requested
    held = seats_held(seats_confirmed, seats_cancelled)
    if seats_waitlisted > 0:
        return RequestStatus.PARTIAL if held > 0 else RequestStatus.WAITLISTED
    if held == seats_requested:
        return RequestStatus.CONFIRMED
    if held > 0:
        return RequestStatus.PARTIAL
    if seats_cancelled > 0 or is_withdrawn:
        return RequestStatus.CANCELLED
    return RequestStatus.REJECTED
