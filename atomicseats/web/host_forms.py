"""The host pages' forms: an event's details, its capacity, its waitlist switch.

Shape only, at the edge: required fields, lengths, numbers, a price read as money and turned
into minor units, local times read in the chosen time zone and turned into UTC. The event
rules (the end after the start, sales closing by the start, a new event in the future,
capacity never below the seats sold) are the events service's: its field errors land next
to the field they name (`SERVICE_FIELDS`)."""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache

from flask import current_app
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    Field,
    HiddenField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import AnyOf, DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError
from wtforms.widgets import TextInput

from atomicseats.domain import limits, offers, tickets
from atomicseats.domain.allocator import WaitlistMode

NAME_LENGTH_MAX = 200  # the events columns (and the API's schema)
VENUE_LENGTH_MAX = 200
DESCRIPTION_LENGTH_MAX = 5000
LOCAL_TIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]
MONEY = re.compile(r"^\d+(\.\d{1,2})?$")
# The events service's field names (the API's wire names) -> this form's fields.
SERVICE_FIELDS = {
    "startsAt": "starts_at",
    "endsAt": "ends_at",
    "salesEndAt": "sales_end_at",
    "capacity": "capacity",
    "price": "price",
    "waitlistOpen": "waitlist_open",
    "waitlistMode": "waitlist_mode",
    "offerWindowMinutes": "offer_window_minutes",
}

# The offer window in whole minutes, as the API takes it: 5 minutes to 14 days.
OFFER_WINDOW_MINUTES_MIN = offers.OFFER_WINDOW_MIN_S // 60
OFFER_WINDOW_MINUTES_MAX = offers.OFFER_WINDOW_MAX_S // 60
OFFER_WINDOW_RANGE = NumberRange(
    OFFER_WINDOW_MINUTES_MIN,
    OFFER_WINDOW_MINUTES_MAX,
    f"From {OFFER_WINDOW_MINUTES_MIN} minutes to {OFFER_WINDOW_MINUTES_MAX:,} (14 days).",
)

# ... and the words a page uses for them, in the service's messages ("Must be after startsAt.").
SERVICE_WORDS = {"salesEndAt": "the sales close", "startsAt": "the start", "endsAt": "the end"}


@cache
def time_zone_choices() -> list[str]:
    """UTC first, then every IANA zone by name (Europe/Paris, America/New_York, ...)."""
    names = {
        name
        for name in zoneinfo.available_timezones()
        if "/" in name and not name.startswith(("Etc/", "SystemV/", "US/", "posix/", "right/"))
    }
    return ["UTC", *sorted(names)]


# One capacity rule for both forms (a new event, and a change of capacity): 1 to the maximum.
CAPACITY_RANGE = NumberRange(1, limits.CAPACITY_SEATS_MAX, f"From 1 to {limits.CAPACITY_SEATS_MAX:,} seats.")


class MoneyField(Field):
    """A price typed as money ("25", "25.50", "1,250.00", "€25") held as integer minor units."""

    widget = TextInput()

    def _value(self) -> str:
        if self.raw_data:
            return self.raw_data[0]
        if self.data is None:
            return ""
        whole, cents = divmod(self.data, 100)
        return f"{whole}.{cents:02d}"

    def process_formdata(self, valuelist) -> None:
        if not valuelist:
            return
        symbol = current_app.config.get("CURRENCY_SYMBOL", "€")
        text = valuelist[0].strip().replace(symbol, "").replace(",", "").replace(" ", "")
        if not MONEY.match(text):
            self.data = None
            raise ValueError(f"Enter a price like 25 or 25.50 ({symbol}0 for a free event).")
        self.data = int(Decimal(text) * 100)


class EventForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=NAME_LENGTH_MAX)])
    venue = StringField("Venue", validators=[DataRequired(), Length(max=VENUE_LENGTH_MAX)])
    description = TextAreaField(
        "Description",
        validators=[Optional(), Length(max=DESCRIPTION_LENGTH_MAX)],
        description="What guests should know: the programme, the doors, the access.",
    )
    timezone = SelectField(
        "Time zone",
        choices=time_zone_choices,
        default="UTC",
        validate_choice=False,  # checked below with a sentence, not WTForms' "Not a valid choice"
        description="The times below are read in this time zone; guests see them in UTC.",
    )
    starts_at = DateTimeLocalField(
        "Starts", validators=[InputRequired("Enter when the event starts.")], format=LOCAL_TIME_FORMATS
    )
    ends_at = DateTimeLocalField(
        "Ends", validators=[InputRequired("Enter when the event ends.")], format=LOCAL_TIME_FORMATS
    )
    sales_end_at = DateTimeLocalField(
        "Sales close",
        validators=[Optional()],
        format=LOCAL_TIME_FORMATS,
        description="Leave it empty and sales close when the event starts.",
    )
    capacity = IntegerField(
        "Capacity (seats)",
        validators=[
            InputRequired("Enter how many seats there are."),
            CAPACITY_RANGE,
        ],
    )
    price = MoneyField(
        "Price per seat",
        validators=[
            InputRequired("Enter a price (0 for a free event)."),
            NumberRange(0, limits.PRICE_MINOR_MAX, f"At most {limits.PRICE_MINOR_MAX // 100:,} a seat."),
        ],
        description="Like 25 or 25.50; 0 makes the event free.",
    )
    waitlist_open = BooleanField("Open a waitlist when the seats run out", default=True)
    waitlist_mode = SelectField(
        "Freed seats",
        choices=[
            SelectChoice(WaitlistMode.AUTO.value, "Confirm them to the next in line at once"),
            SelectChoice(WaitlistMode.OFFER.value, "Offer them to the next in line, who accepts or declines"),
        ],
        default=WaitlistMode.AUTO.value,
        validate_choice=False,  # checked below with a sentence
        description="When a booking is cancelled or seats are added, what the waitlist gets.",
    )
    offer_window_minutes = IntegerField(
        "Time to answer an offer (minutes)",
        validators=[InputRequired("Enter how many minutes a guest has to answer an offer."), OFFER_WINDOW_RANGE],
        default=offers.OFFER_WINDOW_DEFAULT_S // 60,
        description="With offers: 5 minutes to 20,160 (14 days); 1,440 is a day. Unanswered offers pass on.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.price.label.text = f"Price per seat ({current_app.config.get('CURRENCY_SYMBOL', '€')})"

    def validate_waitlist_mode(self, field) -> None:
        if field.data not in {mode.value for mode in WaitlistMode}:
            raise ValidationError("Choose what freed seats do from the list.")

    def validate_timezone(self, field) -> None:
        if field.data not in time_zone_choices():
            raise ValidationError("Choose a time zone from the list.")

    def validate_starts_at(self, field) -> None:
        self._check_local_time(field)

    def validate_ends_at(self, field) -> None:
        self._check_local_time(field)

    def validate_sales_end_at(self, field) -> None:
        if field.data is not None:
            self._check_local_time(field)

    def _check_local_time(self, field) -> None:
        """A local time that does not exist in the zone (skipped when the clocks go forward)."""
        zone = self._zone()
        if zone is None or field.data is None:
            return
        local = field.data.replace(tzinfo=None)
        if local.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local:
            raise ValidationError(f"That time does not exist in {self.timezone.data}: the clocks skip it.")

    def _zone(self) -> zoneinfo.ZoneInfo | None:
        name = self.timezone.data
        return zoneinfo.ZoneInfo(name) if name in time_zone_choices() else None

    def utc(self, local: datetime | None) -> datetime | None:
        zone = self._zone()
        if local is None or zone is None:
            return None
        return local.replace(tzinfo=None).replace(tzinfo=zone).astimezone(UTC)

    def event_fields(self) -> dict:
        """The service's fields (by column name), once the form validated."""
        return {
            "name": self.name.data.strip(),
            "venue": self.venue.data.strip(),
            "description": (self.description.data or "").strip(),
            "starts_at": self.utc(self.starts_at.data),
            "ends_at": self.utc(self.ends_at.data),
            "sales_end_at": self.utc(self.sales_end_at.data),
            "capacity_seats": self.capacity.data,
            "price_minor": self.price.data,
            "is_waitlist_open": bool(self.waitlist_open.data),
            "waitlist_mode": self.waitlist_mode.data,
            "offer_window_s": self.offer_window_minutes.data * 60,
        }


class TierForm(FlaskForm):
    """One price tier on the management page: an existing one (`tier_id`) or a new one. The
    sales window is read in UTC; the service checks the quotas against the capacity and the
    tier's confirmed seats, and the window against the event's sales."""

    tier_id = HiddenField()
    name = StringField("Tier name", validators=[DataRequired(), Length(max=limits.TIER_NAME_CHARS_MAX)])
    price = MoneyField(
        "Price per seat",
        validators=[
            InputRequired("Enter a price (0 for free seats)."),
            NumberRange(0, limits.PRICE_MINOR_MAX, f"At most {limits.PRICE_MINOR_MAX // 100:,} a seat."),
        ],
    )
    quota = IntegerField(
        "Seats in this tier",
        validators=[InputRequired("Enter how many seats this tier sells."), NumberRange(0, limits.CAPACITY_SEATS_MAX)],
    )
    sales_starts_at = DateTimeLocalField(
        "On sale from (UTC)", validators=[Optional()], format=LOCAL_TIME_FORMATS, description="Empty: at once."
    )
    sales_ends_at = DateTimeLocalField(
        "On sale until (UTC)",
        validators=[Optional()],
        format=LOCAL_TIME_FORMATS,
        description="Empty: until the event's sales close.",
    )

    def tier_fields(self) -> dict:
        """The service's tier item (by column name), once the form validated."""
        item = {
            "name": self.name.data.strip(),
            "price_minor": self.price.data,
            "quota_seats": self.quota.data,
            "sales_starts_at": _as_utc(self.sales_starts_at.data),
            "sales_ends_at": _as_utc(self.sales_ends_at.data),
        }
        if self.tier_id.data:
            item["id"] = int(self.tier_id.data)
        return item


def _as_utc(local: datetime | None) -> datetime | None:
    return None if local is None else local.replace(tzinfo=UTC)


class CapacityForm(FlaskForm):
    capacity = IntegerField(
        "New capacity (seats)",
        validators=[
            InputRequired("Enter the new number of seats."),
            CAPACITY_RANGE,
        ],
        description="More seats go to the waitlist first, in its order.",
    )


class WaitlistForm(FlaskForm):
    action = HiddenField(validators=[AnyOf(("open", "close"))])


class CheckInForm(FlaskForm):
    """A ticket's code as typed or scanned, and optionally the door (kept between scans)."""

    code = StringField(
        "Ticket code",
        validators=[DataRequired("Type or scan a ticket's code."), Length(max=tickets.CODE_INPUT_CHARS_MAX)],
        description="25 letters and digits; dashes, spaces and lower case are fine.",
    )
    door = StringField(
        "Door (optional)",
        validators=[Optional(), Length(max=tickets.DOOR_CHARS_MAX)],
        description="Shown when a ticket comes back: where it was let in.",
    )
