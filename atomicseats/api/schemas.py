"""Marshmallow schemas: every payload in and out of the JSON API, camelCase on the wire.

Types are strict: "3" is not an integer, 2.5 is not a seat count, "true" is not a
boolean. Unknown fields are refused, so a misspelt or forbidden field (say,
`reservedSeats`) is a 400 rather than silently ignored.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, pre_load, validate, validates_schema

from atomicseats.domain import accounts, limits, request_state, tickets
from atomicseats.domain import offers as offer_rules
from atomicseats.domain.allocator import WaitlistMode
from atomicseats.domain.states import DECIDED_REQUEST_STATUSES, BookingStatus, RequestStatus
from atomicseats.services.events import EVENT_LIST_STATUSES, EVENT_LIST_WHENS

ID_MAX = 2**63 - 1


class StrictBoolean(fields.Boolean):
    """Only JSON true/false."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def strict_int(minimum: int, maximum: int, **kwargs) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(min=minimum, max=maximum), **kwargs)


def id_field(**kwargs) -> fields.Integer:
    return strict_int(1, ID_MAX, **kwargs)


class QueryInteger(fields.Integer):
    """Query strings are text: accept plain ASCII decimal digits only (no sign, `_`, spaces)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not value.isascii() or not value.isdigit():
            raise self.make_error("invalid", input=value)
        return super()._deserialize(value, attr, data, **kwargs)


def query_int(minimum: int, maximum: int, **kwargs) -> fields.Integer:
    return QueryInteger(validate=validate.Range(min=minimum, max=maximum), **kwargs)


class UtcDateTime(fields.AwareDateTime):
    """ISO 8601; naive means UTC; must stay a representable UTC time within YEAR_MIN..YEAR_MAX."""

    YEAR_MIN = 1970
    YEAR_MAX = 9998

    def _deserialize(self, value, attr, data, **kwargs):
        parsed = super()._deserialize(value, attr, data, **kwargs)
        try:
            in_utc = parsed.astimezone(UTC)
        except (OverflowError, ValueError) as error:
            raise ValidationError("Date is out of range.") from error
        if not self.YEAR_MIN <= in_utc.year <= self.YEAR_MAX:
            raise ValidationError(f"Year must be within {self.YEAR_MIN}..{self.YEAR_MAX}.")
        return in_utc


def aware_datetime(**kwargs) -> fields.AwareDateTime:
    return UtcDateTime(default_timezone=UTC, **kwargs)


def text(length_max: int, length_min: int = 1, **kwargs) -> fields.String:
    return fields.String(validate=validate.Length(min=length_min, max=length_max), **kwargs)


_LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})  # control characters, line and paragraph separators


class SingleLine(fields.String):
    """One line of text (a name, a venue): surrounding whitespace trimmed, control
    characters (newlines, tabs, escapes) refused; the length is checked after trimming."""

    def _deserialize(self, value, attr, data, **kwargs):
        text_value = super()._deserialize(value, attr, data, **kwargs).strip()
        if any(unicodedata.category(character) in _LINE_BREAKING for character in text_value):
            raise ValidationError("Must not contain control characters (newlines, tabs, escapes).")
        return text_value


def single_line(length_max: int, length_min: int = 1, **kwargs) -> SingleLine:
    return SingleLine(validate=validate.Length(min=length_min, max=length_max), **kwargs)


def _has_nul(value) -> bool:
    return isinstance(value, str) and "\x00" in value


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE

    @pre_load
    def require_object(self, data, **kwargs):
        if not isinstance(data, dict):
            raise ValidationError("Expected a JSON object.", "_schema")
        bad = sorted(name for name, value in data.items() if _has_nul(value))
        if bad:  # PostgreSQL cannot store NUL in text; nobody means to send it
            raise ValidationError({name: ["Must not contain NUL characters."] for name in bad})
        return data


# --- users -------------------------------------------------------------------------------


class RegisterSchema(StrictSchema):
    """The username and password rules are the domain's (domain/accounts.py), applied by the
    service to every account however it is created; the API documents them."""

    username = fields.String(
        required=True,
        metadata={"description": accounts.USERNAME_RULE, "pattern": f"^{accounts.USERNAME_PATTERN.pattern}$"},
    )
    name = single_line(100, required=True)
    email = fields.Email(required=True, validate=validate.Length(max=limits.EMAIL_LENGTH_MAX))
    password = fields.String(
        required=True,
        load_only=True,
        metadata={
            "description": accounts.PASSWORD_RULE,
            "minLength": limits.PASSWORD_LENGTH_MIN,
            "maxLength": limits.PASSWORD_LENGTH_MAX,
        },
    )
    role = fields.String(load_default="guest", validate=validate.OneOf(["guest", "host", "admin"]))


class LoginSchema(StrictSchema):
    username = text(limits.EMAIL_LENGTH_MAX)  # a username, or an e-mail address
    email = text(limits.EMAIL_LENGTH_MAX)
    password = text(limits.PASSWORD_LENGTH_MAX, required=True, load_only=True)

    @validates_schema
    def require_login(self, data, **kwargs):
        if not data.get("username") and not data.get("email"):
            raise ValidationError("Give a username or an email.", "username")


class RefreshSchema(StrictSchema):
    refreshToken = text(4096, data_key="refreshToken", attribute="refresh_token")


class UserOut(Schema):
    id = fields.Integer()
    username = fields.String()
    name = fields.String()
    email = fields.String()
    role = fields.String()


class LoggedOutOut(Schema):
    """Logging out answers nothing but the fact: `data` is an empty object."""


class LoginOut(Schema):
    user = fields.Nested(UserOut)
    accessToken = fields.String(attribute="access_token")
    refreshToken = fields.String(attribute="refresh_token")


# --- events ------------------------------------------------------------------------------


class TierSchema(StrictSchema):
    """One price tier of an event (create, or update: with `id` it changes that tier)."""

    id = id_field(attribute="id", metadata={"description": "update only: the tier to change (absent: a new tier)"})
    name = single_line(limits.TIER_NAME_CHARS_MAX, required=True, attribute="name")
    price = strict_int(
        0, limits.PRICE_MINOR_MAX, required=True, attribute="price_minor", metadata={"description": "minor units"}
    )
    quota = strict_int(
        0,
        limits.CAPACITY_SEATS_MAX,
        required=True,
        attribute="quota_seats",
        metadata={"description": "seats of the capacity sold in this tier; the quotas total at most the capacity"},
    )
    salesStartAt = aware_datetime(
        attribute="sales_starts_at", allow_none=True, metadata={"description": "absent or null: on sale at once"}
    )
    salesEndAt = aware_datetime(
        attribute="sales_ends_at",
        allow_none=True,
        metadata={"description": "absent or null: until the event's sales end; never after it"},
    )

    @validates_schema
    def window_in_order(self, data, **kwargs):
        starts_at, ends_at = data.get("sales_starts_at"), data.get("sales_ends_at")
        if starts_at is not None and ends_at is not None and ends_at <= starts_at:
            raise ValidationError("Must be after salesStartAt.", "salesEndAt")


class TierList(fields.List):
    """A list of tiers whose errors read as the other fields' do: a list of sentences under
    `tiers` ("Tier 2, price: Not a valid integer."), not a nested object by index and field."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return super()._deserialize(value, attr, data, **kwargs)
        except ValidationError as error:
            raise ValidationError(_flat_messages(error.messages)) from error


def _flat_messages(messages, prefix: str = "") -> list[str]:
    if isinstance(messages, str):
        return [f"{prefix}: {messages}" if prefix else messages]
    if isinstance(messages, list):
        return [line for message in messages for line in _flat_messages(message, prefix)]
    lines = []
    for key, nested in messages.items():
        label = f"Tier {key + 1}" if isinstance(key, int) else ("" if key == "_schema" else str(key))
        lines += _flat_messages(nested, ", ".join(part for part in (prefix, label) if part))
    return lines


def _tiers_field(**kwargs) -> fields.List:
    return TierList(
        fields.Nested(TierSchema),
        attribute="tiers",
        validate=validate.Length(min=1, max=limits.TIERS_PER_EVENT_MAX),
        metadata={
            "description": "price tiers, each with its price, quota and optional sales window; absent: one "
            "tier of the whole capacity at `price` (give `price` or `tiers`, not both)"
        },
        **kwargs,
    )


class EventFieldsSchema(StrictSchema):
    name = single_line(200, attribute="name")
    description = text(5000, 0, attribute="description")
    venue = single_line(200, attribute="venue")
    startsAt = aware_datetime(attribute="starts_at")
    endsAt = aware_datetime(attribute="ends_at")
    capacity = strict_int(1, limits.CAPACITY_SEATS_MAX, attribute="capacity_seats")
    price = strict_int(0, limits.PRICE_MINOR_MAX, attribute="price_minor", metadata={"description": "minor units"})
    waitlistOpen = StrictBoolean(attribute="is_waitlist_open")
    waitlistMode = fields.String(
        attribute="waitlist_mode",
        validate=validate.OneOf([mode.value for mode in WaitlistMode]),
        metadata={
            "description": "auto: freed seats are confirmed to the waitlist head at once; offer: they are offered "
            "to it for offerWindowMinutes (accept, accept fewer or decline)"
        },
    )
    offerWindowMinutes = strict_int(
        offer_rules.OFFER_WINDOW_MIN_S // 60,
        offer_rules.OFFER_WINDOW_MAX_S // 60,
        attribute="offer_window_minutes",
        metadata={"description": "offer mode: how long a guest has to answer an offer (5 minutes to 14 days)"},
    )
    salesEndAt = aware_datetime(
        attribute="sales_end_at",
        allow_none=True,
        metadata={"description": "when sales close, at or before startsAt; null or absent: at startsAt"},
    )
    tiers = _tiers_field()

    @post_load
    def window_in_seconds(self, data, **kwargs):
        if "offer_window_minutes" in data:
            data["offer_window_s"] = data.pop("offer_window_minutes") * 60
        return data


class EventCreateSchema(EventFieldsSchema):
    name = single_line(200, required=True, attribute="name")
    venue = single_line(200, required=True, attribute="venue")
    startsAt = aware_datetime(required=True, attribute="starts_at")
    endsAt = aware_datetime(required=True, attribute="ends_at")
    capacity = strict_int(1, limits.CAPACITY_SEATS_MAX, required=True, attribute="capacity_seats")


class EventUpdateSchema(EventFieldsSchema):
    id = id_field(required=True, attribute="event_id")
    waitlistClosed = StrictBoolean(attribute="is_waitlist_closed", metadata={"description": "seed alias"})

    @pre_load
    def accept_seed_names(self, data, **kwargs):
        """The seed's update used startAt/endAt; accept them as aliases."""
        if isinstance(data, dict):
            data = dict(data)
            for seed_name, name in (("startAt", "startsAt"), ("endAt", "endsAt")):
                if seed_name in data and name not in data:
                    data[name] = data.pop(seed_name)
        return data

    @validates_schema
    def require_a_change(self, data, **kwargs):
        if len(data) < 2:
            raise ValidationError("Give at least one field to change.", "_schema")
        if "is_waitlist_open" in data and "is_waitlist_closed" in data:
            raise ValidationError("Give waitlistOpen or waitlistClosed, not both.", "waitlistClosed")


class EventIdSchema(StrictSchema):
    id = id_field(required=True, attribute="event_id")


class EventListQuery(StrictSchema):
    limit = query_int(1, limits.EVENTS_PAGE_SIZE_MAX, load_default=limits.EVENTS_PAGE_SIZE_DEFAULT)
    cursor = text(200, metadata={"description": "pageInfo.nextCursor of the previous page"})
    when = fields.String(
        load_default="upcoming",
        validate=validate.OneOf(EVENT_LIST_WHENS),
        metadata={
            "description": "upcoming (default): not started yet, soonest first; past: started, latest first; "
            "all: upcoming, then past"
        },
    )
    q = single_line(
        limits.EVENT_SEARCH_CHARS_MAX,
        0,
        attribute="text",
        metadata={"description": "part of the name or venue, in any letter case (blank: no filter)"},
    )
    from_ = aware_datetime(data_key="from", attribute="starts_from", metadata={"description": "startsAt at or after"})
    to = aware_datetime(attribute="starts_to", metadata={"description": "startsAt at or before"})
    hostId = query_int(1, ID_MAX, attribute="host_id")
    status = fields.String(
        validate=validate.OneOf(EVENT_LIST_STATUSES),
        metadata={
            "description": "onsale: sales open, seats free; soldout: sales open, none free; "
            "closed: sales ended (start or salesEndAt passed); deleted: admins only"
        },
    )

    @post_load
    def blank_text_is_no_filter(self, data, **kwargs):
        if not data.get("text"):  # single_line trimmed it: an empty search box filters nothing
            data.pop("text", None)
        return data

    @validates_schema
    def range_in_order(self, data, **kwargs):
        if data.get("starts_from") and data.get("starts_to") and data["starts_from"] > data["starts_to"]:
            raise ValidationError("Must not be before from.", "to")


class TierOut(Schema):
    id = fields.Integer()
    name = fields.String()
    price = fields.Integer(attribute="price_minor", metadata={"description": "minor units"})
    quota = fields.Integer(attribute="quota_seats")
    reservedSeats = fields.Integer(attribute="reserved_seats")
    seatsLeft = fields.Integer(attribute="seats_left")
    salesStartAt = fields.DateTime(
        attribute="sales_starts_at", allow_none=True, metadata={"description": "null: on sale from publication"}
    )
    salesEndAt = fields.DateTime(
        attribute="sales_ends_at", allow_none=True, metadata={"description": "null: until the event's sales end"}
    )
    onSale = fields.Boolean(attribute="is_on_sale", metadata={"description": "sales open and inside the window now"})


class EventOut(Schema):
    id = fields.Integer(attribute="event.id")
    name = fields.String(attribute="event.name")
    description = fields.String(attribute="event.description")
    hostId = fields.Integer(attribute="event.host_id")
    venue = fields.String(attribute="event.venue")
    startsAt = fields.DateTime(attribute="event.starts_at")
    endsAt = fields.DateTime(attribute="event.ends_at")
    capacity = fields.Integer(attribute="event.capacity_seats")
    reservedSeats = fields.Integer(attribute="event.reserved_seats")
    seatsLeft = fields.Integer(attribute="event.seats_left")
    price = fields.Integer(attribute="event.price_minor", metadata={"description": "minor units"})
    waitlistOpen = fields.Boolean(attribute="event.is_waitlist_open")
    waitlistMode = fields.String(attribute="event.waitlist_mode")
    offerWindowMinutes = fields.Function(lambda view: view.event.offer_window_s // 60)
    seatsOffered = fields.Integer(
        attribute="event.seats_offered", metadata={"description": "held by open waitlist offers: neither free nor sold"}
    )
    waitlistLength = fields.Integer(attribute="waitlist_length", metadata={"description": "people waiting"})
    waitlistSeats = fields.Integer(attribute="waitlist_seats", metadata={"description": "seats they wait for"})
    status = fields.String(attribute="event.status")
    salesEndAt = fields.DateTime(
        attribute="event.sales_end_at",
        metadata={"description": "when sales close: the event's salesEndAt, or startsAt when it has none (never null)"},
    )
    tiers = fields.List(
        fields.Nested(TierOut),
        metadata={
            "description": "price tiers, oldest first (an event made without tiers has one); `price` is the cheapest"
        },
    )


class RosterBookingOut(Schema):
    id = fields.Integer()
    userId = fields.Integer(attribute="user_id")
    numberOfSeats = fields.Integer(attribute="seats")
    cost = fields.Integer(attribute="cost_minor")
    createdAt = fields.DateTime(attribute="created_at")


class RosterWaitlistOut(Schema):
    id = fields.Integer()
    userId = fields.Integer(attribute="user_id")
    seatsWaitlisted = fields.Integer(attribute="seats_waitlisted")
    seatsRemaining = fields.Integer(attribute="seats_remaining")
    createdAt = fields.DateTime(attribute="created_at")


class RosterQuery(StrictSchema):
    limit = query_int(
        1,
        limits.ROSTER_PAGE_SIZE_MAX,
        load_default=limits.ROSTER_PAGE_SIZE_DEFAULT,
        metadata={"description": "bookings and waitlist entries together"},
    )
    cursor = text(200, metadata={"description": "pageInfo.nextCursor of the previous page"})


class RosterOut(Schema):
    event = fields.Nested(EventOut)
    bookings = fields.List(fields.Nested(RosterBookingOut), metadata={"description": "oldest first"})
    waitlist = fields.List(
        fields.Nested(RosterWaitlistOut),
        metadata={"description": "queue order, head first; listed once every booking was"},
    )
    pageInfo = fields.Nested(lambda: PageInfoOut(), attribute="page.page_info")


# --- bookings ----------------------------------------------------------------------------


class BookSchema(StrictSchema):
    eventId = id_field(required=True, attribute="event_id")
    numberOfSeats = strict_int(1, limits.SEATS_PER_REQUEST_MAX, required=True, attribute="seats")
    tierId = id_field(
        attribute="tier_id",
        metadata={
            "description": "a tier of the event (404 if not; 409 tier_not_on_sale; 409 sold_out when it is "
            "sold out with the waitlist closed); absent: the "
            "cheapest tier on sale that has the seats"
        },
    )


class CancelSchema(StrictSchema):
    eventId = id_field(required=True, attribute="event_id")
    bookingId = id_field(attribute="booking_id")
    cancelAll = StrictBoolean(load_default=False, attribute="cancel_all")

    @validates_schema
    def one_target(self, data, **kwargs):
        if data.get("booking_id") is not None and data.get("cancel_all"):
            raise ValidationError("Give bookingId or cancelAll, not both.", "cancelAll")


class RequestStatusQuery(StrictSchema):
    wait = fields.Float(
        load_default=0,
        validate=validate.Range(min=0, max=limits.LONG_POLL_WAIT_S_MAX),
        allow_nan=False,
        metadata={"description": "seconds to wait for a final outcome"},
    )


class PlaceInLineOut(Schema):
    """Where a request stands while it waits: in its event's pending line (`queue` pending:
    position, peopleAhead, estimatedWaitS) or on the waitlist (`queue` waitlist: position,
    seatsAhead)."""

    queue = fields.Method("queue_of", metadata={"enum": ["pending", "waitlist"]})
    position = fields.Integer(
        allow_none=True,
        metadata={"description": "1 = next (pending) or the head (waitlist); null: not counted yet, still on its way"},
    )
    peopleAhead = fields.Integer(
        attribute="people_ahead",
        allow_none=True,
        metadata={"description": "pending only: requests of the event to be decided before this one"},
    )
    estimatedWaitS = fields.Integer(
        attribute="estimated_wait_s",
        allow_none=True,
        metadata={
            "description": "pending only: seconds to the decision at the event's recent decision rate, "
            "rounded up; null when nothing is being decided now"
        },
    )
    seatsAhead = fields.Integer(
        attribute="seats_ahead",
        allow_none=True,
        metadata={
            "description": "waitlist only: seats the entries ahead still wait for (served first); "
            "null when too far back to count cheaply"
        },
    )

    def queue_of(self, place: object) -> str:
        return "waitlist" if hasattr(place, "seats_ahead") else "pending"


class RequestStatusOut(Schema):
    requestId = fields.String(attribute="request_id")
    eventId = fields.Integer(attribute="event_id")
    status = fields.String(metadata={"enum": [status.value for status in RequestStatus]})
    seatsRequested = fields.Integer(attribute="seats_requested")
    seatsConfirmed = fields.Integer(
        attribute="seats_confirmed",
        metadata={"description": "seats ever confirmed to the request (its bookings, cancelled ones included)"},
    )
    seatsCancelled = fields.Integer(
        attribute="seats_cancelled", metadata={"description": "confirmed seats cancelled since (guest or host)"}
    )
    seatsHeld = fields.Integer(attribute="seats_held", metadata={"description": "seatsConfirmed - seatsCancelled"})
    seatsWaitlisted = fields.Integer(attribute="seats_waitlisted", metadata={"description": "seats still waiting"})
    bookingIds = fields.List(fields.Integer(), attribute="booking_ids")
    waitlistPosition = fields.Integer(
        attribute="waitlist_position", allow_none=True, metadata={"description": "place in line while waiting"}
    )
    placeInLine = fields.Nested(
        PlaceInLineOut,
        attribute="place_in_line",
        allow_none=True,
        metadata={"description": "while pending (full mode) or waitlisted: where the request stands; else null"},
    )
    reason = fields.String(
        allow_none=True,
        metadata={
            "enum": [*request_state.REASONS, None],
            "description": "why seats were not, or are no longer, served",
        },
    )
    createdAt = fields.DateTime(attribute="created_at", allow_none=True)
    decidedAt = fields.DateTime(attribute="decided_at", allow_none=True)
    tierId = fields.Integer(
        attribute="tier_id",
        allow_none=True,
        metadata={"description": "the tier named (while pending; null: the rule chooses), then the tier decided in"},
    )
    tierName = fields.String(attribute="tier_name", allow_none=True)
    offer = fields.Nested(
        "OpenOfferOut",
        allow_none=True,
        metadata={"description": "an open waitlist offer (offer mode): answer it before expiresAt"},
    )


class OpenOfferOut(Schema):
    seatsOffered = fields.Integer(attribute="seats_offered")
    seatsWaiting = fields.Integer(attribute="seats_waiting", metadata={"description": "all the request waits for"})
    expiresAt = fields.DateTime(attribute="expires_at")


class OfferAnswerSchema(StrictSchema):
    answer = fields.String(required=True, validate=validate.OneOf(["accepted", "declined"]))
    seats = strict_int(
        1, limits.SEATS_PER_REQUEST_MAX, metadata={"description": "accepted: how many of the seats offered (all)"}
    )


class OfferAnswerOut(Schema):
    requestId = fields.String(attribute="request_id")
    eventId = fields.Integer(attribute="event_id")
    answer = fields.String()
    seatsConfirmed = fields.Integer(attribute="seats_confirmed")
    bookingId = fields.Integer(attribute="booking_id", allow_none=True)
    seatsStillWaiting = fields.Integer(attribute="seats_still_waiting")


class AcceptedOut(RequestStatusOut):
    statusUrl = fields.String(attribute="status_url")


class CancelOut(Schema):
    eventId = fields.Integer(attribute="event_id")
    seatsFreed = fields.Integer(attribute="seats_freed")
    bookingsCancelled = fields.Integer(attribute="bookings_cancelled")
    waitlistEntriesCancelled = fields.Integer(attribute="waitlist_entries_cancelled")
    seatsWithdrawn = fields.Integer(
        attribute="seats_withdrawn", metadata={"description": "waiting seats of the same requests, given up too"}
    )


class WaitlistWithdrawalOut(RequestStatusOut):
    seatsWithdrawn = fields.Integer(attribute="seats_withdrawn", metadata={"description": "waiting seats given up"})


class HistoryQuery(StrictSchema):
    limit = query_int(1, limits.HISTORY_PAGE_SIZE_MAX, load_default=limits.HISTORY_PAGE_SIZE_DEFAULT)
    cursor = text(200)
    view = fields.String(load_default="tickets", validate=validate.OneOf(["tickets", "summary"]))
    eventId = query_int(1, ID_MAX, attribute="event_id")
    status = fields.String(validate=validate.OneOf([status.value for status in BookingStatus]))
    from_ = aware_datetime(data_key="from", attribute="created_from")
    to = aware_datetime(attribute="created_to")


class EventBriefOut(Schema):
    name = fields.String()
    venue = fields.String()
    startsAt = fields.DateTime(attribute="starts_at")
    endsAt = fields.DateTime(attribute="ends_at")
    price = fields.Integer(attribute="price_minor")


class TicketOut(Schema):
    id = fields.Integer()
    eventId = fields.Integer(attribute="event_id")
    event = fields.Nested(EventBriefOut)
    numberOfSeats = fields.Integer(attribute="seats")
    cost = fields.Integer(attribute="cost_minor")
    status = fields.String()
    createdAt = fields.DateTime(attribute="created_at")
    cancelledAt = fields.DateTime(attribute="cancelled_at", allow_none=True)
    requestId = fields.String(
        attribute="request_id", allow_none=True, metadata={"description": "the request it came from"}
    )
    requestStatus = fields.String(
        attribute="request_status",
        allow_none=True,
        metadata={
            "enum": [*(status.value for status in DECIDED_REQUEST_STATUSES), None],
            "description": "that request's status now",
        },
    )
    tierId = fields.Integer(attribute="tier_id", allow_none=True, metadata={"description": "its price tier"})
    tierName = fields.String(attribute="tier_name", allow_none=True)


class SummaryOut(Schema):
    eventId = fields.Integer(attribute="event.id")
    event = fields.Nested(EventBriefOut)
    totalTickets = fields.Integer(attribute="total_tickets")
    activeTickets = fields.Integer(attribute="active_tickets")
    cancelledTickets = fields.Integer(attribute="cancelled_tickets")
    totalCost = fields.Integer(attribute="total_cost")
    seatsWaitlisted = fields.Integer(
        attribute="seats_waitlisted", metadata={"description": "seats your requests still wait for at this event"}
    )
    firstBookedAt = fields.DateTime(attribute="first_booked_at")
    lastBookedAt = fields.DateTime(attribute="last_booked_at")


class PageInfoOut(Schema):
    hasMore = fields.Boolean(attribute="has_more")
    nextCursor = fields.String(attribute="next_cursor", allow_none=True)


class TicketPageOut(Schema):
    """`GET /api/user/bookings` (view=tickets): one booking a row, newest first."""

    items = fields.List(fields.Nested(TicketOut))
    pageInfo = fields.Nested(PageInfoOut, attribute="page_info")


class SummaryPageOut(Schema):
    """`GET /api/user/bookings?view=summary`: one row per event, latest booked first."""

    items = fields.List(fields.Nested(SummaryOut))
    pageInfo = fields.Nested(PageInfoOut, attribute="page_info")


class EventPageOut(Schema):
    """`GET /api/events/all`: dumped from a services Page of EventViews."""

    items = fields.List(fields.Nested(EventOut))
    pageInfo = fields.Nested(PageInfoOut, attribute="page_info")


# --- admin -------------------------------------------------------------------------------


class EventStatsOut(Schema):
    eventId = fields.Integer(attribute="event_id")
    name = fields.String()
    capacity = fields.Integer(attribute="capacity_seats")
    reservedSeats = fields.Integer(attribute="reserved_seats")
    utilisation = fields.Float()
    revenue = fields.Integer(attribute="revenue_minor")
    waitlistLength = fields.Integer(attribute="waitlist_length")
    waitlistSeats = fields.Integer(attribute="waitlist_seats")
    checkedIn = fields.Integer(
        attribute="checked_in",
        metadata={"description": "its tickets let in at the door (of reservedSeats: check-ins of confirmed bookings)"},
    )


class AnalyticsQuery(StrictSchema):
    limit = query_int(
        1,
        limits.ANALYTICS_PAGE_SIZE_MAX,
        load_default=limits.ANALYTICS_PAGE_SIZE_DEFAULT,
        metadata={"description": "events in the per-event part"},
    )
    cursor = text(200, metadata={"description": "pageInfo.nextCursor of the previous page"})


class AnalyticsOut(Schema):
    totals = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={
            "description": "over all users, events and bookings: users, guests, hosts, admins, events (live), "
            "bookings, seatsConfirmed, bookingsCancelled, waitlistEntries, waitlistSeats, "
            "ticketsCheckedIn (tickets of confirmed bookings let in at the door)"
        },
    )
    capacityUtilisation = fields.Float(attribute="capacity_utilisation", metadata={"description": "all live events"})
    revenue = fields.Integer(attribute="revenue_minor", metadata={"description": "minor units, all confirmed bookings"})
    topEvents = fields.List(
        fields.Nested(EventStatsOut), attribute="top_events", metadata={"description": "most seats sold, of all events"}
    )
    events = fields.List(
        fields.Nested(EventStatsOut), attribute="events.items", metadata={"description": "one page, by event id"}
    )
    pageInfo = fields.Nested(PageInfoOut, attribute="events.page_info", metadata={"description": "pages of `events`"})
    requestOutcomes = fields.Dict(keys=fields.String(), values=fields.Integer(), attribute="request_outcomes")


class UsersQuery(StrictSchema):
    limit = query_int(1, limits.USERS_PAGE_SIZE_MAX, load_default=limits.USERS_PAGE_SIZE_DEFAULT)
    cursor = text(200, metadata={"description": "pageInfo.nextCursor of the previous page"})
    q = single_line(
        limits.USER_SEARCH_CHARS_MAX,
        0,
        attribute="text",
        metadata={"description": "part of the username, name or e-mail, in any letter case (blank: no filter)"},
    )


class AccountOut(UserOut):
    createdAt = fields.DateTime(attribute="created_at")


class UserPageOut(Schema):
    """`GET /api/admin/users`: dumped from a services Page of users, newest first."""

    items = fields.List(fields.Nested(AccountOut))
    pageInfo = fields.Nested(PageInfoOut, attribute="page_info")


class RoleChangeSchema(StrictSchema):
    role = fields.String(
        required=True,
        validate=validate.OneOf(accounts.ROLES, error=accounts.ROLE_RULE),
        metadata={"description": "guest, host or admin; the last admin cannot be demoted (409)"},
    )


class RoleChangeOut(Schema):
    user = fields.Nested(AccountOut)
    previousRole = fields.String(attribute="previous_role")
    sessionsEnded = fields.Integer(
        attribute="sessions_ended",
        metadata={"description": "the user's sessions (browser and API) ended by the change: they log in again"},
    )


# --- probes ------------------------------------------------------------------------------


class LivenessOut(Schema):
    status = fields.String(metadata={"enum": ["ok"]})


class ReadinessOut(Schema):
    status = fields.String(metadata={"enum": ["ready", "not ready"]})
    checks = fields.Dict(
        keys=fields.String(),
        values=fields.Boolean(),
        metadata={"description": "each dependency (database, migrations, redis, kafka) and whether it answers"},
    )


# --- tickets and check-in (issue 13 point 3) ----------------------------------------------


class SeatTicketOut(Schema):
    """One seat of a confirmed booking: its code (show it, or its QR code, at the door)."""

    seatNo = fields.Integer(attribute="seat_no")
    code = fields.String(metadata={"description": "25 Crockford base32 characters in five groups; case-insensitive"})
    checkedInAt = fields.DateTime(attribute="checked_in_at", allow_none=True)


class TicketEventOut(Schema):
    name = fields.String(attribute="event_name")
    venue = fields.String()
    startsAt = fields.DateTime(attribute="starts_at")
    endsAt = fields.DateTime(attribute="ends_at")


class BookingTicketsOut(Schema):
    bookingId = fields.Integer(attribute="booking_id")
    eventId = fields.Integer(attribute="event_id")
    event = fields.Nested(TicketEventOut, attribute="view")
    status = fields.String(metadata={"enum": [status.value for status in BookingStatus]})
    isValid = fields.Boolean(
        attribute="is_valid", metadata={"description": "false once the booking is cancelled or the event withdrawn"}
    )
    tickets = fields.List(fields.Nested(SeatTicketOut))
    calendarUrl = fields.String(attribute="calendar_url")


class CheckInSchema(StrictSchema):
    code = single_line(
        tickets.CODE_INPUT_CHARS_MAX, required=True, metadata={"description": "a ticket's code, typed or scanned"}
    )
    door = single_line(tickets.DOOR_CHARS_MAX, load_default=None, allow_none=True)


class CheckInOut(Schema):
    outcome = fields.String(
        attribute="outcome.value",
        metadata={"enum": ["admitted", "already_checked_in"], "description": "admitted now, or already before"},
    )
    eventId = fields.Integer(attribute="event_id")
    bookingId = fields.Integer(attribute="ticket.booking_id")
    seatNo = fields.Integer(attribute="ticket.seat_no")
    seats = fields.Integer(metadata={"description": "seats of the booking"})
    holderName = fields.String(attribute="holder_name")
    checkedInAt = fields.DateTime(attribute="record.checked_in_at")
    checkedInBy = fields.String(attribute="checked_in_by_name", allow_none=True)
    door = fields.String(attribute="record.door", allow_none=True)
    checkedIn = fields.Integer(attribute="counts.checked_in", metadata={"description": "the event's tickets let in"})
    ticketsTotal = fields.Integer(attribute="counts.tickets", metadata={"description": "the event's tickets"})
