"""event_tiers: price tiers (issue 13 point 4); tier_id on requests, bookings and waitlist entries

Every event gets one default tier (quota = capacity, the event's price, reserved = the
event's, no window), and every existing request, booking and waitlist entry points at it:
an untiered event is the one-tier case and behaves as before.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30

"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIERED_TABLES = ("booking_requests", "bookings", "waitlist_entries")


def upgrade():
    op.create_table(
        "event_tiers",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("event_id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("price_minor", sa.BigInteger(), nullable=False),
        sa.Column("quota_seats", sa.Integer(), nullable=False),
        sa.Column("reserved_seats", sa.Integer(), nullable=False),
        sa.Column("sales_starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sales_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("quota_seats >= 0", name=op.f("ck_event_tiers_quota_non_negative")),
        sa.CheckConstraint("reserved_seats >= 0", name=op.f("ck_event_tiers_reserved_non_negative")),
        sa.CheckConstraint("reserved_seats <= quota_seats", name=op.f("ck_event_tiers_never_oversold")),
        sa.CheckConstraint("price_minor >= 0", name=op.f("ck_event_tiers_price_non_negative")),
        sa.CheckConstraint(
            "sales_starts_at IS NULL OR sales_ends_at IS NULL OR sales_starts_at < sales_ends_at",
            name=op.f("ck_event_tiers_window_in_order"),
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_event_tiers_event_id_events"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_tiers")),
    )
    op.create_index("ix_event_tiers_event_id_id", "event_tiers", ["event_id", "id"])
    for table in TIERED_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("tier_id", BIG_ID, nullable=True))
            batch.create_foreign_key(
                f"fk_{table}_tier_id_event_tiers", "event_tiers", ["tier_id"], ["id"], ondelete="SET NULL"
            )
    op.create_index("ix_waitlist_entries_tier_status_id", "waitlist_entries", ["tier_id", "status", "id"])
    op.execute(
        "INSERT INTO event_tiers (event_id, name, price_minor, quota_seats, reserved_seats, created_at) "
        "SELECT id, 'Standard', price_minor, capacity_seats, reserved_seats, created_at FROM events ORDER BY id"
    )
    for table in TIERED_TABLES:
        op.execute(
            f"UPDATE {table} SET tier_id = (SELECT event_tiers.id FROM event_tiers "  # nosec B608  # constant names
            f"WHERE event_tiers.event_id = {table}.event_id)"
        )


def downgrade():
    op.drop_index("ix_waitlist_entries_tier_status_id", table_name="waitlist_entries")
    for table in TIERED_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_tier_id_event_tiers", type_="foreignkey")
            batch.drop_column("tier_id")
    op.drop_index("ix_event_tiers_event_id_id", table_name="event_tiers")
    op.drop_table("event_tiers")
