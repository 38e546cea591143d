"""Versioned datasets: the Python API behind ``aistack data`` and ``/api/v1/datasets``.

::

    ds = Datasets.from_settings()
    v = ds.add("corpus", "shards/", message="first crawl", tags=("raw",))   # -> corpus@v1
    ds.get("corpus@v1", "/tmp/corpus")          # hard links / reflinks on a local store
    fs = ds.open("corpus@raw")                  # read-only fsspec filesystem, no copy
    ds.add_reference("corpus@latest", "job", job_id)   # pins the concrete version
    ds.record_lineage(["corpus@v1"], job_id, ["tokens@v1"])
    ds.gc(dry_run=True)

A version becomes visible only when its catalog row is committed, after every object and the
manifest are stored: a killed ``add`` leaves unreferenced objects (reused by the next add, or
removed by gc after the grace period) and no version.

:class:`Datasets` is the facade; the machinery behind it lives in :mod:`.upload` (``add``),
:mod:`.materialize` (``get``), :mod:`.diff`, :mod:`.lineage` and :mod:`.gc`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from aistack.errors import ConflictError, IntegrityError, NotFoundError, ValidationError
from aistack.settings import Settings, get_settings
from aistack.storage import materialize, upload
from aistack.storage.backends import Backend, open_backend, store_identity
from aistack.storage.catalog import Catalog, aware, engine_for
from aistack.storage.diff import DatasetDiff, FileChange, diff_entries
from aistack.storage.gc import GcReport, collect_garbage
from aistack.storage.lineage import lineage_graph
from aistack.storage.manifest import FileEntry, ManifestStore
from aistack.storage.objects import MissingObjectError, ObjectStore
from aistack.storage.refs import (  # (the lineage kinds are also importable from here)
    LINEAGE_NODE_KINDS,
    LINEAGE_ONLY_KINDS,
    VERSION_RE,
    check_kind,
    check_name,
    check_tag,
    lineage_node,
    node,
    parse_ref,
    split_node,
)
from aistack.storage.upload import SourceFile as _SourceFile
from aistack.storage.upload import scan

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""``progress(bytes_done, bytes_total)``, called from the calling thread."""

DEFAULT_GRACE_S = 3600.0
REFERENCE_ID_MAX = 256  # characters of a reference's id (the catalog's storage_references.ref_id)


@dataclass(frozen=True, kw_only=True)
class DatasetVersion:
    name: str
    version: int
    files: int
    bytes: int
    created_at: dt.datetime
    message: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    manifest: str = ""
    hash_algo: str = ""
    id: int = 0
    bytes_written: int | None = None  # set by add(): new bytes stored (dedup excluded)
    deleted: bool = False
    deleted_at: dt.datetime | None = None  # when a deleted version was deleted
    unchanged: bool = False  # set by add(if_changed=True) when it made no new version
    # set by delete(): the lineage edges to and from the version, which it keeps (as it keeps
    # its catalog row): `aistack data lineage NAME@vN` still shows them
    lineage_kept: int = 0
    # the object store its objects are in (backends.store_identity); None: not recorded (a
    # version added before stores were recorded)
    store: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "files": self.files,
            "bytes": self.bytes,
            "created_at": self.created_at.isoformat(),
            "message": self.message,
            "tags": list(self.tags),
            "metadata": self.metadata,
            "manifest": self.manifest,
            "hash_algo": self.hash_algo,
            "bytes_written": self.bytes_written,
            "unchanged": self.unchanged,
        }


@dataclass(frozen=True, kw_only=True)
class DatasetSummary:
    name: str
    versions: int
    latest: int | None
    created_at: dt.datetime
    updated_at: dt.datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": self.versions,
            "latest": f"{self.name}@v{self.latest}" if self.latest else None,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


@dataclass(frozen=True, kw_only=True)
class GetResult:
    version: DatasetVersion
    dest: str
    files: int
    bytes: int
    linked: int
    copied: int
    unchanged: int = 0  # already in dest with the right bytes: left as they were

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.version.ref,
            "dest": self.dest,
            "files": self.files,
            "bytes": self.bytes,
            "linked": self.linked,
            "copied": self.copied,
            "unchanged": self.unchanged,
        }


class Datasets:
    """Versioned datasets on a content-addressed store plus a catalog in the metadata DB."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        store_url: str,
        workers: int | None = None,
        lease_dir: Path | None = None,
    ) -> None:
        self.catalog = catalog
        self.store_url = store_url
        self._workers = workers
        # where running holders of references keep their leases (aistack.storage.holds);
        # None: <AISTACK_HOME>/leases
        self.lease_dir = lease_dir
        self._store: ObjectStore | None = None
        self._manifests: ManifestStore | None = None
        self._lock = threading.Lock()

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Datasets:
        s = settings or get_settings()
        return cls.connect(s.db_url, s.objects_url)

    @classmethod
    def connect(cls, db_url: str, store_url: str, *, workers: int | None = None) -> Datasets:
        return cls(catalog=Catalog(engine_for(db_url)), store_url=store_url, workers=workers)

    @property
    def store(self) -> ObjectStore:
        with self._lock:
            if self._store is None:
                self._store = ObjectStore(open_backend(self.store_url))
                self._manifests = ManifestStore(self._store)
            return self._store

    @property
    def store_id(self) -> str:
        """This process's store (``store_url``) as versions record it, without credentials."""
        return store_identity(self.store_url)

    @property
    def manifests(self) -> ManifestStore:
        self.store  # noqa: B018 - opens lazily
        assert self._manifests is not None
        return self._manifests

    @property
    def backend(self) -> Backend:
        return self.store.backend

    def _pool_size(self) -> int:
        if self._workers:
            return self._workers
        return 16 if self.backend.scheme == "s3" else 4

    # -- add --------------------------------------------------------------------------------
    def add(
        self,
        name: str,
        path: str | os.PathLike[str],
        message: str | None = None,
        tags: tuple[str, ...] | list[str] = (),
        metadata: dict[str, Any] | None = None,
        progress: Progress | None = None,
        if_changed: bool = True,
    ) -> DatasetVersion:
        """Store the files under ``path`` as a new immutable version of ``name``.

        Data identical to the newest version (same paths, bytes and modes) makes no new
        version, as ``aistack data add`` and ``dvc add`` of unchanged data: that version is
        returned (``unchanged=True``), given ``tags``, and keeps its own message and metadata.
        ``if_changed=False`` makes a new version anyway (``aistack data add --always-new``).

        A big file is read through a mapping under a read lease (:mod:`.sources`): another
        process that opens it for writing or truncates it meanwhile waits until the add has
        stopped reading it (milliseconds), and the add fails with ConflictError. Where no
        lease can be had (a caller thread other than the main one, a file already open for
        writing, NFS, ...) the file is read into buffers instead, into the same chunks."""
        check_name(name)
        _check_bool(
            if_changed,
            "if_changed",
            "True (the default) returns the newest version when nothing changed, False makes "
            "a new version anyway",
        )
        if not isinstance(tags, list | tuple | set | frozenset):
            raise ValidationError(
                f"tags must be a list of tag names, not {type(tags).__name__} {tags!r}",
                hint="pass e.g. tags=['raw'] (a str would be split into letters)",
                field="tags",
            )
        tag_names = tuple(check_tag(t) for t in tags)
        if message is not None and (not isinstance(message, str) or "\x00" in message):
            raise ValidationError(
                f"message must be text without NUL characters, not {message!r}"
                if isinstance(message, str)
                else f"message must be a str or None, not {type(message).__name__}",
                hint="pass e.g. message='first crawl'",
                field="message",
            )
        _check_callable(progress, "progress")
        if metadata is not None and not isinstance(metadata, dict):
            raise ValidationError("metadata must be a mapping", field="metadata")
        meta = _jsonable(metadata or {})
        sources = scan(path)
        total = sum(s.size for s in sources)
        t0 = time.perf_counter()
        from aistack.storage.holds import hold_add

        # from before the first object is written until the version is in the catalog, gc
        # keeps what this add writes, whatever its grace period
        with hold_add(self.lease_dir):
            entries, written = upload.upload(
                self.store, sources, total, progress, workers=self._pool_size()
            )
            mid = self.manifests.put(entries)
            nbytes = sum(e.size for e in entries)
            row = self.catalog.add_version(
                name=name,
                manifest=mid,
                hash_algo=self.store.algo,
                files=len(entries),
                nbytes=nbytes,
                message=message,
                meta=meta,
                tag_names=tag_names,
                reuse_same=if_changed,
                store=self.store_id,
            )
        if row["reused"]:
            same = self.resolve(f"{name}@v{row['version']}")
            log.info("%s: unchanged since v%d; no new version", name, same.version)
            return dataclasses.replace(same, bytes_written=written, unchanged=True)
        log.info(
            "added %s@v%d: %d files, %d bytes (%d new) in %.2f s",
            name,
            row["version"],
            len(entries),
            nbytes,
            written,
            time.perf_counter() - t0,
        )
        return DatasetVersion(
            name=name,
            version=row["version"],
            files=len(entries),
            bytes=nbytes,
            created_at=aware(row["created_at"]) or row["created_at"],
            message=message,
            tags=tuple(sorted(tag_names)),
            metadata=meta,
            manifest=mid,
            hash_algo=self.store.algo,
            id=row["id"],
            bytes_written=written,
            store=self.store_id,
        )

    def _check_unchanged(
        self, src: _SourceFile, before: os.stat_result, after: os.stat_result, written: list[str]
    ) -> None:
        """:func:`.upload.check_unchanged` on this store."""
        upload.check_unchanged(self.store, src, before, after, written)

    # -- resolve / list ---------------------------------------------------------------------------
    def resolve(self, ref: str) -> DatasetVersion:
        """The concrete version a reference names; NotFoundError with a hint otherwise."""
        return self._resolve(ref)

    def _resolve(self, ref: str, *, allow_deleted: bool = False) -> DatasetVersion:
        """``resolve``; with ``allow_deleted``, an explicit version or a tag may name a deleted
        version (``deleted=True``): its catalog row, lineage and references outlive its data."""
        r = parse_ref(ref)
        if r.version is not None:
            row = self.catalog.version_row(r.name, r.version)
            if row is None or (row["deleted_at"] is not None and not allow_deleted):
                self._not_found(r.name, f"version v{r.version}", deleted=row is not None)
        elif r.tag is not None:
            v = self.catalog.tag_version(r.name, r.tag)
            if v is None:
                self._not_found(r.name, f"tag {r.tag!r}")
            row = self.catalog.version_row(r.name, v)
            if row is None or (row["deleted_at"] is not None and not allow_deleted):
                self._not_found(r.name, f"version v{v} (tag {r.tag!r})", deleted=True)
        else:
            row = self.catalog.latest_row(r.name)
            if row is None:
                self._not_found(r.name, "versions left (all were deleted)")
        assert row is not None
        return self._version(row, self.catalog.tags_of(r.name).get(row["version"], []))

    def _not_found(self, name: str, what: str, *, deleted: bool = False) -> NoReturn:
        if not self.catalog.exists(name):
            known = self.catalog.names()
            hint = "run `aistack data ls` to list datasets" + (
                f" (known: {', '.join(known[:10])})" if known else " (there are none yet)"
            )
            raise NotFoundError(f"dataset {name!r} does not exist", hint=hint, name=name)
        if deleted:
            live = [f"v{r['version']}" for r in reversed(self.catalog.version_rows(name))]
            raise NotFoundError(
                f"{name}: {what} was deleted",
                hint=f"versions left: {', '.join(live) if live else 'none'} "
                f"(`aistack data log {name}`; `--deleted` lists the deleted ones too, and "
                f"`aistack data lineage {name}@vN` still shows a deleted version's lineage)",
            )
        rows = self.catalog.version_rows(name)
        tags = sorted({t for ts in self.catalog.tags_of(name).values() for t in ts})
        vs = ", ".join(f"v{r['version']}" for r in reversed(rows)) or "none"
        raise NotFoundError(
            f"dataset {name!r} has no {what}",
            hint=f"versions: {vs}; tags: {', '.join(tags) or 'none'} (`aistack data log {name}`)",
            name=name,
        )

    def _version(self, row: dict[str, Any], tags: list[str]) -> DatasetVersion:
        return DatasetVersion(
            name=row["name"],
            version=int(row["version"]),
            files=int(row["files"]),
            bytes=int(row["bytes"]),
            created_at=aware(row["created_at"]) or row["created_at"],
            message=row["message"],
            tags=tuple(sorted(tags)),
            metadata=dict(row["meta"] or {}),
            manifest=row["manifest"],
            hash_algo=row["hash_algo"],
            id=int(row["id"]),
            deleted=row["deleted_at"] is not None,
            deleted_at=aware(row["deleted_at"]),
            store=row.get("store"),
        )

    def ls(self) -> list[DatasetSummary]:
        return [
            DatasetSummary(
                name=r["name"],
                versions=int(r["versions"] or 0),
                latest=int(r["latest"]) if r["latest"] is not None else None,
                created_at=aware(r["created_at"]) or r["created_at"],
                updated_at=aware(r["updated_at"]),
            )
            for r in self.catalog.summaries()
        ]

    def log(self, name: str, *, deleted: bool = False) -> list[DatasetVersion]:
        """Versions of ``name``, newest first; with ``deleted``, the deleted ones too (their
        catalog rows stay: ``deleted=True`` and ``deleted_at``)."""
        check_name(name)
        _check_bool(deleted, "deleted", "True lists the deleted versions too")
        if not self.catalog.exists(name):
            self._not_found(name, "versions")
        tags = self.catalog.tags_of(name)
        return [
            self._version(r, tags.get(int(r["version"]), []))
            for r in self.catalog.version_rows(name, include_deleted=deleted)
        ]

    def files(self, ref: str | DatasetVersion) -> list[FileEntry]:
        v = ref if isinstance(ref, DatasetVersion) else self.resolve(ref)
        with self._reading(v):
            return self.manifests.get(v.manifest)

    @contextlib.contextmanager
    def _reading(self, v: DatasetVersion) -> Iterator[None]:
        """Reads of ``v``'s manifest and objects: one that finds its data missing because
        ``v`` was deleted and gc removed the data meanwhile (a deleted version's data is
        not kept) is a ConflictError saying so, not 'the store lost data'; of a version
        still live, the store did lose data, and the MissingObjectError says that."""
        try:
            yield
        except MissingObjectError as exc:
            conflict = self._deleted_meanwhile(v, exc) or self._in_other_store(v, exc)
            if conflict is None:
                raise
            raise conflict from exc

    def _in_other_store(self, v: DatasetVersion, exc: MissingObjectError) -> ConflictError | None:
        """The error of a read of ``v`` that found its data missing because ``v`` was added to
        another store than this process's (one metadata DB used with two
        AISTACK_STORAGE_URLs): no data was lost, the wrong store was asked. None when ``v``
        was recorded in this store (or its store was not recorded)."""
        if v.store is None or v.store == self.store_id:
            return None
        return ConflictError(
            f"{v.ref} lives in store {v.store}; this process uses store {self.store_id}, which "
            f"does not have its data ({exc.message})",
            hint=f"set AISTACK_STORAGE_URL to the store {v.ref} was added to ({v.store}), or "
            "add the data again into this store (`aistack data add`); nothing was lost",
            ref=v.ref,
            store=v.store,
            this_store=self.store_id,
        )

    def _deleted_meanwhile(
        self, v: DatasetVersion, exc: MissingObjectError
    ) -> ConflictError | None:
        """The ConflictError of :meth:`_reading` for ``exc`` when ``v`` has been deleted; None
        while it is live (then the store lost data)."""
        row = self.catalog.version_row(v.name, v.version)
        if row is None or row["deleted_at"] is None:
            return None
        when = aware(row["deleted_at"])
        at = f" at {when:%Y-%m-%d %H:%M:%S} UTC" if when is not None else ""
        live = [f"v{r['version']}" for r in reversed(self.catalog.version_rows(v.name))]
        return ConflictError(
            f"{v.ref} was deleted{at} while it was being read, and `aistack data gc` "
            f"removed its data: {exc.message}",
            hint=f"no data was lost: the version was deleted on purpose (`aistack data rm`) "
            f"and its data freed; read a version that is left "
            f"({', '.join(live) if live else 'none'}; `aistack data log {v.name}`), or add "
            "the data again from its source",
            ref=v.ref,
            **exc.details,
        )

    def diff(self, a: str, b: str) -> DatasetDiff:
        va, vb = self.resolve(a), self.resolve(b)
        return diff_entries(va.ref, self.files(va), vb.ref, self.files(vb))

    def tag(self, ref: str, tag: str) -> DatasetVersion:
        """Point ``tag`` at the version ``ref`` names (moving it if it exists)."""
        check_tag(tag)
        v = self.resolve(ref)
        old = self.catalog.set_tag(v.name, tag, v.version)
        if old is not None and old != v.version:
            log.info("moved tag %s of %s from v%d to v%d", tag, v.name, old, v.version)
        return self.resolve(v.ref)

    def untag(self, ref: str, tag: str) -> DatasetVersion:
        """Delete ``tag`` of the dataset ``ref`` names (``NAME``, or ``NAME@vN`` / ``NAME@TAG``:
        then the tag must point at that version); returns the version it pointed to (which may
        be a deleted one). Only the name goes: no version and no data is deleted."""
        r = parse_ref(ref)
        name = r.name
        if tag == "latest" or (isinstance(tag, str) and VERSION_RE.match(tag)):
            raise ValidationError(
                f"{tag!r} is not a tag that can be deleted: "
                + (
                    "'latest' always names the newest version"
                    if tag == "latest"
                    else "it names a version"
                ),
                hint=f"tags of {name} are listed by `aistack data log {name}`; a version is "
                f"deleted with `aistack data rm {name}@vN`",
                field="tag",
            )
        check_tag(tag)
        if not self.catalog.exists(name):
            self._not_found(name, f"tag {tag!r}")
        pointed = self.catalog.tag_version(name, tag)
        if pointed is None:
            self._no_tag(name, tag)
        if r.version is not None or r.tag is not None or r.latest:
            # NAME@latest names a version as NAME@vN does: the tag must point at it
            want = self._resolve(ref, allow_deleted=True)
            if want.version != pointed:
                raise ConflictError(
                    f"tag {tag!r} of {name} points at {name}@v{pointed}, not {want.ref}; "
                    "nothing was deleted",
                    hint=f"to delete it anyway: `aistack data tag {name} {tag} --delete`",
                    name=name,
                )
        old = self.catalog.remove_tag(name, tag)
        if old is None:  # deleted meanwhile by someone else
            self._no_tag(name, tag)
        log.info("deleted tag %s of %s (was v%d)", tag, name, old)
        row = self.catalog.version_row(name, old)
        assert row is not None  # version rows are never removed
        return self._version(row, self.catalog.tags_of(name).get(old, []))

    def _no_tag(self, name: str, tag: str) -> NoReturn:
        have = self.catalog.tags_of(name)
        listed = ", ".join(f"{t} (v{v})" for v, ts in sorted(have.items()) for t in ts)
        raise NotFoundError(
            f"dataset {name!r} has no tag {tag!r}",
            hint=f"its tags: {listed}" if listed else f"{name} has no tags",
            name=name,
        )

    # -- get / open ---------------------------------------------------------------------------
    def get(
        self,
        ref: str,
        dest: str | os.PathLike[str],
        *,
        link: str = "auto",
        force: bool = False,
        progress: Progress | None = None,
        only: Callable[[FileEntry], bool] | None = None,
    ) -> GetResult:
        """Materialize version ``ref`` under ``dest`` (created if missing); with ``only``,
        just the files it accepts (``files`` and ``bytes`` of the result count those).

        ``link``: "auto" (on a local store, a reflink where the filesystem has them; else a hard
        link to the store's read-only object, except as root, where file modes do not stop a
        write, so a copy), "hardlink" (hard links also as root: such a file *is* the stored
        object, and writing to it in place would change every version that holds those bytes
        — never edit it, copy it first), "copy" (independent, writable copies).

        Files already in ``dest`` with the version's bytes are kept as they are (when the get
        makes copies, not one with other hard links, e.g. an earlier get's link to the store's
        object: it is replaced by a copy of its own). A file with
        other bytes, a symlink, or a file where the version has a directory (or the reverse)
        is a conflict: nothing is written and ConflictError lists them, unless ``force``
        (they are replaced; a non-empty directory never is). Files in ``dest`` that the version
        does not have are left alone. Every object is verified before it is written or linked;
        a chunk of zero bytes (its id is the hash of that many zeros) is not written at all,
        so a sparse file comes back sparse.
        """
        if link not in ("auto", "hardlink", "copy"):
            raise ValidationError(
                f"invalid link mode {link!r}", hint="use auto, hardlink or copy", field="link"
            )
        _check_callable(only, "only")
        _check_callable(progress, "progress")
        _check_bool(force, "force", "True replaces files in dest that are in the way")
        if (
            not isinstance(dest, str | os.PathLike)
            or not isinstance(os.fspath(dest), str)
            or "\x00" in os.fspath(dest)
        ):
            raise ValidationError(
                f"dest {dest!r} is not a directory path",
                hint="give a directory as a str or pathlib.Path (no NUL characters)",
                field="dest",
            )
        if os.fspath(dest) == "":
            raise ValidationError(
                "dest is empty",
                hint='give a directory to write into (the current folder is ".")',
                field="dest",
            )
        v = self.resolve(ref)
        entries = self.files(v)
        if only is not None:
            entries = [e for e in entries if only(e)]
        dest_s = os.fspath(dest)
        if os.path.exists(dest_s) and not os.path.isdir(dest_s):
            raise ValidationError(
                f"destination {dest_s} exists and is not a directory",
                hint="give a new or existing directory",
                field="dest",
            )
        self._refuse_store_overlap(dest_s, entries)
        if link == "auto" and hasattr(os, "geteuid") and os.geteuid() == 0:
            link = "reflink-or-copy"  # root writes through read-only modes: no shared inodes
        with self._reading(v):
            linked, copied, unchanged = materialize.get_into(
                self.store,
                v,
                entries,
                dest_s,
                link=link,
                force=force,
                progress=progress,
                workers=self._pool_size(),
            )
        return GetResult(
            version=v,
            dest=dest_s,
            files=len(entries),
            bytes=sum(e.size for e in entries),
            linked=linked,
            copied=copied,
            unchanged=unchanged,
        )

    def _refuse_store_overlap(self, dest: str, entries: list[FileEntry]) -> None:
        """ValidationError naming ``dest`` when a get would write into the store's own areas
        (``cas/``, ``manifests/`` under a local store's root): a file of the version replacing
        ``cas/config.json`` or an object (``force``) made the whole store unreadable, and even
        new files there are taken for objects or manifests, and deleted by gc."""
        if not self.backend.is_local:
            return
        from aistack.storage.manifest import PREFIX as MANIFESTS
        from aistack.storage.objects import PREFIX as CAS
        from aistack.storage.paths import inside

        real = os.path.realpath(dest)
        for area in (CAS, MANIFESTS):
            guarded = os.path.realpath(self.backend.path(area))
            if inside(guarded, real):
                what = f"is inside the object store's {area}/ directory ({guarded})"
            elif inside(real, guarded):  # dest holds the store: which files would land in it?
                rel = Path(os.path.relpath(guarded, real)).as_posix()
                hit = next((e.path for e in entries if (e.path + "/").startswith(rel + "/")), "")
                if not hit:
                    continue
                what = (
                    f"holds the object store: {hit!r} would be "
                    f"written inside its {area}/ directory ({guarded})"
                )
            else:
                continue
            raise ValidationError(
                f"destination {dest} {what}; that could replace stored objects",
                hint=f"get into a directory outside {self.backend.root}",
                field="dest",
            )

    def _get_chunked(
        self,
        pool: ThreadPoolExecutor,
        v: DatasetVersion,
        e: FileEntry,
        target: str,
        progress: Callable[[int], Any],
    ) -> None:
        """:func:`.materialize.get_chunked` on this store."""
        materialize.get_chunked(self.store, pool, v, e, target, progress, workers=self._pool_size())

    def open(self, ref: str) -> Any:
        """A read-only fsspec filesystem over the files of ``ref`` (reads are verified)."""
        from aistack.storage.vfs import VersionFileSystem

        v = self.resolve(ref)
        return VersionFileSystem(
            store=self.store, version=v, entries=self.files(v), reading=lambda: self._reading(v)
        )

    # -- references / delete ------------------------------------------------------------------
    def add_reference(self, ref: str, kind: str, id: str) -> DatasetVersion:  # noqa: A002
        """Record that ``kind`` ``id`` uses ``ref``; returns the pinned concrete version.
        Kinds: :data:`~aistack.storage.refs.REFERENCE_KINDS` (``webdata``: a web-data pipeline
        run reading the version, its id printable ASCII as its lineage node's)."""
        check_kind(kind)
        lineage_node(kind, id)
        if len(id) > REFERENCE_ID_MAX:  # the catalog's column (PostgreSQL enforces it)
            raise ValidationError(
                f"{kind} id {id[:40]!r}… is {len(id)} characters; a reference id has at most "
                f"{REFERENCE_ID_MAX}",
                hint="use a shorter id (a lineage edge may carry up to 380 characters)",
                field="id",
            )
        v = self.resolve(ref)
        self.catalog.add_reference(v.id, kind, id, label=v.ref)
        return v

    def remove_reference(
        self,
        ref: str,
        kind: str,
        id: str,  # noqa: A002
        *,
        force: bool = False,
    ) -> bool:
        """Drop ``kind`` ``id``'s reference to the version ``ref`` names, an explicit
        ``NAME@vN`` (a deleted one too) as for ``remove_references``; False when it had none.
        Refused (ConflictError) while its holder still runs, unless ``force``, as there."""
        _check_bool(force, "force", "True drops it even while its holder runs")
        check_kind(kind)
        lineage_node(kind, id)
        v = self._resolve(self._explicit_version(ref), allow_deleted=True)
        checked = not force and any(
            (r["kind"], r["ref_id"]) == (kind, id) for r in self.catalog.references_of(v.id)
        )
        if checked:
            self._refuse_held(v, [(kind, id)])
        dropped = self.catalog.remove_reference(v.id, kind, id)
        if checked and dropped:
            self._restore_if_taken(v, [(kind, id)])
        return dropped

    def _refuse_held(self, v: DatasetVersion, pairs: list[tuple[str, str]]) -> None:
        """ConflictError when a holder of one of ``pairs`` still runs (:mod:`.holds`)."""
        from aistack.storage.holds import refuse_held

        states = self.catalog.job_states([i for k, i in pairs if k == "job"])
        refuse_held(v.ref, pairs, states, self.lease_dir)

    def _restore_if_taken(self, v: DatasetVersion, pairs: list[tuple[str, str]]) -> None:
        """After dropping ``pairs``: a holder that took its lease between the check and the
        drop (a web-data run resuming: it found its reference still there, so it did not add
        it again) gets the references back, and the caller the ConflictError it would have had."""
        try:
            self._refuse_held(v, pairs)
        except ConflictError:
            for kind, ident in pairs:
                with contextlib.suppress(ConflictError):  # (the version deleted meanwhile)
                    self.catalog.add_reference(v.id, kind, ident, label=v.ref)
            raise

    @staticmethod
    def _explicit_version(ref: str, action: str = "dropping a reference") -> str:
        """``ref`` when it is ``NAME@vN``; else the ValidationError that ``action`` needs one: a
        delete or a reference is pinned to one version, and NAME, NAME@latest or NAME@TAG may
        name another one by the time it runs."""
        want = parse_ref(ref)
        if want.version is None:
            raise ValidationError(
                f"{action} needs an explicit version, not {ref!r}",
                hint=f"write {want.name}@vN",
                field="ref",
            )
        return ref

    def remove_references(
        self,
        ref: str,
        refs: list[tuple[str, str]] | tuple[tuple[str, str], ...],
        *,
        check: Callable[[DatasetVersion, list[tuple[str, str]]], None] | None = None,
        force: bool = False,
    ) -> tuple[DatasetVersion, list[dict[str, Any]]]:
        """Drop all of ``refs`` (``(kind, id)`` pairs) from the version ``ref`` names, or none of
        them: NotFoundError listing the version's references when one is not there. Returns the
        version and the references left. Lineage is kept; the version can then be deleted.

        A reference whose holder still runs is kept, and nothing is dropped (ConflictError
        naming it): a job the ``jobs`` table of this DB (the aistack server's) says has not
        finished, or a reference a live process holds a lease on (a web-data pipeline run);
        see :mod:`aistack.storage.holds`. ``force=True`` drops them anyway.

        ``check(version, pairs)``, when given, is called next with those of ``refs`` the version
        has (e.g. to ask a server this layer cannot see); what it raises propagates and nothing
        is dropped."""
        _check_pairs(refs, "refs", "(kind, id) pairs, e.g. [('job', '42')]")
        _check_bool(force, "force", "True drops them even while their holders run")
        for kind, ident in refs:
            check_kind(kind)
            lineage_node(kind, ident)
        v = self._resolve(self._explicit_version(ref), allow_deleted=True)
        have = self.catalog.references_of(v.id)
        listed = ", ".join(f"{r['kind']}:{r['ref_id']}" for r in have)
        if not refs:
            raise ValidationError(
                f"no reference of {v.ref} to drop was given",
                hint=f"name one with --by KIND:ID; its references: {listed}"
                if have
                else f"{v.ref} is already deleted and has no references"
                if v.deleted
                else f"{v.ref} has no references, so none keeps `aistack data rm {v.ref}` from "
                "deleting it",
                field="by",
            )
        if v.deleted:
            there = {(r["kind"], r["ref_id"]) for r in have}
            missing = [f"{k}:{i}" for k, i in dict.fromkeys(refs) if (k, i) not in there]
            if missing:  # the catalog's own message would offer `data rm` for it
                raise NotFoundError(
                    f"{v.ref} is already deleted and has no reference {', '.join(missing)}",
                    hint=f"its references: {listed}; give one of them to --by"
                    if have
                    else "no references are left on it: nothing to drop",
                    ref=v.ref,
                )
        there = {(r["kind"], r["ref_id"]) for r in have}
        present = [p for p in dict.fromkeys(refs) if p in there]
        if present and not force:
            self._refuse_held(v, present)
        if present and check is not None:
            check(v, present)
        left = self.catalog.remove_references(v.id, v.ref, list(refs))
        if present and not force:
            self._restore_if_taken(v, present)
        return v, [
            {"kind": r["kind"], "id": r["ref_id"], "created_at": aware(r["created_at"])}
            for r in left
        ]

    def references(self, ref: str) -> list[dict[str, Any]]:
        v = self.resolve(ref)
        return [
            {"kind": r["kind"], "id": r["ref_id"], "created_at": aware(r["created_at"])}
            for r in self.catalog.references_of(v.id)
        ]

    def delete(self, ref: str) -> DatasetVersion:
        """Delete a version (its number is never reused); refused while it is referenced.

        Returns the version as deleted (``deleted=True``, ``deleted_at``); its lineage is kept,
        and ``lineage_kept`` says how many edges to and from it that is (``lineage(ref)``, with
        the explicit ``NAME@vN``, still shows them). Its data stays until ``gc``."""
        v = self.resolve(self._explicit_version(ref, "delete"))
        self.catalog.delete_version(v.id, v.ref)
        # (no edge can be added to a deleted version: record_lineage pins live ones only)
        kept = len(self.catalog.edges_touching({node("dataset", v.ref)}))
        row = self.catalog.version_row(v.name, v.version)
        gone = dataclasses.replace(
            v,
            deleted=True,
            deleted_at=aware(row["deleted_at"]) if row is not None else None,
            lineage_kept=kept,
        )
        if kept:
            log.info(
                "deleted %s; its lineage is kept (%s): `aistack data lineage %s` still shows it",
                v.ref,
                _edges(kept),
                v.ref,
            )
        else:
            log.info("deleted %s", v.ref)
        return gone

    # -- lineage --------------------------------------------------------------------------------
    def record_lineage(
        self, inputs: list[str], job_id: str, outputs: list[str]
    ) -> list[tuple[str, str]]:
        """Record dataset version → job → dataset version edges (refs are pinned)."""
        for what, refs in (("inputs", inputs), ("outputs", outputs)):
            if not isinstance(refs, list | tuple):
                raise ValidationError(
                    f"{what} must be a list of dataset references, not {type(refs).__name__} "
                    f"{refs!r}",
                    hint=f"pass e.g. {what}=['corpus@v1'] (or [] for none)",
                    field=what,
                )
        jnode = node("job", job_id)
        edges = [(node("dataset", self.resolve(i).ref), jnode) for i in inputs]
        edges += [(jnode, node("dataset", self.resolve(o).ref)) for o in outputs]
        self.catalog.add_edges(edges)
        return edges

    def record_edge(self, src: str, dst: str) -> None:
        """Add one lineage edge between nodes ``kind:id`` (e.g. ``job:42`` → ``run:abc``)."""
        self.record_edges([(src, dst)])

    def record_edges(self, edges: list[tuple[str, str]]) -> int:
        """Add lineage edges between nodes ``kind:id`` in one transaction; returns how many
        were new (an edge is stored once, so recording it again adds nothing).

        Every node is checked first (a bad one records no edge): kinds are those of
        :data:`LINEAGE_NODE_KINDS`; a ``dataset:`` node is pinned (``dataset:corpus@latest``
        → ``dataset:corpus@v3``) and must name a live version."""
        _check_pairs(edges, "edges", "(source, destination) pairs of KIND:ID nodes")
        canon: dict[str, str] = {}
        pairs: list[tuple[str, str]] = []
        for src, dst in edges:
            for n in (src, dst):
                if n not in canon:
                    canon[n] = self._canon(n)
            pairs.append((canon[src], canon[dst]))
        return self.catalog.add_edges(pairs) if pairs else 0

    def _canon(self, n: str) -> str:
        if not isinstance(n, str):
            raise ValidationError(
                f"invalid lineage node {n!r}", hint="write KIND:ID, e.g. job:42", field="node"
            )
        kind, ident = split_node(n)
        if kind == "dataset":
            return node("dataset", self.resolve(ident).ref)
        return lineage_node(kind, ident)

    def lineage(self, ref: str) -> dict[str, Any]:
        """Upstream and downstream graph of a version: ``{"root", "nodes", "edges"}``. A deleted
        version has one too (name it as ``NAME@vN``); each node's ``deleted_at`` (ISO time) says
        whether it is a dataset version that was deleted (None otherwise)."""
        v = self._resolve(ref, allow_deleted=True)
        return lineage_graph(self.catalog, node("dataset", v.ref))

    # -- gc ---------------------------------------------------------------------------------------
    def gc(self, dry_run: bool = True, *, grace_s: float = DEFAULT_GRACE_S) -> GcReport:
        """Delete objects and manifests no live version uses, and stale temp files.

        Objects younger than ``grace_s`` are kept (an add may be writing them), and so is all
        that an add running now with the same AISTACK_HOME (``<AISTACK_HOME>/add-leases``, this
        machine) has written or reused, whatever ``grace_s``. Referenced
        versions cannot be deleted, so their objects are always live. Only ``cas/`` and
        ``manifests/`` under the store root are touched.

        An add that reuses an object while gc runs keeps it: on a local store gc moves the
        object to ``cas/trash`` and puts it back if the add touched it. On an S3 or memory
        store (no atomic rename) gc checks the versions added while it ran and raises
        ``ConflictError`` naming the objects it deleted that one of them uses; adding the same
        data again repairs that version.
        """
        if not isinstance(dry_run, bool):
            raise ValidationError(
                f"dry_run must be True or False, not {dry_run!r}",
                hint="pass dry_run=True to only report, dry_run=False to delete",
                field="dry_run",
            )
        if (
            isinstance(grace_s, bool)
            or not isinstance(grace_s, int | float)
            or not (grace_s >= 0 and math.isfinite(grace_s))
        ):
            # NaN compares false with every age: objects an add is writing would go
            raise ValidationError(
                f"grace_s must be a finite number of seconds >= 0, not {grace_s!r}",
                hint=f"pass e.g. grace_s={DEFAULT_GRACE_S:g} (objects younger are kept)",
                field="grace_s",
            )
        from aistack.storage.gc import view_adds

        store, manifests = self.store, self.manifests
        adds = view_adds(self.lease_dir)  # before the catalog is read
        return collect_garbage(
            self.catalog,
            store,
            manifests,
            dry_run=dry_run,
            grace_s=grace_s,
            adds=adds,
            store_id=self.store_id,
        )

    def verify(self, ref: str) -> int:
        """Read and verify every object of ``ref``; returns the bytes checked.

        Every object is checked, also after a bad one. One damaged or missing object raises
        its own IntegrityError (MissingObjectError when missing), naming the object and the
        file; several raise one IntegrityError (MissingObjectError when all are missing) that
        counts them and lists the first :data:`VERIFY_LISTED`, with all of them in
        ``details["problems"]`` (``file``, ``object``, ``problem``: "corrupted" or "missing")."""
        v = self.resolve(ref)
        n = 0
        sizes: dict[str, int | IntegrityError] = {}  # each object is read once
        bad: list[tuple[str, str, IntegrityError]] = []  # (file, object, error)
        for e in self.files(v):
            for oid in e.chunks:
                got = sizes.get(oid)
                if got is None:
                    try:
                        got = len(self.store.get(oid, context=f"{v.ref}:{e.path}"))
                    except IntegrityError as exc:  # (MissingObjectError too): check the rest
                        got = exc
                    sizes[oid] = got
                if isinstance(got, IntegrityError):
                    bad.append((e.path, oid, got))
                else:
                    n += got
        if not bad:
            return n
        missing = [exc for _, _, exc in bad if isinstance(exc, MissingObjectError)]
        if missing:  # a version deleted while it was read, and gc'd, lost nothing: say so
            # (and one in another store than this process's lost nothing either)
            conflict = self._deleted_meanwhile(v, missing[0]) or self._in_other_store(v, missing[0])
            if conflict is not None:
                raise conflict from missing[0]
        if len(bad) == 1:
            raise bad[0][2]
        raise _damaged(
            v,
            bad,
            objects=len(sizes),
            files=len({p for p, *_ in bad}),
            store_url=self.store.backend.url,
        )


# the damaged objects a failed verify lists in its message (details["problems"] has them all)
VERIFY_LISTED = 20


def _damaged(
    v: DatasetVersion,
    bad: list[tuple[str, str, IntegrityError]],
    *,
    objects: int,
    files: int,
    store_url: str,
) -> IntegrityError:
    """The error of a verify that found several damaged or missing objects ``bad``."""
    problems = [
        {
            "file": path,
            "object": oid,
            "problem": "missing" if isinstance(exc, MissingObjectError) else "corrupted",
        }
        for path, oid, exc in bad
    ]
    damaged = {p["object"]: p["problem"] for p in problems}
    n_missing = sum(1 for what in damaged.values() if what == "missing")
    kinds = [
        f"{k:,} {what}"
        for k, what in ((len(damaged) - n_missing, "corrupted"), (n_missing, "missing"))
        if k
    ]
    listed = [
        f"{p['file']}: object {p['object']} is "
        + ("missing from the store" if p["problem"] == "missing" else "corrupted")
        for p in problems[:VERIFY_LISTED]
    ]
    if len(problems) > VERIFY_LISTED:
        listed.append(f"… and {len(problems) - VERIFY_LISTED:,} more")
    cls = MissingObjectError if n_missing == len(damaged) else IntegrityError
    return cls(
        f"{v.ref}: {len(damaged):,} of its {objects:,} objects are damaged or missing "
        f"({', '.join(kinds)}), in {files:,} of its {v.files:,} files:\n  " + "\n  ".join(listed),
        hint=f"the store {store_url} lost or damaged them; re-add the dataset from its "
        "source to repair it",
        ref=v.ref,
        count=len(damaged),
        problems=problems,
    )


def _edges(n: int) -> str:
    return f"{n:,} edge" + ("" if n == 1 else "s")


def _check_callable(value: object, what: str) -> None:
    if value is not None and not callable(value):
        raise ValidationError(
            f"{what} must be a function or None, not {type(value).__name__} {value!r}",
            hint=f"pass a callable as {what}=..., or leave it out",
            field=what,
        )


def _check_bool(value: object, what: str, meaning: str) -> None:
    """ValidationError naming ``what`` unless ``value`` is True or False: a flag given as
    "no", "false" or 0/1 was read by its truth (``force="no"`` replaced the files in the way)."""
    if not isinstance(value, bool):
        raise ValidationError(
            f"{what} must be True or False, not {type(value).__name__} {value!r}"[:300],
            hint=f"pass {what}=True or {what}=False ({meaning})",
            field=what,
        )


def _check_pairs(value: object, what: str, shape: str) -> None:
    """ValidationError naming ``what`` unless ``value`` is a list or tuple of 2-item lists or
    tuples (``for a, b in value`` would raise TypeError/ValueError, or split a str)."""
    if not isinstance(value, list | tuple) or not all(
        isinstance(p, list | tuple) and len(p) == 2 for p in value
    ):
        raise ValidationError(
            f"{what} must be a list of {shape}, not {value!r}"[:300],
            hint=f"pass e.g. {what}=[(a, b), ...]",
            field=what,
        )


def _jsonable(meta: dict[str, Any]) -> dict[str, Any]:
    import json

    try:
        # allow_nan=False: NaN and Infinity are no JSON (PostgreSQL's JSON columns refuse them)
        return dict(json.loads(json.dumps(meta, allow_nan=False)))
    except RecursionError:  # nested past the interpreter's limit
        raise ValidationError(
            "metadata is nested too deeply to store as JSON",
            hint="flatten it: a few levels of dicts and lists",
            field="metadata",
        ) from None
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"metadata is not JSON-serializable: {exc}",
            hint="use str, int, float, bool, lists and dicts",
            field="metadata",
        ) from exc


__all__ = [
    "ConflictError",
    "DatasetDiff",
    "DatasetSummary",
    "DatasetVersion",
    "Datasets",
    "FileChange",
    "GcReport",
    "GetResult",
    "LINEAGE_NODE_KINDS",
    "LINEAGE_ONLY_KINDS",
    "Progress",
    "lineage_node",
]
