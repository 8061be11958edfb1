"""ticket_check_ins: a confirmed seat let in at the door, once (issue 13 point 3)

Ticket codes are derived from (booking id, seat no), never stored; only a check-in is a row.
The primary key (booking_id, seat_no) is what makes many doors at once admit a seat once.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "ticket_check_ins",
        sa.Column("booking_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seat_no", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("checked_in_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_in_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("door", sa.String(length=40), nullable=True),
        sa.CheckConstraint("seat_no >= 1", name=op.f("ck_ticket_check_ins_seat_no_positive")),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_ticket_check_ins_booking_id_bookings"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_ticket_check_ins_event_id_events"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["checked_in_by"], ["users.id"], name=op.f("fk_ticket_check_ins_checked_in_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("booking_id", "seat_no", name=op.f("pk_ticket_check_ins")),
    )
    op.create_index("ix_ticket_check_ins_event_id", "ticket_check_ins", ["event_id"])


def downgrade():
    op.drop_index("ix_ticket_check_ins_event_id", table_name="ticket_check_ins")
    op.drop_table("ticket_check_ins")
