"""A read-only fsspec filesystem over one dataset version (``Datasets.open(ref)``).

Paths are the manifest's relative paths (a leading "/" is ignored). Reading a range fetches only
the chunks that cover it, each verified against its hash; nothing is copied to local disk.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from aistack.errors import NotSupportedError
from aistack.storage.manifest import FileEntry
from aistack.storage.objects import ObjectStore


class ReadOnlyError(NotSupportedError, PermissionError):
    """Raised on any attempt to change a dataset version (versions are immutable)."""


class VersionFileSystem(AbstractFileSystem):  # type: ignore[misc]
    protocol = "aistack-dataset"
    cachable = False
    root_marker = ""

    def __init__(
        self,
        *,
        store: ObjectStore,
        version: Any,
        entries: list[FileEntry],
        reading: Callable[[], AbstractContextManager[Any]] | None = None,
        **kw: Any,
    ):
        """``reading``: a context manager around each object read (``Datasets.open`` passes
        one that tells a version deleted and garbage-collected meanwhile from lost data)."""
        super().__init__(**kw)
        self.store = store
        self.version = version
        self._reading = reading or contextlib.nullcontext
        self._files = {e.path: e for e in entries}
        self._children: dict[str, set[str]] = {"": set()}
        for p in self._files:
            parts = p.split("/")
            for i in range(len(parts)):
                parent = "/".join(parts[:i])
                child = "/".join(parts[: i + 1])
                self._children.setdefault(parent, set()).add(child)
                if i < len(parts) - 1:
                    self._children.setdefault(child, set())
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<VersionFileSystem {self.version.ref} ({len(self._files)} files)>"

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        path = str(path)
        if path.startswith(cls.protocol + "://"):
            path = path[len(cls.protocol) + 3 :]
        return path.strip("/")

    def _info(self, path: str) -> dict[str, Any]:
        if path in self._files:
            e = self._files[path]
            return {"name": path, "size": e.size, "type": "file", "hash": e.hash}
        if path in self._children:
            return {"name": path, "size": 0, "type": "directory"}
        raise FileNotFoundError(f"{path!r} is not in {self.version.ref}")

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._info(self._strip_protocol(path))

    def ls(self, path: str = "", detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        if path in self._files:
            out = [self._info(path)]
        elif path in self._children:
            out = [self._info(c) for c in sorted(self._children[path])]
        else:
            raise FileNotFoundError(f"{path!r} is not in {self.version.ref}")
        return out if detail else [o["name"] for o in out]

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> VersionFile:
        path = self._strip_protocol(path)
        if mode != "rb":
            self._readonly(f"open {path!r} with mode {mode!r}")
        if path not in self._files:
            if path in self._children:
                raise IsADirectoryError(path)
            raise FileNotFoundError(f"{path!r} is not in {self.version.ref}")
        return VersionFile(
            self,
            path,
            mode="rb",
            block_size=block_size or 4 * 1024 * 1024,
            cache_type="readahead",
            size=self._files[path].size,
            cache_options=cache_options,
        )

    # every mutation is refused
    def _readonly(self, what: str) -> None:
        raise ReadOnlyError(
            f"cannot {what}: {self.version.ref} is an immutable dataset version",
            hint="write a new directory and `aistack data add` it as a new version",
        )

    def rm_file(self, path: str) -> None:
        self._readonly(f"remove {path!r}")

    def _rm(self, path: str) -> None:
        self._readonly(f"remove {path!r}")

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        self._readonly(f"remove {path!r}")

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        self._readonly(f"create directory {path!r}")

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self._readonly(f"create directory {path!r}")

    def mv(self, path1: Any, path2: Any, **kwargs: Any) -> None:
        self._readonly(f"move {path1!r}")

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        self._readonly(f"copy to {path2!r}")

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        self._readonly(f"touch {path!r}")

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        self._readonly(f"write {path!r}")

    # chunk access with a small verified cache
    def _chunk(self, oid: str, context: str) -> bytes:
        with self._cache_lock:
            data = self._cache.get(oid)
            if data is not None:
                self._cache.move_to_end(oid)
                return data
        with self._reading():
            data = self.store.get(oid, context=context)
        with self._cache_lock:
            self._cache[oid] = data
            while len(self._cache) > 4:
                self._cache.popitem(last=False)
        return data

    def read_range(self, path: str, start: int, end: int) -> bytes:
        e = self._files[path]
        end = min(end, e.size)
        if start >= end:
            return b""
        offsets = [0]
        for s in e.chunk_sizes:
            offsets.append(offsets[-1] + s)
        i = bisect.bisect_right(offsets, start) - 1
        out = []
        ctx = f"{self.version.ref}:{path}"
        while i < len(e.chunks) and offsets[i] < end:
            data = self._chunk(e.chunks[i], ctx)
            lo = max(start - offsets[i], 0)
            hi = min(end - offsets[i], len(data))
            out.append(data[lo:hi])
            i += 1
        return b"".join(out)


class VersionFile(AbstractBufferedFile):  # type: ignore[misc]
    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.fs.read_range(self.path, start, end)  # type: ignore[no-any-return]
