"""The wire form of an accepted booking request: the JSON body of a `booking-requests`
message and its Kafka headers, written by the Kafka adapter and read by the bridge. The
request registry (Redis) stores the same body, so a retry finds the first attempt as sent.

Where the bridge read a message (partition, offset) is not part of the body.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from atomicseats.domain import limits
from atomicseats.names import CORRELATION_HEADER_KAFKA
from atomicseats.services.contracts import AcceptedRequest


def message_of(accepted: AcceptedRequest) -> dict[str, str | int | None]:
    """The JSON body that travels (Kafka message, registry entry); `tier_id` is null when the
    guest named no tier (the rule chooses at the decision)."""
    return {
        "request_id": accepted.request_id,
        "user_id": accepted.user_id,
        "event_id": accepted.event_id,
        "seats": accepted.seats,
        "idempotency_key": accepted.idempotency_key,
        "correlation_id": accepted.correlation_id,
        "accepted_at": accepted.accepted_at.isoformat(),
        "tier_id": accepted.tier_id,
    }


def headers_of(accepted: AcceptedRequest) -> list[tuple[str, str | bytes | None]]:
    """The Kafka headers: the correlation id, which the bridge restores per message."""
    return [(CORRELATION_HEADER_KAFKA, (accepted.correlation_id or "").encode())]


def accepted_from(message: dict[str, Any], partition: int | None = None, offset: int | None = None) -> AcceptedRequest:
    """Rebuild from a message body; raises KeyError/TypeError/ValueError on a malformed one."""
    accepted_at = datetime.fromisoformat(message["accepted_at"])
    if accepted_at.tzinfo is None:
        raise ValueError("accepted_at must carry a timezone")
    idempotency_key = message.get("idempotency_key")
    correlation_id = message.get("correlation_id")
    tier_id = message.get("tier_id")
    return AcceptedRequest(
        request_id=str(uuid.UUID(str(message["request_id"]))),
        user_id=_positive_int(message["user_id"]),
        event_id=_positive_int(message["event_id"]),
        seats=_seat_count(message["seats"]),
        idempotency_key=None if idempotency_key is None else str(idempotency_key),
        correlation_id=None if correlation_id is None else str(correlation_id),
        accepted_at=accepted_at,
        kafka_partition=partition,
        kafka_offset=offset,
        tier_id=None if tier_id is None else _positive_int(tier_id),
    )


def decode(value: bytes | str, partition: int | None = None, offset: int | None = None) -> AcceptedRequest:
    """A message's value (JSON) to the request; raises TypeError/ValueError/KeyError on a malformed one."""
    return accepted_from(json.loads(value), partition=partition, offset=offset)


def _seat_count(value: object) -> int:
    seats = _positive_int(value)
    if seats > limits.SEATS_PER_REQUEST_MAX:
        raise ValueError(f"at most {limits.SEATS_PER_REQUEST_MAX} seats, got {seats}")
    return seats


def _positive_int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return value
