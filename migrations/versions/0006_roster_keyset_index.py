"""the roster walks an event's confirmed bookings by id: (event_id, status, id)

ix_bookings_event_status_id replaces ix_bookings_event_status, so a roster page is one
index range scan (the waitlist already has (event_id, status, id)) rather than a sort of
every booking of the event per page.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index("ix_bookings_event_status", table_name="bookings")
    op.create_index("ix_bookings_event_status_id", "bookings", ["event_id", "status", "id"])


def downgrade():
    op.drop_index("ix_bookings_event_status_id", table_name="bookings")
    op.create_index("ix_bookings_event_status", "bookings", ["event_id", "status"])
