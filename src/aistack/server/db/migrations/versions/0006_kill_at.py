"""jobs.kill_at: when the SIGKILL of a stopping job is due

A job being cancelled or preempted gets its stop signal, then SIGKILL once its grace period
is over; ``kill_at`` (UTC) is that time, so the API can show it and a second, shorter cancel
can bring it forward (never postpone it).

Revision ID: 0006_kill_at
Revises: 0005_cancel_grace
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_kill_at"
down_revision = "0005_cancel_grace"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("kill_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("kill_at")
