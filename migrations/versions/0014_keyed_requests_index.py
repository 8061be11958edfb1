"""The newest keyed booking request in one index read (issue 12)

A keyed booking used to look its Idempotency-Key up in Postgres every time. The request
registry (Redis) now answers for a fresh key alone once it holds every key of the last 24 h;
after Redis starts empty, it learns since when from the newest request recorded with a key,
read from this partial index (only keyed requests, by recording time).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01

"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "ix_booking_requests_keyed_created_at",
        "booking_requests",
        ["created_at"],
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        sqlite_where=sa.text("idempotency_key IS NOT NULL"),
    )


def downgrade():
    op.drop_index("ix_booking_requests_keyed_created_at", table_name="booking_requests")
