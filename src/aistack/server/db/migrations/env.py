"""Alembic environment: one chain for the core (0001_core) plus one branch per domain package."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from aistack.server.db.session import all_metadata

config = context.config
target_metadata = all_metadata()


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is None:
        url = config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("alembic: no sqlalchemy.url and no connection given")
        engine = create_engine(url)
        with engine.connect() as c:
            _run(c)
            c.commit()
    else:
        _run(conn)


def _run(conn) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=conn,
        target_metadata=target_metadata,
        render_as_batch=conn.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run()
