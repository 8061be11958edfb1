"""Side effects at the edge. create_app registers one set in `app.extensions`.

Services never import adapter modules: they call `adapters()` and use whatever the
composition root chose (real in full mode, in-process or no-op in the embedded
default). That keeps one code path for both modes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from flask import current_app

if TYPE_CHECKING:
    from atomicseats.services.contracts import AcceptedRequest, EventAvailability

EXTENSION_KEY = "atomicseats.adapters"


class Pipeline(Protocol):
    """Takes an accepted booking request towards its allocation."""

    def submit(self, accepted: AcceptedRequest) -> None: ...


class AvailabilityCache(Protocol):
    """Best-effort cache of seat availability; Postgres stays the truth."""

    def store(self, availability: list[EventAvailability]) -> None: ...

    def load(self, event_id: int) -> EventAvailability | None: ...

    def forget(self, event_id: int) -> None: ...


@dataclass(frozen=True)
class Adapters:
    pipeline: Pipeline
    availability: AvailabilityCache


def adapters() -> Adapters:
    return current_app.extensions[EXTENSION_KEY]
