"""outbox rows remember when their domain event reached Kafka

Every outbox row also travels to the `booking-events` topic. `published_at` records
when the publisher got Kafka's acknowledgement; the partial index serves the
publisher's one query: "unpublished rows in id order".

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UNPUBLISHED = sa.text("published_at IS NULL")


def upgrade():
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("published_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_outbox_unpublished_id",
            ["id"],
            unique=False,
            postgresql_where=UNPUBLISHED,
            sqlite_where=UNPUBLISHED,
        )


def downgrade():
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_unpublished_id")
        batch_op.drop_column("published_at")
