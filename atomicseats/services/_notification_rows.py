"""Notification outbox rows, written in the same transaction as the decision they report.

A row's `message_id` is derived from what it reports, so writing the same
notification twice is impossible (unique constraint) and a resend carries the same
Message-ID header, which mail clients use to recognise duplicates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import SQLColumnExpression, func

from atomicseats.domain.states import OutboxStatus
from atomicseats.models import Event, OutboxMessage, utcnow

NOTIFICATION_KINDS = (
    "booking.confirmed",
    "booking.partial",
    "booking.waitlisted",
    "booking.rejected",
    "booking.promoted",
    "booking.cancelled",
    "booking.withdrawn",
    "event.cancelled",
    "waitlist.expired",
    "waitlist.offered",
    "waitlist.offer_ended",
)
MESSAGE_ID_DOMAIN = "atomicseats.local"

SubjectKey = TypeVar("SubjectKey", str, SQLColumnExpression[str])


def message_id(kind: str, subject_key: SubjectKey) -> SubjectKey:
    """The Message-ID of a notification: the one definition. `subject_key` is a string, or a
    SQL string expression when the audit looks for a row by it (the same rule, in SQL)."""
    return f"<{kind}." + subject_key + f"@{MESSAGE_ID_DOMAIN}>"


def subject_key_of(kind: str, message_id_column: SQLColumnExpression[str]) -> SQLColumnExpression[str]:
    """The inverse of `message_id` in SQL, for a row of `kind`: its subject key (a request id for
    a decision), so a query can look the subject up by its own index (retention)."""
    prefix_chars = len(f"<{kind}.")
    suffix_chars = len(f"@{MESSAGE_ID_DOMAIN}>")
    return func.substr(
        message_id_column, prefix_chars + 1, func.length(message_id_column) - prefix_chars - suffix_chars
    )


@dataclass(frozen=True)
class Notification:
    kind: str
    user_id: int
    event: Event
    subject_key: str  # what makes this notification unique, e.g. a request id or booking id
    fields: Mapping[str, object]  # JSON values, merged into the payload

    def message_id(self) -> str:
        return message_id(self.kind, self.subject_key)


def outbox_values(notification: Notification) -> dict[str, object]:
    """The outbox row for a notification, as column values (for bulk inserts)."""
    return outbox_values_many([notification])[0]


def outbox_values_many(notifications: Sequence[Notification]) -> list[dict[str, object]]:
    """`outbox_values` of each notification, for a batch: each event's part of the payload is
    built once, and every row is due from the same instant (a flash sale's hot path)."""
    now = utcnow()
    event_parts: dict[int, dict[str, object]] = {}
    rows: list[dict[str, object]] = []
    for notification in notifications:
        assert notification.kind in NOTIFICATION_KINDS, notification.kind
        event = notification.event
        event_part = event_parts.get(id(event))
        if event_part is None:
            event_part = event_parts[id(event)] = {
                "eventId": event.id,
                "eventName": event.name,
                "venue": event.venue,
                "startsAt": event.starts_at.isoformat(),
            }
        payload = {"kind": notification.kind, **event_part, **notification.fields}
        rows.append(
            {
                "channel": "email",
                "kind": notification.kind,
                "message_id": notification.message_id(),
                "user_id": notification.user_id,
                "event_id": event_part["eventId"],
                "payload": json.dumps(payload, sort_keys=True),
                "status": OutboxStatus.PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    return rows


def outbox_row(notification: Notification) -> OutboxMessage:
    return OutboxMessage(**outbox_values(notification))
