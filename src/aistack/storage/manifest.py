"""Manifests: the file list of one dataset version, stored as Parquet.

Columns: ``path`` (relative POSIX path), ``size`` (bytes), ``hash`` (the file's id: the hash of
its bytes for a one-chunk file, of its chunk list otherwise), ``chunks`` (object ids, in order),
``chunk_sizes`` (bytes). A manifest is itself content-addressed under ``manifests/<algo>/`` and
verified on every read.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from dataclasses import dataclass, field
from typing import Any

from aistack.errors import IntegrityError, ValidationError
from aistack.storage.objects import MissingObjectError, ObjectStore
from aistack.storage.paths import check_relpath

PREFIX = "manifests"

# an object or manifest id is the hex digest of its bytes; one that a manifest or a catalog
# record names becomes a key (a path) in the store, so it may hold letters and digits only:
# never '/', '.', '\\' or NUL ('../../x', '/etc/passwd' read files outside the store)
_OID = re.compile(r"[0-9A-Za-z]+")


def check_oid(oid: object, *, what: str, field: str) -> str:
    """Return ``oid`` if it can be an object id (letters and digits: the hash of the bytes in
    hex), else raise a ValidationError naming ``field``: such ids become keys (paths) in the
    store."""
    if not isinstance(oid, str) or not _OID.fullmatch(oid):
        raise ValidationError(
            f"{what} {oid!r} is not an object id",
            hint="an object id is the hash of the bytes in hex (letters and digits only); "
            "the manifest or catalog record is damaged or was not written by aistack",
            field=field,
        )
    return oid


@dataclass(frozen=True, kw_only=True)
class FileEntry:
    path: str
    size: int
    hash: str
    chunks: tuple[str, ...] = field(default_factory=tuple)
    chunk_sizes: tuple[int, ...] = field(default_factory=tuple)
    executable: bool = False  # the owner's execute bit, restored by a get


def _schema(with_exec: bool = False) -> Any:
    import pyarrow as pa

    cols = [
        ("path", pa.string()),
        ("size", pa.int64()),
        ("hash", pa.string()),
        ("chunks", pa.list_(pa.string())),
        ("chunk_sizes", pa.list_(pa.int64())),
    ]
    if with_exec:
        cols.append(("executable", pa.bool_()))
    return pa.schema(cols)


def encode(entries: list[FileEntry]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    entries = sorted(entries, key=lambda e: e.path)
    # the column only when a file is executable: manifests of other data keep the bytes (and
    # so the ids) they had before it existed, and identical data still shares one manifest
    with_exec = any(e.executable for e in entries)
    cols: dict[str, Any] = {
        "path": [e.path for e in entries],
        "size": [e.size for e in entries],
        "hash": [e.hash for e in entries],
        "chunks": [list(e.chunks) for e in entries],
        "chunk_sizes": [list(e.chunk_sizes) for e in entries],
    }
    if with_exec:
        cols["executable"] = [e.executable for e in entries]
    table = pa.table(cols, schema=_schema(with_exec))
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def decode(data: bytes, *, name: str = "") -> list[FileEntry]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # no Arrow thread at all: with one started, pyarrow (25.0.1 here) aborts the process
        # at exit now and then ("terminate called without an active exception", exit 134,
        # after all the work; apache/arrow#34314, #50482), and `aistack data diff` and
        # `verify` failed so. read_table (the dataset API) pre-buffers on Arrow's I/O pool even
        # with use_threads=False, and a pool thread that drops the last reference to the
        # Python buffer takes the GIL while Python finalizes; ParquetFile over an Arrow
        # BufferReader reads on this thread. A manifest is small, the pools gain nothing.
        table = pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False)
        cols = table.to_pydict()
        execs = cols.get("executable") or [False] * len(cols["path"])
        out = [
            FileEntry(
                path=check_relpath(p, what="file name in the manifest"),
                size=int(s),
                hash=check_oid(h, what=f"hash of {p!r} in the manifest", field="hash"),
                chunks=tuple(
                    check_oid(o, what=f"chunk of {p!r} in the manifest", field="chunks") for o in c
                ),
                chunk_sizes=tuple(int(x) for x in cs),
                executable=bool(x),
            )
            for p, s, h, c, cs, x in zip(
                cols["path"],
                cols["size"],
                cols["hash"],
                cols["chunks"],
                cols["chunk_sizes"],
                execs,
                strict=True,
            )
        ]
    except (pa.ArrowException, KeyError, OSError) as exc:
        raise IntegrityError(f"manifest {name} is unreadable: {exc}", object=name) from exc
    return out


class ManifestStore:
    """Manifests stored beside the objects, under ``manifests/<algo>/<id>.parquet``."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects
        self.backend = objects.backend

    def key(self, mid: str) -> str:
        return self.backend.path(PREFIX, self.objects.algo, f"{mid}.parquet")

    def put(self, entries: list[FileEntry]) -> str:
        data = encode(entries)
        mid = self.objects.hash_bytes(data)
        key = self.key(mid)
        if self.backend.is_local:
            if os.path.exists(key):
                # a version about to reuse it: refresh its mtime, so a concurrent gc (which
                # spares young manifests) keeps it
                with contextlib.suppress(OSError):
                    os.utime(key)
                return mid
            os.makedirs(self.backend.path(PREFIX, self.objects.algo), exist_ok=True)
        # (on object storage written again: small, and its new modification time is what
        # protects it from a concurrent gc)
        self.objects._write_atomic(key, data)
        return mid

    def get(self, mid: str) -> list[FileEntry]:
        key = self.key(check_oid(mid, what="manifest", field="manifest"))
        try:
            data = self.backend.fs.cat_file(key)
        except FileNotFoundError as exc:
            raise MissingObjectError(
                f"manifest {mid} is missing from the store {self.backend.url}",
                hint="the store lost data: re-add the dataset from its source",
                object=mid,
            ) from exc
        actual = self.objects.hash_bytes(data)
        if actual != mid:
            raise IntegrityError(
                f"manifest {mid} is corrupted: its bytes hash to {actual} (key {key})",
                hint="re-add the dataset from its source",
                object=mid,
            )
        return decode(data, name=mid)

    def ids(self) -> list[str]:
        base = self.backend.path(PREFIX, self.objects.algo)
        try:
            names = self.backend.fs.ls(base, detail=False)
        except FileNotFoundError:
            return []
        return [n.rsplit("/", 1)[-1][: -len(".parquet")] for n in names if n.endswith(".parquet")]

    def delete(self, mid: str) -> None:
        try:
            self.backend.fs.rm_file(self.key(mid))
        except FileNotFoundError:
            pass
