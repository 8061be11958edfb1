"""Waitlist offers (an event in `offer` mode): what a guest's answer to an offer does.

Pure: no I/O, no clock (the caller passes `now`, its decision time).

The allocator makes offers (domain/allocator.py `serve_waitlist`): seats held for an entry
at the head of the waitlist, one open offer per entry, until `expires_at`. Then:

- accept all the offered seats: they are confirmed; if the entry waits for more than it
  was offered, it keeps its place for the rest (the next freed seats are offered to it first);
- accept fewer: those are confirmed, the rest of the offer is released, and the entry is
  done (it asked for fewer: it waits for nothing more);
- decline, or let the offer expire: every offered seat is released and the entry leaves the
  waitlist (it gave up its place, or did not answer in time).

Released seats are free again: the caller serves the waitlist again at once (the allocator,
head first), so they pass on strictly in line. Once sales are closed nothing is accepted and
every open offer expires with the waitlist.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from atomicseats.domain.allocator import EventState

OFFER_WINDOW_MIN_S = 5 * 60  # a host may give guests from five minutes ...
OFFER_WINDOW_MAX_S = 14 * 24 * 3600  # ... to two weeks to answer
OFFER_WINDOW_DEFAULT_S = 24 * 3600

REASON_OFFER_DECLINED = "offer_declined"
REASON_OFFER_EXPIRED = "offer_expired"
REASON_OFFER_ACCEPTED_FEWER = "offer_accepted_fewer"


class Answer(enum.StrEnum):
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"


class Refusal(enum.StrEnum):
    """Why an answer cannot be taken (the caller says so with a 4xx; nothing changes)."""

    OFFER_EXPIRED = "offer_expired"  # its window has passed (the beat will expire it)
    SALES_ENDED = "sales_ended"
    SEATS_OUT_OF_RANGE = "seats_out_of_range"  # accept 1 .. the seats offered


@dataclass(frozen=True)
class OpenOffer:
    """An entry's open offer, as the caller read it."""

    entry_id: int
    seats_offered: int
    seats_waiting: int  # all the entry still waits for, the offered seats included
    expires_at: datetime

    def __post_init__(self) -> None:
        assert 1 <= self.seats_offered <= self.seats_waiting


@dataclass(frozen=True)
class Resolution:
    """What one answer (or its expiry) did to the entry and the event."""

    entry_id: int
    answer: Answer
    seats_confirmed: int  # booked for the guest now
    seats_released: int  # free again: serve the waitlist with them
    seats_still_waiting: int  # the entry keeps its place for these (0: it leaves the waitlist)
    reason: str | None  # why it waits for nothing more (None while it still waits, or all accepted)
    state: EventState  # the event after it

    def __post_init__(self) -> None:
        assert self.seats_confirmed >= 0
        assert self.seats_released >= 0
        assert self.seats_still_waiting >= 0


def is_window_valid(window_s: int) -> bool:
    return OFFER_WINDOW_MIN_S <= window_s <= OFFER_WINDOW_MAX_S


def expires_at(now: datetime, window_s: int) -> datetime:
    """When an offer made at `now` ends, for an event whose hosts give `window_s` to answer."""
    assert is_window_valid(window_s)
    return now + timedelta(seconds=window_s)


def accept(state: EventState, offer: OpenOffer, seats: int, now: datetime) -> Resolution | Refusal:
    """The guest takes `seats` of the offer (all of it, or fewer)."""
    _assert_holds(state, offer)
    if not state.is_sales_open:
        return Refusal.SALES_ENDED
    if now >= offer.expires_at:
        return Refusal.OFFER_EXPIRED
    if not 1 <= seats <= offer.seats_offered:
        return Refusal.SEATS_OUT_OF_RANGE
    is_all = seats == offer.seats_offered
    still_waiting = offer.seats_waiting - seats if is_all else 0
    after = dataclasses.replace(
        state,
        reserved_seats=state.reserved_seats + seats,
        seats_offered=state.seats_offered - offer.seats_offered,
    )
    return Resolution(
        entry_id=offer.entry_id,
        answer=Answer.ACCEPTED,
        seats_confirmed=seats,
        seats_released=offer.seats_offered - seats,
        seats_still_waiting=still_waiting,
        reason=None if is_all else REASON_OFFER_ACCEPTED_FEWER,
        state=after,
    )


def decline(state: EventState, offer: OpenOffer, now: datetime) -> Resolution | Refusal:
    """The guest says no: every offered seat is released and the entry leaves the waitlist.
    Past its window the offer has expired already (the same release, another reason)."""
    _assert_holds(state, offer)
    if now >= offer.expires_at or not state.is_sales_open:
        return Refusal.OFFER_EXPIRED
    return _release(state, offer, Answer.DECLINED, REASON_OFFER_DECLINED)


def expire(state: EventState, offers: Sequence[OpenOffer], now: datetime) -> tuple[Resolution, ...]:
    """The offers whose window has passed at `now` (every open one once sales are closed),
    in the order given; each released in turn."""
    resolutions = []
    for offer in offers:
        if state.is_sales_open and now < offer.expires_at:
            continue
        resolution = _release(state, offer, Answer.EXPIRED, REASON_OFFER_EXPIRED)
        resolutions.append(resolution)
        state = resolution.state
    return tuple(resolutions)


def _release(state: EventState, offer: OpenOffer, answer: Answer, reason: str) -> Resolution:
    after = dataclasses.replace(state, seats_offered=state.seats_offered - offer.seats_offered)
    return Resolution(
        entry_id=offer.entry_id,
        answer=answer,
        seats_confirmed=0,
        seats_released=offer.seats_offered,
        seats_still_waiting=0,
        reason=reason,
        state=after,
    )


def _assert_holds(state: EventState, offer: OpenOffer) -> None:
    """The event holds at least this offer's seats (the caller read both under its lock)."""
    assert offer.seats_offered <= state.seats_offered
    assert state.reserved_seats + state.seats_offered <= state.capacity_seats
