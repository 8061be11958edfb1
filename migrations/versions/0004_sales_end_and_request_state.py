"""sales may end before the start; requests follow their seats; identities unique without case

- events.sales_end_at: sales close here (or at the start when unset)
- waitlist entries can be 'expired' (the event started before they were served)
- booking requests can be 'cancelled' and count the seats their guest gave back
- usernames and e-mails are unique case-insensitively (an index on the lowered value)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

REQUEST_STATUSES_OLD = "status IN ('pending', 'confirmed', 'partial', 'waitlisted', 'rejected')"
REQUEST_STATUSES_NEW = "status IN ('pending', 'confirmed', 'partial', 'waitlisted', 'rejected', 'cancelled')"
WAITLIST_STATUSES_OLD = "status IN ('waiting', 'served', 'cancelled')"
WAITLIST_STATUSES_NEW = "status IN ('waiting', 'served', 'cancelled', 'expired')"


def upgrade():
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sales_end_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_check_constraint("sales_end_by_start", "sales_end_at IS NULL OR sales_end_at <= starts_at")

    with op.batch_alter_table("booking_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seats_cancelled", sa.Integer(), nullable=False, server_default="0"))
        batch_op.drop_constraint(op.f("ck_booking_requests_status_known"), type_="check")
        batch_op.create_check_constraint("status_known", REQUEST_STATUSES_NEW)
        batch_op.create_check_constraint("seats_cancelled_non_negative", "seats_cancelled >= 0")
        batch_op.create_check_constraint("seats_cancelled_within_requested", "seats_cancelled <= seats_requested")

    with op.batch_alter_table("waitlist_entries", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_waitlist_entries_status_known"), type_="check")
        batch_op.create_check_constraint("status_known", WAITLIST_STATUSES_NEW)

    op.create_index("uq_users_username_lower", "users", [sa.text("lower(username)")], unique=True)
    op.create_index("uq_users_email_lower", "users", [sa.text("lower(email)")], unique=True)


def downgrade():
    op.drop_index("uq_users_email_lower", table_name="users")
    op.drop_index("uq_users_username_lower", table_name="users")

    with op.batch_alter_table("waitlist_entries", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_waitlist_entries_status_known"), type_="check")
        batch_op.create_check_constraint("status_known", WAITLIST_STATUSES_OLD)

    with op.batch_alter_table("booking_requests", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_booking_requests_seats_cancelled_within_requested"), type_="check")
        batch_op.drop_constraint(op.f("ck_booking_requests_seats_cancelled_non_negative"), type_="check")
        batch_op.drop_constraint(op.f("ck_booking_requests_status_known"), type_="check")
        batch_op.create_check_constraint("status_known", REQUEST_STATUSES_OLD)
        batch_op.drop_column("seats_cancelled")

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_events_sales_end_by_start"), type_="check")
        batch_op.drop_column("sales_end_at")
