"""The embedded default's adapters: the pipeline runs in-process, caches are no-ops."""

from __future__ import annotations

from atomicseats.services import booking
from atomicseats.services.contracts import AcceptedRequest, EventAvailability


class InProcessPipeline:
    """Record the request, then allocate its event at once, in the caller's process.

    Same two transactions the bridge and the Celery task run in full mode, so the
    outcome is final before the API answers.
    """

    def submit(self, accepted: AcceptedRequest) -> None:
        booking.record_requests([accepted])
        booking.allocate_pending(accepted.event_id)


class NoAvailabilityCache:
    def store(self, availability: list[EventAvailability]) -> None:
        return None

    def load(self, event_id: int) -> EventAvailability | None:
        return None

    def forget(self, event_id: int) -> None:
        return None
