"""jobs.cancel_grace_s: the grace period a cancel asked for

A cancel may give its own grace period (``POST /jobs/{id}/cancel`` ``grace_s``); it is kept
with the job so that a cancel that arrives before the job has a handle is signalled later
with it, and the end of a job killed after it names it.

Revision ID: 0005_cancel_grace
Revises: 0003_server_lease
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_cancel_grace"
down_revision = "0003_server_lease"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("cancel_grace_s", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("cancel_grace_s")
