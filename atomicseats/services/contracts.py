"""Plain data passed between services, adapters and the edges (no ORM objects)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from atomicseats.domain import allocator, limits


@dataclass(frozen=True)
class AcceptedRequest:
    """A booking request the API accepted: what travels through the pipeline.

    `accepted_at` is when the API accepted it (latency is measured from there);
    `kafka_partition` / `kafka_offset` say where the bridge read it, if it came that way.
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

    def to_message(self) -> dict[str, str | int | None]:
        """The JSON body that travels (Kafka message, registry entry): where it was read is not part of it."""
        return {
            "request_id": self.request_id,
            "user_id": self.user_id,
            "event_id": self.event_id,
            "seats": self.seats,
            "idempotency_key": self.idempotency_key,
            "correlation_id": self.correlation_id,
            "accepted_at": self.accepted_at.isoformat(),
        }

    @classmethod
    def from_message(
        cls, message: dict[str, Any], partition: int | None = None, offset: int | None = None
    ) -> AcceptedRequest:
        """Rebuild from a message body; raises KeyError/TypeError/ValueError on a malformed one."""
        accepted_at = datetime.fromisoformat(message["accepted_at"])
        if accepted_at.tzinfo is None:
            raise ValueError("accepted_at must carry a timezone")
        idempotency_key = message.get("idempotency_key")
        correlation_id = message.get("correlation_id")
        return cls(
            request_id=str(uuid.UUID(str(message["request_id"]))),
            user_id=_positive_int(message["user_id"]),
            event_id=_positive_int(message["event_id"]),
            seats=_seat_count(message["seats"]),
            idempotency_key=None if idempotency_key is None else str(idempotency_key),
            correlation_id=None if correlation_id is None else str(correlation_id),
            accepted_at=accepted_at,
            kafka_partition=partition,
            kafka_offset=offset,
        )


def _seat_count(value: object) -> int:
    seats = _positive_int(value)
    if seats > limits.SEATS_PER_REQUEST_MAX:
        raise ValueError(f"at most {limits.SEATS_PER_REQUEST_MAX} seats, got {seats}")
    return seats


def _positive_int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return value


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

    @property
    def seats_left(self) -> int:
        return self.capacity_seats - self.reserved_seats

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
class MailMessage:
    """One e-mail, ready for any mailer. `message_id` is stable across resends."""

    recipient: str
    subject: str
    body_text: str
    body_html: str
    message_id: str
    headers: dict[str, str]


@dataclass(frozen=True)
class Quota:
    """One rate limit of one user: at most `amount` hits per fixed window of `window_s`,
    counted under `key` (`limits`' key, without its storage's prefix)."""

    key: str
    amount: int
    window_s: int
