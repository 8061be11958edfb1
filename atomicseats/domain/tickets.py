"""Tickets: one per confirmed seat, named by a code derived from (booking id, seat no). Pure.

The code is not stored anywhere: it is an 80-bit HMAC-SHA256 of (booking id, seat no) under a
key derived from the app's SECRET_KEY, followed by the two packed into 45 bits and masked with
a pad derived from that MAC (so a code shows neither the booking id nor how many were sold),
written as 25 Crockford base32 characters in five groups of five ("7F3KQ-0M2ZC-...").
Crockford's alphabet
has no I, L, O or U; reading is case-insensitive, takes I and L for 1 and O for 0, and ignores
hyphens and spaces, so a code read aloud or typed by hand comes back the same. Guessing a valid
code means guessing 80 bits of MAC; changing any one character changes either the carried ids
or the MAC, and the check (constant time) refuses it.

The check-in outcome is decided here too, from what the service read: a ticket that parses,
its booking (event, status, seats), and whether the insert of its check-in took.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

KEY_LABEL = b"atomicseats ticket codes v1"  # a new label (v2) gives every ticket a new code
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
BOOKING_ID_BITS = 37
SEAT_NO_BITS = 8
MAC_BITS = 80
PAYLOAD_BITS = BOOKING_ID_BITS + SEAT_NO_BITS
PAYLOAD_MASK = (1 << PAYLOAD_BITS) - 1
CODE_BITS = PAYLOAD_BITS + MAC_BITS
CODE_CHARS = CODE_BITS // 5
GROUP_CHARS = 5
BOOKING_ID_MAX = 2**BOOKING_ID_BITS - 1  # 137 billion bookings
SEAT_NO_MAX = 2**SEAT_NO_BITS - 1
CODE_INPUT_CHARS_MAX = 64  # what a reader may type or a scanner send: anything longer is not a code
DOOR_CHARS_MAX = 40

assert CODE_BITS % 5 == 0  # whole base32 characters, no padding bits that could differ
assert CODE_CHARS % GROUP_CHARS == 0
assert MAC_BITS >= 80
assert len(ALPHABET) == 32

_DECODE = {char: value for value, char in enumerate(ALPHABET)} | {
    char.lower(): value for value, char in enumerate(ALPHABET)
}
_DECODE.update({"O": 0, "o": 0, "I": 1, "i": 1, "L": 1, "l": 1})
_SEPARATORS = str.maketrans("", "", "- \t")


@dataclass(frozen=True, order=True)
class Ticket:
    booking_id: int
    seat_no: int


def code_key(secret_key: str | bytes) -> bytes:
    """The key codes are made with: HMAC(SECRET_KEY, KEY_LABEL), so the secret itself is never
    a MAC key and another use of it can never produce a valid code."""
    secret = secret_key.encode("utf-8") if isinstance(secret_key, str) else secret_key
    assert secret, "an empty SECRET_KEY makes guessable codes"
    return hmac.new(secret, KEY_LABEL, hashlib.sha256).digest()


def ticket_code(key: bytes, ticket: Ticket) -> str:
    """The code of one ticket, grouped: 'XXXXX-XXXXX-XXXXX-XXXXX-XXXXX'."""
    assert 1 <= ticket.booking_id <= BOOKING_ID_MAX, ticket.booking_id
    assert 1 <= ticket.seat_no <= SEAT_NO_MAX, ticket.seat_no
    payload = (ticket.booking_id << SEAT_NO_BITS) | ticket.seat_no
    mac = _mac(key, payload)
    number = (mac << PAYLOAD_BITS) | (payload ^ _pad(key, mac))
    chars = "".join(ALPHABET[(number >> shift) & 31] for shift in range(CODE_BITS - 5, -1, -5))
    return "-".join(chars[start : start + GROUP_CHARS] for start in range(0, CODE_CHARS, GROUP_CHARS))


def parse_ticket_code(key: bytes, text: str) -> Ticket | None:
    """The ticket a code names, or None for anything that is not a valid code under `key`."""
    if len(text) > CODE_INPUT_CHARS_MAX:
        return None
    chars = text.strip().translate(_SEPARATORS)
    if len(chars) != CODE_CHARS:
        return None
    number = 0
    for char in chars:
        value = _DECODE.get(char)
        if value is None:
            return None
        number = (number << 5) | value
    mac, masked = number >> PAYLOAD_BITS, number & PAYLOAD_MASK
    payload = masked ^ _pad(key, mac)
    expected = _mac(key, payload)
    if not hmac.compare_digest(mac.to_bytes(MAC_BITS // 8, "big"), expected.to_bytes(MAC_BITS // 8, "big")):
        return None
    ticket = Ticket(booking_id=payload >> SEAT_NO_BITS, seat_no=payload & SEAT_NO_MAX)
    if ticket.booking_id < 1 or ticket.seat_no < 1:  # never made by ticket_code
        return None
    return ticket


def normalized_code(text: str) -> str:
    """A code as people may type it, in its grouped canonical spelling (for display only)."""
    chars = "".join(ALPHABET[_DECODE[char]] for char in text.translate(_SEPARATORS) if char in _DECODE)
    return "-".join(chars[start : start + GROUP_CHARS] for start in range(0, len(chars), GROUP_CHARS))


def tickets_of(booking_id: int, seats: int) -> list[Ticket]:
    """The tickets of a booking of `seats` seats: seats 1..seats."""
    assert 1 <= seats <= SEAT_NO_MAX
    return [Ticket(booking_id, seat_no) for seat_no in range(1, seats + 1)]


def _mac(key: bytes, payload: int) -> int:
    message = payload.to_bytes((PAYLOAD_BITS + 7) // 8, "big")
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return int.from_bytes(digest[: MAC_BITS // 8], "big")


def _pad(key: bytes, mac: int) -> int:
    """The mask of the ids, from the MAC (a message the MAC's own never is: it has a prefix)."""
    digest = hmac.new(key, b"pad:" + mac.to_bytes(MAC_BITS // 8, "big"), hashlib.sha256).digest()
    pad: int = int.from_bytes(digest[:8], "big") & PAYLOAD_MASK
    return pad


# --- check-in --------------------------------------------------------------------------


class CheckInOutcome(enum.StrEnum):
    ADMITTED = "admitted"  # checked in now
    ALREADY_CHECKED_IN = "already_checked_in"  # checked in before (when, by whom, at which door)
    CANCELLED = "cancelled"  # the booking was cancelled, or the event withdrawn
    WRONG_EVENT = "wrong_event"  # a valid ticket, of another event
    UNKNOWN = "unknown"  # not a valid code, or no such ticket


@dataclass(frozen=True)
class BookingFacts:
    """What the check-in reads of a ticket's booking."""

    event_id: int
    seats: int
    is_cancelled: bool  # the booking cancelled, or its event deleted


def check_in_refusal(event_id: int, ticket: Ticket | None, booking: BookingFacts | None) -> CheckInOutcome | None:
    """Why a code is not admitted at `event_id` before any write, or None when it may be checked
    in (the insert then decides between admitted and already checked in). The order matters: a
    ticket of another event says so even when cancelled, so a door never learns about others'
    bookings beyond "not this event"."""
    if ticket is None or booking is None:
        return CheckInOutcome.UNKNOWN
    if booking.event_id != event_id:
        return CheckInOutcome.WRONG_EVENT
    if ticket.seat_no > booking.seats:
        return CheckInOutcome.UNKNOWN
    if booking.is_cancelled:
        return CheckInOutcome.CANCELLED
    return None


def check_in_outcome(
    event_id: int, ticket: Ticket | None, booking: BookingFacts | None, was_inserted: bool
) -> CheckInOutcome:
    """The outcome of one check-in: the refusal if any, else admitted when this insert took the
    seat's one row, else already checked in (another door, or an earlier scan, has the row)."""
    refusal = check_in_refusal(event_id, ticket, booking)
    if refusal is not None:
        assert not was_inserted, "a refused ticket was checked in"
        return refusal
    return CheckInOutcome.ADMITTED if was_inserted else CheckInOutcome.ALREADY_CHECKED_IN


@dataclass(frozen=True)
class CheckInRecord:
    """A seat's check-in as stored: when, by which user, at which door (free text, optional)."""

    checked_in_at: datetime
    checked_in_by: int
    door: str | None
