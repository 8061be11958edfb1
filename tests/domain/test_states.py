"""The states of each kind of row (domain/states.py): the stored strings, in one place."""

from __future__ import annotations

from atomicseats.domain.allocator import Outcome
from atomicseats.domain.states import (
    DECIDED_REQUEST_STATUSES,
    BookingStatus,
    EventStatus,
    OutboxStatus,
    RequestStatus,
    WaitlistStatus,
)


def test_each_state_is_the_string_stored_in_its_column() -> None:
    assert list(EventStatus) == ["published", "deleted"]
    assert list(RequestStatus) == ["pending", "confirmed", "partial", "waitlisted", "rejected", "cancelled"]
    assert list(BookingStatus) == ["confirmed", "cancelled"]
    assert list(WaitlistStatus) == ["waiting", "served", "cancelled", "expired"]
    assert list(OutboxStatus) == ["pending", "sent", "failed"]
    assert all(isinstance(status, str) and str(status) == status.value for status in RequestStatus)


def test_an_outcome_is_a_decided_request_status() -> None:
    assert set(Outcome) <= set(DECIDED_REQUEST_STATUSES)
    assert RequestStatus.PENDING not in DECIDED_REQUEST_STATUSES
    assert set(DECIDED_REQUEST_STATUSES) == set(RequestStatus) - {RequestStatus.PENDING}
