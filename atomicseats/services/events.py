"""Event use cases: publish, change, delete, list; the host's view of bookings and waitlist.

Listings show each event's details from its row and its seat numbers from the
availability cache (Postgres for events the cache lacks, which are then cached):
every write refreshes the cache after it commits, so a listing right after a
change shows it. Redis is never the truth: without it, Postgres answers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, literal, select, tuple_
from sqlalchemy.orm import Session

from atomicseats.domain import allocator, limits, offers, search, tiers
from atomicseats.domain.accounts import is_admin, may_manage_event
from atomicseats.domain.allocator import WaitlistMode
from atomicseats.domain.request_state import REASON_EVENT_DELETED
from atomicseats.domain.states import BookingStatus, EventStatus, RequestStatus, WaitlistStatus
from atomicseats.domain.timeline import DayTotals, daily_timeline
from atomicseats.errors import Conflict, Forbidden, InvalidInput, NotFound
from atomicseats.extensions import db
from atomicseats.models import Booking, BookingRequest, Event, EventTier, User, WaitlistEntry, utcnow
from atomicseats.services._allocation import (
    Settlement,
    announce_after_commit,
    cancel_bookings_held,
    default_tier,
    event_tiers,
    lock_event,
    settle_event,
    withdraw_waiting,
)
from atomicseats.services._availability import availability_of, waitlist_totals
from atomicseats.services._notification_rows import Notification, outbox_row
from atomicseats.services._pages import Page, Position, cursor_choice, cursor_id, cursor_time, decode_cursor, page_of
from atomicseats.services.contracts import EventAvailability
from atomicseats.services.ports import adapters
from atomicseats.services.unit_of_work import UnitOfWork, unit_of_work

log = logging.getLogger(__name__)

EventFields = Mapping[str, Any]  # what the event schemas loaded (they check each field's type), by column name

# The statuses of requests that hold or wait for seats (the others hold nothing).
REQUEST_STATUSES_HOLDING = (RequestStatus.CONFIRMED, RequestStatus.PARTIAL, RequestStatus.WAITLISTED)
# Fields a host may change with `update_event`; seats are never set directly.
EDITABLE_FIELDS = (
    "name",
    "description",
    "venue",
    "starts_at",
    "ends_at",
    "sales_end_at",
    "price_minor",
    "capacity_seats",
    "waitlist_mode",  # auto | offer (domain/allocator.py WaitlistMode)
    "offer_window_s",  # offer mode: how long a guest has to answer (domain/offers.py bounds)
)


@dataclass(frozen=True)
class ListedEvent:
    """An event as shown: details from its row, seat numbers from one `EventAvailability`
    (so capacity, reserved seats and seats left always agree with each other)."""

    id: int
    host_id: int
    name: str
    description: str
    venue: str
    starts_at: datetime
    ends_at: datetime
    sales_end_at: datetime  # when sales close: the event's sales end, or its start
    price_minor: int
    status: str
    availability: EventAvailability
    waitlist_mode: str = WaitlistMode.AUTO
    offer_window_s: int = offers.OFFER_WINDOW_DEFAULT_S

    @property
    def seats_offered(self) -> int:
        return self.availability.seats_offered

    @property
    def capacity_seats(self) -> int:
        return self.availability.capacity_seats

    @property
    def reserved_seats(self) -> int:
        return self.availability.reserved_seats

    @property
    def seats_left(self) -> int:
        return self.availability.seats_left

    @property
    def is_waitlist_open(self) -> bool:
        return self.availability.is_waitlist_open


@dataclass(frozen=True)
class TierView:
    """A price tier as shown: seats left in its quota, and whether it is on sale now."""

    id: int
    name: str
    price_minor: int
    quota_seats: int
    reserved_seats: int
    sales_starts_at: datetime | None
    sales_ends_at: datetime | None
    is_on_sale: bool

    @property
    def seats_left(self) -> int:
        return self.quota_seats - self.reserved_seats


@dataclass(frozen=True)
class EventView:
    event: ListedEvent
    waitlist_seats: int  # not in the availability cache: always from Postgres
    tiers: tuple[TierView, ...] = ()  # from Postgres, oldest first

    @property
    def waitlist_length(self) -> int:
        return self.event.availability.waitlist_length


@dataclass(frozen=True)
class EventRoster:
    event: EventView
    bookings: list[Booking]
    waitlist: list[WaitlistEntry]
    page: Page[Booking | WaitlistEntry]  # both lists in one walk: bookings first, then the waitlist
    guest_names: dict[int, str] = field(default_factory=dict)  # the page's guests, by user id
    waitlist_first_place: int = 1  # the place in line of this page's first waiting entry


def create_event(host: User, fields: EventFields) -> EventView:
    """Publish an event. Without `tiers` it has one default tier (its whole capacity at its
    price); with them, its price is the cheapest tier's."""
    _require_host(host)
    sales_end_at = fields.get("sales_end_at")
    _check_times(fields["starts_at"], fields["ends_at"], sales_end_at)
    _check_future(utcnow(), fields["starts_at"], sales_end_at)
    tier_fields = fields.get("tiers")
    if tier_fields is not None:
        if "price_minor" in fields:
            raise InvalidInput("Give price or tiers, not both", {"price": ["The tiers carry the prices."]})
        if any("id" in item for item in tier_fields):
            raise InvalidInput("Invalid tiers", {"tiers": ["A new event's tiers have no id."]})
        _check_tier_fields(tier_fields, allocator.sales_end_of(fields["starts_at"], sales_end_at))
        problem = tiers.quota_problem(
            fields["capacity_seats"], {-index: item["quota_seats"] for index, item in enumerate(tier_fields, 1)}, []
        )
        if problem is not None:
            raise InvalidInput("Invalid tiers", {"tiers": [problem.message]})
    with unit_of_work() as work:
        event = Event(
            host_id=host.id,
            name=fields["name"],
            description=fields.get("description", ""),
            venue=fields["venue"],
            search_text=search.event_search_text(fields["name"], fields["venue"]),
            starts_at=fields["starts_at"],
            ends_at=fields["ends_at"],
            sales_end_at=sales_end_at,
            capacity_seats=fields["capacity_seats"],
            reserved_seats=0,
            price_minor=(
                min(item["price_minor"] for item in tier_fields)
                if tier_fields is not None
                else fields.get("price_minor", 0)
            ),
            is_waitlist_open=fields.get("is_waitlist_open", True),
            waitlist_mode=fields.get("waitlist_mode", WaitlistMode.AUTO),
            offer_window_s=fields.get("offer_window_s", offers.OFFER_WINDOW_DEFAULT_S),
            status=EventStatus.PUBLISHED,
        )
        work.session.add(event)
        work.session.flush()
        if tier_fields is None:
            work.session.add(default_tier(event))
        else:
            work.session.add_all(_new_tier(event, item) for item in tier_fields)
        work.session.flush()
        availability, waitlist_seats = _announce_change(work, event, Settlement())
        # Its (empty) waitlist mirror from the start: a flash sale's places come from Redis
        # at once, not after the next reconcile.
        work.after_commit(adapters().waitlist.replace, event.id, {})
        tier_views = _tiers_after_change(work, event)
    view = _view(event, availability, waitlist_seats, tier_views)
    log.info("event.created", extra={"event_id": view.event.id, "host_id": host.id})
    return view


def update_event(actor: User, event_id: int, fields: EventFields) -> EventView:
    """Change an event's details. Capacity may not drop below the seats sold (409);
    raising it, or reopening the waitlist, serves the waitlist head in this transaction."""
    with unit_of_work() as work:
        event = _lock_live_event(work, event_id)
        _require_owner(actor, event)
        starts_at = fields.get("starts_at", event.starts_at)
        ends_at = fields.get("ends_at", event.ends_at)
        sales_end_at = fields.get("sales_end_at", event.sales_end_at)
        _check_times(starts_at, ends_at, sales_end_at)
        _check_not_moved_into_past(event, fields, allocator.sales_end_of(starts_at, sales_end_at))
        if "capacity_seats" in fields:
            state = allocator.resize_capacity(event.to_state(utcnow()), fields["capacity_seats"])
            if state is None:
                raise Conflict(
                    "Capacity cannot drop below the seats already confirmed (or offered)",
                    {"capacity": [f"{event.reserved_seats + event.seats_offered} seats are confirmed or offered."]},
                    code="seats_confirmed",
                )
        _change_tiers(work, event, fields, allocator.sales_end_of(starts_at, sales_end_at))
        for name in EDITABLE_FIELDS:
            if name in fields:
                setattr(event, name, fields[name])
        event.search_text = search.event_search_text(event.name, event.venue)
        if "is_waitlist_open" in fields:
            event.is_waitlist_open = fields["is_waitlist_open"]
        event.updated_at = utcnow()
        settlement = settle_event(work, event, [])
        availability, waitlist_seats = _announce_change(work, event, settlement)
        tier_views = _tiers_after_change(work, event)
    log.info("event.updated", extra={"event_id": event_id, "fields": sorted(fields)})
    return _view(event, availability, waitlist_seats, tier_views)


def set_waitlist_open(actor: User, event_id: int, is_open: bool) -> EventView:
    return update_event(actor, event_id, {"is_waitlist_open": is_open})


def delete_event(actor: User, event_id: int) -> EventView:
    """Withdraw an event: every booking is cancelled and every waiting guest told."""
    with unit_of_work() as work:
        event = _lock_live_event(work, event_id)
        _require_owner(actor, event)
        now = utcnow()
        settlement = Settlement()
        for user_id, subject_key, booking_ids in _cancel_everything(work, event, now, settlement):
            fields = {"bookingIds": booking_ids}  # the bookings this withdrawal cancelled
            work.session.add(outbox_row(Notification("event.cancelled", user_id, event, subject_key, fields)))
        event.status = EventStatus.DELETED
        event.deleted_at = now
        event.updated_at = now
        event.reserved_seats = 0
        for tier in event_tiers(work, event):
            tier.reserved_seats = 0
        availability, waitlist_seats = _announce_change(work, event, settlement)
        tier_views = _tiers_after_change(work, event)
    log.info("event.deleted", extra={"event_id": event_id})
    return _view(event, availability, waitlist_seats, tier_views)


def _cancel_everything(
    work: UnitOfWork, event: Event, now: datetime, settlement: Settlement
) -> list[tuple[int, str, list[int]]]:
    """Cancel every booking and waiting entry; each request follows (`cancelled`, `event_deleted`).
    Returns (user id, notification subject key, ids of the user's bookings cancelled) per guest."""
    affected: dict[int, str] = {}
    cancelled_ids: dict[int, list[int]] = {}
    requests = {  # every request that holds or waits for seats of this event
        request.id: request
        for request in work.session.execute(
            select(BookingRequest).where(
                BookingRequest.event_id == event.id, BookingRequest.status.in_(REQUEST_STATUSES_HOLDING)
            )
        ).scalars()
    }
    bookings = list(
        work.session.execute(
            select(Booking).where(Booking.event_id == event.id, Booking.status == BookingStatus.CONFIRMED)
        ).scalars()
    )
    for booking in sorted(bookings, key=lambda booking: booking.id):
        affected.setdefault(booking.user_id, f"event-{event.id}-user-{booking.user_id}")
        cancelled_ids.setdefault(booking.user_id, []).append(booking.id)
    entries = work.session.execute(
        select(WaitlistEntry).where(WaitlistEntry.event_id == event.id, WaitlistEntry.status == WaitlistStatus.WAITING)
    ).scalars()
    for entry in entries:
        withdraw_waiting(event, requests[entry.booking_request_id], entry, REASON_EVENT_DELETED, now)
        settlement.removed_entry_ids.append(entry.id)
        affected.setdefault(entry.user_id, f"event-{event.id}-user-{entry.user_id}")
    cancel_bookings_held(bookings, requests, REASON_EVENT_DELETED, now)
    return [(user_id, key, cancelled_ids.get(user_id, [])) for user_id, key in sorted(affected.items())]


def get_event(event_id: int) -> EventView:
    event = db.session.get(Event, event_id)
    views = [] if event is None or event.is_deleted else _views(db.session(), [event])
    if not views:  # unknown, or deleted (its row says so, or the cache heard so after the row was read)
        raise NotFound("Event not found")
    return views[0]


EVENT_LIST_WHENS = ("upcoming", "past", "all")
EVENT_LIST_STATUSES = ("onsale", "soldout", "closed", "deleted")
ROSTER_PARTS = ("bookings", "waitlist")  # the roster's one walk: bookings first, then the waitlist


@dataclass(frozen=True)
class EventFilter:
    """What the catalogue shows. `when`: upcoming (not started yet, soonest first), past
    (started, most recent first) or all (upcoming, then past). `status`: onsale (sales
    open, seats free), soldout (sales open, none free), closed (sales ended: the start or
    salesEndAt passed) or deleted (admins only)."""

    when: str = "upcoming"
    text: str | None = None
    starts_from: datetime | None = None
    starts_to: datetime | None = None
    host_id: int | None = None
    status: str | None = None


def list_events(
    filters: EventFilter,
    limit: int = limits.EVENTS_PAGE_SIZE_DEFAULT,
    cursor: str | None = None,
    viewer: User | None = None,
) -> Page[EventView]:
    """One page of the catalogue, keyset-paginated.

    The cursor keeps the moment the walk began (`asOf`): upcoming and past, and the sales
    statuses, are judged against it on every page, so an event starting during the walk
    is listed once, not in both parts (and not in neither)."""
    assert 1 <= limit <= limits.EVENTS_PAGE_SIZE_MAX
    assert filters.when in EVENT_LIST_WHENS
    assert filters.status is None or filters.status in EVENT_LIST_STATUSES
    is_deleted_listed = filters.status == "deleted"
    if is_deleted_listed and (viewer is None or not is_admin(viewer.role)):
        raise Forbidden("Only admins can list deleted events")
    position = decode_cursor(cursor) if cursor else None
    as_of = cursor_time(position, "asOf") if position else utcnow()
    after = (cursor_time(position, "at"), cursor_id(position)) if position else None
    statement = _filtered_events(filters, as_of)
    rows: list[Event] = []
    # Upcoming part first (unless the cursor is already past it), then the past part.
    if filters.when in ("upcoming", "all") and (after is None or after[0] >= as_of):
        rows += _keyset_rows(statement, as_of, after, limit + 1, is_upcoming=True)
        after = None
    if filters.when in ("past", "all") and len(rows) <= limit:
        rows += _keyset_rows(statement, as_of, after, limit + 1 - len(rows), is_upcoming=False)
    page = page_of(rows, limit, lambda row: {"at": row.starts_at, "id": row.id, "asOf": as_of})
    views = _views(db.session(), page.items, is_cache_used=not is_deleted_listed, is_deleted_listed=is_deleted_listed)
    return Page(items=views, has_more=page.has_more, next_cursor=page.next_cursor)


def _filtered_events(filters: EventFilter, as_of: datetime) -> Select[tuple[Event]]:
    statement = select(Event).where(
        Event.status == (EventStatus.DELETED if filters.status == "deleted" else EventStatus.PUBLISHED)
    )
    if filters.host_id is not None:
        statement = statement.where(Event.host_id == filters.host_id)
    if filters.text:
        statement = statement.where(Event.search_text.contains(search.search_key(filters.text), autoescape=True))
    if filters.starts_from is not None:
        statement = statement.where(Event.starts_at >= filters.starts_from)
    if filters.starts_to is not None:
        statement = statement.where(Event.starts_at <= filters.starts_to)
    # Sales are open strictly before their end, which is never after the start (a CHECK says
    # so). Open sales mean a start still ahead: said as such, the index bounds the scan, and
    # the past part of the walk is empty at once instead of read through.
    is_sold_out = Event.reserved_seats >= Event.capacity_seats
    if filters.status == "onsale":
        statement = statement.where(Event.starts_at > as_of, Event.sales_end > as_of, ~is_sold_out)
    elif filters.status == "soldout":
        statement = statement.where(Event.starts_at > as_of, Event.sales_end > as_of, is_sold_out)
    elif filters.status == "closed":
        statement = statement.where(Event.sales_end <= as_of)
    return statement


def _keyset_rows(
    statement: Select[tuple[Event]], as_of: datetime, after: tuple[datetime, int] | None, count: int, is_upcoming: bool
) -> list[Event]:
    """Upcoming (starts at or after `as_of`) soonest first, or past latest first, after the
    cursor's (startsAt, id); the index (status, starts_at, id) serves both directions."""
    key = tuple_(Event.starts_at, Event.id)
    if is_upcoming:
        statement = statement.where(Event.starts_at >= as_of).order_by(Event.starts_at, Event.id)
    else:
        statement = statement.where(Event.starts_at < as_of).order_by(Event.starts_at.desc(), Event.id.desc())
    if after is not None:
        after_key = tuple_(literal(after[0], Event.starts_at.type), literal(after[1], Event.id.type))
        statement = statement.where(key > after_key if is_upcoming else key < after_key)
    return list(db.session.execute(statement.limit(count)).scalars())


def event_roster(
    actor: User, event_id: int, limit: int = limits.ROSTER_PAGE_SIZE_DEFAULT, cursor: str | None = None
) -> EventRoster:
    """The host's view: confirmed bookings (oldest first), then the waitlist in queue
    order, walked by one cursor; a page holds at most `limit` of them together."""
    assert 1 <= limit <= limits.ROSTER_PAGE_SIZE_MAX
    event = db.session.get(Event, event_id)
    if event is None or event.is_deleted:
        raise NotFound("Event not found")
    _require_owner(actor, event)
    position = decode_cursor(cursor) if cursor else None
    part = cursor_choice(position, "part", ROSTER_PARTS) if position else "bookings"
    after_id = cursor_id(position) if position else 0
    rows: list[Booking | WaitlistEntry] = []
    if part == "bookings":
        rows += db.session.execute(
            select(Booking)
            .where(Booking.event_id == event_id, Booking.status == BookingStatus.CONFIRMED, Booking.id > after_id)
            .order_by(Booking.id)
            .limit(limit + 1)
        ).scalars()
        after_id = 0
    if len(rows) <= limit:
        rows += db.session.execute(
            select(WaitlistEntry)
            .where(
                WaitlistEntry.event_id == event_id,
                WaitlistEntry.status == WaitlistStatus.WAITING,
                WaitlistEntry.id > after_id,
            )
            .order_by(WaitlistEntry.id)
            .limit(limit + 1 - len(rows))
        ).scalars()
    page = page_of(rows, limit, _roster_position)
    # The host's view counts from Postgres, like the bookings and queue it lists.
    view = _views(db.session(), [event], is_cache_used=False)[0]
    bookings = [row for row in page.items if isinstance(row, Booking)]
    waitlist = [row for row in page.items if isinstance(row, WaitlistEntry)]
    user_ids = {row.user_id for row in page.items}
    names: dict[int, str] = (
        dict(db.session.execute(select(User.id, User.name).where(User.id.in_(user_ids))).tuples().all())
        if user_ids
        else {}
    )
    # Places in line: the page's first entry comes after every entry still waiting before it.
    waiting_before = (
        db.session.execute(
            select(func.count()).where(
                WaitlistEntry.event_id == event_id,
                WaitlistEntry.status == WaitlistStatus.WAITING,
                WaitlistEntry.id < waitlist[0].id,
            )
        ).scalar_one()
        if waitlist
        else 0
    )
    return EventRoster(view, bookings, waitlist, page, names, waiting_before + 1)


def host_events(
    actor: User, limit: int = limits.EVENTS_PAGE_SIZE_DEFAULT, cursor: str | None = None
) -> Page[EventView]:
    """The host's own events (upcoming soonest first, then past latest first): their dashboard.
    Only hosts and admins have one."""
    _require_host(actor, "Only hosts have a dashboard of their events")
    return list_events(EventFilter(when="all", host_id=actor.id), limit, cursor)


def check_can_host(actor: User) -> None:
    """Forbidden unless the account may publish events (a host or an admin)."""
    _require_host(actor)


def hosted_event(actor: User, event_id: int) -> EventView:
    """One event as its host (or an admin) manages it, counted from Postgres like the roster."""
    event = db.session.get(Event, event_id)
    if event is None or event.is_deleted:
        raise NotFound("Event not found")
    _require_owner(actor, event)
    return _views(db.session(), [event], is_cache_used=False)[0]


def bookings_over_time(actor: User, event_id: int) -> list[DayTotals]:
    """Seats booked and cancelled per UTC day, and the seats held at each day's end (the
    event's host or an admin). Two grouped queries: one row per busy day, whatever the sales."""
    event = db.session.get(Event, event_id)
    if event is None or event.is_deleted:
        raise NotFound("Event not found")
    _require_owner(actor, event)
    booked_day = _utc_day(Booking.__table__.c.created_at)
    cancelled_day = _utc_day(Booking.__table__.c.cancelled_at)
    booked = db.session.execute(
        select(booked_day, func.sum(Booking.seats)).where(Booking.event_id == event_id).group_by(booked_day)
    ).all()
    cancelled = db.session.execute(
        select(cancelled_day, func.sum(Booking.seats))
        .where(Booking.event_id == event_id, Booking.cancelled_at.is_not(None))
        .group_by(cancelled_day)
    ).all()
    return daily_timeline(
        {date.fromisoformat(day): int(seats) for day, seats in booked},
        {date.fromisoformat(day): int(seats) for day, seats in cancelled},
    )


def _utc_day(column: ColumnElement[datetime] | ColumnElement[datetime | None]) -> ColumnElement[str]:
    """The UTC calendar day of a UtcDateTime column, as 'YYYY-MM-DD', on either backend
    (SQLite stores the UTC time as text; PostgreSQL's timestamptz is turned to UTC first)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)


def _roster_position(row: Booking | WaitlistEntry) -> Position:
    return {"part": "bookings" if isinstance(row, Booking) else "waitlist", "id": row.id}


def _views(
    session: Session, rows: list[Event], is_cache_used: bool = True, is_deleted_listed: bool = False
) -> list[EventView]:
    """Views of live event rows, seat numbers from the availability cache in one round trip.

    Events the cache lacks (or all, with `is_cache_used` off) are counted in Postgres, and
    cached for the next reader unless a writer cached them meanwhile. An event the cache
    knows as deleted was deleted after its row was read: it is left out (unless deleted
    events are what is listed, for admins)."""
    event_ids = [row.id for row in rows]
    cache = adapters().availability
    cached = cache.load_many(event_ids) if is_cache_used and event_ids else {}
    # One grouped query a page: the seats people wait for are not cached, and the queue
    # lengths of the events the cache lacks come with them.
    totals = waitlist_totals(session, event_ids)
    counted = [availability_of(row, totals.get(row.id, (0, 0))[0]) for row in rows if row.id not in cached]
    if counted:
        cache.store_missing(counted)
    availability = cached | {item.event_id: item for item in counted}
    tiers_of = _tier_views(session, rows)
    return [
        _view(row, availability[row.id], totals.get(row.id, (0, 0))[1], tiers_of.get(row.id, ()))
        for row in rows
        if is_deleted_listed or not availability[row.id].is_deleted
    ]


def _tier_views(session: Session, rows: list[Event]) -> dict[int, tuple[TierView, ...]]:
    """The tiers of a page of events, in one query, by event id (oldest tier first)."""
    if not rows:
        return {}
    now = utcnow()
    events_by_id = {row.id: row for row in rows}
    statement = select(EventTier).where(EventTier.event_id.in_(events_by_id)).order_by(EventTier.id)
    views: dict[int, list[TierView]] = {}
    for tier in session.execute(statement).scalars():
        views.setdefault(tier.event_id, []).append(_tier_view(events_by_id[tier.event_id], tier, now))
    return {event_id: tuple(tier_views) for event_id, tier_views in views.items()}


def _tier_view(event: Event, tier: EventTier, now: datetime) -> TierView:
    return TierView(
        id=tier.id,
        name=tier.name,
        price_minor=tier.price_minor,
        quota_seats=tier.quota_seats,
        reserved_seats=tier.reserved_seats,
        sales_starts_at=tier.sales_starts_at,
        sales_ends_at=tier.sales_ends_at,
        is_on_sale=not event.is_deleted and tiers.is_on_sale(tier.to_tier(), event.is_sales_open(now), now),
    )


def _view(
    row: Event, availability: EventAvailability, waitlist_seats: int, tier_views: tuple[TierView, ...] = ()
) -> EventView:
    """After a change, call it once the transaction has committed: the row is then re-read
    as stored (times in UTC), and its seat numbers are what the cache was given."""
    assert row.id == availability.event_id
    listed = ListedEvent(
        id=row.id,
        host_id=row.host_id,
        name=row.name,
        description=row.description,
        venue=row.venue,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        sales_end_at=row.sales_end,
        price_minor=row.price_minor,
        status=row.status,
        availability=availability,
        waitlist_mode=row.waitlist_mode,
        offer_window_s=row.offer_window_s,
    )
    return EventView(listed, waitlist_seats, tier_views)


def _announce_change(work: UnitOfWork, event: Event, settlement: Settlement) -> tuple[EventAvailability, int]:
    """Cache the event's availability after commit (with the other effects); return it and
    the seats waiting, for the view built once the transaction commits."""
    work.session.flush()
    waitlist_length, waitlist_seats = announce_after_commit(work, event, settlement)
    return availability_of(event, waitlist_length), waitlist_seats


def _tiers_after_change(work: UnitOfWork, event: Event) -> tuple[TierView, ...]:
    now = utcnow()
    return tuple(_tier_view(event, tier, now) for tier in event_tiers(work, event))


# --- tiers -------------------------------------------------------------------------------


def _new_tier(event: Event, item: EventFields) -> EventTier:
    return EventTier(
        event_id=event.id,
        name=item["name"],
        price_minor=item["price_minor"],
        quota_seats=item["quota_seats"],
        reserved_seats=0,
        sales_starts_at=item.get("sales_starts_at"),
        sales_ends_at=item.get("sales_ends_at"),
        created_at=utcnow(),
    )


def _check_tier_fields(items: list[EventFields], sales_end: datetime) -> None:
    """Each tier's window inside the event's sales: it ends by the event's sales end."""
    for index, item in enumerate(items):
        ends_at = item.get("sales_ends_at")
        if ends_at is not None and ends_at > sales_end:
            raise InvalidInput(
                "Invalid tiers", {"tiers": [f"Tier {index + 1}: salesEndAt must not be after the event's sales end."]}
            )


def _change_tiers(work: UnitOfWork, event: Event, fields: EventFields, sales_end: datetime) -> None:
    """Apply `tiers` (each with an `id` changes that tier, without one adds a tier; tiers not
    listed stay as they are), a new price or a new capacity to the event's tiers, keeping the
    tier invariants: a quota never below its tier's confirmed seats, quotas never above the
    capacity (409 each). A single tier covering the whole capacity follows capacity and price."""
    tier_rows = event_tiers(work, event)
    capacity = fields.get("capacity_seats", event.capacity_seats)
    items = fields.get("tiers")
    if items is None:
        if "price_minor" in fields and len(tier_rows) > 1:
            raise InvalidInput("This event has tiers: change their prices", {"price": ["Set tiers[].price."]})
        if len(tier_rows) == 1 and "price_minor" in fields:
            tier_rows[0].price_minor = fields["price_minor"]
        if len(tier_rows) == 1 and tiers.follows_capacity(event.capacity_seats, [tier_rows[0].to_tier()]):
            tier_rows[0].quota_seats = capacity
        _check_quotas(capacity, {}, tier_rows)
        return
    if "price_minor" in fields:
        raise InvalidInput("Give price or tiers, not both", {"price": ["The tiers carry the prices."]})
    _check_tier_fields(items, sales_end)
    by_id = {tier.id: tier for tier in tier_rows}
    unknown = [item["id"] for item in items if "id" in item and item["id"] not in by_id]
    if unknown:
        raise InvalidInput("Unknown tier", {"tiers": [f"Tier {unknown[0]} is not a tier of this event."]})
    added = [item for item in items if "id" not in item]
    if len(tier_rows) + len(added) > limits.TIERS_PER_EVENT_MAX:
        raise InvalidInput("Too many tiers", {"tiers": [f"At most {limits.TIERS_PER_EVENT_MAX} tiers."]})
    quotas = {item["id"]: item["quota_seats"] for item in items if "id" in item}
    quotas |= {-index: item["quota_seats"] for index, item in enumerate(added, 1)}
    _check_quotas(capacity, quotas, tier_rows)
    for item in items:
        if "id" in item:
            tier = by_id[item["id"]]
            tier.name, tier.price_minor, tier.quota_seats = item["name"], item["price_minor"], item["quota_seats"]
            tier.sales_starts_at, tier.sales_ends_at = item.get("sales_starts_at"), item.get("sales_ends_at")
    work.session.add_all(_new_tier(event, item) for item in added)
    work.session.flush()
    event.price_minor = min(tier.price_minor for tier in event_tiers(work, event))


def _check_quotas(capacity: int, quotas: dict[int, int], tier_rows: list[EventTier]) -> None:
    problem = tiers.quota_problem(capacity, quotas, [tier.to_tier() for tier in tier_rows])
    if problem is None:
        return
    if problem.is_below_confirmed:
        raise Conflict(
            "A tier's quota cannot drop below its confirmed seats", {"tiers": [problem.message]}, code="seats_confirmed"
        )
    raise Conflict("The tiers' quotas cannot exceed the capacity", {"tiers": [problem.message]})


def _lock_live_event(work: UnitOfWork, event_id: int) -> Event:
    event = lock_event(work, event_id)
    if event.is_deleted:
        raise NotFound("Event not found")
    return event


def _require_host(user: User, message: str = "Only hosts can create events") -> None:
    if user.role not in ("host", "admin"):
        raise Forbidden(message)


def _require_owner(actor: User, event: Event) -> None:
    if not may_manage_event(actor.role, actor.id, event.host_id):
        raise Forbidden("Only the event's host can do this")


def _check_times(starts_at: datetime, ends_at: datetime, sales_end_at: datetime | None) -> None:
    if ends_at <= starts_at:
        raise InvalidInput("Invalid event times", {"endsAt": ["Must be after startsAt."]})
    if sales_end_at is not None and sales_end_at > starts_at:
        raise InvalidInput("Invalid event times", {"salesEndAt": ["Must not be after startsAt."]})


def _check_future(now: datetime, starts_at: datetime, sales_end_at: datetime | None) -> None:
    """A new event starts, and its sales end, in the future."""
    if starts_at <= now:
        raise InvalidInput("Invalid event times", {"startsAt": ["Must be in the future."]})
    if sales_end_at is not None and sales_end_at <= now:
        raise InvalidInput("Invalid event times", {"salesEndAt": ["Must be in the future."]})


def _check_not_moved_into_past(event: Event, fields: EventFields, sales_end: datetime) -> None:
    """A host cannot move an event that holds confirmed seats into the past: neither its start
    nor its sales end may move to a time already gone (409). Without confirmed seats, or when
    the times are not changed, nothing is refused."""
    is_time_changed = any(name in fields for name in ("starts_at", "sales_end_at"))
    if not is_time_changed or event.reserved_seats == 0:
        return
    now = utcnow()
    starts_at = fields.get("starts_at", event.starts_at)
    if starts_at <= now and starts_at != event.starts_at:
        raise Conflict(
            "An event with confirmed bookings cannot be moved into the past",
            {"startsAt": [f"{event.reserved_seats} seats are confirmed; the start must stay in the future."]},
            code="seats_confirmed",
        )
    if sales_end <= now and sales_end != event.sales_end:
        field = "salesEndAt" if "sales_end_at" in fields else "startsAt"
        raise Conflict(
            "An event with confirmed bookings cannot be moved into the past",
            {field: [f"{event.reserved_seats} seats are confirmed; sales must end in the future."]},
            code="seats_confirmed",
        )
