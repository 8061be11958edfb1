"""Plain data passed between services, adapters and the edges (no ORM objects)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from atomicseats.domain import allocator
from atomicseats.domain.line import PendingPlace, WaitlistPlace


@dataclass(frozen=True)
class AcceptedRequest:
    """A booking request the API accepted: what travels through the pipeline.

    `accepted_at` is when the API accepted it (latency is measured from there);
    `kafka_partition` / `kafka_offset` say where the bridge read it, if it came that way.
    Its wire form (the Kafka message) is the Kafka adapter's: adapters/request_message.py.
    """

    request_id: str
    user_id: int
    event_id: int
    seats: int
    idempotency_key: str | None
    correlation_id: str | None
    accepted_at: datetime
    kafka_partition: int | None = None
    kafka_offset: int | None = None
    tier_id: int | None = None  # the price tier the guest named; None: the rule chooses (domain/tiers.py)


@dataclass(frozen=True)
class RequestStatus:
    """A booking request's state as the API reports it (and the pipeline hands back when it
    recorded and decided the request before answering)."""

    request_id: str
    event_id: int
    status: str
    seats_requested: int
    seats_confirmed: int
    seats_waitlisted: int
    seats_cancelled: int
    seats_held: int
    booking_ids: list[int]
    waitlist_position: int | None
    reason: str | None
    created_at: datetime | None
    decided_at: datetime | None
    # Pending (where requests wait in a line: full mode): its place among the event's pending
    # requests; waitlisted: its place in the waitlist and the seats asked ahead. None otherwise.
    place_in_line: PendingPlace | WaitlistPlace | None = None
    tier_id: int | None = None  # named by the guest while pending; the tier decided in once decided
    tier_name: str | None = None
    offer: OpenOfferView | None = None  # an open waitlist offer (offer mode)


@dataclass(frozen=True)
class OpenOfferView:
    """A request's open waitlist offer: seats held for it until `expires_at`."""

    seats_offered: int
    seats_waiting: int  # all the request waits for, the offered seats included
    expires_at: datetime


@dataclass(frozen=True)
class EventAvailability:
    """What admission control and listings need to know about an event's seats.

    `sales_end_at` is when sales close (the event's sales end, or its start): admission
    control refuses a request from then on without asking Postgres."""

    event_id: int
    capacity_seats: int
    reserved_seats: int
    is_waitlist_open: bool
    is_deleted: bool
    waitlist_length: int
    sales_end_at: datetime
    seats_offered: int = 0  # held by open waitlist offers: neither free nor sold
    # The event row's version these figures are of (Event.version): orders the cache's writes,
    # so it is not part of what the figures say (two equal figures compare equal).
    version: int = field(default=0, compare=False)

    @property
    def seats_left(self) -> int:
        return self.capacity_seats - self.reserved_seats - self.seats_offered

    def is_sales_open(self, now: datetime) -> bool:
        return allocator.is_sales_open(self.sales_end_at, now)


@dataclass(frozen=True)
class AllocationSummary:
    event_id: int
    requests_decided: int
    seats_confirmed: int
    seats_promoted: int
    reserved_seats: int


@dataclass(frozen=True)
class MailPart:
    """A file an e-mail carries: an image the HTML shows inline (`content_id`, referred to as
    `cid:<content_id>`), or an attachment (`content_id` None)."""

    filename: str
    content_type: str  # "image/png", "text/calendar; method=PUBLISH"
    data: bytes
    content_id: str | None = None


@dataclass(frozen=True)
class MailMessage:
    """One e-mail, ready for any mailer. `message_id` is stable across resends."""

    recipient: str
    subject: str
    body_text: str
    body_html: str
    message_id: str
    headers: dict[str, str]
    parts: tuple[MailPart, ...] = ()  # inline images first, then attachments (a ticket's QR codes, its .ics)


class MailNotAttempted(Exception):
    """A mailer's result for a message of a batch it did not try to send (the batch's deadline)."""


@dataclass(frozen=True)
class Quota:
    """One rate limit of one user: at most `amount` hits per fixed window of `window_s`,
    counted under `key` (`limits`' key, without its storage's prefix)."""

    key: str
    amount: int
    window_s: int


@dataclass(frozen=True)
class PlatformGauges:
    """The platform's state as the database holds it, read at a scrape (services/telemetry.py)."""

    pending_requests: int
    outbox: dict[str, int]  # services/outbox.py outbox_backlog: pending, due, failed, unpublished
    waitlist_lengths: list[tuple[int, int]]  # (event id, waiting entries): the longest, events on sale
