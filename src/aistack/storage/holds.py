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
from collections.abc import Iterator
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
