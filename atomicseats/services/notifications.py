"""Notification e-mails, rendered from an outbox row's payload. Pure: no I/O, no clock.

Each kind says what happened in a sentence or two, then lists the facts (event, venue,
start time in UTC, the booking ids it concerns, seats, request id) and links to the pages
(the event's, My bookings) under the configured public base URL. The HTML part escapes every value: event names
and venues come from hosts. Prices are left out: the e-mail reports seats, not money.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from markupsafe import escape

from atomicseats.domain.allocator import REASON_EVENT_STARTED, REASON_WAITLIST_CLOSED
from atomicseats.domain.request_state import REASON_EVENT_DELETED
from atomicseats.domain.states import RequestStatus
from atomicseats.domain.tiers import REASON_TIER_NOT_ON_SALE
from atomicseats.names import EVENT_PAGE_PATH, MAIL_KIND_HEADER, MY_BOOKINGS_PATH, OFFER_PAGE_PATH
from atomicseats.services._notification_rows import NOTIFICATION_KINDS
from atomicseats.services._ticket_mail import TicketLine
from atomicseats.services._ticket_media import QR_PNG_SCALE, QR_SYMBOL_MODULES

KIND_HEADER = MAIL_KIND_HEADER
SIGN_OFF = "The AtomicSeats team"

HTML_PIECES_CACHED_MAX = 4096  # escaped rows, sentences and links kept (an event's repeat in every e-mail)

TICKET_QR_PX = QR_SYMBOL_MODULES * QR_PNG_SCALE  # shown at its own size: one module, 6 pixels

Payload = Mapping[str, Any]  # an outbox row's payload: a JSON object, as the service wrote it


@dataclass(frozen=True)
class Content:
    subject: str
    paragraphs: tuple[str, ...]
    facts: tuple[tuple[str, str], ...]  # (label, value), after the event's own facts


def render(
    kind: str, payload: Payload, recipient_name: str, base_url: str, tickets: Sequence[TicketLine] = ()
) -> tuple[str, str, str]:
    """(subject, text body, HTML body) for one notification; ValueError for an unknown kind.

    `base_url` is where people reach the pages (config's PUBLIC_BASE_URL): every e-mail links
    to the event's page (unless the event was withdrawn) and to My bookings. `tickets`: the
    new booking's tickets (services/_ticket_mail.py), listed after the sentences, each code in
    the text and its QR code (the inline image of its Content-ID) in the HTML."""
    renderer = _RENDERERS.get(kind)
    if renderer is None:
        raise ValueError(f"no template for notification kind {kind!r}")
    content = renderer(payload)
    facts = _event_facts(payload) + _tier_facts(payload) + _booking_facts(payload) + content.facts
    links = _links(kind, payload, base_url)
    subject = " ".join(content.subject.split())  # one header line, whatever a host typed
    text = _text(recipient_name, content.paragraphs + _ticket_sentences(tickets), facts, links)
    html = _html(recipient_name, content.paragraphs, facts, links)
    if tickets:
        html = html.replace(
            "\n<table cellpadding='4'>\n", "\n" + _html_tickets(tickets) + "\n<table cellpadding='4'>\n", 1
        )
    return subject, text, html


# --- one function per kind -------------------------------------------------------------


def _confirmed(payload: Payload) -> Content:
    seats = payload["seatsConfirmed"]
    return Content(
        subject=f"Booking confirmed: {_event_name(payload)}",
        paragraphs=(f"Your booking is confirmed: {_seats(seats)} for {_event_name(payload)}. See you there!",),
        facts=(("Seats confirmed", str(seats)), _request_fact(payload)),
    )


def _partial(payload: Payload) -> Content:
    requested, confirmed = payload["seatsRequested"], payload["seatsConfirmed"]
    waitlisted = payload.get("seatsWaitlisted") or 0
    first = f"We confirmed {confirmed} of the {_seats(requested)} you requested for {_event_name(payload)}."
    if payload.get("reason") == REASON_WAITLIST_CLOSED or not waitlisted:
        rejected = requested - confirmed - waitlisted
        second = (
            f"The other {_seats(rejected)} could not be booked: the event is sold out and its waitlist "
            "is closed. Your confirmed seats are yours."
        )
        facts = (("Seats confirmed", str(confirmed)), ("Seats not booked", str(rejected)))
    else:
        second = (
            f"The other {_seats(waitlisted)} are on the waitlist. Seats that free up go to the waitlist "
            "strictly in the order people joined it; we will e-mail you when any of yours are confirmed."
        )
        facts = (("Seats confirmed", str(confirmed)), ("Seats on the waitlist", str(waitlisted)))
    return Content(
        subject=f"Booking partly confirmed: {confirmed} of {requested} seats for {_event_name(payload)}",
        paragraphs=(first, second),
        facts=facts + (_request_fact(payload),),
    )


def _waitlisted(payload: Payload) -> Content:
    waitlisted = payload.get("seatsWaitlisted") or payload["seatsRequested"]
    return Content(
        subject=f"You are on the waitlist for {_event_name(payload)}",
        paragraphs=(
            f"{_event_name(payload)} is fully booked right now, so your request for {_seats(waitlisted)} "
            "is on the waitlist.",
            "Seats that free up go to the waitlist strictly in the order people joined it. We will e-mail "
            "you as soon as any are confirmed for you; your request's status page shows your place.",
        ),
        facts=(("Seats on the waitlist", str(waitlisted)), _request_fact(payload)),
    )


def _rejected(payload: Payload) -> Content:
    requested = payload["seatsRequested"]
    reason = payload.get("reason")
    if reason == REASON_EVENT_DELETED:
        because = "the event was cancelled by its host before your request could be handled."
    elif reason == REASON_WAITLIST_CLOSED:
        because = "the event is sold out and its waitlist is closed."
    elif reason == REASON_EVENT_STARTED:
        because = "sales for the event ended before your request could be handled."
    elif reason == REASON_TIER_NOT_ON_SALE:
        because = "its price tier was not on sale when your request was handled."
    else:
        because = "no seats were available for it."
    return Content(
        subject=f"Booking not possible: {_event_name(payload)}",
        paragraphs=(f"We are sorry: we could not book the {_seats(requested)} you asked for, because {because}",),
        facts=(("Seats requested", str(requested)), _request_fact(payload)),
    )


def _promoted(payload: Payload) -> Content:
    promoted, still_waiting = payload["seatsPromoted"], payload.get("seatsStillWaitlisted") or 0
    verb = _verb(promoted)
    first = (
        f"Good news: seats came free for {_event_name(payload)}, and {_seats(promoted)} {verb} now confirmed for you."
    )
    if still_waiting:
        second = (
            f"The rest of your request ({_seats(still_waiting)}) stays at the head of the waitlist; "
            "we will e-mail you again as soon as more seats are confirmed for you."
        )
    else:
        second = "Your whole request is now confirmed. See you there!"
    facts = (("Seats confirmed now", str(promoted)), ("Seats still on the waitlist", str(still_waiting)))
    return Content(
        subject=f"Seats confirmed from the waitlist: {_event_name(payload)}",
        paragraphs=(first, second),
        facts=facts + _request_state_facts(payload) + (_request_fact(payload),),
    )


def _cancelled(payload: Payload) -> Content:
    seats = payload["seatsFreed"]
    paragraphs = [
        f"Your booking #{payload['bookingId']} for {_event_name(payload)} is cancelled and its "
        f"{_seats(seats)} released."
    ]
    withdrawn = payload.get("seatsWithdrawn") or 0
    if withdrawn:
        paragraphs.append(
            f"The {_seats(withdrawn)} of the same request still on the waitlist {_verb(withdrawn)} withdrawn too: "
            "cancelling gives up the whole request."
        )
    facts: tuple[tuple[str, str], ...] = (("Seats cancelled", str(seats)),)
    if withdrawn:
        facts += (("Seats withdrawn from the waitlist", str(withdrawn)),)
    if payload.get("requestId"):
        facts += _request_state_facts(payload) + (_request_fact(payload),)
    return Content(subject=f"Booking cancelled: {_event_name(payload)}", paragraphs=tuple(paragraphs), facts=facts)


def _withdrawn(payload: Payload) -> Content:
    withdrawn, held = payload["seatsWithdrawn"], payload.get("seatsHeld") or 0
    first = (
        f"You left the waitlist for {_event_name(payload)}: the {_seats(withdrawn)} you were waiting for are withdrawn."
    )
    second = (
        f"Your {_seats(held)} already confirmed for this request stay yours."
        if held
        else "This request holds no seats now."
    )
    return Content(
        subject=f"You left the waitlist: {_event_name(payload)}",
        paragraphs=(first, second),
        facts=(("Seats withdrawn from the waitlist", str(withdrawn)),)
        + _request_state_facts(payload)
        + (_request_fact(payload),),
    )


def _event_cancelled(payload: Payload) -> Content:
    return Content(
        subject=f"Event cancelled: {_event_name(payload)}",
        paragraphs=(
            f"We are sorry: the host has cancelled {_event_name(payload)}.",
            "Your bookings for it are cancelled and any place you held on its waitlist is withdrawn.",
        ),
        facts=(),
    )


def _waitlist_expired(payload: Payload) -> Content:
    expired, confirmed = payload["seatsExpired"], payload.get("seatsConfirmed") or 0
    first = (
        f"Sales for {_event_name(payload)} have ended (the event is starting), and the "
        f"{_seats(expired)} you were waiting for could not be served: no seats came free in time."
    )
    if confirmed:
        second = (
            f"You are no longer on the waitlist. What was confirmed for you earlier ({_seats(confirmed)}) stays yours."
        )
    else:
        second = "You are no longer on the waitlist, and nothing was booked for you."
    return Content(
        subject=f"Sales ended: your waitlist place for {_event_name(payload)} was not served",
        paragraphs=(first, second),
        facts=(("Seats not served", str(expired)), ("Seats confirmed", str(confirmed)), _request_fact(payload)),
    )


def _offered(payload: Payload) -> Content:
    offered, waiting = payload["seatsOffered"], payload["seatsWaiting"]
    deadline = format_starts_at(payload.get("offerExpiresAt"))
    first = (
        f"Seats came free for {_event_name(payload)}, and you are next in line: {_seats(offered)} "
        f"{_verb(offered)} held for you until {deadline}."
    )
    if offered < waiting:
        first += f" You were waiting for {waiting}: if more come free before then, they are added to this offer."
    second = (
        "Accept them, accept fewer, or decline, with the link below (it works once) or on My bookings. "
        "If you do not answer in time the seats go to the next person in line and your place ends."
    )
    return Content(
        subject=f"{_seats(offered).capitalize()} offered to you for {_event_name(payload)}",
        paragraphs=(first, second),
        facts=(("Seats offered", str(offered)), ("Answer by", deadline), _request_fact(payload)),
    )


def _offer_ended(payload: Payload) -> Content:
    offered, confirmed = payload["seatsOffered"], payload.get("seatsConfirmed") or 0
    answer = payload["answer"]
    if answer == "declined":
        first = f"You declined the {_seats(offered)} offered to you for {_event_name(payload)}."
    else:
        first = (
            f"The {_seats(offered)} offered to you for {_event_name(payload)} were not accepted in time, "
            "and went to the next person in line."
        )
    second = "You are no longer on the waitlist."
    if confirmed:
        second += f" What was confirmed for you earlier ({_seats(confirmed)}) stays yours."
    return Content(
        subject=f"Your waitlist offer for {_event_name(payload)} has ended",
        paragraphs=(first, second),
        facts=(("Seats offered", str(offered)), ("Seats confirmed", str(confirmed)), _request_fact(payload)),
    )


_RENDERERS: dict[str, Callable[[Payload], Content]] = {
    "booking.confirmed": _confirmed,
    "booking.partial": _partial,
    "booking.waitlisted": _waitlisted,
    "booking.rejected": _rejected,
    "booking.promoted": _promoted,
    "booking.cancelled": _cancelled,
    "booking.withdrawn": _withdrawn,
    "event.cancelled": _event_cancelled,
    "waitlist.expired": _waitlist_expired,
    "waitlist.offered": _offered,
    "waitlist.offer_ended": _offer_ended,
}


# --- leaves ----------------------------------------------------------------------------


def _event_name(payload: Payload) -> str:
    return str(payload.get("eventName") or f"event #{payload.get('eventId', '?')}")


def _verb(count: int) -> str:
    return "is" if count == 1 else "are"


def _seats(count: int) -> str:
    return f"{count} seat" if count == 1 else f"{count} seats"


_STATUS_WORDS: dict[str, str] = {  # keyed by the stored string a payload carries
    RequestStatus.CONFIRMED: "confirmed",
    RequestStatus.PARTIAL: "partly confirmed",
    RequestStatus.WAITLISTED: "on the waitlist",
    RequestStatus.REJECTED: "not booked",
    RequestStatus.CANCELLED: "cancelled",
}


def _request_state_facts(payload: Payload) -> tuple[tuple[str, str], ...]:
    """What the request holds after the change (the same state as its status page shows)."""
    status: str | None = payload.get("requestStatus")
    if not status:  # written before requests carried their state
        return ()
    held = f"{payload.get('seatsHeld', 0)} of {payload.get('seatsRequested', '?')}"
    return (("Request status", _STATUS_WORDS.get(status, status)), ("Seats held by the request", held))


def booking_ids(payload: Payload) -> list[int]:
    """The bookings a notification concerns: `bookingIds` (every row written since the e-mails
    lead to the pages), else the one `bookingId` older rows of some kinds carry."""
    ids = payload.get("bookingIds")
    if ids is None:
        ids = [payload["bookingId"]] if payload.get("bookingId") is not None else []
    return [int(booking_id) for booking_id in ids]


def _tier_facts(payload: Payload) -> tuple[tuple[str, str], ...]:
    """The price tier, for an event sold in several (an untiered event's e-mails say nothing new)."""
    name = payload.get("tierName")
    return (("Price tier", str(name)),) if name else ()


def _booking_facts(payload: Payload) -> tuple[tuple[str, str], ...]:
    """The booking ids, as "#12" (the seed's cancellation takes a booking id from the e-mail)."""
    ids = booking_ids(payload)
    if not ids:
        return ()
    return (("Booking" if len(ids) == 1 else "Bookings", ", ".join(f"#{booking_id}" for booking_id in ids)),)


def _links(kind: str, payload: Payload, base_url: str) -> tuple[tuple[str, str], ...]:
    """(label, absolute URL) of the pages this e-mail leads to. A withdrawn event has no page."""
    links: tuple[tuple[str, str], ...] = ()
    if kind == "waitlist.offered":
        links += (("Answer the offer", base_url + OFFER_PAGE_PATH.format(token=payload["offerToken"])),)
    if kind != "event.cancelled" and payload.get("eventId") is not None:
        links += (("See the event", base_url + EVENT_PAGE_PATH.format(event_id=int(payload["eventId"]))),)
    return links + (("My bookings", base_url + MY_BOOKINGS_PATH),)


def _request_fact(payload: Payload) -> tuple[str, str]:
    return ("Request ID", str(payload.get("requestId", "")))


@lru_cache(maxsize=HTML_PIECES_CACHED_MAX)
def format_starts_at(value: str | None) -> str:
    """'Saturday 05 December 2026, 19:30 UTC' from an ISO timestamp; the raw text if unparsable."""
    if not value:
        return "to be announced"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%A %d %B %Y, %H:%M UTC")


def _event_facts(payload: Payload) -> tuple[tuple[str, str], ...]:
    return (
        ("Event", _event_name(payload)),
        ("Venue", str(payload.get("venue") or "to be announced")),
        ("Starts", format_starts_at(payload.get("startsAt"))),
    )


Links = tuple[tuple[str, str], ...]


def _text(recipient_name: str, paragraphs: tuple[str, ...], facts: tuple[tuple[str, str], ...], links: Links) -> str:
    width = max(len(label) for label, _ in facts + links) + 1
    lines = [f"Hello {recipient_name},", ""]
    for paragraph in paragraphs:
        lines += [paragraph, ""]
    lines += [f"{label + ':':<{width}} {value}" for label, value in facts]
    lines += [""] + [f"{label + ':':<{width}} {url}" for label, url in links]
    lines += ["", SIGN_OFF, ""]
    return "\n".join(lines)


def _html(recipient_name: str, paragraphs: tuple[str, ...], facts: tuple[tuple[str, str], ...], links: Links) -> str:
    """Every value goes through markupsafe.escape (its C speed-up): no value reaches the page
    raw. Plain string joins, no Markup.format: this runs once per e-mail sent, and the pieces
    most e-mails of a sale share (an event's facts and links, a kind's sentences) are escaped
    once each."""
    rows = "\n".join(_html_row(label, value) for label, value in facts)
    body = "\n".join(_html_paragraph(paragraph) for paragraph in paragraphs)
    anchors = " |\n".join(_html_anchor(label, url) for label, url in links)
    # One element a line: SMTP refuses lines past 998 characters, and a plain ASCII part is not re-wrapped.
    return (
        f"<!DOCTYPE html>\n<html><body>\n<p>Hello {escape(recipient_name)},</p>\n{body}\n<table cellpadding='4'>\n"
        f"{rows}\n</table>\n<p>{anchors}</p>\n<p>{escape(SIGN_OFF)}</p>\n</body></html>\n"
    )


TICKETS_SENTENCE = (
    "Your tickets, one a seat: show the code or its QR code at the door. "
    "The attached calendar file adds the event to your calendar."
)


def _ticket_sentences(tickets: Sequence[TicketLine]) -> tuple[str, ...]:
    if not tickets:
        return ()
    lines = [f"Ticket {ticket.seat_no} of {ticket.seats}: {ticket.code}" for ticket in tickets]
    return (TICKETS_SENTENCE, "\n".join(lines))


def _html_tickets(tickets: Sequence[TicketLine]) -> str:
    """Each ticket's QR code (by Content-ID) and code; codes and ids are plain ASCII we made."""
    items = "\n".join(
        f"<p><img src='cid:{escape(ticket.content_id)}' width='{TICKET_QR_PX}' height='{TICKET_QR_PX}' "
        f"alt='QR code of ticket {ticket.seat_no}'><br>\nTicket {ticket.seat_no} of {ticket.seats}: "
        f"<code>{escape(ticket.code)}</code></p>"
        for ticket in tickets
    )
    return f"{_html_paragraph(TICKETS_SENTENCE)}\n{items}"


@lru_cache(maxsize=HTML_PIECES_CACHED_MAX)
def _html_row(label: str, value: str) -> str:
    return f"<tr><th align='left'>{escape(label)}</th><td>{escape(value)}</td></tr>"


@lru_cache(maxsize=HTML_PIECES_CACHED_MAX)
def _html_paragraph(paragraph: str) -> str:
    return f"<p>{escape(paragraph)}</p>"


@lru_cache(maxsize=HTML_PIECES_CACHED_MAX)
def _html_anchor(label: str, url: str) -> str:
    return f"<a href='{escape(url)}'>{escape(label)}</a>"


assert set(_RENDERERS) == set(NOTIFICATION_KINDS)  # every kind the services write has a template
