"""The newest keyed booking request in one index read (issue 12)

A keyed booking used to look its Idempotency-Key up in Postgres every time. The request
registry (Redis) now answers for a fresh key alone once it holds every key of the last 24 h;
after Redis starts empty, it learns since when from the newest request recorded with a key,
read from this partial index (only keyed requests, by recording time).

On PostgreSQL the index is built CONCURRENTLY (outside the migration's transaction): a plain
CREATE INDEX holds a SHARE lock on booking_requests for the whole build, and the bridge's
inserts wait behind it; a deploy onto a big table would stop recording requests meanwhile.
A build that failed leaves an invalid index of that name: it is dropped and built again.

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


INDEX = "ix_booking_requests_keyed_created_at"


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(INDEX, "booking_requests", ["created_at"], sqlite_where=sa.text("idempotency_key IS NOT NULL"))
        return
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, table_name="booking_requests", postgresql_concurrently=True, if_exists=True)
        op.create_index(
            INDEX,
            "booking_requests",
            ["created_at"],
            postgresql_where=sa.text("idempotency_key IS NOT NULL"),
            postgresql_concurrently=True,
        )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        op.drop_index(INDEX, table_name="booking_requests")
        return
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, table_name="booking_requests", postgresql_concurrently=True)
