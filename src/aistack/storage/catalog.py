"""Dataset catalog in the metadata DB (SQLAlchemy Core on this module's own ``metadata``).

Tables (Alembic revision ``0002_storage``, branch ``storage``):

- ``storage_datasets``   one row per dataset name
- ``storage_versions``   immutable versions: manifest id, counts, message, metadata; a version
                         number is never reused (deleted versions keep their row, ``deleted_at``)
- ``storage_tags``       movable names for versions (``latest`` is implicit, never stored)
- ``storage_references`` who uses a version (kind ``job`` | ``model`` | ``run``); a referenced
                         version cannot be deleted and gc keeps its objects
- ``storage_lineage``    edges between nodes ``dataset:NAME@vN``, ``job:ID``, ``run:ID``,
                         ``model:NAME@vN``

Two concurrent adds of one name get distinct numbers: the insert of ``max+1`` is guarded by a
unique constraint on (dataset, version) and retried on conflict (SQLite and PostgreSQL alike).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import shlex
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.engine import Connection, Engine

from aistack.errors import BackendError, ConflictError, ConnectionFailed, NotFoundError

log = logging.getLogger(__name__)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

STORE_MAX = 1024  # characters of storage_versions.store

datasets = Table(
    "storage_datasets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
)

versions = Table(
    "storage_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dataset_id", Integer, ForeignKey("storage_datasets.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("manifest", String(128), nullable=False),
    Column("hash_algo", String(16), nullable=False),
    Column("files", BigInteger, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("message", Text, nullable=True),
    Column("meta", JSON, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("deleted_at", DateTime, nullable=True),
    # the object store the version's objects and manifest are in (backends.store_identity);
    # NULL: added before it was recorded (revision 0004_storage_store)
    Column("store", String(STORE_MAX), nullable=True),
    UniqueConstraint("dataset_id", "version", name="uq_storage_versions_dataset_version"),
)

tags = Table(
    "storage_tags",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dataset_id", Integer, ForeignKey("storage_datasets.id"), nullable=False),
    Column("tag", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("dataset_id", "tag", name="uq_storage_tags_dataset_tag"),
)

references = Table(
    "storage_references",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version_id", Integer, ForeignKey("storage_versions.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("ref_id", String(256), nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("version_id", "kind", "ref_id", name="uq_storage_references_version_kind_ref"),
)

lineage = Table(
    "storage_lineage",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("src", String(400), nullable=False),
    Column("dst", String(400), nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("src", "dst", name="uq_storage_lineage_src_dst"),
)

T = TypeVar("T")

_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()
_SCHEMA_READY: set[int] = set()  # id() of engines whose tables were checked in this process


def utcnow() -> dt.datetime:
    """Naive UTC (portable across SQLite and PostgreSQL); made aware on the way out."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def aware(t: dt.datetime | None) -> dt.datetime | None:
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def create_db_engine(url: str, **pool: Any) -> Engine:
    """A SQLAlchemy engine for a database URL, as the server and the catalog use it. SQLite: the
    file's folder is made, WAL, ``synchronous=NORMAL``, a 30-s busy timeout and foreign keys on
    every connection. PostgreSQL (``postgresql://`` is read with psycopg 3): ``pool`` (e.g.
    ``pool_size``) and a pre-ping, so a connection the server dropped is replaced."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        eng = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(eng, "connect")
        def _pragmas(dbapi_conn, _rec):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return eng
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return sa.create_engine(url, pool_pre_ping=True, **pool)


def engine_for(url: str) -> Engine:
    """One engine per URL per process (SQLite: WAL and a busy timeout, as the server uses)."""
    with _ENGINES_LOCK:
        eng = _ENGINES.get(url)
        if eng is not None:
            return eng
        eng = create_db_engine(url)
        _ENGINES[url] = eng
        return eng


def dispose_engines() -> None:
    with _ENGINES_LOCK:
        for eng in _ENGINES.values():
            eng.dispose()
            _SCHEMA_READY.discard(id(eng))
        _ENGINES.clear()


def unreachable_db(engine: Engine, exc: BaseException) -> ConnectionFailed | None:
    """A ConnectionFailed that names the database (password hidden) when ``exc`` says the
    metadata DB cannot be reached at all (down, refused, wrong password, no such database, a
    connection dropped under a query), else None: a locked or busy database, a failed
    statement are other errors."""
    if not isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return None
    reason = " ".join(str(exc.orig).split())  # psycopg's text spans lines
    if not (exc.connection_invalidated or reason.startswith("connection failed")):
        return None
    url = engine.url.render_as_string(hide_password=True)
    return ConnectionFailed(
        f"the metadata database {url} cannot be reached: {reason}",
        hint="start the database server (or wait until it is back), or fix "
        "AISTACK_DATABASE_URL (host, port, user, password, database name)",
    )


def add_store_column(bind: Engine | Connection) -> None:
    """Add ``storage_versions.store`` to a catalog made before it existed (by an older CLI or
    migration 0002_storage); a no-op when it is there. Another process adding it at the same
    time is no error."""

    def has_it(conn: Connection) -> bool:
        cols = sa.inspect(conn).get_columns("storage_versions")
        return any(c["name"] == "store" for c in cols)

    ddl = sa.text(f"ALTER TABLE storage_versions ADD COLUMN store VARCHAR({STORE_MAX})")
    if isinstance(bind, Connection):
        if not has_it(bind):
            bind.execute(ddl)
        return
    with bind.connect() as conn:
        if has_it(conn):
            return
    try:
        with bind.begin() as conn:
            conn.execute(ddl)
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        with bind.connect() as conn:
            if not has_it(conn):  # not a race with another process: a real failure
                raise


def _transient(exc: Exception) -> bool:
    if isinstance(exc, sa.exc.IntegrityError):
        return True
    if isinstance(exc, sa.exc.OperationalError):
        msg = str(exc).lower()
        return "locked" in msg or "busy" in msg or "deadlock" in msg or "serializ" in msg
    return False


class Catalog:
    """DB operations of the dataset catalog. All methods open their own short transaction."""

    def __init__(self, engine: Engine, *, create: bool = True) -> None:
        self.engine = engine
        if create:
            self.ensure_schema()

    def ensure_schema(self) -> None:
        """Create missing tables (the server uses Alembic; the CLI may run before it)."""
        if id(self.engine) in _SCHEMA_READY:
            return
        for attempt in range(10):
            try:
                metadata.create_all(self.engine, checkfirst=True)
                add_store_column(self.engine)
                _SCHEMA_READY.add(id(self.engine))
                return
            except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError) as exc:
                down = unreachable_db(self.engine, exc)
                if down is not None:  # not a race with another process: say what is wrong
                    raise down from exc
                # another process created the same table between check and create
                if attempt == 9:
                    raise BackendError(f"could not create the storage tables: {exc}") from exc
                time.sleep(0.05 * (attempt + 1))

    def retry(self, fn: Callable[[Connection], T], *, attempts: int = 60) -> T:
        for attempt in range(attempts):
            try:
                with self.engine.begin() as conn:
                    return fn(conn)
            except (sa.exc.IntegrityError, sa.exc.OperationalError) as exc:
                if not _transient(exc) or attempt == attempts - 1:
                    raise
                time.sleep(random.uniform(0.005, 0.05) * (1 + attempt % 8))
        raise AssertionError("unreachable")

    # -- datasets and versions ---------------------------------------------------------------
    def dataset_id(self, conn: Connection, name: str) -> int | None:
        row = conn.execute(sa.select(datasets.c.id).where(datasets.c.name == name)).first()
        return int(row[0]) if row else None

    def ensure_dataset(self, name: str) -> int:
        with self.engine.connect() as conn:
            did = self.dataset_id(conn, name)
        if did is not None:
            return did

        def _create(conn: Connection) -> int:
            did = self.dataset_id(conn, name)
            if did is not None:
                return did
            res = conn.execute(datasets.insert().values(name=name, created_at=utcnow()))
            pk = res.inserted_primary_key
            assert pk is not None
            return int(pk[0])

        return self.retry(_create)

    def add_version(
        self,
        *,
        name: str,
        manifest: str,
        hash_algo: str,
        files: int,
        nbytes: int,
        message: str | None,
        meta: dict[str, Any] | None,
        tag_names: tuple[str, ...] = (),
        reuse_same: bool = False,
        store: str | None = None,
    ) -> dict[str, Any]:
        """Insert the next version, recorded as in ``store``; with ``reuse_same``, when the
        newest live version already has this manifest (same bytes, same paths) in the same
        store (or one not recorded), tag that one instead (``"reused": True``), checked in the
        same transaction as the insert."""
        did = self.ensure_dataset(name)

        def _insert(conn: Connection) -> dict[str, Any]:
            if reuse_same:
                same = conn.execute(
                    sa.select(
                        versions.c.id,
                        versions.c.version,
                        versions.c.manifest,
                        versions.c.hash_algo,
                        versions.c.created_at,
                        versions.c.store,
                    )
                    .where(versions.c.dataset_id == did, versions.c.deleted_at.is_(None))
                    .order_by(versions.c.version.desc())
                    .limit(1)
                ).first()
                if (
                    same is not None
                    and (same.manifest, same.hash_algo) == (manifest, hash_algo)
                    and same.store in (None, store)
                ):
                    for t in tag_names:
                        self._set_tag(conn, did, t, int(same.version))
                    return {
                        "id": int(same.id),
                        "version": int(same.version),
                        "created_at": same.created_at,
                        "reused": True,
                    }
            cur = conn.execute(
                sa.select(sa.func.max(versions.c.version)).where(versions.c.dataset_id == did)
            ).scalar()
            v = int(cur or 0) + 1
            now = utcnow()
            res = conn.execute(
                versions.insert().values(
                    dataset_id=did,
                    version=v,
                    manifest=manifest,
                    hash_algo=hash_algo,
                    files=files,
                    bytes=nbytes,
                    message=message,
                    meta=meta,
                    created_at=now,
                    store=store,
                )
            )
            for t in tag_names:
                self._set_tag(conn, did, t, v)
            pk = res.inserted_primary_key
            assert pk is not None
            return {"id": int(pk[0]), "version": v, "created_at": now, "reused": False}

        return self.retry(_insert)

    def _set_tag(self, conn: Connection, did: int, tag: str, version: int) -> int | None:
        old = conn.execute(
            sa.select(tags.c.version).where(tags.c.dataset_id == did, tags.c.tag == tag)
        ).scalar()
        if old is None:
            conn.execute(
                tags.insert().values(dataset_id=did, tag=tag, version=version, created_at=utcnow())
            )
        else:
            conn.execute(
                tags.update()
                .where(tags.c.dataset_id == did, tags.c.tag == tag)
                .values(version=version, created_at=utcnow())
            )
        return int(old) if old is not None else None

    def set_tag(self, name: str, tag: str, version: int) -> int | None:
        def _do(conn: Connection) -> int | None:
            did = self.dataset_id(conn, name)
            assert did is not None
            return self._set_tag(conn, did, tag, version)

        return self.retry(_do)

    def remove_tag(self, name: str, tag: str) -> int | None:
        """Delete ``tag`` of ``name``; the version it pointed to, or None when there was no such
        tag. Versions and their data are untouched."""

        def _do(conn: Connection) -> int | None:
            did = self.dataset_id(conn, name)
            if did is None:
                return None
            where = sa.and_(tags.c.dataset_id == did, tags.c.tag == tag)
            old = conn.execute(sa.select(tags.c.version).where(where)).scalar()
            if old is None:
                return None
            conn.execute(tags.delete().where(where))
            return int(old)

        return self.retry(_do)

    def tag_version(self, name: str, tag: str) -> int | None:
        with self.engine.connect() as conn:
            q = (
                sa.select(tags.c.version)
                .select_from(tags.join(datasets, tags.c.dataset_id == datasets.c.id))
                .where(datasets.c.name == name, tags.c.tag == tag)
            )
            v = conn.execute(q).scalar()
        return int(v) if v is not None else None

    def tags_of(self, name: str) -> dict[int, list[str]]:
        with self.engine.connect() as conn:
            q = (
                sa.select(tags.c.version, tags.c.tag)
                .select_from(tags.join(datasets, tags.c.dataset_id == datasets.c.id))
                .where(datasets.c.name == name)
                .order_by(tags.c.tag)
            )
            out: dict[int, list[str]] = {}
            for v, t in conn.execute(q):
                out.setdefault(int(v), []).append(t)
        return out

    def _version_query(self) -> sa.Select[Any]:
        return sa.select(
            versions,
            datasets.c.name.label("name"),
        ).select_from(versions.join(datasets, versions.c.dataset_id == datasets.c.id))

    def version_row(self, name: str, version: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    self._version_query().where(
                        datasets.c.name == name, versions.c.version == version
                    )
                )
                .mappings()
                .first()
            )
        return dict(row) if row else None

    def latest_row(self, name: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    self._version_query()
                    .where(datasets.c.name == name, versions.c.deleted_at.is_(None))
                    .order_by(versions.c.version.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
        return dict(row) if row else None

    def version_rows(self, name: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        q = self._version_query().where(datasets.c.name == name)
        if not include_deleted:
            q = q.where(versions.c.deleted_at.is_(None))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q.order_by(versions.c.version.desc())).mappings()]

    def exists(self, name: str) -> bool:
        with self.engine.connect() as conn:
            return self.dataset_id(conn, name) is not None

    def names(self) -> list[str]:
        with self.engine.connect() as conn:
            return [
                r[0] for r in conn.execute(sa.select(datasets.c.name).order_by(datasets.c.name))
            ]

    def summaries(self) -> list[dict[str, Any]]:
        live = versions.c.deleted_at.is_(None)
        q = (
            sa.select(
                datasets.c.name,
                datasets.c.created_at,
                sa.func.count(versions.c.id).label("versions"),
                sa.func.max(versions.c.version).label("latest"),
                sa.func.max(versions.c.created_at).label("updated_at"),
            )
            .select_from(
                datasets.outerjoin(versions, sa.and_(versions.c.dataset_id == datasets.c.id, live))
            )
            .group_by(datasets.c.id, datasets.c.name, datasets.c.created_at)
            .order_by(datasets.c.name)
        )
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def deleted_at_of(self, pairs: set[tuple[str, int]]) -> dict[tuple[str, int], dt.datetime]:
        """``{(name, version): deleted_at}`` for those of ``pairs`` that were deleted."""
        if not pairs:
            return {}
        q = (
            sa.select(datasets.c.name, versions.c.version, versions.c.deleted_at)
            .select_from(versions.join(datasets, versions.c.dataset_id == datasets.c.id))
            .where(
                versions.c.deleted_at.is_not(None),
                datasets.c.name.in_({n for n, _ in pairs}),
                versions.c.version.in_({v for _, v in pairs}),
            )
        )
        with self.engine.connect() as conn:
            return {
                (r.name, int(r.version)): r.deleted_at
                for r in conn.execute(q)
                if (r.name, int(r.version)) in pairs
            }

    def manifest_stores(self, manifest: str) -> list[str | None]:
        """The store of each live version with ``manifest`` (None: not recorded)."""
        with self.engine.connect() as conn:
            q = sa.select(versions.c.store).where(
                versions.c.deleted_at.is_(None), versions.c.manifest == manifest
            )
            return [r[0] for r in conn.execute(q)]

    def live_manifests(self) -> set[str]:
        with self.engine.connect() as conn:
            q = sa.select(versions.c.manifest).where(versions.c.deleted_at.is_(None)).distinct()
            return {r[0] for r in conn.execute(q)}

    def all_manifests(self) -> set[str]:
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(sa.select(versions.c.manifest).distinct())}

    def _lock_version(self, conn: Connection, version_id: int) -> Any:
        """The version's row, locked for this transaction where the database can (PostgreSQL:
        ``FOR UPDATE``; SQLite serialises writers, and a transaction whose reads went stale
        fails its write and is retried): a reference and a delete of one version never
        interleave."""
        return conn.execute(
            sa.select(versions.c.id, versions.c.deleted_at)
            .where(versions.c.id == version_id)
            .with_for_update()
        ).first()

    def delete_version(self, version_id: int, label: str) -> None:
        def _do(conn: Connection) -> None:
            self._lock_version(conn, version_id)
            refs = conn.execute(
                sa.select(references.c.kind, references.c.ref_id).where(
                    references.c.version_id == version_id
                )
            ).all()
            if refs:
                who = ", ".join(f"{k} {i}" for k, i in refs)
                by = " ".join(f"--by {shlex.quote(f'{k}:{i}')}" for k, i in refs)
                raise ConflictError(
                    f"{label} cannot be deleted: it is referenced by {who}",
                    hint=f"it is kept so that what was made from it can be reproduced "
                    f"(`aistack data lineage {label}` shows what); to delete it anyway, drop "
                    f"the references first: `aistack data unref {label} {by}` (Python: "
                    f"Datasets.remove_reference({label!r}, {refs[0][0]!r}, {refs[0][1]!r}))",
                )
            conn.execute(
                versions.update().where(versions.c.id == version_id).values(deleted_at=utcnow())
            )

        self.retry(_do)

    # -- references -----------------------------------------------------------------------------
    def add_reference(self, version_id: int, kind: str, ref_id: str, label: str = "") -> bool:
        """Record the reference; ConflictError when the version was deleted meanwhile (it was
        resolved before, in another transaction) — nothing is recorded then."""

        def _do(conn: Connection) -> bool:
            row = self._lock_version(conn, version_id)
            if row is None or row.deleted_at is not None:
                what = label or f"version id {version_id}"
                raise ConflictError(
                    f"{what} was deleted while the reference of {kind} {ref_id} to it was "
                    "being recorded",
                    hint="add the data again (`aistack data add`) or use another version",
                )
            found = conn.execute(
                sa.select(references.c.id).where(
                    references.c.version_id == version_id,
                    references.c.kind == kind,
                    references.c.ref_id == ref_id,
                )
            ).first()
            if found:
                return False
            conn.execute(
                references.insert().values(
                    version_id=version_id, kind=kind, ref_id=ref_id, created_at=utcnow()
                )
            )
            return True

        return self.retry(_do)

    def remove_reference(self, version_id: int, kind: str, ref_id: str) -> bool:
        def _do(conn: Connection) -> bool:
            res = conn.execute(
                references.delete().where(
                    references.c.version_id == version_id,
                    references.c.kind == kind,
                    references.c.ref_id == ref_id,
                )
            )
            return bool(res.rowcount)

        return self.retry(_do)

    def remove_references(
        self, version_id: int, label: str, refs: list[tuple[str, str]]
    ) -> list[dict[str, Any]]:
        """Delete all of ``refs`` (``(kind, id)`` pairs) of one version in one transaction, or
        none: NotFoundError naming the version's references when one of them is not there.
        Returns the references left."""

        def _do(conn: Connection) -> list[dict[str, Any]]:
            have = {
                (r.kind, r.ref_id): r
                for r in conn.execute(
                    sa.select(references.c.kind, references.c.ref_id, references.c.created_at)
                    .where(references.c.version_id == version_id)
                    .order_by(references.c.kind, references.c.ref_id)
                )
            }
            missing = [f"{k}:{i}" for k, i in dict.fromkeys(refs) if (k, i) not in have]
            if missing:
                listed = ", ".join(f"{k}:{i}" for k, i in have)
                raise NotFoundError(
                    f"{label} has no reference {', '.join(missing)}",
                    hint=f"its references: {listed}; give one of them to --by"
                    if have
                    else f"it has no references, so none keeps `aistack data rm {label}` from "
                    "deleting it",
                    ref=label,
                )
            for k, i in dict.fromkeys(refs):
                conn.execute(
                    references.delete().where(
                        references.c.version_id == version_id,
                        references.c.kind == k,
                        references.c.ref_id == i,
                    )
                )
            return [
                {"kind": k, "ref_id": i, "created_at": r.created_at}
                for (k, i), r in have.items()
                if (k, i) not in set(refs)
            ]

        return self.retry(_do)

    def job_states(self, ids: list[str]) -> dict[str, str]:
        """The state of each of ``ids`` in this DB's ``jobs`` table: the aistack server's, which
        shares the metadata DB and whose jobs are the ones that take ``job`` references. A job
        not there, or no such table (a store used without a server), is left out."""
        if not ids:
            return {}
        jobs = sa.table("jobs", sa.column("id"), sa.column("state"))
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table("jobs"):
                return {}
            rows = conn.execute(
                sa.select(jobs.c.id, jobs.c.state).where(jobs.c.id.in_(list(dict.fromkeys(ids))))
            )
            return {str(r.id): str(r.state) for r in rows}

    def references_of(self, version_id: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            q = (
                sa.select(references.c.kind, references.c.ref_id, references.c.created_at)
                .where(references.c.version_id == version_id)
                .order_by(references.c.kind, references.c.ref_id)
            )
            return [dict(r) for r in conn.execute(q).mappings()]

    def referenced_manifests(self) -> set[str]:
        with self.engine.connect() as conn:
            q = (
                sa.select(versions.c.manifest)
                .select_from(references.join(versions, references.c.version_id == versions.c.id))
                .distinct()
            )
            return {r[0] for r in conn.execute(q)}

    def referenced_version_count(self) -> int:
        """How many (not deleted) versions a job, run or model references."""
        with self.engine.connect() as conn:
            q = sa.select(sa.func.count(sa.distinct(references.c.version_id)))
            return int(conn.execute(q).scalar() or 0)

    # -- lineage ----------------------------------------------------------------------------------
    def add_edges(self, edges: list[tuple[str, str]]) -> int:
        def _do(conn: Connection) -> int:
            n = 0
            for src, dst in edges:
                found = conn.execute(
                    sa.select(lineage.c.id).where(lineage.c.src == src, lineage.c.dst == dst)
                ).first()
                if not found:
                    conn.execute(lineage.insert().values(src=src, dst=dst, created_at=utcnow()))
                    n += 1
            return n

        return self.retry(_do)

    def edges_touching(self, nodes: set[str]) -> list[tuple[str, str]]:
        if not nodes:
            return []
        with self.engine.connect() as conn:
            q = sa.select(lineage.c.src, lineage.c.dst).where(
                sa.or_(lineage.c.src.in_(nodes), lineage.c.dst.in_(nodes))
            )
            return [(r[0], r[1]) for r in conn.execute(q)]
