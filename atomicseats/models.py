"""Tables and constraints. No commits and no business rules here: services own both.

The CHECK constraints are the database's copy of the invariants in DESIGN.md, so a
bug in a service cannot commit an oversold event even if every assertion missed it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.event import listens_for
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, object_session, relationship
from sqlalchemy.types import DateTime, TypeDecorator

from atomicseats.domain import accounts, allocator, limits, offers, tickets, tiers
from atomicseats.domain.allocator import WaitlistMode
from atomicseats.domain.states import BookingStatus, EventStatus, OutboxStatus, RequestStatus, WaitlistStatus
from atomicseats.extensions import db

if TYPE_CHECKING:
    from flask_sqlalchemy.model import Model as FlaskModel
    from sqlalchemy import Table
    from sqlalchemy.orm import DeclarativeBase

    class Model(FlaskModel, DeclarativeBase):
        """db.Model as mypy should see it: a declarative base with Flask-SQLAlchemy's `query`.
        Flask-SQLAlchemy builds db.Model at run time, which a type checker cannot follow."""

        __table__: ClassVar[Table]  # every model here maps one table

else:
    Model = db.Model

# SQLite only auto-increments an INTEGER PRIMARY KEY; Postgres gets BIGINT identities.
BigId = BigInteger().with_variant(Integer, "sqlite")

USER_ROLES = accounts.ROLES
OUTBOX_CHANNELS = ("email", "event")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _in(column: str, values: Iterable[str]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class User(Model):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_in("role", USER_ROLES), name="role_known"),
        # "Gary" and "gary" are one account on every backend.
        Index("uq_users_username_lower", func.lower(text("username")), unique=True),
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(limits.USERNAME_LENGTH_MAX), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    email: Mapped[str] = mapped_column(String(limits.EMAIL_LENGTH_MAX), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(10), nullable=False, default="guest")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    # Set by `flask users disable`: no login, and no session of the account is live
    # (services/users.is_session_live).
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    # flask-login protocol, for the browser pages.
    is_active = True
    is_anonymous = False
    is_authenticated = True

    def get_id(self) -> str:
        return str(self.id)


class AuthSession(Model):
    """One login: its access and refresh tokens carry this id, so logout revokes both.

    Refresh rotation replaces `refresh_jti`; a rotated-out refresh token no longer matches.
    """

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    refresh_jti: Mapped[str] = mapped_column(String(36), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Event(Model):
    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint("capacity_seats >= 0", name="capacity_non_negative"),
        CheckConstraint("reserved_seats >= 0", name="reserved_non_negative"),
        CheckConstraint("reserved_seats <= capacity_seats", name="never_oversold"),
        CheckConstraint("seats_offered >= 0", name="offered_non_negative"),
        CheckConstraint("waitlist_length >= 0", name="waitlist_length_non_negative"),
        # A seat is sold or offered, never both, and never more of them than the capacity.
        CheckConstraint("reserved_seats + seats_offered <= capacity_seats", name="never_overoffered"),
        CheckConstraint(_in("waitlist_mode", WaitlistMode), name="waitlist_mode_known"),
        CheckConstraint(
            f"offer_window_s BETWEEN {offers.OFFER_WINDOW_MIN_S} AND {offers.OFFER_WINDOW_MAX_S}",
            name="offer_window_within_bounds",
        ),
        CheckConstraint("price_minor >= 0", name="price_non_negative"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("sales_end_at IS NULL OR sales_end_at <= starts_at", name="sales_end_by_start"),
        CheckConstraint(_in("status", EventStatus), name="status_known"),
        # The catalogue's keyset walk (startsAt, id), for everyone and per host.
        Index("ix_events_status_starts_at_id", "status", "starts_at", "id"),
        Index("ix_events_host_status_starts_at_id", "host_id", "status", "starts_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    venue: Mapped[str] = mapped_column(String(200), nullable=False)
    # domain.search.event_search_text(name, venue), kept in step by every write of either.
    search_text: Mapped[str] = mapped_column(Text, nullable=False)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    # Sales close here, or at the start when unset: nothing is booked or promoted after it.
    sales_end_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    capacity_seats: Mapped[int] = mapped_column(Integer, nullable=False)
    reserved_seats: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    price_minor: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    is_waitlist_open: Mapped[bool] = mapped_column(nullable=False, default=True)
    # What freed seats do for the waitlist head: confirmed at once (auto), or offered to it
    # for offer_window_s (offer); seats_offered are held by open offers (domain/offers.py).
    waitlist_mode: Mapped[str] = mapped_column(
        String(8), nullable=False, default=WaitlistMode.AUTO, server_default=WaitlistMode.AUTO.value
    )
    offer_window_s: Mapped[int] = mapped_column(
        Integer,
        nullable=False,
        default=offers.OFFER_WINDOW_DEFAULT_S,
        server_default=str(offers.OFFER_WINDOW_DEFAULT_S),
    )
    seats_offered: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    # The waitlist's length: how many of its entries are `waiting`, kept by every change of an
    # entry's status (services/_allocation.py, under the event row lock) so that announcing a
    # decision batch reads one column, not a count over the whole queue (`flask audit` checks it).
    waitlist_length: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    # One more at every UPDATE of the row (`_count_event_version`, below): the writers of an
    # event take turns on its row lock, so the number orders their commits, and the availability
    # cache keeps the highest it was given (two writers' after-commit stores can land in Redis in
    # either order).
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default="1")
    status: Mapped[str] = mapped_column(String(12), nullable=False, default=EventStatus.PUBLISHED)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    host: Mapped[User] = relationship()

    @property
    def seats_left(self) -> int:
        return self.capacity_seats - self.reserved_seats - self.seats_offered

    @property
    def is_deleted(self) -> bool:
        return self.status == EventStatus.DELETED

    @hybrid_property
    def sales_end(self) -> datetime:
        """When sales close: `sales_end_at`, or the start when it is unset."""
        return allocator.sales_end_of(self.starts_at, self.sales_end_at)

    @sales_end.inplace.expression
    @classmethod
    def _sales_end_expression(cls) -> ColumnElement[datetime]:
        """The same rule in SQL (catalogue filters, the close-out, the audit)."""
        return func.coalesce(cls.sales_end_at, cls.starts_at)

    def is_sales_open(self, now: datetime) -> bool:
        return allocator.is_sales_open(self.sales_end, now)

    def to_state(self, now: datetime) -> allocator.EventState:
        """The allocator's view of the event at `now`, the decision time."""
        return allocator.EventState(
            capacity_seats=self.capacity_seats,
            reserved_seats=self.reserved_seats,
            is_waitlist_open=self.is_waitlist_open,
            is_sales_open=self.is_sales_open(now),
            seats_offered=self.seats_offered,
            waitlist_mode=WaitlistMode(self.waitlist_mode),
        )


@listens_for(Event, "before_update")
def _count_event_version(_mapper, _connection, event: Event) -> None:
    """Every flushed change of an event row counts one version more, in the same UPDATE. Plain
    arithmetic on the loaded value is exact because every writer holds the row lock
    (services/_allocation.lock_event); SQLAlchemy's `version_id_col` is not used, as it would also
    refuse a stale write, which the concurrency tests' negative control (no lock) must reach."""
    session = object_session(event)
    if session is not None and session.is_modified(event, include_collections=False):
        event.version += 1


class EventTier(Model):
    """A price tier of an event: its own price, quota of the capacity and optional sales window.

    `reserved_seats` is kept under the event row lock, like the event's (which is their sum).
    Every event has one at least (domain/tiers.py); an event made without tiers has one default
    tier whose quota is the capacity."""

    __tablename__ = "event_tiers"
    __table_args__ = (
        CheckConstraint("quota_seats >= 0", name="quota_non_negative"),
        CheckConstraint("reserved_seats >= 0", name="reserved_non_negative"),
        CheckConstraint("reserved_seats <= quota_seats", name="never_oversold"),
        CheckConstraint("seats_offered >= 0", name="offered_non_negative"),
        CheckConstraint("reserved_seats + seats_offered <= quota_seats", name="never_overoffered"),
        CheckConstraint("price_minor >= 0", name="price_non_negative"),
        CheckConstraint(
            "sales_starts_at IS NULL OR sales_ends_at IS NULL OR sales_starts_at < sales_ends_at",
            name="window_in_order",
        ),
        Index("ix_event_tiers_event_id_id", "event_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(limits.TIER_NAME_CHARS_MAX), nullable=False)
    price_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    quota_seats: Mapped[int] = mapped_column(Integer, nullable=False)
    reserved_seats: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Held by open waitlist offers in this tier (offer mode): neither free nor sold.
    seats_offered: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    sales_starts_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sales_ends_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)

    @property
    def seats_left(self) -> int:
        return self.quota_seats - self.reserved_seats - self.seats_offered

    def to_tier(self) -> tiers.Tier:
        return tiers.Tier(
            tier_id=self.id,
            price_minor=self.price_minor,
            quota_seats=self.quota_seats,
            reserved_seats=self.reserved_seats,
            seats_offered=self.seats_offered,
            sales_starts_at=self.sales_starts_at,
            sales_ends_at=self.sales_ends_at,
        )


class BookingRequest(Model):
    """A request to book seats. `id` is the arrival sequence: allocation follows it."""

    __tablename__ = "booking_requests"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key", name="uq_booking_requests_user_idempotency_key"),
        CheckConstraint("seats_requested >= 1", name="seats_requested_positive"),
        CheckConstraint(f"seats_requested <= {limits.SEATS_PER_REQUEST_MAX}", name="seats_requested_within_max"),
        CheckConstraint("seats_confirmed >= 0", name="seats_confirmed_non_negative"),
        CheckConstraint("seats_waitlisted >= 0", name="seats_waitlisted_non_negative"),
        CheckConstraint("seats_cancelled >= 0", name="seats_cancelled_non_negative"),
        CheckConstraint("seats_confirmed + seats_waitlisted <= seats_requested", name="seats_add_up"),
        CheckConstraint("seats_cancelled <= seats_requested", name="seats_cancelled_within_requested"),
        CheckConstraint(_in("status", RequestStatus), name="status_known"),
        Index("ix_booking_requests_event_status_id", "event_id", "status", "id"),
        # The newest keyed request, the request registry's mark (services/booking.py
        # `_newest_keyed_request`): a partial index, only requests with an Idempotency-Key.
        Index(
            "ix_booking_requests_keyed_created_at",
            "created_at",
            postgresql_where=text("idempotency_key IS NOT NULL"),
            sqlite_where=text("idempotency_key IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(36), unique=True, nullable=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), nullable=False)
    seats_requested: Mapped[int] = mapped_column(Integer, nullable=False)
    # The tier the guest named (None: the rule chooses, domain/tiers.py); once decided, its tier.
    tier_id: Mapped[int | None] = mapped_column(ForeignKey("event_tiers.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(12), nullable=False, default=RequestStatus.PENDING)
    seats_confirmed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    seats_waitlisted: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    seats_cancelled: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    reason: Mapped[str | None] = mapped_column(String(64))
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    accepted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # when the API said 202
    kafka_partition: Mapped[int | None] = mapped_column(Integer)
    kafka_offset: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Booking(Model):
    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint("seats > 0", name="seats_positive"),
        CheckConstraint("cost_minor >= 0", name="cost_non_negative"),
        CheckConstraint(_in("status", BookingStatus), name="status_known"),
        Index("ix_bookings_user_id_id", "user_id", "id"),
        Index("ix_bookings_event_status_id", "event_id", "status", "id"),  # the roster's keyset walk
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), nullable=False)
    booking_request_id: Mapped[int | None] = mapped_column(
        ForeignKey("booking_requests.id", ondelete="SET NULL"), index=True
    )
    seats: Mapped[int] = mapped_column(Integer, nullable=False)
    cost_minor: Mapped[int] = mapped_column(BigInteger, nullable=False)  # seats x its tier's price
    tier_id: Mapped[int | None] = mapped_column(ForeignKey("event_tiers.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(12), nullable=False, default=BookingStatus.CONFIRMED)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    event: Mapped[Event] = relationship(lazy="joined")


class WaitlistEntry(Model):
    """Durable FIFO: `id` order is the queue order within an event."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (
        CheckConstraint("seats_remaining >= 0", name="remaining_non_negative"),
        CheckConstraint("seats_remaining <= seats_waitlisted", name="remaining_within_waitlisted"),
        CheckConstraint(_in("status", WaitlistStatus), name="status_known"),
        # An open offer: some of the seats it waits for, held for it until offer_expires_at.
        CheckConstraint("seats_offered >= 0 AND seats_offered <= seats_remaining", name="offer_within_remaining"),
        CheckConstraint("(seats_offered = 0) = (offer_expires_at IS NULL)", name="offer_has_deadline"),
        Index("ix_waitlist_entries_event_status_id", "event_id", "status", "id"),
        Index("ix_waitlist_entries_tier_status_id", "tier_id", "status", "id"),  # each tier's queue
        # The expiry beat's walk: open offers by deadline (a partial index: only open offers).
        Index(
            "ix_waitlist_entries_offer_expires_at",
            "offer_expires_at",
            postgresql_where=text("seats_offered > 0"),
            sqlite_where=text("seats_offered > 0"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    booking_request_id: Mapped[int] = mapped_column(
        ForeignKey("booking_requests.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    # The tier waited in: FIFO within it (`id` order). Null only for rows a migration-less writer
    # (the bench's bare-SQL reference) made; the audit counts any row of a tiered event without one.
    tier_id: Mapped[int | None] = mapped_column(ForeignKey("event_tiers.id", ondelete="SET NULL"))
    seats_waitlisted: Mapped[int] = mapped_column(Integer, nullable=False)
    seats_remaining: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False, default=WaitlistStatus.WAITING)
    seats_offered: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    offer_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)

    def to_slot(self) -> allocator.WaitlistSlot:
        return allocator.WaitlistSlot(entry_id=self.id, seats_remaining=self.seats_remaining)

    def to_wanting_slot(self) -> allocator.WaitlistSlot:
        """What serving the waitlist gives it seats for: what it wants beyond its open offer
        (all it waits for when it holds none)."""
        return allocator.WaitlistSlot(entry_id=self.id, seats_remaining=self.seats_remaining - self.seats_offered)

    def open_offer(self) -> offers.OpenOffer | None:
        if not self.seats_offered:
            return None
        assert self.offer_expires_at is not None
        return offers.OpenOffer(self.id, self.seats_offered, self.seats_remaining, self.offer_expires_at)


class OutboxMessage(Model):
    """What must not be lost (e-mails, domain events), written with the decision."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(_in("status", OutboxStatus), name="status_known"),
        CheckConstraint(_in("channel", OUTBOX_CHANNELS), name="channel_known"),
        Index("ix_outbox_status_next_attempt", "status", "next_attempt_at"),
        # The domain-event publisher reads "unpublished rows in id order"; once published a
        # row leaves this index, so it stays as small as the backlog.
        Index(
            "ix_outbox_unpublished_id",
            "id",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), nullable=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    message_id: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"), index=True)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(8), nullable=False, default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # Kafka acknowledged the domain event


class TicketCheckIn(Model):
    """A ticket (booking id, seat no) let in at the door: at most one row a seat, so two doors
    scanning the same code at once admit it once (the insert that loses finds the row)."""

    __tablename__ = "ticket_check_ins"
    __table_args__ = (
        CheckConstraint("seat_no >= 1", name="seat_no_positive"),
        Index("ix_ticket_check_ins_event_id", "event_id"),
    )

    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), primary_key=True)
    seat_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The booking's event, kept here so an event's count is one index range (the audit checks it).
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), nullable=False)
    checked_in_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    checked_in_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    door: Mapped[str | None] = mapped_column(String(tickets.DOOR_CHARS_MAX))
