"""An event's version (issue 12): `events.version`, one more at every update of the row

The availability cache is written after each commit, and two writers of one event (two
allocation batches, an allocation and a host's edit) can reach Redis in the other order than
they committed: the older state then stayed in the cache until the next write or the next
reconcile, a minute later (`flask audit` found one after make bench's many-events phase).
The row lock orders the writers; the version numbers that order, and the cache keeps the
highest.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30

"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))


def downgrade():
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("version")
