"""What the domain tests share."""

from __future__ import annotations

from atomicseats.domain.allocator import Allocation


def seats_confirmed_total(allocation: Allocation) -> int:
    """Seats the allocation confirmed: promoted from the waitlist and decided for new requests."""
    return sum(promotion.seats_promoted for promotion in allocation.promotions) + sum(
        decision.seats_confirmed for decision in allocation.decisions
    )
