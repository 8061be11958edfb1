"""The states each kind of row goes through: one enum per table, the one home of their names.

Each is a `StrEnum`: a member is the very string stored in the status column and compares
equal to it, so rows, the API, the audit and the e-mails keep their values. Models (the
CHECK constraints), services, the audit and the API schemas all name states from here.
Which state follows which is decided elsewhere: a request's by `request_state.request_status`,
the others by the services that change them.
"""

from __future__ import annotations

import enum


class EventStatus(enum.StrEnum):
    PUBLISHED = "published"
    DELETED = "deleted"


class RequestStatus(enum.StrEnum):
    """A booking request: `pending` until its first decision, then what its seats say."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    PARTIAL = "partial"
    WAITLISTED = "waitlisted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class BookingStatus(enum.StrEnum):
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


class WaitlistStatus(enum.StrEnum):
    """A waitlist entry: `waiting` in the queue, then served (promoted in full), cancelled
    (withdrawn, or the event deleted) or expired (the sales ended)."""

    WAITING = "waiting"
    SERVED = "served"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


# The statuses a decided request can have (every one but `pending`).
DECIDED_REQUEST_STATUSES = tuple(status for status in RequestStatus if status is not RequestStatus.PENDING)
