"""An event's waitlist length kept on its row (issue 12): `events.waitlist_length`, the
number of its waitlist entries still `waiting`

Announcing a decision batch counted the event's waiting entries every time: a scan of the whole
queue (12 ms per batch with 60,000 waiting, growing with the queue). The column is filled here
from the entries as they are; from now on every change of an entry's status keeps it, under the
event row lock, and `flask audit` checks it against the count.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30

"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("waitlist_length", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_check_constraint("waitlist_length_non_negative", "waitlist_length >= 0")
    op.execute(
        "UPDATE events SET waitlist_length = (SELECT count(*) FROM waitlist_entries AS entry"
        " WHERE entry.event_id = events.id AND entry.status = 'waiting')"
    )


def downgrade():
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_events_waitlist_length_non_negative"), type_="check")
        batch_op.drop_column("waitlist_length")
