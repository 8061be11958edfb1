"""Waitlist offers (issue 13 point 2): a guest answers an offer; the beat expires those not
answered in time.

An event in `offer` mode offers freed seats to the head of its waitlist instead of confirming
them (services/_allocation.py `_write_offers`, the rules: domain/allocator.py and
domain/offers.py). Answering locks the event row like every seat change, so an answer, the
expiry beat and any booking or cancellation of the event take turns: a seat is never both
offered and sold, and never offered to two people at once. Whatever an answer or an expiry
releases passes on at once, in line (`settle_event`), in the same transaction.

Who may answer: the guest the offer was made to (the API, the pages), or whoever holds the
signed link of the offer's e-mail, which names the entry and the offer's deadline, so it opens
that one offer once: after an answer, or once a new offer is made, it opens nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from atomicseats.domain import offers, tiers
from atomicseats.domain.offers import Answer, Refusal
from atomicseats.domain.request_state import seats_held
from atomicseats.domain.states import WaitlistStatus
from atomicseats.errors import Conflict, InvalidInput, NotFound
from atomicseats.extensions import db
from atomicseats.models import BookingRequest, Event, EventTier, WaitlistEntry, utcnow
from atomicseats.services._allocation import (
    Settlement,
    announce_after_commit,
    end_wait,
    entry_id_of_offer_token,
    event_tiers,
    lock_event,
    new_booking,
    restate_request,
    settle_event,
    sync_reserved,
)
from atomicseats.services._notification_rows import Notification, outbox_row
from atomicseats.services.unit_of_work import UnitOfWork, unit_of_work

log = logging.getLogger(__name__)

EXPIRY_EVENTS_PER_RUN_MAX = 100  # events whose offers one beat run expires; the next run takes the rest

_ENTRY_STATUS_AFTER = {  # an entry that waits for nothing more after an answer
    Answer.ACCEPTED: WaitlistStatus.SERVED,
    Answer.DECLINED: WaitlistStatus.CANCELLED,
    Answer.EXPIRED: WaitlistStatus.EXPIRED,
}
_REFUSALS = {
    Refusal.OFFER_EXPIRED: ("This offer has ended: its time to answer is over", "offer_ended"),
    Refusal.SALES_ENDED: ("Sales for this event have ended", "sales_ended"),
}


@dataclass(frozen=True)
class OfferView:
    """An open offer as the guest sees it."""

    entry_id: int
    request_id: str
    event_id: int
    event_name: str
    seats_offered: int
    seats_waiting: int
    expires_at: datetime


@dataclass(frozen=True)
class OfferAnswer:
    """What an answer did."""

    request_id: str
    event_id: int
    answer: str  # accepted | declined
    seats_confirmed: int
    booking_id: int | None
    seats_still_waiting: int


def offer_for_token(token: str) -> OfferView:
    """The open offer a signed link opens (NotFound when it opens none: answered, ended, or
    not a link of ours)."""
    entry = _entry_of_token(token)
    return _view(entry)


def offer_of_request(user_id: int, request_id: str) -> OfferView:
    """The open offer of one of the guest's requests (NotFound when it has none)."""
    entry = _entry_of_request(user_id, request_id)
    return _view(entry)


def answer_by_token(token: str, answer: str, seats: int | None = None) -> OfferAnswer:
    return _answer(_entry_of_token(token), answer, seats)


def answer_by_owner(user_id: int, request_id: str, answer: str, seats: int | None = None) -> OfferAnswer:
    return _answer(_entry_of_request(user_id, request_id), answer, seats)


def expire_due_offers(events_max: int = EXPIRY_EVENTS_PER_RUN_MAX) -> int:
    """End every offer past its deadline (up to `events_max` events a run): each releases its
    seats to the next in line and its guest is told. Returns how many ended."""
    now = utcnow()
    db.session.rollback()  # a fresh view: what committed up to now
    event_ids = list(
        db.session.execute(
            select(WaitlistEntry.event_id)
            .where(WaitlistEntry.seats_offered > 0, WaitlistEntry.offer_expires_at <= now)
            .group_by(WaitlistEntry.event_id)
            .order_by(WaitlistEntry.event_id)
            .limit(events_max)
        ).scalars()
    )
    ended = sum(_expire_event(event_id) for event_id in event_ids)
    if ended:
        log.info("offers.expired", extra={"events": len(event_ids), "offers": ended})
    return ended


def _expire_event(event_id: int) -> int:
    with unit_of_work() as work:
        event = lock_event(work, event_id)
        now = utcnow()
        due = list(
            work.session.execute(
                select(WaitlistEntry)
                .where(
                    WaitlistEntry.event_id == event_id,
                    WaitlistEntry.status == WaitlistStatus.WAITING,
                    WaitlistEntry.seats_offered > 0,
                    WaitlistEntry.offer_expires_at <= now,
                )
                .order_by(WaitlistEntry.id)
            ).scalars()
        )
        tier_rows = {tier.id: tier for tier in event_tiers(work, event)}
        entries = {entry.id: entry for entry in due}
        settlement = Settlement()
        ended = 0
        for tier in tier_rows.values():  # each tier's offers on the tier's own seats
            open_offers = [entry.open_offer() for entry in due if entry.tier_id == tier.id]
            state = tiers.tier_state(event.to_state(now), tier.to_tier(), now)
            for resolution in offers.expire(state, [offer for offer in open_offers if offer], now):
                _apply(work, event, tier, entries[resolution.entry_id], resolution, now, settlement)
                ended += 1
        sync_reserved(event, list(tier_rows.values()))
        _pass_on(work, event, settlement)
    return ended


def _answer(entry: WaitlistEntry, answer: str, seats: int | None) -> OfferAnswer:
    if answer not in (Answer.ACCEPTED, Answer.DECLINED):
        raise InvalidInput("Answer accepted or declined", {"answer": ["Must be accepted or declined."]})
    entry_id, event_id, deadline = entry.id, entry.event_id, entry.offer_expires_at
    with unit_of_work() as work:
        event = lock_event(work, event_id)
        entry = _locked_entry(work.session, entry_id, deadline)
        offer = entry.open_offer()
        assert offer is not None
        now = utcnow()
        tier_rows = event_tiers(work, event)
        tier = next(tier for tier in tier_rows if tier.id == entry.tier_id)
        state = tiers.tier_state(event.to_state(now), tier.to_tier(), now)
        if answer == Answer.ACCEPTED:
            outcome = offers.accept(state, offer, offer.seats_offered if seats is None else seats, now)
        else:
            outcome = offers.decline(state, offer, now)
        if outcome is Refusal.SEATS_OUT_OF_RANGE:
            raise InvalidInput(
                "Accept between 1 and the seats offered",
                {"seats": [f"Must be between 1 and {offer.seats_offered}."]},
            )
        if isinstance(outcome, Refusal):
            message, code = _REFUSALS[outcome]
            raise Conflict(message, code=code)
        settlement = Settlement()
        booking_id = _apply(work, event, tier, entry, outcome, now, settlement)
        sync_reserved(event, tier_rows)
        request = work.session.get(BookingRequest, entry.booking_request_id)
        assert request is not None
        result = OfferAnswer(
            request_id=request.request_id,
            event_id=event_id,
            answer=outcome.answer.value,
            seats_confirmed=outcome.seats_confirmed,
            booking_id=booking_id,
            seats_still_waiting=outcome.seats_still_waiting,
        )
        _pass_on(work, event, settlement)
    log.info("offers.answered", extra={"event_id": event_id, "answer": result.answer, "seats": result.seats_confirmed})
    return result


def _apply(
    work: UnitOfWork,
    event: Event,
    tier: EventTier,
    entry: WaitlistEntry,
    resolution: offers.Resolution,
    now: datetime,
    settlement: Settlement,
) -> int | None:
    """Write one resolution: the tier's seats (the caller sums the event's), the entry, the
    request, the booking it made and the guest's e-mail. Returns the new booking's id
    (accepted), else None."""
    request = work.session.get(BookingRequest, entry.booking_request_id)
    assert request is not None
    seats_offered = entry.seats_offered
    tier.reserved_seats = resolution.state.reserved_seats
    tier.seats_offered = resolution.state.seats_offered
    event.updated_at = now
    entry.seats_offered, entry.offer_expires_at, entry.updated_at = 0, None, now
    entry.seats_remaining = resolution.seats_still_waiting
    request.seats_waitlisted = resolution.seats_still_waiting
    settlement.promoted_request_ids.append(request.request_id)  # its status changed: wake its waiters
    booking_id = None
    if resolution.seats_confirmed:
        booking = new_booking(event, tier, request, resolution.seats_confirmed, now)
        work.session.add(booking)
        request.seats_confirmed += resolution.seats_confirmed
        work.session.flush()  # the booking id goes into the e-mail
        booking_id = booking.id
    if resolution.seats_still_waiting:
        settlement.entry_seats[entry.id] = resolution.seats_still_waiting  # the mirror's seats ahead
    else:
        end_wait(event, entry, _ENTRY_STATUS_AFTER[resolution.answer])
        settlement.removed_entry_ids.append(entry.id)
        request.reason = resolution.reason
    # Declined: the guest gave up its place (the entry is cancelled). Expired: like the sales end,
    # its wait simply ended unserved (the audit reads the same from the entry's status).
    restate_request(request, is_withdrawn=resolution.answer is Answer.DECLINED)
    if booking_id is not None:
        fields = {
            "requestId": request.request_id,
            "bookingId": booking_id,
            "bookingIds": [booking_id],
            "seatsPromoted": resolution.seats_confirmed,
            "seatsStillWaitlisted": resolution.seats_still_waiting,
            "requestStatus": request.status,
            "seatsRequested": request.seats_requested,
            "seatsHeld": seats_held(request.seats_confirmed, request.seats_cancelled),
        }
        notification = Notification("booking.promoted", request.user_id, event, f"booking-{booking_id}", fields)
    else:
        fields = {
            "requestId": request.request_id,
            "answer": resolution.answer.value,
            "seatsOffered": seats_offered,
            "seatsConfirmed": request.seats_confirmed,
        }
        key = f"offer-{entry.id}-ended-{int(now.timestamp())}"
        notification = Notification("waitlist.offer_ended", request.user_id, event, key, fields)
    work.session.add(outbox_row(notification))
    return booking_id


def _pass_on(work: UnitOfWork, event: Event, settlement: Settlement) -> None:
    """Serve the waitlist with what was released (offers to the next in line), announce it all."""
    served = settle_event(work, event, [])
    served.promoted_request_ids = settlement.promoted_request_ids + served.promoted_request_ids
    served.removed_entry_ids = settlement.removed_entry_ids + served.removed_entry_ids
    served.entry_seats = {**settlement.entry_seats, **served.entry_seats}
    announce_after_commit(work, event, served)


def _entry_of_token(token: str) -> WaitlistEntry:
    named = entry_id_of_offer_token(token) if len(token) <= 200 else None
    entry = db.session.get(WaitlistEntry, named[0]) if named else None
    if (
        entry is None
        or named is None
        or entry.offer_expires_at is None
        or int(entry.offer_expires_at.timestamp()) != named[1]
        or entry.status != WaitlistStatus.WAITING
    ):
        raise NotFound("This offer is no longer open: it was answered, or it ended")
    return entry


def _entry_of_request(user_id: int, request_id: str) -> WaitlistEntry:
    statement = (
        select(WaitlistEntry)
        .join(BookingRequest, BookingRequest.id == WaitlistEntry.booking_request_id)
        .where(
            BookingRequest.request_id == request_id,
            BookingRequest.user_id == user_id,
            WaitlistEntry.status == WaitlistStatus.WAITING,
            WaitlistEntry.seats_offered > 0,
        )
    )
    entry = db.session.execute(statement).scalar_one_or_none()
    if entry is None:
        raise NotFound("No open offer for this request")
    return entry


def _locked_entry(session: Session, entry_id: int, deadline: datetime | None) -> WaitlistEntry:
    """The entry again, under the event lock: still holding the offer that was opened."""
    session.expire_all()
    entry = session.get(WaitlistEntry, entry_id)
    if entry is None or entry.offer_expires_at is None or entry.offer_expires_at != deadline:
        raise NotFound("This offer is no longer open: it was answered, or it ended")
    return entry


def _view(entry: WaitlistEntry) -> OfferView:
    offer = entry.open_offer()
    if offer is None:
        raise NotFound("No open offer")
    request = db.session.get(BookingRequest, entry.booking_request_id)
    event = db.session.get(Event, entry.event_id)
    assert request is not None and event is not None
    return OfferView(
        entry_id=entry.id,
        request_id=request.request_id,
        event_id=event.id,
        event_name=event.name,
        seats_offered=offer.seats_offered,
        seats_waiting=offer.seats_waiting,
        expires_at=offer.expires_at,
    )
