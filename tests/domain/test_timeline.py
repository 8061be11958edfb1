"""Hypothesis: an event's day-by-day bookings series (the host's chart)."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from atomicseats.domain.timeline import DayTotals, daily_timeline

FIRST_DAY = date(2026, 1, 1)
days = st.integers(0, 400).map(lambda offset: FIRST_DAY + timedelta(days=offset))
counts = st.dictionaries(days, st.integers(1, 10_000), max_size=30)


@given(counts, counts, st.integers(1, 200))
def test_the_series_adds_up_day_by_day(booked, cancelled, days_max):
    series = daily_timeline(booked, cancelled, days_max)
    busy = set(booked) | set(cancelled)
    if not busy:
        assert series == []
        return
    listed = [point.day for point in series]
    assert listed == sorted(set(listed))  # each day once, in order
    assert busy <= set(listed) and listed[0] == min(busy) and listed[-1] == max(busy)
    assert sum(point.seats_booked for point in series) == sum(booked.values())
    assert sum(point.seats_cancelled for point in series) == sum(cancelled.values())
    held = 0
    for point in series:
        held += point.seats_booked - point.seats_cancelled
        assert point.seats_held == held
        assert point.seats_booked == booked.get(point.day, 0)
        assert point.seats_cancelled == cancelled.get(point.day, 0)
    span = (max(busy) - min(busy)).days + 1
    if span <= days_max:  # quiet days filled in: one point a day
        assert len(series) == span
    else:  # a long span: only busy days, never more points than days with rows
        assert set(listed) == busy


def test_a_quiet_day_between_two_busy_days_keeps_the_level():
    series = daily_timeline({date(2026, 3, 1): 4, date(2026, 3, 3): 2}, {date(2026, 3, 3): 1})
    assert series == [
        DayTotals(date(2026, 3, 1), 4, 0, 4),
        DayTotals(date(2026, 3, 2), 0, 0, 4),
        DayTotals(date(2026, 3, 3), 2, 1, 5),
    ]
