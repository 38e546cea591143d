"""Adding files to the store: the source files of an ``add`` (:func:`scan`) and the upload
pipeline that chunks them and stores their objects (:func:`upload`), the machinery behind
:meth:`Datasets.add <aistack.storage.datasets.Datasets.add>`.

A big file is read through a mapping under a read lease (:mod:`.sources`); where none can be
had it is read into buffers instead, into the same chunks."""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import stat
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aistack.errors import ConflictError, IntegrityError, ValidationError
from aistack.storage.hashing import (
    ChunkParams,
    chunk_list_hash,
    cut_offsets_parallel,
    read_chunks,
)
from aistack.storage.manifest import FileEntry
from aistack.storage.objects import ObjectStore
from aistack.storage.paths import check_relpath, inside
from aistack.storage.sources import SourceLease

if TYPE_CHECKING:
    from aistack.storage.datasets import Progress


@dataclass(frozen=True, kw_only=True)
class SourceFile:
    rel: str
    path: str
    size: int
    executable: bool = False


def upload(
    store: ObjectStore,
    sources: list[SourceFile],
    total: int,
    progress: Progress | None,
    *,
    workers: int,
) -> tuple[list[FileEntry], int]:
    """Store the objects of ``sources`` (``total`` bytes) in ``store`` with ``workers``
    threads; returns their manifest entries and the bytes newly written (dedup excluded)."""
    small = store.chunk_params.min_size
    chunks: list[dict[int, tuple[str, int]]] = [{} for _ in sources]
    done = 0
    written = 0
    window: deque[Future[tuple[int, int, str, int, int]]] = deque()
    limit = workers * 4
    fresh: list[list[str]] = [[] for _ in sources]  # objects this add wrote, per file

    def put_small(i: int, src: SourceFile) -> tuple[int, int, str, int, int]:
        with _open_source(src) as f:
            data = f.read()
        oid, w = store.put(data)
        return i, 0, oid, len(data), w

    local = store.backend.is_local

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

    with ThreadPoolExecutor(workers, thread_name_prefix="aistack-add") as pool:

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
                with _open_source(src) as f, SourceLease(f.fileno(), src.rel) as held:
                    fd = f.fileno()
                    before = os.fstat(fd)
                    if held.held:
                        lease = held
                        try:
                            put_mapped(held, f, params, partial(submit, i), drain, settle)
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
                    check_unchanged(store, src, before, os.fstat(fd), fresh[i])
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


def put_mapped(
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
    with mapped(f) as buf:
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


def check_unchanged(
    store: ObjectStore,
    src: SourceFile,
    before: os.stat_result,
    after: os.stat_result,
    written: list[str],
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
            store.get(oid)
        except IntegrityError:
            store.delete(oid)
    raise _changed(src.rel)


def scan(path: str | os.PathLike[str]) -> list[SourceFile]:
    """Files under ``path`` (sorted), refusing anything that escapes it."""
    if not isinstance(path, str | os.PathLike) or not isinstance(os.fspath(path), str):
        raise ValidationError(
            f"path {path!r} is not a file or directory path ({type(path).__name__})",
            hint="give the path of a file or directory as a str or pathlib.Path",
            field="path",
        )
    p = os.fspath(path)
    if p == "":
        raise ValidationError(
            "path is empty",
            hint='give the path of an existing file or directory (the current folder is ".")',
            field="path",
        )
    if "\x00" in p:
        raise ValidationError(
            f"path {p!r} contains a NUL character",
            hint="give the path of an existing file or directory",
            field="path",
        )
    if not os.path.exists(p):
        raise ValidationError(
            f"path {p} does not exist", hint="give an existing file or directory", field="path"
        )
    if os.path.isfile(p):
        st = os.stat(p)
        return [
            SourceFile(
                rel=check_relpath(_utf8_name(os.path.basename(os.path.abspath(p)))),
                path=p,
                size=st.st_size,
                executable=bool(st.st_mode & stat.S_IXUSR),
            )
        ]
    if not os.path.isdir(p):
        raise ValidationError(f"{p} is neither a file nor a directory", field="path")
    root = os.path.realpath(p)
    out: list[SourceFile] = []
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
            except OSError as exc:
                raise _unreadable(rel, exc, link=os.path.islink(full)) from None
            if not stat.S_ISREG(st.st_mode):
                raise ValidationError(
                    f"refusing {rel!r}: not a regular file",
                    hint="remove sockets, pipes and devices",
                    path=rel,
                )
            out.append(
                SourceFile(
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


def _walk(top: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(top, followlinks=False)`` without recursion (Python 3.11's recurses per level,
    so a tree deeper than ~1,000 directories raised RecursionError). Top-down; symlinks to
    directories are listed in ``dirnames`` and not entered."""
    stack = [top]
    while stack:
        d = stack.pop()
        dirs: list[str] = []
        files: list[str] = []
        try:
            with os.scandir(d) as it:
                for entry in it:
                    try:
                        is_dir = entry.is_dir()
                    except OSError:
                        is_dir = False
                    (dirs if is_dir else files).append(entry.name)
        except OSError as exc:  # unreadable, or removed since its parent was listed
            rel = Path(os.path.relpath(d, top)).as_posix()
            raise _unreadable(rel if rel != "." else top, exc, what="directory") from None
        yield d, dirs, files
        for name in reversed(dirs):
            full = os.path.join(d, name)
            if not os.path.islink(full):
                stack.append(full)


def _unreadable(rel: str, exc: OSError, *, what: str = "file", link: bool = False) -> Exception:
    """The error for a source ``rel`` that :func:`scan` or :func:`upload` cannot read: a
    ValidationError naming it (a symlink loop, a dangling symlink, no permission), or the
    ConflictError of a file removed while the add ran."""
    if exc.errno == errno.ELOOP:
        return ValidationError(
            f"refusing {rel!r}: it is a symlink loop (it leads back to itself)",
            hint="remove the link, or point it at a file inside the dataset directory",
            path=rel,
        )
    if isinstance(exc, FileNotFoundError):
        if link:
            return ValidationError(
                f"refusing {rel!r}: broken symlink ({os.readlink(exc.filename)})"
                if exc.filename and os.path.islink(exc.filename)
                else f"refusing {rel!r}: broken symlink",
                hint="remove the link or restore its target",
                path=rel,
            )
        return ConflictError(
            f"{rel} was removed while it was being added",
            hint="add it again once nothing is changing the directory",
            path=rel,
        )
    if isinstance(exc, PermissionError):
        return ValidationError(
            f"cannot read {what} {rel!r}: permission denied",
            hint=f"give this user read access to it (chmod u+r{'x' if what == 'directory' else ''}), "
            "or move it out of the directory being added",
            path=rel,
        )
    return ValidationError(
        f"cannot read {what} {rel!r}: {exc.strerror or exc}",
        hint="fix or remove it, then add again",
        path=rel,
    )


@contextlib.contextmanager
def _open_source(src: SourceFile) -> Iterator[Any]:
    """``open(src.path, "rb")``; a file that is gone or unreadable by now is the error of
    :func:`_unreadable` naming it, not an OSError from a worker thread."""
    try:
        f = open(src.path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise _unreadable(src.rel, exc) from None
    with f:
        yield f


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
def mapped(f: Any) -> Iterator[Any]:
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
