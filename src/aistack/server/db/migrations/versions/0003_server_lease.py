"""server lease: one scheduling server per metadata DB

Revision ID: 0003_server_lease
Revises: 0001_core
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_server_lease"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_lease",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=512), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_server_lease")),
    )


def downgrade() -> None:
    op.drop_table("server_lease")
