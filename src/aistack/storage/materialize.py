"""Materializing a version into a directory: the machinery behind
:meth:`Datasets.get <aistack.storage.datasets.Datasets.get>` (planning what to write, hard links
or reflinks to the store's objects, copies, chunked files written in order with their holes).
"""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from aistack.errors import AistackError, BackendError, ConflictError, IntegrityError
from aistack.storage.hashing import chunk_list_hash, zero_chunks
from aistack.storage.manifest import FileEntry
from aistack.storage.objects import ObjectStore, preallocate, pwrite_all
from aistack.storage.paths import blocking_ancestor, safe_dest
from aistack.storage.upload import mapped

if TYPE_CHECKING:
    from aistack.storage.datasets import DatasetVersion, Progress


def get_into(
    store: ObjectStore,
    v: DatasetVersion,
    entries: list[FileEntry],
    dest_s: str,
    *,
    link: str,
    force: bool,
    progress: Progress | None,
    workers: int,
) -> tuple[int, int, int]:
    """Write the files ``entries`` of version ``v`` under the directory ``dest_s``, as
    :meth:`Datasets.get <aistack.storage.datasets.Datasets.get>` describes (``link``: "auto",
    "hardlink", "copy" or "reflink-or-copy"), with ``workers`` threads; returns ``(linked,
    copied, unchanged)``."""
    # check everything before writing anything
    umask = _current_umask()
    todo, unchanged, clear = plan_get(
        store,
        v,
        dest_s,
        entries,
        force=force,
        umask=umask,
        copies=link in ("copy", "reflink-or-copy"),
    )
    total = sum(e.size for e, _ in todo)
    done = 0
    linked = copied = 0
    made: set[str] = set()
    created: list[str] = []  # the folders this get made, to remove again if it fails

    def one(e: FileEntry, target: str) -> tuple[int, str]:
        parent = os.path.dirname(target)
        if parent not in made:
            _makedirs(parent, created)
            made.add(parent)
        if len(e.chunks) == 1:
            if e.hash != e.chunks[0]:
                raise IntegrityError(f"manifest entry for {e.path} is inconsistent", file=e.path)
            # an executable gets its own inode: its mode is set below, and a hard link
            # would set it on the store's object (and every file linked to it)
            lk = "reflink-or-copy" if e.executable and link != "copy" else link
            method = store.materialize(e.chunks[0], target, link=lk, context=f"{v.ref}:{e.path}")
            if e.executable:
                _make_executable(target, umask)
            return e.size, method
        return e.size, "copy"

    try:
        # inside the try: a destination under a file, on a read-only or full filesystem
        # is a BackendError with a hint, not a traceback
        _makedirs(dest_s, created)
        for path, is_dir in clear:  # only with force
            os.rmdir(path) if is_dir else os.unlink(path)
        with ThreadPoolExecutor(workers, thread_name_prefix="aistack-get") as pool:
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
                        drain(workers * 4)
                        continue
                    _makedirs(os.path.dirname(target), created)
                    base = done

                    def file_progress(n: int, base: int = base) -> None:
                        if progress:
                            progress(base + n, total)

                    get_chunked(store, pool, v, e, target, file_progress, workers=workers)
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
        _remove_empty(created)  # dest as it was, but for the files written
        raise _partial_get_error(exc, v, dest_s, linked + copied, len(todo)) from exc
    return linked, copied, unchanged


def plan_get(
    store: ObjectStore,
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
            if has_bytes(store, target, e):
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
            hint="pass force=True to replace them, or get into an empty directory",
            paths=conflicts[:100],
        )
    return todo, unchanged, list(clear.items())


def has_bytes(store: ObjectStore, path: str, e: FileEntry) -> bool:
    """Whether the local file ``path`` holds exactly the bytes of manifest entry ``e``
    (hashed at the entry's own chunk boundaries)."""
    try:
        if os.stat(path).st_size != e.size:
            return False
        if e.size == 0:
            return store.hash_bytes(b"") == e.hash
        with open(path, "rb") as f, mapped(f) as buf:
            mv = memoryview(buf)
            try:
                off = 0
                for oid, n in zip(e.chunks, e.chunk_sizes, strict=True):
                    if store.hash_bytes(mv[off : off + n]) != oid:
                        return False
                    off += n
            finally:
                mv.release()
        return True
    except (OSError, ValueError):
        return False


def get_chunked(
    store: ObjectStore,
    pool: ThreadPoolExecutor,
    v: DatasetVersion,
    e: FileEntry,
    target: str,
    progress: Callable[[int], Any],
    *,
    workers: int,
) -> None:
    """Write the file of the chunked entry ``e`` of ``v`` to ``target`` (through a temporary
    file beside it), fetching its chunks in ``pool`` up to ``2 * workers`` ahead."""
    if (
        chunk_list_hash(store.algo, list(e.chunks)) != e.hash
        or len(e.chunk_sizes) != len(e.chunks)
        or sum(e.chunk_sizes) != e.size
    ):
        raise IntegrityError(f"manifest entry for {v.ref}:{e.path} is inconsistent", file=e.path)
    ctx = f"{v.ref}:{e.path}"
    # a short name beside the target (the target's own name may be near NAME_MAX)
    tmp = os.path.join(os.path.dirname(target), f".aistack-tmp-{uuid.uuid4().hex[:12]}")
    local = store.backend.is_local
    # all-zero chunks are not written: the new file keeps a hole there (a sparse file or a
    # VM image stays sparse); told from the ids, nothing is read
    zero = zero_chunks(store.algo, e.chunks, e.chunk_sizes, zero_lengths(store))
    window: deque[tuple[Future[int | bytes] | None, str, int, int]] = deque()
    ahead = max(4, workers * 2)
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


def zero_lengths(store: ObjectStore) -> frozenset[int]:
    """The lengths FastCDC gives the chunks of a run of zeros in this store: the
    ``max_size`` of each tier."""
    p = store.chunk_policy
    return frozenset(t.max_size for t in (p.small, p.large, p.huge) if t is not None)


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


def _makedirs(path: str, created: list[str] | None = None) -> None:
    """``os.makedirs(path, exist_ok=True)`` without recursion (it recurses once per missing
    level: a version 1,000 directories deep raised RecursionError); the folders it makes are
    appended to ``created``."""
    missing: list[str] = []
    p = path
    while p and not os.path.isdir(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    for d in reversed(missing):
        try:
            os.mkdir(d)
        except FileExistsError:
            continue
        if created is not None:
            created.append(d)


def _remove_empty(created: list[str]) -> None:
    """Remove the folders in ``created`` that are still empty, the deepest first."""
    for d in sorted(created, key=lambda d: d.count(os.sep), reverse=True):
        with contextlib.suppress(OSError):  # not empty: a file was written under it
            os.rmdir(d)


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
