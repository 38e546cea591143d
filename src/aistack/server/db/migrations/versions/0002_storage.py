"""storage: datasets, versions, tags, references, lineage

Revision ID: 0002_storage
Revises: 0001_core
Create Date: 2026-11-28

The tables are defined in aistack.storage.catalog (its own MetaData). The CLI may create them
before the server ever migrates (``Catalog.ensure_schema``), so each table is created only when
missing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_storage"
down_revision = "0001_core"
branch_labels = ("storage",)
depends_on = None

TABLES = (
    "storage_datasets",
    "storage_versions",
    "storage_tags",
    "storage_references",
    "storage_lineage",
)


def upgrade() -> None:
    from aistack.storage.catalog import metadata

    bind = op.get_bind()
    existing = set(sa.inspect(bind).get_table_names())
    missing = [metadata.tables[t] for t in TABLES if t not in existing]
    if missing:
        metadata.create_all(bind, tables=missing, checkfirst=True)


def downgrade() -> None:
    bind = op.get_bind()
    existing = set(sa.inspect(bind).get_table_names())
    for t in reversed(TABLES):
        if t in existing:
            op.drop_table(t)
