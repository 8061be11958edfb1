"""How numbers and states read on a page: money from minor units, times, seat badges.
Presentation only: the facts (seats left, sales open, a request's state) come from the
services and the domain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app


def money(minor_units: int) -> str:
    """12345 -> "€123.45" (the currency symbol is config's CURRENCY_SYMBOL); 0 -> "Free"."""
    if minor_units == 0:
        return "Free"
    symbol = current_app.config.get("CURRENCY_SYMBOL", "€")
    whole, cents = divmod(minor_units, 100)
    return f"{symbol}{whole:,}.{cents:02d}"


def when(moment: datetime) -> str:
    """ "Sat 12 Dec 2026, 19:30 UTC": times are stored and shown in UTC."""
    return moment.astimezone(UTC).strftime("%a %-d %b %Y, %H:%M UTC")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


@dataclass(frozen=True)
class Badge:
    text: str
    tone: str  # ok | warn | full | off: a CSS class, never the only cue (the text says it)


def seat_badges(view, now: datetime) -> list[Badge]:
    """What a guest needs at a glance: can I still book, and what happens if I do."""
    availability = view.event.availability
    if not availability.is_sales_open(now):
        return [Badge("Sales closed", "off")]
    if availability.seats_left > 0:
        seats = availability.seats_left
        return [Badge(f"{seats:,} seat{'' if seats == 1 else 's'} left", "ok")]
    if availability.is_waitlist_open:
        waiting = view.waitlist_length
        return [Badge("Sold out", "full"), Badge(f"Waitlist open · {waiting:,} waiting", "warn")]
    return [Badge("Sold out", "full"), Badge("Waitlist closed", "off")]


def wait_words(seconds: int | None) -> str:
    """An estimated wait as a buyer reads it (already rounded by the domain): "about 40 seconds",
    "about 3 minutes"; "" without an estimate."""
    if seconds is None:
        return ""
    if seconds < 120:
        return f"about {seconds} second{'' if seconds == 1 else 's'}"
    minutes = seconds // 60
    if minutes < 120:
        return f"about {minutes} minutes"
    return f"about {minutes // 60} hours"


def people_ahead_words(people_ahead: int) -> str:
    """0 -> "You are next"; 1 -> "1 person ahead of you"; 1200 -> "1,200 people ahead of you"."""
    if people_ahead == 0:
        return "You are next"
    return f"{people_ahead:,} {'person' if people_ahead == 1 else 'people'} ahead of you"


def now() -> datetime:
    return datetime.now(UTC)


def fill_percent(reserved_seats: int, capacity_seats: int) -> int:
    """Seats sold as a whole percentage of capacity, rounded down: 100 only when full."""
    return 0 if capacity_seats <= 0 else reserved_seats * 100 // capacity_seats
