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
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import mmap
import os
import stat
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

from aistack.errors import (
    AistackError,
    BackendError,
    ConflictError,
    IntegrityError,
    NotFoundError,
    ValidationError,
)
from aistack.settings import Settings, get_settings
from aistack.storage.backends import Backend, open_backend
from aistack.storage.catalog import Catalog, aware, engine_for
from aistack.storage.hashing import (
    ChunkParams,
    chunk_list_hash,
    cut_offsets_parallel,
    read_chunks,
    zero_chunks,
)
from aistack.storage.manifest import FileEntry, ManifestStore
from aistack.storage.objects import ObjectStore, preallocate, pwrite_all
from aistack.storage.paths import blocking_ancestor, check_relpath, inside, safe_dest
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
from aistack.storage.sources import SourceLease

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
class FileChange:
    path: str
    old_size: int | None
    new_size: int | None
    mode: str | None = None  # changed files: "+x" / "-x" when the execute bit changed
    content: bool = True  # changed files: whether the bytes changed (False: the mode only)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "old_size": self.old_size,
            "new_size": self.new_size,
            "mode": self.mode,
            "content": self.content,
        }


@dataclass(frozen=True, kw_only=True)
class DatasetDiff:
    a: str
    b: str
    added: tuple[FileChange, ...]
    removed: tuple[FileChange, ...]
    changed: tuple[FileChange, ...]
    unchanged: int

    @property
    def bytes_added(self) -> int:
        return sum(c.new_size or 0 for c in self.added)

    @property
    def bytes_removed(self) -> int:
        return sum(c.old_size or 0 for c in self.removed)

    @property
    def bytes_changed(self) -> int:
        """Size of the changed files in ``b``."""
        return sum(c.new_size or 0 for c in self.changed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "added": [c.to_dict() for c in self.added],
            "removed": [c.to_dict() for c in self.removed],
            "changed": [c.to_dict() for c in self.changed],
            "unchanged": self.unchanged,
            "bytes_added": self.bytes_added,
            "bytes_removed": self.bytes_removed,
            "bytes_changed": self.bytes_changed,
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


@dataclass(frozen=True, kw_only=True)
class GcReport:
    dry_run: bool
    objects_total: int
    objects_live: int
    objects_deleted: int
    bytes_deleted: int
    objects_young: int
    manifests_deleted: int
    temp_deleted: int
    protected_versions: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True, kw_only=True)
class _SourceFile:
    rel: str
    path: str
    size: int
    executable: bool = False


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
        if_changed: bool = False,
    ) -> DatasetVersion:
        """Store the files under ``path`` as a new immutable version of ``name``.

        With ``if_changed``, data identical to the newest version (same paths, bytes and modes)
        makes no new version: that version is returned (``unchanged=True``), given ``tags``,
        and keeps its own message and metadata, as ``dvc add`` of unchanged data does.

        A big file is read through a mapping under a read lease (:mod:`.sources`): another
        process that opens it for writing or truncates it meanwhile waits until the add has
        stopped reading it (milliseconds), and the add fails with ConflictError. Where no
        lease can be had (a caller thread other than the main one, a file already open for
        writing, NFS, ...) the file is read into buffers instead, into the same chunks."""
        check_name(name)
        tag_names = tuple(check_tag(t) for t in tags)
        if metadata is not None and not isinstance(metadata, dict):
            raise ValidationError("metadata must be a mapping", field="metadata")
        meta = _jsonable(metadata or {})
        sources = scan(path)
        total = sum(s.size for s in sources)
        t0 = time.perf_counter()
        entries, written = self._upload(sources, total, progress)
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
        )

    def _upload(
        self, sources: list[_SourceFile], total: int, progress: Progress | None
    ) -> tuple[list[FileEntry], int]:
        store = self.store
        small = store.chunk_params.min_size
        chunks: list[dict[int, tuple[str, int]]] = [{} for _ in sources]
        done = 0
        written = 0
        window: deque[Future[tuple[int, int, str, int, int]]] = deque()
        limit = self._pool_size() * 4
        fresh: list[list[str]] = [[] for _ in sources]  # objects this add wrote, per file

        def put_small(i: int, src: _SourceFile) -> tuple[int, int, str, int, int]:
            with open(src.path, "rb") as f:
                data = f.read()
            oid, w = store.put(data)
            return i, 0, oid, len(data), w

        local = self.backend.is_local

        def put_chunk(
            i: int, j: int, fd: int, buf: Any, off: int, n: int, lease: SourceLease
        ) -> tuple[int, int, str, int, int]:
            if lease.broken:  # another process waits to shrink the file: read no more of it
                raise CancelledError
            view = memoryview(buf)[off : off + n]
            try:
                if local:  # hashed from the mapping, copied by the kernel
                    oid, w = store.put_range(fd, off, view)
                else:  # the mapping is read once, at once, not after a slow request
                    data = bytes(view)
                    view.release()
                    oid, w = store.put(data)
            except ConflictError as exc:  # the source shrank: say which of the files
                raise _named(exc, sources[i].rel) from exc
            finally:
                view.release()
            if w:
                fresh[i].append(oid)
            return i, j, oid, n, w

        def put_read(i: int, j: int, view: memoryview) -> tuple[int, int, str, int, int]:
            try:  # from the buffer read: the object holds exactly the bytes hashed
                oid, w = store.put(view)
                return i, j, oid, len(view), w
            finally:
                view.release()

        lease: SourceLease | None = None  # of the file being mapped

        stored: set[str] = set()  # objects this add wrote (the store writes each one once)

        def drain(keep: int) -> None:
            nonlocal done, written
            while len(window) > keep:
                i, j, oid, n, w = window.popleft().result()
                chunks[i][j] = (oid, n)
                done += n
                if w and oid not in stored:  # the store holds it once: counted once
                    stored.add(oid)
                    written += w
                if progress:
                    if lease is None:
                        progress(done, total)
                        continue
                    lease.parked = True  # a lease break now stops the readers at once
                    try:
                        progress(done, total)
                    finally:
                        lease.parked = False

        def settle() -> None:
            """Cancel the puts not started; wait for the running ones."""
            for fut in window:
                fut.cancel()
            wait(list(window))

        with ThreadPoolExecutor(self._pool_size(), thread_name_prefix="aistack-add") as pool:

            def submit(i: int, j: int, fd: int, buf: Any, off: int, n: int) -> None:
                assert lease is not None
                window.append(pool.submit(put_chunk, i, j, fd, buf, off, n, lease))
                drain(limit)

            try:
                for i, src in enumerate(sources):
                    if src.size <= small:
                        window.append(pool.submit(put_small, i, src))
                        drain(limit)
                        continue
                    params = store.chunk_policy.for_size(src.size)
                    with open(src.path, "rb") as f, SourceLease(f.fileno(), src.rel) as held:
                        fd = f.fileno()
                        before = os.fstat(fd)
                        if held.held:
                            lease = held
                            try:
                                self._put_mapped(held, f, params, partial(submit, i), drain, settle)
                            finally:
                                lease = None
                        else:  # no lease: a mapping could SIGBUS, so read it into buffers
                            try:
                                for j, (_off, view) in enumerate(read_chunks(fd, src.size, params)):
                                    window.append(pool.submit(put_read, i, j, view))
                                    del view
                                    drain(limit)
                            except ConflictError as exc:
                                raise _named(exc, src.rel) from exc
                            drain(0)
                        self._check_unchanged(src, before, os.fstat(fd), fresh[i])
                drain(0)
            except BaseException:
                for fut in window:
                    fut.cancel()
                raise
        entries: list[FileEntry] = []
        for src, parts in zip(sources, chunks, strict=True):
            ids = tuple(parts[j][0] for j in range(len(parts)))
            sizes = tuple(parts[j][1] for j in range(len(parts)))
            fhash = ids[0] if len(ids) == 1 else chunk_list_hash(store.algo, list(ids))
            entries.append(
                FileEntry(
                    path=src.rel,
                    size=sum(sizes),
                    hash=fhash,
                    chunks=ids,
                    chunk_sizes=sizes,
                    executable=src.executable,
                )
            )
        return entries, written

    @staticmethod
    def _put_mapped(
        lease: SourceLease,
        f: Any,
        params: ChunkParams,
        submit: Callable[[int, int, Any, int, int], None],
        drain: Callable[[int], None],
        settle: Callable[[], None],
    ) -> None:
        """Chunk and store one source file through a mapping, under ``lease``.

        ``submit(j, fd, buf, off, n)`` queues the store of chunk ``j``; ``drain(0)`` waits for
        the queued ones; ``settle()`` cancels those not started and waits for the others. When
        the lease breaks (another process wants to write or truncate the file) no new chunk is
        read, the chunker threads and the puts in flight finish, and ConflictError says the
        file changed; the caller releases the lease after that, so nothing reads the mapping
        past a new end of the file (SIGBUS)."""
        with _mapped(f) as buf:
            fd = f.fileno()
            # boundaries found by chunker threads, exactly the serial ones; closed before the
            # mapping (its threads read it)
            spans = cut_offsets_parallel(buf, params)

            def stop() -> None:
                spans.close()  # waits for the chunker threads
                settle()

            lease.stop = stop
            try:
                for j, (off, n) in enumerate(spans):
                    submit(j, fd, buf, off, n)
                    if lease.broken:  # before the chunker reads on
                        break
                drain(0)  # the mapping must outlive its views
            except CancelledError as exc:  # stop() ran in the lease's signal handler
                if not lease.broken:
                    raise
                raise _changed(lease.rel) from exc
            finally:
                stop()
                lease.stop = None
        if lease.broken:
            raise _changed(lease.rel)

    def _check_unchanged(
        self, src: _SourceFile, before: os.stat_result, after: os.stat_result, written: list[str]
    ) -> None:
        """Refuse a file that changed while it was chunked: an object may then hold other bytes
        than the ones its name was hashed from. Such objects are found and removed. The change
        time is compared too: a writer can put the old mtime back (``touch -r``, ``os.utime``),
        never the ctime."""

        def key(st: os.stat_result) -> tuple[int, int, int]:
            return st.st_size, st.st_mtime_ns, st.st_ctime_ns

        if key(before) == key(after) and after.st_size == src.size:
            return
        for oid in written:
            try:
                self.store.get(oid)
            except IntegrityError:
                self.store.delete(oid)
        raise _changed(src.rel)

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
        if not self.catalog.exists(name):
            self._not_found(name, "versions")
        tags = self.catalog.tags_of(name)
        return [
            self._version(r, tags.get(int(r["version"]), []))
            for r in self.catalog.version_rows(name, include_deleted=deleted)
        ]

    def files(self, ref: str | DatasetVersion) -> list[FileEntry]:
        v = ref if isinstance(ref, DatasetVersion) else self.resolve(ref)
        return self.manifests.get(v.manifest)

    def diff(self, a: str, b: str) -> DatasetDiff:
        va, vb = self.resolve(a), self.resolve(b)
        fa = {e.path: e for e in self.files(va)}
        fb = {e.path: e for e in self.files(vb)}
        added = tuple(
            FileChange(path=p, old_size=None, new_size=fb[p].size)
            for p in sorted(fb.keys() - fa.keys())
        )
        removed = tuple(
            FileChange(path=p, old_size=fa[p].size, new_size=None)
            for p in sorted(fa.keys() - fb.keys())
        )
        both = sorted(fa.keys() & fb.keys())
        changed = tuple(
            FileChange(
                path=p,
                old_size=fa[p].size,
                new_size=fb[p].size,
                mode=None
                if fa[p].executable == fb[p].executable
                else ("+x" if fb[p].executable else "-x"),
                content=fa[p].hash != fb[p].hash,
            )
            for p in both
            if fa[p].hash != fb[p].hash or fa[p].executable != fb[p].executable
        )
        return DatasetDiff(
            a=va.ref,
            b=vb.ref,
            added=added,
            removed=removed,
            changed=changed,
            unchanged=len(both) - len(changed),
        )

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
    ) -> GetResult:
        """Materialize version ``ref`` under ``dest`` (created if missing).

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
        v = self.resolve(ref)
        entries = self.files(v)
        dest_s = os.fspath(dest)
        if os.path.exists(dest_s) and not os.path.isdir(dest_s):
            raise ValidationError(
                f"destination {dest_s} exists and is not a directory",
                hint="give a new or existing directory",
                field="dest",
            )
        if link == "auto" and hasattr(os, "geteuid") and os.geteuid() == 0:
            link = "reflink-or-copy"  # root writes through read-only modes: no shared inodes
        # check everything before writing anything
        umask = _current_umask()
        todo, unchanged, clear = self._plan_get(
            v, dest_s, entries, force=force, umask=umask, copies=link in ("copy", "reflink-or-copy")
        )
        total = sum(e.size for e, _ in todo)
        done = 0
        linked = copied = 0
        store = self.store
        made: set[str] = set()

        def one(e: FileEntry, target: str) -> tuple[int, str]:
            parent = os.path.dirname(target)
            if parent not in made:
                _makedirs(parent)
                made.add(parent)
            if len(e.chunks) == 1:
                if e.hash != e.chunks[0]:
                    raise IntegrityError(
                        f"manifest entry for {e.path} is inconsistent", file=e.path
                    )
                # an executable gets its own inode: its mode is set below, and a hard link
                # would set it on the store's object (and every file linked to it)
                lk = "reflink-or-copy" if e.executable and link != "copy" else link
                method = store.materialize(
                    e.chunks[0], target, link=lk, context=f"{v.ref}:{e.path}"
                )
                if e.executable:
                    _make_executable(target, umask)
                return e.size, method
            return e.size, "copy"

        try:
            # inside the try: a destination under a file, on a read-only or full filesystem
            # is a BackendError with a hint, not a traceback
            os.makedirs(dest_s, exist_ok=True)
            for path, is_dir in clear:  # only with force
                os.rmdir(path) if is_dir else os.unlink(path)
            with ThreadPoolExecutor(self._pool_size(), thread_name_prefix="aistack-get") as pool:
                window: deque[Future[tuple[int, str]]] = deque()

                def drain(keep: int) -> None:
                    nonlocal done, linked, copied
                    while len(window) > keep:
                        n, method = window.popleft().result()
                        done += n
                        if method == "copy":
                            copied += 1
                        else:
                            linked += 1
                        if progress:
                            progress(done, total)

                try:
                    for e, target in todo:
                        if len(e.chunks) == 1:
                            window.append(pool.submit(one, e, target))
                            drain(self._pool_size() * 4)
                            continue
                        _makedirs(os.path.dirname(target))
                        base = done

                        def file_progress(n: int, base: int = base) -> None:
                            if progress:
                                progress(base + n, total)

                        self._get_chunked(pool, v, e, target, file_progress)
                        if e.executable:
                            _make_executable(target, umask)
                        done += e.size
                        copied += 1
                        if progress:
                            progress(done, total)
                    drain(0)
                except BaseException:
                    for fut in window:
                        fut.cancel()
                    raise
        except (AistackError, OSError) as exc:
            raise _partial_get_error(exc, v, dest_s, linked + copied, len(todo)) from exc
        return GetResult(
            version=v,
            dest=dest_s,
            files=len(entries),
            bytes=sum(e.size for e in entries),
            linked=linked,
            copied=copied,
            unchanged=unchanged,
        )

    def _plan_get(
        self,
        v: DatasetVersion,
        dest: str,
        entries: list[FileEntry],
        *,
        force: bool,
        umask: int,
        copies: bool = False,
    ) -> tuple[list[tuple[FileEntry, str]], int, list[tuple[str, bool]]]:
        """What a get must write: ``(entries to write with their targets, files already
        there with the right bytes, paths to clear first (force only; (path, is_dir)))``.
        With ``copies`` (the get makes copies), a file with the right bytes but other hard
        links (an earlier get's link to the store's object, maybe) is written again as a copy
        of its own (to a temporary name, renamed over it: nothing is written through the
        link): the caller asked for files it may change. Raises ConflictError listing what
        is in the way (without force), ValidationError for a path that escapes ``dest``.
        Changes nothing on disk."""
        todo: list[tuple[FileEntry, str]] = []
        unchanged = 0
        conflicts: list[str] = []
        clear: dict[str, bool] = {}
        for e in entries:
            target = safe_dest(dest, e.path)
            blocker = blocking_ancestor(dest, e.path)
            if blocker is not None:
                conflicts.append(f"{blocker} (a file; the version has a directory there)")
                clear[os.path.join(dest, *blocker.split("/"))] = False
            elif os.path.islink(target):
                conflicts.append(f"{e.path} (a symlink)")  # replaced by the file, not followed
            elif os.path.isdir(target):
                if os.listdir(target):
                    raise ConflictError(
                        f"{dest}: {e.path} is a non-empty directory; in {v.ref} it is a file",
                        hint="move that directory away, or get into an empty directory",
                        path=e.path,
                    )
                conflicts.append(f"{e.path} (an empty directory; the version has a file there)")
                clear[target] = True
            elif os.path.exists(target):
                if self._has_bytes(target, e):
                    st = os.stat(target)
                    if copies and st.st_nlink > 1:
                        todo.append((e, target))  # replaced by a copy of its own
                        continue
                    unchanged += 1
                    # the bytes were right; the mode follows the version, as a git checkout
                    # (never on a file with other links: it may be the store's object)
                    if st.st_nlink == 1 and bool(st.st_mode & stat.S_IXUSR) != e.executable:
                        if e.executable:
                            _make_executable(target, umask)
                        else:
                            os.chmod(target, stat.S_IMODE(st.st_mode) & ~0o111)
                    continue
                conflicts.append(f"{e.path} (other bytes)")
            todo.append((e, target))
        if conflicts and not force:
            shown = ", ".join(conflicts[:5]) + (
                f" and {len(conflicts) - 5:,} more" if len(conflicts) > 5 else ""
            )
            raise ConflictError(
                f"{len(conflicts):,} path(s) in {dest} are in the way of {v.ref}: {shown}; "
                "nothing was written",
                hint="pass --force (force=True) to replace them, or get into an empty directory",
                paths=conflicts[:100],
            )
        return todo, unchanged, list(clear.items())

    def _has_bytes(self, path: str, e: FileEntry) -> bool:
        """Whether the local file ``path`` holds exactly the bytes of manifest entry ``e``
        (hashed at the entry's own chunk boundaries)."""
        try:
            if os.stat(path).st_size != e.size:
                return False
            if e.size == 0:
                return self.store.hash_bytes(b"") == e.hash
            with open(path, "rb") as f, _mapped(f) as buf:
                mv = memoryview(buf)
                try:
                    off = 0
                    for oid, n in zip(e.chunks, e.chunk_sizes, strict=True):
                        if self.store.hash_bytes(mv[off : off + n]) != oid:
                            return False
                        off += n
                finally:
                    mv.release()
            return True
        except (OSError, ValueError):
            return False

    def _get_chunked(
        self,
        pool: ThreadPoolExecutor,
        v: DatasetVersion,
        e: FileEntry,
        target: str,
        progress: Callable[[int], Any],
    ) -> None:
        if (
            chunk_list_hash(self.store.algo, list(e.chunks)) != e.hash
            or len(e.chunk_sizes) != len(e.chunks)
            or sum(e.chunk_sizes) != e.size
        ):
            raise IntegrityError(
                f"manifest entry for {v.ref}:{e.path} is inconsistent", file=e.path
            )
        ctx = f"{v.ref}:{e.path}"
        # a short name beside the target (the target's own name may be near NAME_MAX)
        tmp = os.path.join(os.path.dirname(target), f".aistack-tmp-{uuid.uuid4().hex[:12]}")
        store = self.store
        local = self.backend.is_local
        # all-zero chunks are not written: the new file keeps a hole there (a sparse file or a
        # VM image stays sparse); told from the ids, nothing is read
        zero = zero_chunks(store.algo, e.chunks, e.chunk_sizes, self._zero_lengths())
        window: deque[tuple[Future[int | bytes] | None, str, int, int]] = deque()
        ahead = max(4, self._pool_size() * 2)
        n = 0

        def fetch(oid: str) -> int | bytes:
            # verified in the pool; local objects are then copied by the kernel, not held here
            return store.check(oid, context=ctx) if local else store.get(oid, context=ctx)

        def land(fut: Future[int | bytes] | None, oid: str, off: int, want: int) -> None:
            nonlocal n
            if fut is None:  # zeros: a hole of the new file
                n += want
                progress(n)
                return
            got = fut.result()
            size = got if isinstance(got, int) else len(got)
            if size != want:
                raise IntegrityError(
                    f"a chunk of {ctx} has {size} bytes, the manifest says {want}",
                    object=oid,
                    file=e.path,
                )
            # one writer, in order: parallel writes into one file spin on its inode lock
            if isinstance(got, int):
                store.copy_into(oid, fd, off, context=ctx, checked=True)
            else:
                pwrite_all(fd, memoryview(got), off)
            n += size
            progress(n)

        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        # blocks reserved up front, as for objects (see preallocate); not for the holes
        if any(zero):
            off = 0
            for is_zero, size in zip(zero, e.chunk_sizes, strict=True):
                if not is_zero:
                    preallocate(fd, size, off)
                off += size
        else:
            preallocate(fd, e.size)
        try:
            try:
                off = 0
                for oid, size, is_zero in zip(e.chunks, e.chunk_sizes, zero, strict=True):
                    fut = None if is_zero else pool.submit(fetch, oid)
                    window.append((fut, oid, off, size))
                    off += size
                    if len(window) >= ahead:
                        land(*window.popleft())
                while window:
                    land(*window.popleft())
                if any(zero):
                    os.ftruncate(fd, e.size)  # the file's full size, holes included
            finally:
                for fut, *_ in window:
                    if fut is not None:
                        fut.cancel()
                os.close(fd)
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _zero_lengths(self) -> frozenset[int]:
        """The lengths FastCDC gives the chunks of a run of zeros in this store: the
        ``max_size`` of each tier."""
        p = self.store.chunk_policy
        return frozenset(t.max_size for t in (p.small, p.large, p.huge) if t is not None)

    def open(self, ref: str) -> Any:
        """A read-only fsspec filesystem over the files of ``ref`` (reads are verified)."""
        from aistack.storage.vfs import VersionFileSystem

        v = self.resolve(ref)
        return VersionFileSystem(store=self.store, version=v, entries=self.files(v))

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
        check_kind(kind)
        lineage_node(kind, id)
        v = self._resolve(self._explicit_version(ref), allow_deleted=True)
        if not force and any(
            (r["kind"], r["ref_id"]) == (kind, id) for r in self.catalog.references_of(v.id)
        ):
            self._refuse_held(v, [(kind, id)])
        return self.catalog.remove_reference(v.id, kind, id)

    def _refuse_held(self, v: DatasetVersion, pairs: list[tuple[str, str]]) -> None:
        """ConflictError when a holder of one of ``pairs`` still runs (:mod:`.holds`)."""
        from aistack.storage.holds import refuse_held

        states = self.catalog.job_states([i for k, i in pairs if k == "job"])
        refuse_held(v.ref, pairs, states, self.lease_dir)

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
        """Delete a version (its number is never reused); refused while it is referenced."""
        v = self.resolve(self._explicit_version(ref, "delete"))
        self.catalog.delete_version(v.id, v.ref)
        return v

    # -- lineage --------------------------------------------------------------------------------
    def record_lineage(
        self, inputs: list[str], job_id: str, outputs: list[str]
    ) -> list[tuple[str, str]]:
        """Record dataset version → job → dataset version edges (refs are pinned)."""
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
        root = node("dataset", v.ref)
        edges: set[tuple[str, str]] = set()
        for direction in ("up", "down"):
            frontier = {root}
            seen = {root}
            while frontier:
                found = self.catalog.edges_touching(frontier)
                nxt: set[str] = set()
                for s, d in found:
                    if direction == "up" and d in frontier:
                        edges.add((s, d))
                        if s not in seen:
                            nxt.add(s)
                    if direction == "down" and s in frontier:
                        edges.add((s, d))
                        if d not in seen:
                            nxt.add(d)
                seen |= nxt
                frontier = nxt
        nodes = sorted({root} | {n for e in edges for n in e})
        gone = self.catalog.deleted_at_of(
            {p for p in (_dataset_node_version(n) for n in nodes) if p is not None}
        )

        def deleted_at(n: str) -> str | None:
            p = _dataset_node_version(n)
            t = aware(gone.get(p)) if p is not None else None
            return t.isoformat() if t is not None else None

        return {
            "root": root,
            "nodes": [
                {
                    "id": n,
                    "kind": split_node(n)[0],
                    "name": split_node(n)[1],
                    "deleted_at": deleted_at(n),
                }
                for n in nodes
            ],
            "edges": [{"src": s, "dst": d} for s, d in sorted(edges)],
        }

    # -- gc ---------------------------------------------------------------------------------------
    def gc(self, dry_run: bool = True, *, grace_s: float = DEFAULT_GRACE_S) -> GcReport:
        """Delete objects and manifests no live version uses, and stale temp files.

        Objects younger than ``grace_s`` are kept (an add may be writing them). Referenced
        versions cannot be deleted, so their objects are always live. Only ``cas/`` and
        ``manifests/`` under the store root are touched.
        """
        live_m = self.catalog.live_manifests()
        protected = self.catalog.referenced_version_count()
        live: set[str] = set()
        for mid in live_m:
            for e in self.manifests.get(mid):  # raises on a damaged manifest: then delete nothing
                live.update(e.chunks)
        now = time.time()
        total = deleted = young = 0
        freed = 0
        for obj in self.store.iter_objects():
            total += 1
            if obj.oid in live:
                continue
            if obj.mtime is not None and now - obj.mtime < grace_s:
                young += 1
                continue
            deleted += 1
            freed += obj.size
            if not dry_run:
                self.store.delete(obj.oid)
        # read again: a version added meanwhile may reuse a manifest that was not live above
        # (identical data added again after a delete); its add refreshed the manifest's mtime,
        # and every manifest that is not live gets the grace period, as objects do
        live_m = live_m | self.catalog.live_manifests()
        mdel = 0
        for mid in self.manifests.ids():
            if mid in live_m:
                continue
            if self._young_manifest(mid, now, grace_s):
                continue
            mdel += 1
            if not dry_run:
                self.manifests.delete(mid)
        stale = self.store.stale_tmp(grace_s)
        if not dry_run:
            for p in stale:
                with contextlib.suppress(OSError):
                    os.unlink(p)
        return GcReport(
            dry_run=dry_run,
            objects_total=total,
            objects_live=total - deleted - young,
            objects_deleted=deleted,
            bytes_deleted=freed,
            objects_young=young,
            manifests_deleted=mdel,
            temp_deleted=len(stale),
            protected_versions=protected,
        )

    def _young_manifest(self, mid: str, now: float, grace_s: float) -> bool:
        from aistack.storage.objects import _mtime

        try:
            info = self.backend.fs.info(self.manifests.key(mid))
        except FileNotFoundError:
            return False
        if self.backend.is_local:
            m: float | None = float(os.stat(self.manifests.key(mid)).st_mtime)
        else:
            m = _mtime(info)
        return m is None or now - m < grace_s

    def verify(self, ref: str) -> int:
        """Read and verify every object of ``ref``; returns the bytes checked."""
        v = self.resolve(ref)
        n = 0
        for e in self.files(v):
            for oid in e.chunks:
                n += len(self.store.get(oid, context=f"{v.ref}:{e.path}"))
        return n


def _dataset_node_version(n: str) -> tuple[str, int] | None:
    """``("corpus", 3)`` for the lineage node ``dataset:corpus@v3``; None for other nodes."""
    kind, ident = split_node(n)
    name, _, sel = ident.rpartition("@v")
    if kind != "dataset" or not name or not sel.isdigit():
        return None
    return name, int(sel)


def scan(path: str | os.PathLike[str]) -> list[_SourceFile]:
    """Files under ``path`` (sorted), refusing anything that escapes it."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise ValidationError(
            f"path {p} does not exist", hint="give an existing file or directory", field="path"
        )
    if os.path.isfile(p):
        st = os.stat(p)
        return [
            _SourceFile(
                rel=check_relpath(_utf8_name(os.path.basename(os.path.abspath(p)))),
                path=p,
                size=st.st_size,
                executable=bool(st.st_mode & stat.S_IXUSR),
            )
        ]
    if not os.path.isdir(p):
        raise ValidationError(f"{p} is neither a file nor a directory", field="path")
    root = os.path.realpath(p)
    out: list[_SourceFile] = []
    for dirpath, dirnames, filenames in _walk(p):
        for d in list(dirnames):
            full = os.path.join(dirpath, d)
            if os.path.islink(full):
                rel = Path(os.path.relpath(full, p)).as_posix()
                where = "outside the dataset root" if not inside(root, full) else "a directory"
                raise ValidationError(
                    f"refusing {rel!r}: it is a symlink to {where}",
                    hint="replace it with a real directory or remove it",
                    path=rel,
                )
        for fn in filenames:
            full = os.path.join(dirpath, fn)
            rel = _utf8_name(Path(os.path.relpath(full, p)).as_posix())
            check_relpath(rel)
            if os.path.islink(full):
                if not inside(root, full):
                    raise ValidationError(
                        f"refusing {rel!r}: it is a symlink that points outside the dataset root "
                        f"({os.readlink(full)})",
                        hint="copy the target into the dataset directory or remove the link",
                        path=rel,
                    )
            try:
                st = os.stat(full)
            except FileNotFoundError as exc:
                raise ValidationError(f"refusing {rel!r}: broken symlink", path=rel) from exc
            if not stat.S_ISREG(st.st_mode):
                raise ValidationError(
                    f"refusing {rel!r}: not a regular file",
                    hint="remove sockets, pipes and devices",
                    path=rel,
                )
            out.append(
                _SourceFile(
                    rel=rel,
                    path=full,
                    size=st.st_size,
                    executable=bool(st.st_mode & stat.S_IXUSR),
                )
            )
    if not out:
        raise ValidationError(f"{p} contains no files", hint="add files to it first", field="path")
    out.sort(key=lambda s: s.rel)
    return out


def _utf8_name(rel: str) -> str:
    """``rel`` if it encodes as UTF-8 (manifests store names so), else a ValidationError
    before anything is stored."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            f"refusing {rel.encode('utf-8', 'backslashreplace').decode()!r}: its name is "
            "not valid UTF-8 (manifests store names as UTF-8)",
            hint="rename the file, e.g. with `convmv -f latin1 -t utf8`",
            path=rel.encode("utf-8", "backslashreplace").decode(),
        ) from None
    return rel


def _current_umask() -> int:
    """This process's umask, read without changing it (``os.umask`` sets it: a thread creating
    a file meanwhile would get the wrong one); Linux shows it in /proc/self/status."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _make_executable(path: str, umask: int) -> None:
    """Add the execute bits where the file has read bits, as the umask allows (``chmod +x``)."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    os.chmod(path, mode | ((mode & 0o444) >> 2 & ~umask))


def _makedirs(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)`` without recursion (it recurses once per missing
    level: a version 1,000 directories deep raised RecursionError)."""
    missing: list[str] = []
    p = path
    while p and not os.path.isdir(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(d)


def _walk(top: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(top, followlinks=False)`` without recursion (Python 3.11's recurses per level,
    so a tree deeper than ~1,000 directories raised RecursionError). Top-down; symlinks to
    directories are listed in ``dirnames`` and not entered."""
    stack = [top]
    while stack:
        d = stack.pop()
        dirs: list[str] = []
        files: list[str] = []
        with os.scandir(d) as it:
            for entry in it:
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                (dirs if is_dir else files).append(entry.name)
        yield d, dirs, files
        for name in reversed(dirs):
            full = os.path.join(d, name)
            if not os.path.islink(full):
                stack.append(full)


def _partial_get_error(
    exc: AistackError | OSError, v: DatasetVersion, dest: str, written: int, todo: int
) -> AistackError:
    """The error of a get that failed part way, saying how much of ``dest`` it wrote."""
    left = (
        f"; {written:,} of the {todo:,} files to write were written to {dest} before it "
        "(the others are missing or as they were)"
    )
    if isinstance(exc, AistackError):
        return type(exc)(exc.message + left, hint=exc.hint, **exc.details)
    return BackendError(
        f"could not write {v.ref} into {dest}: {exc}{left}",
        hint="check the destination's permissions and free space",
        path=getattr(exc, "filename", None),
    )


def _changed(rel: str) -> ConflictError:
    return ConflictError(
        f"{rel} changed while it was being added",
        hint="add it again once nothing is writing to it",
        path=rel,
    )


def _named(exc: ConflictError, rel: str) -> ConflictError:
    """``exc`` (about "the source file") naming source file ``rel``."""
    return ConflictError(f"{rel}: {exc.message}", hint=exc.hint, path=rel)


@contextlib.contextmanager
def _mapped(f: Any) -> Iterator[Any]:
    size = os.fstat(f.fileno()).st_size
    if size == 0:
        yield b""
        return
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        yield m
    finally:
        try:
            m.close()
        except BufferError:  # a view is still alive (only after an error); let GC free it
            pass


def _jsonable(meta: dict[str, Any]) -> dict[str, Any]:
    import json

    try:
        return dict(json.loads(json.dumps(meta)))
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
