"""A read lease on a source file while ``add`` maps it, so no other process can shrink it.

Reading a page of a mapping past the end of its file raises SIGBUS, which kills a Python
process on the spot (no exception, no cleanup). ``add`` maps big source files (the kernel then
hands the chunker and the hashers the page cache directly), so another process truncating a
file being added used to kill the add. With a read lease (``fcntl(F_SETLEASE, F_RDLCK)``, see
``man 2 fcntl``, "Leases") the kernel holds back any other open-for-write or truncate of the
file and tells the holder with SIGIO; the holder stops reading the mapping, waits for the chunk
hashes and copies in flight (milliseconds), and releases the lease: the writer then goes on,
and the add fails with ConflictError, having read nothing past the change. The kernel breaks a
lease by force after ``/proc/sys/fs/lease-break-time`` seconds (45 by default) when its holder
does not answer; the add answers at its next chunk, or at once when the signal finds it in the
caller's progress callback.

Where a lease cannot be taken (not Linux, a caller thread that is not the main one — only that
one can install a signal handler —, a file already open for writing somewhere (EAGAIN), a file
this user does not own without CAP_LEASE (EACCES), a filesystem without leases such as NFS
(EINVAL)) ``add`` reads that file with ``preadv`` instead of mapping it: no SIGBUS possible, the
same chunks (:func:`~aistack.storage.hashing.read_chunks`).
"""

from __future__ import annotations

import errno
import logging
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None  # type: ignore[assignment]

_SETLEASE: int = getattr(fcntl, "F_SETLEASE", 0)  # 0: no leases here (not Linux)
_GETLEASE: int = getattr(fcntl, "F_GETLEASE", 0)
_RDLCK: int = getattr(fcntl, "F_RDLCK", 0)
_UNLCK: int = getattr(fcntl, "F_UNLCK", 2)
_SIGIO: int = getattr(signal, "SIGIO", 0)

_WHY = {
    errno.EAGAIN: "it is open for writing (here or in another process)",
    errno.EACCES: "this user does not own it and lacks CAP_LEASE",
    errno.EPERM: "this user does not own it and lacks CAP_LEASE",
    errno.EINVAL: "its filesystem has no file leases (e.g. NFS), or leases are off "
    "(/proc/sys/fs/leases-enable)",
}


class SourceLease:
    """A read lease on open file ``fd`` (``rel`` names it in logs) for a ``with`` block.

    ``held`` says whether it was taken; when not, ``why`` says why, and the caller must not map
    the file. ``broken`` turns True when another process asked to write or truncate the file:
    the caller then stops reading the mapping, makes sure nothing reads it any more, and the
    lease is released when the block ends. ``stop``, set by the caller, does that (stops the
    chunker, settles the reads in flight); the SIGIO handler calls it itself, and releases the
    lease at once, when the signal finds the main thread ``parked`` (in a caller's callback,
    where it may stay for long). The previous SIGIO handler is called for every SIGIO (signals
    coalesce: one may be the caller's as well) and is put back when the block ends.
    """

    def __init__(self, fd: int, rel: str) -> None:
        self.fd = fd
        self.rel = rel
        self.held = False
        self.broken = False
        self.parked = False
        self.why = ""
        self.stop: Callable[[], None] | None = None
        self._prev: Any = None

    def __enter__(self) -> SourceLease:
        if not (_SETLEASE and _SIGIO and sys.platform.startswith("linux")):
            return self._fallback("file leases are a Linux feature")
        if threading.current_thread() is not threading.main_thread():
            return self._fallback(
                "add() runs outside the main thread, and only the main thread can install "
                "the SIGIO handler a lease needs"
            )
        prev = signal.getsignal(_SIGIO)
        if prev is None:
            return self._fallback("a SIGIO handler was installed outside Python")
        try:
            signal.signal(_SIGIO, self._on_signal)
        except ValueError as exc:  # e.g. a subinterpreter
            return self._fallback(f"cannot install a SIGIO handler: {exc}")
        self._prev = prev
        try:
            fcntl.fcntl(self.fd, _SETLEASE, _RDLCK)
        except OSError as exc:
            signal.signal(_SIGIO, prev)
            return self._fallback(_WHY.get(exc.errno or 0, f"F_SETLEASE failed: {exc}"))
        self.held = True
        return self

    def _fallback(self, why: str) -> SourceLease:
        self.why = why
        log.info("%s: no read lease (%s); reading it instead of mapping it", self.rel, why)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._prev is None:
            return
        self.release()  # first: no lease signal comes after it
        signal.signal(_SIGIO, self._prev)
        self._prev = None

    def release(self) -> None:
        if self.held:
            self.held = False
            try:
                fcntl.fcntl(self.fd, _SETLEASE, _UNLCK)
            except OSError as exc:  # the kernel already broke it (lease-break-time passed)
                log.debug("%s: releasing the lease: %s", self.rel, exc)

    def _breaking(self) -> bool:
        """Whether the kernel is breaking this lease (F_GETLEASE then gives the type it is
        being broken to: F_UNLCK for a writer)."""
        if not self.held:
            return False
        try:
            return bool(fcntl.fcntl(self.fd, _GETLEASE) == _UNLCK)
        except OSError:
            return True

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.broken and self._breaking():
            self.broken = True
            log.warning(
                "%s: another process opened it for writing or truncates it; stopping the add",
                self.rel,
            )
            if self.parked and self.stop is not None:
                # nothing runs in the main thread's loop now: stop the readers, let the writer go
                try:
                    self.stop()
                except Exception:  # the loop stops them when it resumes; the lease waits for it
                    log.exception("%s: stopping the readers of its mapping", self.rel)
                else:
                    self.release()
        if callable(self._prev):
            self._prev(signum, frame)


__all__ = ["SourceLease"]
