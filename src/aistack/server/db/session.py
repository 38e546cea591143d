"""Engine and sessions for the metadata DB (SQLite WAL by default, PostgreSQL by URL)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, MetaData
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

# domain packages that keep their own tables (on their own MetaData); included in migrations
DOMAIN_METADATA = [
    "aistack.storage.catalog",
    "aistack.serving.catalog",
]


def all_metadata() -> list[MetaData]:
    from aistack.server.db.models import Base

    out = [Base.metadata]
    for mod in DOMAIN_METADATA:
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name and mod.startswith(exc.name):
                continue
            raise
        md = getattr(m, "metadata", None)
        if md is not None:
            out.append(md)
    return out


def make_engine(url: str) -> Engine:
    """The server's engine: the catalog's settings (SQLite pragmas, psycopg 3), and for
    PostgreSQL a pool of 10 connections plus 20 overflow for the API's threads."""
    from aistack.storage.catalog import create_db_engine

    if url.startswith("sqlite"):
        return create_db_engine(url)
    return create_db_engine(url, pool_size=10, max_overflow=20)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (Alembic 'heads': core + domain branches)."""
    from alembic import command
    from alembic.config import Config

    here = Path(__file__).parent / "migrations"
    cfg = Config()
    cfg.set_main_option("script_location", str(here))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")
    except Exception as exc:
        from aistack.storage.catalog import unreachable_db

        down = unreachable_db(engine, exc)  # `aistack up` said so in a 60-line traceback
        if down is not None:
            raise down from exc
        raise


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    s = factory()
    try:
        yield s
        s.commit()
    except BaseException as exc:
        s.rollback()
        from aistack.storage.catalog import unreachable_db

        down = unreachable_db(s.get_bind().engine, exc) if isinstance(exc, Exception) else None
        if down is not None:
            # a 503 that names the database, not a 500 "this is a bug in aistack"
            raise down from exc
        raise
    finally:
        s.close()
