"""The calendar entry (services/_ticket_media.py): its event lines are written once per event
and the booking's spliced in; for any names, venues and times it is the calendar icalendar
builds in one go (same properties, same values), and it parses back to what was given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import icalendar
from hypothesis import given, settings
from hypothesis import strategies as st

from atomicseats.services._ticket_media import (
    CALENDAR_PRODUCT_ID,
    CalendarEntry,
    calendar_bytes,
    calendar_uid,
)

# No backslash: icalendar reads its own escaped "\\N" back as a line break (its quirk, either way).
TYPED = st.text(st.characters(blacklist_categories=["Cc", "Cs"], blacklist_characters="\\"), min_size=1, max_size=120)
MOMENTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda moment: moment.replace(microsecond=0, tzinfo=UTC)
)


def reference(entry: CalendarEntry) -> bytes:
    calendar = icalendar.Calendar()
    calendar.add("prodid", CALENDAR_PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    event = icalendar.Event()
    event.add("uid", calendar_uid(entry.booking_id))
    event.add("dtstamp", entry.stamped_at)
    event.add("dtstart", entry.starts_at)
    if entry.ends_at is not None:
        event.add("dtend", entry.ends_at)
    event.add("summary", entry.event_name)
    event.add("location", entry.venue)
    event.add("description", entry.description)
    event.add("url", entry.url)
    calendar.add_component(event)
    return calendar.to_ical()


@settings(max_examples=200, deadline=None)
@given(
    booking_id=st.integers(1, 2**37 - 1),
    name=TYPED,
    venue=TYPED,
    starts_at=MOMENTS,
    hours=st.none() | st.integers(1, 48),
    stamped_at=MOMENTS,
    description=TYPED,
)
def test_the_spliced_calendar_is_icalendars_own(booking_id, name, venue, starts_at, hours, stamped_at, description):
    ends_at = None if hours is None else starts_at + timedelta(hours=hours)
    entry = CalendarEntry(booking_id, name, venue, starts_at, ends_at, stamped_at, description, "https://x.test/e/1")
    data = calendar_bytes(entry)
    assert icalendar.Calendar.from_ical(data) == icalendar.Calendar.from_ical(reference(entry))
    (event,) = icalendar.Calendar.from_ical(data).walk("VEVENT")
    assert (str(event["SUMMARY"]), str(event["LOCATION"]), str(event["DESCRIPTION"])) == (name, venue, description)
    assert event.decoded("DTSTART") == starts_at and event.decoded("DTSTAMP") == stamped_at
    assert all(len(line) <= 75 for line in data.split(b"\r\n"))
    assert data.endswith(b"END:VEVENT\r\nEND:VCALENDAR\r\n")
