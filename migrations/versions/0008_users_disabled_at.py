"""users.disabled_at: an operator can disable an account (`flask users disable`)

A disabled account cannot log in and none of its sessions is live; NULL is enabled, so
every existing account stays as it was.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    # A plain ADD COLUMN on both backends (no batch copy of `users` on SQLite).
    op.add_column("users", sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    op.drop_column("users", "disabled_at")  # SQLite >= 3.35 drops a plain column in place
