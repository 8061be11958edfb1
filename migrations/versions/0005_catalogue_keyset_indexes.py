"""the catalogue walks events by (starts_at, id): keyset indexes, for everyone and per host

- ix_events_status_starts_at_id replaces ix_events_status_starts_at: the id tie-breaker of
  the catalogue's cursor is in the index, so a page is one index range scan either way
  (upcoming ascending, past descending)
- ix_events_host_status_starts_at_id: the same walk filtered by host

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index("ix_events_status_starts_at", table_name="events")
    op.create_index("ix_events_status_starts_at_id", "events", ["status", "starts_at", "id"])
    op.create_index("ix_events_host_status_starts_at_id", "events", ["host_id", "status", "starts_at", "id"])


def downgrade():
    op.drop_index("ix_events_host_status_starts_at_id", table_name="events")
    op.drop_index("ix_events_status_starts_at_id", table_name="events")
    op.create_index("ix_events_status_starts_at", "events", ["status", "starts_at"])
