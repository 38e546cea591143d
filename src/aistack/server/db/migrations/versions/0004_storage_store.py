"""storage: the object store of each dataset version (storage_versions.store)

Revision ID: 0004_storage_store
Revises: 0001_core
Create Date: 2026-12-01

One metadata DB used with two AISTACK_STORAGE_URLs listed versions whose objects the other
store lacks: get failed with "object missing" and gc reported a store that lost data. Each
version now records the store it was added to. The CLI adds the column itself to a catalog
made before (``aistack.storage.catalog.add_store_column``), so it is added only when missing.
A revision of its own off core (as 0003_server_lease), so that 0002_storage stays a head; it
may run before or after 0002_storage: 0002 creates the tables from the catalog's current
definition (with the column), so here only a table made before gets it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_storage_store"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from aistack.storage.catalog import add_store_column

    bind = op.get_bind()
    if sa.inspect(bind).has_table("storage_versions"):
        add_store_column(bind)


def downgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("storage_versions"):
        return
    cols = {c["name"] for c in sa.inspect(bind).get_columns("storage_versions")}
    if "store" in cols:
        with op.batch_alter_table("storage_versions") as batch:
            batch.drop_column("store")
