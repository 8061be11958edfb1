"""An event's bookings over time: seats booked and cancelled per day, and the seats held at
the end of each day (what the host's chart draws).

The services count seats per UTC day in SQL (bookings by the day they were made, cancellations
by the day they were cancelled); this turns those counts into a day-by-day series. Days with
nothing happening between two busy days are filled in (a running total stays level across
them) while the series spans at most `days_max` days; a longer span lists only the days on
which something happened, so a series never grows past the number of rows behind it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

TIMELINE_FILLED_DAYS_MAX = 92  # about a quarter: longer sales lists busy days only


@dataclass(frozen=True)
class DayTotals:
    day: date
    seats_booked: int  # seats of the bookings made that day (cancelled later or not)
    seats_cancelled: int  # seats of the bookings cancelled that day
    seats_held: int  # confirmed seats at the end of the day: booked so far minus cancelled so far


def daily_timeline(
    booked: Mapping[date, int], cancelled: Mapping[date, int], days_max: int = TIMELINE_FILLED_DAYS_MAX
) -> list[DayTotals]:
    assert days_max >= 1
    busy = sorted(set(booked) | set(cancelled))
    if not busy:
        return []
    span = (busy[-1] - busy[0]).days + 1
    days = [busy[0] + timedelta(days=offset) for offset in range(span)] if span <= days_max else busy
    held = 0
    series = []
    for day in days:
        seats_booked, seats_cancelled = booked.get(day, 0), cancelled.get(day, 0)
        held += seats_booked - seats_cancelled
        series.append(DayTotals(day, seats_booked, seats_cancelled, held))
    return series
