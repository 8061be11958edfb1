"""Waitlist offers (issue 13 point 2): an event's waitlist mode and offer window, the seats
its open offers hold, and each waiting entry's open offer with its deadline

Every existing event stays in `auto` mode (freed seats confirmed to the head at once) with
nothing offered, so nothing changes for it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30

"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

OFFER_WINDOW_MIN_S = 5 * 60  # as domain/offers.py on the day of this migration
OFFER_WINDOW_MAX_S = 14 * 24 * 3600
OFFER_WINDOW_DEFAULT_S = 24 * 3600


def upgrade():
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("waitlist_mode", sa.String(length=8), nullable=False, server_default="auto"))
        batch_op.add_column(
            sa.Column("offer_window_s", sa.Integer(), nullable=False, server_default=str(OFFER_WINDOW_DEFAULT_S))
        )
        batch_op.add_column(sa.Column("seats_offered", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_check_constraint("offered_non_negative", "seats_offered >= 0")
        batch_op.create_check_constraint("never_overoffered", "reserved_seats + seats_offered <= capacity_seats")
        batch_op.create_check_constraint("waitlist_mode_known", "waitlist_mode IN ('auto', 'offer')")
        batch_op.create_check_constraint(
            "offer_window_within_bounds", f"offer_window_s BETWEEN {OFFER_WINDOW_MIN_S} AND {OFFER_WINDOW_MAX_S}"
        )
    with op.batch_alter_table("event_tiers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seats_offered", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_check_constraint("offered_non_negative", "seats_offered >= 0")
        batch_op.create_check_constraint("never_overoffered", "reserved_seats + seats_offered <= quota_seats")
    with op.batch_alter_table("waitlist_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seats_offered", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("offer_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_check_constraint(
            "offer_within_remaining", "seats_offered >= 0 AND seats_offered <= seats_remaining"
        )
        batch_op.create_check_constraint("offer_has_deadline", "(seats_offered = 0) = (offer_expires_at IS NULL)")
    op.create_index(
        "ix_waitlist_entries_offer_expires_at",
        "waitlist_entries",
        ["offer_expires_at"],
        postgresql_where=sa.text("seats_offered > 0"),
        sqlite_where=sa.text("seats_offered > 0"),
    )


def downgrade():
    op.drop_index("ix_waitlist_entries_offer_expires_at", table_name="waitlist_entries")
    with op.batch_alter_table("waitlist_entries", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_waitlist_entries_offer_has_deadline"), type_="check")
        batch_op.drop_constraint(op.f("ck_waitlist_entries_offer_within_remaining"), type_="check")
        batch_op.drop_column("offer_expires_at")
        batch_op.drop_column("seats_offered")
    with op.batch_alter_table("event_tiers", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_event_tiers_never_overoffered"), type_="check")
        batch_op.drop_constraint(op.f("ck_event_tiers_offered_non_negative"), type_="check")
        batch_op.drop_column("seats_offered")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_events_offer_window_within_bounds"), type_="check")
        batch_op.drop_constraint(op.f("ck_events_waitlist_mode_known"), type_="check")
        batch_op.drop_constraint(op.f("ck_events_never_overoffered"), type_="check")
        batch_op.drop_constraint(op.f("ck_events_offered_non_negative"), type_="check")
        batch_op.drop_column("seats_offered")
        batch_op.drop_column("offer_window_s")
        batch_op.drop_column("waitlist_mode")
