"""booking requests remember when the API accepted them and where Kafka carried them

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("booking_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("kafka_partition", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("kafka_offset", sa.BigInteger(), nullable=True))


def downgrade():
    with op.batch_alter_table("booking_requests", schema=None) as batch_op:
        batch_op.drop_column("kafka_offset")
        batch_op.drop_column("kafka_partition")
        batch_op.drop_column("accepted_at")
