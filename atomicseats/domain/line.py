"""A buyer's place in line: what the status of a request shows while it waits.

Pure: no I/O, no clock. Two lines exist:
- the pending line: requests recorded and not yet decided, in arrival order (the order
  allocation follows). A request's place is its rank among them; its wait is estimated
  from the event's recent decision rate (`decision_rate`), and not at all when that rate
  is unknown or zero (nothing is being decided now: a guess would be a lie).
- the waitlist: a waiting entry's place and the seats asked by the entries ahead of it
  (freed seats go to them first). Where the seats ahead could not be counted cheaply
  (the queue in front is longer than the reader scans) they are None: the place alone
  is still exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# The decision rate is read over this many whole seconds before the current one.
RATE_WINDOW_S = 5
# Estimates are rounded up to a step that grows with them: a second under a minute's tenth,
# five seconds under two minutes, then whole minutes. Nobody needs "1 h 3 min 17 s".
WAIT_ROUNDING_STEPS_S = ((10, 1), (120, 5))
WAIT_ROUNDING_STEP_S_LONG = 60
ESTIMATED_WAIT_S_MAX = 24 * 3600  # longer than this is no estimate worth showing

assert RATE_WINDOW_S >= 1
assert all(limit_s > 0 and step_s > 0 for limit_s, step_s in WAIT_ROUNDING_STEPS_S)


@dataclass(frozen=True)
class PendingPlace:
    """A pending request's place: `position` 1 is the next to be decided. All None while the
    request is not counted yet (still on its way to being recorded, or its line is being
    rebuilt): said so, never guessed."""

    position: int | None
    people_ahead: int | None
    estimated_wait_s: int | None  # None: no decision rate to estimate from

    @property
    def is_counted(self) -> bool:
        return self.position is not None


NOT_COUNTED_YET = PendingPlace(position=None, people_ahead=None, estimated_wait_s=None)


@dataclass(frozen=True)
class WaitlistPlace:
    """A waiting entry's place: `position` 1 is the head, served first."""

    position: int
    seats_ahead: int | None  # seats the entries ahead still wait for; None when not counted


def decision_rate(decided_per_second: Sequence[int]) -> float:
    """Decisions per second over the whole seconds given (oldest first, each second's count).

    An empty window, or one where nothing was decided, is a rate of 0."""
    assert all(count >= 0 for count in decided_per_second)
    if not decided_per_second:
        return 0.0
    return sum(decided_per_second) / len(decided_per_second)


def rounded_wait_s(seconds: float) -> int:
    """Round a wait up to a sensible step (never down: a buyer told 3 s should not wait 4)."""
    assert seconds >= 0
    for limit_s, step_s in WAIT_ROUNDING_STEPS_S:
        if seconds <= limit_s:
            return step_s * math.ceil(seconds / step_s)
    return WAIT_ROUNDING_STEP_S_LONG * math.ceil(seconds / WAIT_ROUNDING_STEP_S_LONG)


def estimated_wait_s(people_ahead: int, rate_per_s: float) -> int | None:
    """How long until this request is decided: everyone ahead, then itself, at `rate_per_s`.

    None when there is no rate (or the estimate would exceed ESTIMATED_WAIT_S_MAX)."""
    assert people_ahead >= 0
    assert rate_per_s >= 0
    if rate_per_s <= 0:
        return None
    seconds = (people_ahead + 1) / rate_per_s
    if seconds > ESTIMATED_WAIT_S_MAX:
        return None
    return rounded_wait_s(seconds)


def pending_place(rank: int, decided_per_second: Sequence[int]) -> PendingPlace:
    """The place of the request at `rank` (0 = the oldest pending one) in its event's line."""
    assert rank >= 0
    return PendingPlace(
        position=rank + 1,
        people_ahead=rank,
        estimated_wait_s=estimated_wait_s(rank, decision_rate(decided_per_second)),
    )


def waitlist_place(index: int, seats_ahead: int | None) -> WaitlistPlace:
    """The place of the entry at `index` (0 = the head). Each entry ahead waits for one
    seat at least, so `seats_ahead`, when counted, is never below `index`."""
    assert index >= 0
    assert seats_ahead is None or seats_ahead >= index
    return WaitlistPlace(position=index + 1, seats_ahead=seats_ahead)
