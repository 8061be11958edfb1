"""Plain data passed between services, adapters and the edges (no ORM objects)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class AcceptedRequest:
    """A booking request the API accepted: what travels through the pipeline."""

    request_id: str
    user_id: int
    event_id: int
    seats: int
    idempotency_key: str | None
    correlation_id: str | None

    def to_message(self) -> dict:
        return asdict(self)

    @classmethod
    def from_message(cls, message: dict) -> AcceptedRequest:
        return cls(
            request_id=str(message["request_id"]),
            user_id=int(message["user_id"]),
            event_id=int(message["event_id"]),
            seats=int(message["seats"]),
            idempotency_key=message.get("idempotency_key"),
            correlation_id=message.get("correlation_id"),
        )


@dataclass(frozen=True)
class EventAvailability:
    """What admission control and listings need to know about an event's seats."""

    event_id: int
    capacity_seats: int
    reserved_seats: int
    is_waitlist_open: bool
    is_deleted: bool
    waitlist_length: int

    @property
    def seats_left(self) -> int:
        return self.capacity_seats - self.reserved_seats


@dataclass(frozen=True)
class AllocationSummary:
    event_id: int
    requests_decided: int
    seats_confirmed: int
    seats_promoted: int
    reserved_seats: int
