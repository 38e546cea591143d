"""Who still reads a version right now: the checks before a reference is dropped.

A reference (``storage_references``) keeps a version from ``aistack data rm`` and gc; it
outlives its holder, so that what was made from the version can be made again. Dropping it
while the holder still runs would let ``data rm`` and gc delete data it is reading, so
:meth:`Datasets.remove_reference <aistack.storage.datasets.Datasets.remove_reference>` and
``remove_references`` (the Python API, and ``aistack data unref`` on top of it) refuse, unless
``force=True``, to drop:

* ``job:ID`` while the ``jobs`` table of the same metadata DB says the job has not finished
  (the aistack server keeps its jobs there, and only its jobs take ``job`` references, at
  submit). No such table (a store used without a server) or no such row: nothing runs it.
* any ``KIND:ID`` that a live process holds a lease on (:func:`hold_reference`): a web-data
  pipeline run (aistack.webdata) holds one on its ``webdata:ID`` from before it references
  its input versions until it ends.

A lease is a file ``<AISTACK_HOME>/leases/<digest of KIND:ID>.lease`` that names its holder
(pid, host, start) and that the holder keeps ``flock``-ed (shared: two holders may share
one). The kernel drops the lock when the holder exits, however it ends, so a dead holder's
file blocks nothing (the next check removes it). The holder's own process may drop the
reference (a run moving its references to its lineage node). A lease only protects against
processes that see the same lease folder: on one machine, or a shared home on a filesystem
with working ``flock``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import logging
import os
import shlex
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aistack.errors import BackendError, ConflictError

log = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # not POSIX: no leases (nothing is held, nothing blocks)
    fcntl = None  # type: ignore[assignment]

# the states in which a job is over (aistack.server.schemas.jobs.FINAL_STATES; a test keeps
# them equal): storage reads the server's table by name and never imports the server
JOB_FINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMEOUT"})

LEASES = "leases"  # the folder under AISTACK_HOME
# flock errors that mean "this filesystem has no locks", not "someone holds it"
_NO_LOCKS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP})

# the lease files this process holds (a count each: they nest): it may drop their references
_held: Counter[Path] = Counter()
_held_lock = threading.Lock()


def default_lease_dir() -> Path:
    from aistack.settings import get_settings

    return get_settings().home / LEASES


def lease_path(directory: Path, kind: str, ident: str) -> Path:
    """The lease file of ``kind:ident`` (named by a digest: an id may hold any printable
    character, ``/`` too)."""
    digest = hashlib.sha256(f"{kind}:{ident}".encode()).hexdigest()[:32]
    return directory / f"{digest}.lease"


@contextlib.contextmanager
def hold_reference(kind: str, ident: str, directory: Path | None = None) -> Iterator[Path]:
    """Hold a lease on the reference ``kind:ident`` while the block runs: no other process can
    drop that reference meanwhile (without ``force``). Take it before the references are
    added; yields the lease file. An unwritable lease folder is a BackendError."""
    if fcntl is None:  # pragma: no cover - not POSIX
        yield lease_path(directory or default_lease_dir(), kind, ident)
        return
    d = directory or default_lease_dir()
    path = lease_path(d, kind, ident)
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = _open_locked(path)
    except OSError as exc:
        if exc.errno in _NO_LOCKS:
            # a filesystem without flock: run unprotected rather than not at all (a lease file
            # left there would read as held for ever, so none is left)
            log.warning(
                "%s does not support file locks (%s): the reference %s:%s is not protected "
                "from `data unref` while this runs",
                d, exc, kind, ident,
            )  # fmt: skip
            with contextlib.suppress(OSError):
                os.unlink(path)
            yield path
            return
        raise BackendError(
            f"could not take the lease {path} on the reference {kind}:{ident}: {exc}",
            hint=f"make {d} writable (it is under AISTACK_HOME)",
        ) from exc
    try:
        me = {
            "kind": kind,
            "id": ident,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        with contextlib.suppress(OSError):  # (only the error messages read it)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
        with _held_lock:
            _held[path] += 1
        try:
            yield path
        finally:
            with _held_lock:
                _held[path] -= 1
                if _held[path] <= 0:
                    del _held[path]
    finally:
        # the last holder removes the file; one still held by another holder stays
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(fd, path):
                os.unlink(path)
        os.close(fd)


def _open_locked(path: Path) -> int:
    """An fd of ``path`` with a shared lock on the file that is at ``path`` now (a file being
    removed by a checker or the last holder is left for a new one)."""
    assert fcntl is not None
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # (a checker holds it exclusively for a moment)
            if _same_file(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


def live_holder(kind: str, ident: str, directory: Path | None = None) -> dict[str, Any] | None:
    """The holder (``{"pid", "host", "since", ...}``) of a lease on ``kind:ident`` held by
    another live process, else None. A lease file nobody holds (its holder died) is removed."""
    if fcntl is None:  # pragma: no cover - not POSIX
        return None
    path = lease_path(directory or default_lease_dir(), kind, ident)
    with _held_lock:
        if _held[path] > 0:
            return None  # this process holds it: it may drop its own reference
    try:
        try:  # for writing: where flock is emulated by POSIX locks (NFS), LOCK_EX needs it
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except PermissionError:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:  # not ours to read (another user's): it cannot be told dead, so it holds
        return {}
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                return {}  # no locks on this filesystem (ENOLCK): it cannot be told dead
        else:  # held by nobody: its holder ended without removing it (killed)
            if _same_file(fd, path):
                with contextlib.suppress(OSError):
                    os.unlink(path)
            return None
        try:
            holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except ValueError:  # being written right now
            holder = {}
        return holder if isinstance(holder, dict) else {}
    finally:
        os.close(fd)


def refuse_held(
    label: str,
    pairs: list[tuple[str, str]],
    job_states: dict[str, str],
    directory: Path | None = None,
) -> None:
    """ConflictError when one of ``pairs`` (references of the version ``label``) belongs to a
    job that has not finished (``job_states``: the ``jobs`` table's states of the job ids) or
    to a live lease holder (:func:`live_holder`); names them all. Nothing is dropped then."""
    busy: list[tuple[str, str]] = []  # (KIND:ID, what it is doing)
    jobs: list[str] = []
    for kind, ident in pairs:
        if kind == "job":
            state = job_states.get(ident)
            if state is not None and state not in JOB_FINAL_STATES:
                busy.append((f"job {ident}", state))
                jobs.append(ident)
                continue
        holder = live_holder(kind, ident, directory)
        if holder is not None:
            by = (
                f"the running process {holder['pid']} on {holder.get('host', '?')}"
                if holder.get("pid")
                else "a running process"
            )
            since = f", since {holder['since']}" if holder.get("since") else ""
            busy.append((f"{kind}:{ident}", f"held by {by}{since}"))
    if not busy:
        return
    one = len(busy) == 1
    who = ", ".join(f"{w} is {s}" for w, s in busy)
    its, it = ("its", "it") if one else ("their", "they")
    ways = []
    if jobs:
        ids = " ".join(shlex.quote(j) for j in jobs)
        ways.append(
            f"wait for the job{'' if len(jobs) == 1 else 's'} to end "
            f"(`aistack wait {shlex.quote(jobs[0])}`) or cancel (`aistack cancel {ids}`)"
        )
    if len(jobs) < len(busy):
        ways.append(
            "let the process end (a web-data pipeline run holds its references until it ends)"
        )
    raise ConflictError(
        f"{who}: {its} reference{'' if one else 's'} to {label} cannot be dropped, since "
        f"`aistack data rm` and gc could then delete data {it} still read"
        f"{'s' if one else ''}; nothing was dropped",
        hint=f"{'; or '.join(ways)}; or drop {its} reference{'' if one else 's'} anyway with "
        "`aistack data unref --force` (Python: force=True)",
        ref=label,
    )


# -- adds in progress, for gc -------------------------------------------------------------------
# An add writes objects (and its manifest) before its version is in the catalog: until then
# only their age keeps gc from deleting them, and `data gc --grace 0 --force` during an add
# left a version without its objects. So an add holds a lease
# ``<AISTACK_HOME>/add-leases/<pid>-<uuid>.lease`` (flock-ed, naming when it started; beside
# the references' ``leases`` folder, see :func:`add_lease_dir`) while it runs, and gc keeps every object and manifest modified since the oldest running add started
# (:func:`oldest_add_start`). An add that starts while gc reads those leases waits on the
# fence file until gc has taken its own time and slept past the filesystem's timestamp
# granularity: its objects are then newer than gc's start, which gc keeps at any grace.
ADDS = "add-leases"
_FENCE = "fence"
# subtracted from an add's start: file timestamps come from a coarse clock (a kernel tick
# behind the real time), so an object written just after the add started may read older
ADD_START_SLACK_S = 1.0
# gc sleeps this long inside the fence after taking its time (longer than a kernel tick)
GC_FENCE_SLEEP_S = 0.03

# the starts of the adds this process runs now (a count each), for the object store: on S3
# and memory:// an add gives an object it reuses a new modification time when it is older
# than the latest of them (:func:`latest_add_start`), so gc, which keeps what was modified
# since the oldest running add started, keeps it
_add_starts: Counter[float] = Counter()
_add_starts_lock = threading.Lock()


def latest_add_start() -> float | None:
    """The start (as its lease records it) of the add this process began last of those still
    running; None when none runs. An object modified before it may be older than a running
    add's start, so an add that reuses it must refresh it."""
    with _add_starts_lock:
        return max(_add_starts) if _add_starts else None


@contextlib.contextmanager
def _running(start: float) -> Iterator[None]:
    with _add_starts_lock:
        _add_starts[start] += 1
    try:
        yield
    finally:
        with _add_starts_lock:
            _add_starts[start] -= 1
            if _add_starts[start] <= 0:
                del _add_starts[start]


@contextlib.contextmanager
def _fence(d: Path, op: int) -> Iterator[None]:
    assert fcntl is not None
    fd = os.open(d / _FENCE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, op)
        yield
    finally:
        os.close(fd)  # (drops the lock)


def add_lease_dir(directory: Path | None = None) -> Path:
    """The folder of the add leases: ``add-leases`` beside the reference lease folder
    ``directory`` (default ``<AISTACK_HOME>/leases``)."""
    return (directory or default_lease_dir()).parent / ADDS


@contextlib.contextmanager
def hold_add(directory: Path | None = None) -> Iterator[float | None]:
    """Hold a lease saying an add is writing objects, from before it writes the first one
    until its version is in the catalog; yields the start it records (None when no lease
    could be taken: a lease folder that cannot be written or locked is warned about, and the
    add runs unprotected, as before)."""
    if fcntl is None:  # pragma: no cover - not POSIX
        yield None
        return
    d = add_lease_dir(directory)
    import time
    import uuid

    fd = -1
    path = d / f"{os.getpid()}-{uuid.uuid4().hex}.lease"
    start = time.time() - ADD_START_SLACK_S
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _fence(d, fcntl.LOCK_SH):  # not while a gc is reading the leases
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            start = time.time() - ADD_START_SLACK_S
            me = {"pid": os.getpid(), "host": socket.gethostname(), "start": start}
            os.pwrite(fd, json.dumps(me).encode(), 0)
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
        log.warning(
            "could not take a lease in %s (%s): a `data gc` with a short grace period "
            "running meanwhile could delete objects this add writes",
            d, exc,
        )  # fmt: skip
        with _running(start):
            yield None
        return
    try:
        with _running(start):
            yield start
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def gc_view_of_adds(
    directory: Path | None = None, clock: Callable[[], float] | None = None
) -> tuple[float, float | None]:
    """For gc: ``(now, oldest)``, where ``now`` is gc's time (``clock()``, default
    ``time.time``) and ``oldest`` the start of the oldest add running (None: none runs). Every
    object an add running now writes or reuses is modified at or after ``oldest`` (a local
    store touches every object an add reuses; on S3 and memory:// an add refreshes each one
    modified before its start, :meth:`aistack.storage.objects.ObjectStore.put`), and every
    object of an add that starts later at or after ``now - ADD_START_SLACK_S``. Lease files of
    dead adds are removed."""
    import time

    clock = clock or time.time
    if fcntl is None:  # pragma: no cover - not POSIX
        return clock(), None
    d = add_lease_dir(directory)
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        fence = _fence(d, fcntl.LOCK_EX)
        fence.__enter__()
    except OSError as exc:
        log.warning("could not lock %s (%s): gc does not see the adds running now", d, exc)
        return clock(), None
    try:
        now = clock()
        starts = [s for s in map(_running_add, d.glob("*.lease")) if s is not None]
        time.sleep(GC_FENCE_SLEEP_S)  # an add let in after this writes after ``now``
    finally:
        fence.__exit__(None, None, None)
    return now, (min(starts) if starts else None)


def _running_add(path: Path) -> float | None:
    """The start of the add holding the lease ``path``; None when its add ended (the file is
    removed). One that cannot be read counts as started at 0: it keeps everything."""
    assert fcntl is not None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        return 0.0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                return 0.0
        else:  # nobody holds it: its add was killed
            with contextlib.suppress(OSError):
                os.unlink(path)
            return None
        try:
            start = json.loads(os.pread(fd, 4096, 0) or b"{}").get("start")
        except (ValueError, AttributeError):
            return 0.0
        return float(start) if isinstance(start, int | float) else 0.0
    finally:
        os.close(fd)
