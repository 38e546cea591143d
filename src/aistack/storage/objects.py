"""Content-addressed object store on any fsspec filesystem.

Layout under the store root (other areas own ``checkpoints/``, ``mlflow-artifacts/`` ... in the
same root; this module never lists or deletes outside its own prefixes)::

    cas/config.json                 hash algorithm and chunk sizes of this store (written once)
    cas/<algo>/<id[:2]>/<id[2:]>    one object per distinct chunk, named by the hash of its bytes
    cas/tmp/<uuid>                  local backend only: objects being written (renamed when done)
    cas/trash/<id>.<pid>-<thread>   local backend only: an object gc is deleting (for microseconds)

Writes are atomic: on a local directory an object is written under ``cas/tmp`` and renamed into
place (``os.replace``); a chunk of a local source file is copied by the kernel
(``copy_file_range``, after its bytes were hashed) instead of through a Python buffer, into
blocks reserved beforehand (``posix_fallocate``, objects of 1 MiB and up); on S3 a PUT (or a
completed multipart upload) is atomic by itself; the
memory fake stores whole values. Every read is hashed and compared with the object's name: a
mismatch or a missing object raises :class:`~aistack.errors.IntegrityError` naming the object and
the dataset file it belongs to (:class:`MissingObjectError` for a missing one).

gc against a concurrent add or get (local backend): gc deletes an object by first renaming it
to ``cas/trash`` (atomic), then reading its modification time there: an add that reused the
object (which refreshes that time) before the rename is seen, and the object is put back; an add
that comes after the rename finds it missing and writes it again. A reader that finds an object
missing looks in ``cas/trash`` before saying so, and :meth:`ObjectStore.materialize` that loses
the object between reading it and linking it writes the verified bytes it read. S3 has no
atomic rename: there a gc still deletes an object an add reuses in the milliseconds between
gc's last look and its delete, and says so when the add's version is in the catalog by the end
of its pass (see :mod:`.gc`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import mmap
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aistack.errors import (
    AistackError,
    BackendError,
    ConflictError,
    ConnectionFailed,
    IntegrityError,
    NotFoundError,
    ValidationError,
)
from aistack.storage.backends import Backend
from aistack.storage.hashing import ChunkPolicy, default_algorithm, hasher_factory

log = logging.getLogger(__name__)

PREFIX = "cas"
TMP = "tmp"
TRASH = "trash"
_FICLONE = 0x40049409  # linux/fs.h


class MissingObjectError(IntegrityError):
    """An object (or manifest) is not in the store. Of a live version, the store lost data; a
    reader of a version that was deleted meanwhile tells that apart (``Datasets`` does: gc may
    remove a deleted version's data while it is being read)."""


@dataclass(frozen=True, kw_only=True)
class ObjectInfo:
    oid: str
    size: int
    mtime: float | None


class ObjectStore:
    """Objects named by their hash. Thread-safe for concurrent ``put``/``get``; threads that
    put the same new object at once write it once."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.fs = backend.fs
        self._made_dirs: set[str] = set()
        # whether this store's filesystem clones files (FICLONE); None until first tried. One
        # refusal (ext4: EOPNOTSUPP) stops the attempts: each costs an open, a create and an
        # unlink per file
        self._can_reflink: bool | None = None
        # objects being written by a thread of this store now, each with the Event it sets when
        # done: another thread putting the same bytes waits for it instead of writing them too
        self._writing: dict[str, threading.Event] = {}
        self._writing_lock = threading.Lock()
        cfg = self._load_or_init_config()
        self.algo: str = cfg["hash"]
        self.chunk_policy = ChunkPolicy.from_config(cfg)
        self.chunk_params = self.chunk_policy.small  # files up to min_size are one object
        self._hasher = hasher_factory(self.algo)

    # -- layout ---------------------------------------------------------------------------
    @property
    def root(self) -> str:
        return self.backend.path(PREFIX)

    def key(self, oid: str) -> str:
        return self.backend.path(PREFIX, self.algo, oid[:2], oid[2:])

    def _load_or_init_config(self) -> dict[str, Any]:
        path = self.backend.path(PREFIX, "config.json")
        try:
            raw = self.fs.cat_file(path)
        except FileNotFoundError as exc:
            if self.backend.scheme == "s3" and _no_such_bucket(exc):
                # SeaweedFS made the bucket on the first write below, AWS refused that write:
                # either way a typo in the bucket's name is better named at once
                raise _s3_error(self.backend, exc, missing_bucket=True) from exc
            raw = None
        except Exception as exc:
            if self.backend.scheme != "s3":
                raise
            # the first request to the store: wrong endpoint or credentials end here (they were
            # botocore's traceback)
            raise _s3_error(self.backend, exc) from exc
        if raw is not None:
            try:
                cfg = json.loads(raw)
                cfg["hash"]
                ChunkPolicy.from_config(cfg)
                return dict(cfg)
            except (ValueError, KeyError, TypeError, ValidationError) as exc:
                raise IntegrityError(
                    f"the store configuration {path} is unreadable: {exc}",
                    hint="restore it from a backup or point AISTACK_STORAGE_URL at another root",
                ) from exc
        cfg = {"hash": default_algorithm(), **ChunkPolicy.default().to_config(), "version": 1}
        self._write_atomic(path, json.dumps(cfg, indent=2).encode())
        log.info("initialised object store at %s (hash %s)", self.backend.url, cfg["hash"])
        return cfg

    # -- hashing ----------------------------------------------------------------------------
    def hash_bytes(self, data: bytes | bytearray | memoryview) -> str:
        h = self._hasher()
        h.update(data)
        return str(h.hexdigest())

    # -- writes -----------------------------------------------------------------------------
    def exists(self, oid: str) -> bool:
        key = self.key(oid)
        if self.backend.is_local:
            return os.path.exists(key)
        return bool(self.fs.exists(key))

    def put(self, data: bytes | bytearray | memoryview, oid: str | None = None) -> tuple[str, int]:
        """Store ``data``; returns ``(oid, bytes_written)`` (0 when it was already stored)."""
        if oid is None:
            oid = self.hash_bytes(data)
        key = self.key(oid)
        with self._one_writer(oid):
            if self.backend.is_local:
                if self._keep_existing(key, oid):
                    return oid, 0
            elif self._keep_existing_remote(key, data):
                return oid, 0
            self._write_atomic(key, data)
            return oid, len(data)

    @contextlib.contextmanager
    def _one_writer(self, oid: str) -> Iterator[None]:
        """Run the block as the only thread of this store storing ``oid``: a second thread
        putting the same bytes (two files of one add, a chunk repeated in a file) waits for the
        first one's block to end, then finds the object stored and writes nothing. The lock
        only guards the map of objects in flight, never a write."""
        mine: threading.Event | None = None
        try:  # (from before the entry is made: an interrupt then cannot leave it behind)
            while True:
                with self._writing_lock:
                    done = self._writing.get(oid)
                    if done is None:
                        mine = self._writing[oid] = threading.Event()
                        break
                done.wait()  # then check again: the writer may have failed
            yield
        finally:
            if mine is not None:
                with self._writing_lock:
                    if self._writing.get(oid) is mine:
                        del self._writing[oid]
                mine.set()

    def put_range(self, src_fd: int, offset: int, view: memoryview) -> tuple[str, int]:
        """Store one chunk of an open local file: ``view`` holds its bytes at ``offset``.

        Returns ``(oid, bytes_written)`` like :meth:`put`. The id is the hash of ``view``; on a
        local store the object is then filled by ``copy_file_range`` from ``src_fd`` (a kernel
        copy, no user-space write). If the source no longer has the bytes there (it shrank) this
        raises ConflictError; a caller that may race with writers checks the file afterwards.
        """
        oid = self.hash_bytes(view)
        if not self.backend.is_local:
            return self.put(view, oid)
        key = self.key(oid)
        with self._one_writer(oid):
            if self._keep_existing(key, oid):
                return oid, 0
            self._write_local(key, view, src=(src_fd, offset))
            return oid, len(view)

    def _keep_existing(self, key: str, oid: str) -> bool:
        """Whether local object ``oid`` is already stored intact (then its mtime is refreshed,
        so a concurrent gc, which spares young objects, keeps it).

        An object that a ``get`` hard-linked out (link count > 1), or whose read-only mode was
        lifted (a chmod of a hard-linked copy changes the object too), may have been written
        through that link: it is verified, and a damaged one is reported False so the caller
        writes it again from the bytes in hand (a new file replaces it; the damaged inode
        stays with the outside link) — so adding the data again repairs the store.
        """
        try:
            st = os.stat(key)
        except FileNotFoundError:
            return False
        if st.st_nlink > 1 or st.st_mode & 0o222:
            try:
                self.check(oid)
            except MissingObjectError:  # gc removed it meanwhile
                return False
            except IntegrityError as exc:
                log.warning("stored object %s was damaged (%s); writing it again", oid, exc)
                return False
        try:
            os.utime(key)
        except FileNotFoundError:  # gc removed it since the stat: it is not stored
            return False
        except OSError:
            pass
        return True

    def _keep_existing_remote(self, key: str, data: bytes | bytearray | memoryview) -> bool:
        """Whether object ``key`` is already stored (S3, memory); an old one gets a new
        modification time first, as :meth:`_keep_existing` gives a local one: a gc running
        meanwhile read the live set before this add's version existed, and spares only young
        unreferenced objects (an object of a deleted version, added again, was lost). Old:
        modified :data:`REFRESH_AFTER_S` ago or more, or before the start of an add this
        process runs now (gc keeps, whatever its grace, only what was modified since the
        oldest running add started: an object 2 s old reused unrefreshed was lost to
        ``gc --grace 0``)."""
        try:
            info = self.fs.info(key)
        except FileNotFoundError:
            return False
        from aistack.storage.holds import latest_add_start

        m = _mtime(info)
        start = latest_add_start()
        if m is not None and time.time() - m < REFRESH_AFTER_S and (start is None or m >= start):
            return True
        if self.backend.scheme == "s3":
            try:
                # a copy onto itself (server side, no upload) gives it a new LastModified
                self.fs.setxattr(key, aistack_reused=str(int(time.time())))
                return True
            except OSError as exc:
                log.debug("could not refresh %s in place (%s); writing it again", key, exc)
        self._write_atomic(key, data)
        return True

    def _write_atomic(self, key: str, data: bytes | bytearray | memoryview) -> None:
        if not self.backend.is_local:
            try:
                self.fs.pipe_file(key, bytes(data) if isinstance(data, memoryview) else data)
            except OSError as exc:
                raise BackendError(f"could not write {key} to {self.backend.url}: {exc}") from exc
            return
        self._write_local(key, data)

    def _write_local(
        self,
        key: str,
        data: bytes | bytearray | memoryview,
        *,
        src: tuple[int, int] | None = None,
    ) -> None:
        """Write ``data`` (or copy it from ``src`` = (fd, offset)) to a temp file, rename it."""
        parent = os.path.dirname(key)
        tmpdir = self.backend.path(PREFIX, TMP)
        for d in (parent, tmpdir):
            if d not in self._made_dirs:
                os.makedirs(d, exist_ok=True)
                self._made_dirs.add(d)
        tmp = os.path.join(tmpdir, uuid.uuid4().hex)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
            try:
                if len(data) >= PREALLOCATE_FROM:
                    preallocate(fd, len(data))
                if src is None:
                    pwrite_all(fd, memoryview(data), 0)
                else:
                    _copy_range(src[0], src[1], fd, 0, memoryview(data))
                os.fchmod(fd, 0o444)  # read-only whatever the umask
            finally:
                os.close(fd)
            os.replace(tmp, key)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise BackendError(
                    f"could not write {key}: {exc}",
                    hint="check the free space and permissions of the store "
                    "(`aistack data gc` frees what no version uses)",
                ) from exc
            raise

    # -- reads ------------------------------------------------------------------------------
    def get(self, oid: str, *, context: str = "") -> bytes:
        """The verified bytes of ``oid``; ``context`` names the file for error messages."""
        key = self.key(oid)
        where = f" (file {context})" if context else ""
        try:
            if self.backend.is_local:
                with open(self._open_local(oid), "rb", closefd=True) as f:
                    data = f.read()
            else:
                data = self.fs.cat_file(key)
        except FileNotFoundError as exc:
            raise MissingObjectError(
                f"object {oid}{where} is missing from the store {self.backend.url}",
                hint="the store lost data: re-add the dataset from its source",
                object=oid,
                file=context,
            ) from exc
        self.verify(oid, data, context=context)
        return data

    def verify(self, oid: str, data: bytes | memoryview, *, context: str = "") -> None:
        actual = self.hash_bytes(data)
        if actual != oid:
            where = f" (file {context})" if context else ""
            raise IntegrityError(
                f"object {oid}{where} is corrupted: its bytes hash to {actual} "
                f"(store {self.backend.url}, key {self.key(oid)})",
                hint="the stored copy is damaged; re-add the dataset from its source to repair it",
                object=oid,
                file=context,
            )

    def check(self, oid: str, *, context: str = "") -> int:
        """Verify object ``oid`` without keeping its bytes; returns its size.

        On a local store it is hashed through a read-only mapping (no copy into Python memory).
        """
        if not self.backend.is_local:
            return len(self.get(oid, context=context))
        with self._local_view(oid, context=context) as (_fd, view):
            self.verify(oid, view, context=context)
            return len(view)

    def copy_into(
        self, oid: str, dst_fd: int, dst_offset: int, *, context: str = "", checked: bool = False
    ) -> int:
        """Write the bytes of ``oid`` into ``dst_fd`` at ``dst_offset``; returns their size.

        The object is verified first unless the caller just did (``checked``, after
        :meth:`check`; objects are read-only and never rewritten in place). On a local store the
        kernel copies the bytes (``copy_file_range``), so they never pass through Python.
        Writers into one destination should take turns: parallel writes into one file contend
        on its inode lock, which the kernel spins on (measured: 5x the CPU on this machine).
        """
        if not self.backend.is_local:
            data = self.get(oid, context=context)
            pwrite_all(dst_fd, memoryview(data), dst_offset)
            return len(data)
        with self._local_view(oid, context=context) as (fd, view):
            if not checked:
                self.verify(oid, view, context=context)
            _copy_range(fd, 0, dst_fd, dst_offset, view)
            return len(view)

    def _open_local(self, oid: str) -> int:
        """A read-only fd of local object ``oid``; one that gc is deleting right now (moved to
        ``cas/trash``, maybe about to be put back) is opened there: its bytes are still whole,
        and an open fd keeps them. FileNotFoundError when it is in neither place."""
        try:
            return os.open(self.key(oid), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            try:
                names = os.listdir(self.backend.path(PREFIX, TRASH))
            except OSError:
                names = []
            for name in names:
                if name.partition(".")[0] == oid:
                    with contextlib.suppress(FileNotFoundError):
                        return os.open(
                            self.backend.path(PREFIX, TRASH, name), os.O_RDONLY | os.O_CLOEXEC
                        )
            raise

    @contextlib.contextmanager
    def _local_view(self, oid: str, *, context: str) -> Iterator[tuple[int, memoryview]]:
        """``(fd, read-only mapping)`` of local object ``oid``; a missing object raises the
        MissingObjectError of :meth:`get` that names it."""
        try:
            fd = self._open_local(oid)
        except FileNotFoundError:
            self.get(oid, context=context)  # raises "missing"; returns if it just appeared
            fd = self._open_local(oid)
        try:
            with _mapping(fd) as view:
                yield fd, view
        finally:
            os.close(fd)

    def materialize(self, oid: str, dest: str, *, link: str = "auto", context: str = "") -> str:
        """Put object ``oid`` at local path ``dest`` (replacing it atomically).

        On a local store ``link="auto"`` or ``"hardlink"`` tries a reflink, then a hard link
        (the object is read-only, so the linked file is too), then a copy;
        ``"reflink-or-copy"`` never hard-links; ``"copy"`` always copies. The object is read
        and verified once, first. Returns the method used: "reflink", "hardlink" or "copy".

        An object that gc removes after it was read and before it is linked (a version deleted
        while it is being read, then gc) is not linked: the bytes read are written (a copy).
        """
        # a short name beside dest: dest's own name may be near NAME_MAX
        tmp = os.path.join(os.path.dirname(dest), f".aistack-tmp-{uuid.uuid4().hex[:12]}")
        try:
            data = self.get(oid, context=context)  # verified before it is shared or copied
            if self.backend.is_local and link != "copy":
                key = self.key(oid)
                if self._can_reflink is not False:
                    ok = _reflink(key, tmp)
                    if ok is not None:
                        self._can_reflink = ok
                    if ok:
                        os.replace(tmp, dest)
                        return "reflink"
                if link in ("auto", "hardlink") and _hardlink(key, tmp):
                    os.replace(tmp, dest)
                    return "hardlink"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, dest)
            return "copy"
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    # -- listing / gc -----------------------------------------------------------------------
    def iter_objects(self) -> Iterator[ObjectInfo]:
        base = self.backend.path(PREFIX, self.algo)
        if self.backend.is_local:
            if not os.path.isdir(base):
                return
            for d in os.scandir(base):
                if not d.is_dir():
                    continue
                for e in os.scandir(d.path):
                    st = e.stat()
                    yield ObjectInfo(oid=d.name + e.name, size=st.st_size, mtime=st.st_mtime)
            return
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return
        for path, info in found.items():
            b, p = base.strip("/"), str(path).strip("/")
            if not p.startswith(b + "/"):
                continue
            parts = p[len(b) + 1 :].split("/")
            if len(parts) != 2:
                continue
            yield ObjectInfo(
                oid=parts[0] + parts[1], size=int(info.get("size") or 0), mtime=_mtime(info)
            )

    def mtime_of(self, oid: str) -> float | None:
        """The modification time of object ``oid`` as :meth:`iter_objects` gives it (None
        when it is not there)."""
        key = self.key(oid)
        try:
            if self.backend.is_local:
                return os.stat(key).st_mtime
            return _mtime(self.fs.info(key))
        except FileNotFoundError:
            return None

    def delete_unless_touched(self, oid: str, touched: Callable[[float], bool]) -> bool:
        """Delete object ``oid`` unless ``touched(its mtime)`` says an add reused it (gc);
        True when it is gone (deleted now or already), False when it was kept.

        On a local store the object is first renamed to ``cas/trash`` and judged there: an add
        that refreshed it before the rename is seen (the object is put back), and one after
        the rename finds it missing and writes it again, so no add that reuses the object can
        lose it. Elsewhere (S3 has no atomic rename) the time is read, then the object deleted:
        an add reusing it in between loses it (gc reports that, :mod:`.gc`).
        """
        if not self.backend.is_local:
            m = self.mtime_of(oid)
            if m is not None and touched(m):
                return False
            self.delete(oid)
            return True
        key = self.key(oid)
        trash_dir = self.backend.path(PREFIX, TRASH)
        if trash_dir not in self._made_dirs:
            os.makedirs(trash_dir, exist_ok=True)
            self._made_dirs.add(trash_dir)
        # unique while it is there: one gc thread deletes one object at a time
        trash = f"{trash_dir}/{oid}.{os.getpid()}-{threading.get_ident()}"
        try:
            os.rename(key, trash)
        except FileNotFoundError:  # another gc took it
            return True
        try:
            keep = touched(os.stat(trash).st_mtime)
        except BaseException:
            _put_back(trash, key)
            raise
        if keep:
            _put_back(trash, key)
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(trash)
        return True

    def recover_trash(self, older_than: float) -> int:
        """Put back objects a killed gc left in ``cas/trash`` (renamed there before
        ``older_than``, a time): this gc judges them again. Returns how many."""
        if not self.backend.is_local:
            return 0
        trash_dir = self.backend.path(PREFIX, TRASH)
        try:
            entries = list(os.scandir(trash_dir))
        except FileNotFoundError:
            return 0
        n = 0
        for e in entries:
            oid = e.name.partition(".")[0]
            with contextlib.suppress(OSError):
                if e.stat().st_ctime >= older_than or len(oid) < 3:
                    continue
                _put_back(e.path, self.key(oid))
                n += 1
        return n

    def delete(self, oid: str) -> None:
        key = self.key(oid)
        try:
            if self.backend.is_local:
                os.unlink(key)
            else:
                self.fs.rm_file(key)
        except FileNotFoundError:
            pass

    def stale_tmp(self, older_than_s: float, now: float | None = None) -> list[str]:
        """Leftover temp files of killed writers (local backend only): older than
        ``older_than_s`` at ``now`` (default: the current time; gc gives its own, taken before
        it looked for running adds, so that a file an add wrote since is never stale)."""
        if not self.backend.is_local:
            return []
        tmpdir = self.backend.path(PREFIX, TMP)
        if not os.path.isdir(tmpdir):
            return []
        if now is None:
            now = time.time()
        out = []
        for e in os.scandir(tmpdir):
            with contextlib.suppress(OSError):
                if now - e.stat().st_mtime > older_than_s:
                    out.append(e.path)
        return out


# what an S3 client reads to reach a store, for hints (storage, the trainer's data and
# checkpoints)
S3_CREDENTIALS = (
    "the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) and the "
    "endpoint (AISTACK_S3_ENDPOINT_URL or AWS_ENDPOINT_URL)"
)


def _no_such_bucket(exc: BaseException) -> bool:
    """Whether s3fs's FileNotFoundError ``exc`` is S3's NoSuchBucket (not a missing key)."""
    response = getattr(exc.__cause__, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code == "NoSuchBucket" or "bucket does not exist" in str(exc).lower()


def _s3_error(
    backend: Backend, exc: BaseException, *, missing_bucket: bool = False
) -> AistackError:
    """A clear error for a first request to an S3 store that failed: no such bucket, access
    denied (wrong credentials), or no answer from the endpoint."""
    custom = getattr(backend.fs, "endpoint_url", None)
    endpoint = custom or "AWS's default endpoint"
    bucket = backend.root.split("/", 1)[0]
    reason = f"{type(exc).__name__}: {exc}"
    creds = S3_CREDENTIALS
    if missing_bucket:
        return NotFoundError(
            f"storage {backend.url}: bucket {bucket!r} does not exist at {endpoint}",
            hint=f"create the bucket (e.g. `aws s3 mb s3://{bucket}"
            f"{f' --endpoint-url {custom}' if custom else ''}`) "
            "or fix the bucket's name in AISTACK_STORAGE_URL",
            field="storage_url",
        )
    if isinstance(exc, PermissionError):
        return ValidationError(
            f"storage {backend.url}: the S3 server at {endpoint} denied access ({reason})",
            hint=f"check {creds}, and that this identity may read and write bucket {bucket!r}",
            field="storage_url",
        )
    return ConnectionFailed(
        f"storage {backend.url}: the S3 server at {endpoint} could not be used ({reason})",
        hint=f"check that the S3 server is up and {creds}",
    )


def _mtime(info: dict[str, Any]) -> float | None:
    for k in ("LastModified", "mtime", "created"):
        v = info.get(k)
        if v is None:
            continue
        if hasattr(v, "timestamp"):
            return float(v.timestamp())
        try:
            return float(v)
        except (TypeError, ValueError):
            continue
    return None


@contextlib.contextmanager
def _mapping(fd: int) -> Iterator[memoryview]:
    """A read-only view of the whole file ``fd`` (an empty view for an empty file)."""
    if os.fstat(fd).st_size == 0:
        yield memoryview(b"")
        return
    m = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    view = memoryview(m)
    try:
        yield view
    finally:
        view.release()
        try:
            m.close()
        except BufferError:  # a slice is still alive (only after an error); let GC free it
            pass


_NO_COPY_RANGE = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF)


REFRESH_AFTER_S = 60.0
"""A stored object (S3, memory) older than this that an add uses again gets a new modification
time, so a concurrent gc (grace 300 s and up unless forced) keeps it."""


PREALLOCATE_FROM = 1 << 20
"""Objects of this size and up get their disk blocks reserved before they are written."""


def preallocate(fd: int, n: int, offset: int = 0) -> None:
    """Reserve ``n`` bytes of disk for ``fd`` before writing them, where the filesystem can.
    Kernel copies into allocated blocks skip ext4's delayed allocation; in ad-hoc A/B scripts
    (not bench runs) on the project machine a 2 GiB add was faster with it in 6 runs of 6
    (median 1.174 s vs 1.256 s) and a 2 GiB get (destination preallocated) in 9 of 12
    (medians 1.048 and 1.052 s vs 1.438 and 1.109 s). A filesystem that cannot preallocate
    just writes. ``offset``: reserve the ``n`` bytes from there (a file with holes)."""
    if n > 0 and hasattr(os, "posix_fallocate"):
        with contextlib.suppress(OSError):
            os.posix_fallocate(fd, offset, n)


def pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    done = 0
    while done < len(data):
        # each slice released at once, also when the write fails (a disk full): a live slice
        # of a mapping keeps it from closing (BufferError, hiding the OSError)
        with data[done:] as rest:
            done += os.pwrite(fd, rest, offset + done)


def _copy_range(
    src_fd: int, src_offset: int, dst_fd: int, dst_offset: int, data: memoryview
) -> None:
    """Put the ``len(data)`` bytes of ``src_fd`` at ``src_offset`` (equal to ``data``) into
    ``dst_fd`` at ``dst_offset``: by ``copy_file_range`` where the kernel can, else from ``data``."""
    n = len(data)
    done = 0
    if hasattr(os, "copy_file_range"):
        try:
            while done < n:
                k = os.copy_file_range(
                    src_fd, dst_fd, n - done, src_offset + done, dst_offset + done
                )
                if k == 0:
                    raise ConflictError(
                        "the source file got shorter while it was being copied",
                        hint="add it again once nothing is writing to it",
                    )
                done += k
            return
        except OSError as exc:
            if exc.errno not in _NO_COPY_RANGE:
                raise
    with data[done:] as rest:
        pwrite_all(dst_fd, rest, dst_offset + done)


_NO_REFLINK = (errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.EXDEV, errno.ENOSYS)


def _reflink(src: str, dst: str) -> bool | None:
    """Clone ``src`` to a new ``dst`` (FICLONE). True when cloned; False when this filesystem
    cannot clone (no point trying again); None for another failure (try a link or a copy)."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        with open(src, "rb") as fs_, open(dst, "wb") as fd:
            fcntl.ioctl(fd.fileno(), _FICLONE, fs_.fileno())
        return True
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(dst)
        return False if exc.errno in _NO_REFLINK else None


def _hardlink(src: str, dst: str) -> bool:
    """Hard-link ``src`` to a new ``dst``; False where that cannot be done (another filesystem,
    too many links ...), and when ``src`` is gone (gc removed it): copy instead."""
    try:
        os.link(src, dst)
        return True
    except OSError as exc:
        if exc.errno == errno.ENOENT and os.path.isdir(os.path.dirname(dst)):
            return False  # the object is gone (dst's directory is there)
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
    return False


def _put_back(trash: str, key: str) -> None:
    """Put an object gc moved to ``trash`` back at ``key``, then drop the trash name; an
    object written there again meanwhile (the same bytes) is kept."""
    try:
        os.link(trash, key)
    except FileExistsError:
        pass
    os.unlink(trash)
