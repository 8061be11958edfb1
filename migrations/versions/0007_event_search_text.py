"""events.search_text: the caseless key the catalogue's `q` is matched against

lower() and ILIKE fold ASCII only (SQLite always, PostgreSQL under the C locale), so a
search for "zürich" missed "ZÜRICH". Each event now stores the NFKC case fold of its name
and venue (atomicseats.domain.search.event_search_text); existing rows are filled here
with the same rule as it stands at this revision.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

"""
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BATCH_ROWS = 1000


def _key(text):
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def upgrade():
    # A plain ADD COLUMN on both backends (a batch copy of `events` on SQLite would reflect
    # `users` through the foreign key and warn about its expression indexes).
    op.add_column("events", sa.Column("search_text", sa.Text(), nullable=False, server_default=""))
    connection = op.get_bind()
    events = sa.table("events", sa.column("id"), sa.column("name"), sa.column("venue"), sa.column("search_text"))
    last_id = 0
    while True:  # bounded by the table: each batch moves last_id forward
        rows = connection.execute(
            sa.select(events.c.id, events.c.name, events.c.venue)
            .where(events.c.id > last_id)
            .order_by(events.c.id)
            .limit(BATCH_ROWS)
        ).all()
        if not rows:
            break
        connection.execute(
            events.update().where(events.c.id == sa.bindparam("row_id")).values(search_text=sa.bindparam("key")),
            [{"row_id": row.id, "key": _key(row.name) + "\n" + _key(row.venue)} for row in rows],
        )
        last_id = rows[-1].id
    if connection.dialect.name == "postgresql":
        # Every write sets it; no default hides a forgotten one. (SQLite cannot drop a column
        # default without copying the table: there it stays, unused.)
        op.alter_column("events", "search_text", server_default=None)


def downgrade():
    op.drop_column("events", "search_text")  # SQLite >= 3.35 drops a plain column in place
