"""Review of aistack.storage.holds: a lease file left by a killed holder must not block a
reference for good on a filesystem where ``flock`` is emulated with POSIX locks (NFS: an
exclusive lock there needs a file descriptor open for writing, else EBADF)."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

import pytest

from aistack.storage import holds


def _nfs_flock(real):  # type: ignore[no-untyped-def]
    """``fcntl.flock`` with NFS's rule: LOCK_EX on a descriptor not open for writing is EBADF."""

    def flock(fd: int, op: int) -> None:
        if op & fcntl.LOCK_EX and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        real(fd, op)

    return flock


def test_a_dead_holders_lease_blocks_nothing_where_flock_is_nfs_like(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a holder killed while it held the lease leaves its file, unlocked
    path = holds.lease_path(tmp_path, "webdata", "run@abc")
    path.write_text('{"pid": 999999, "host": "h", "since": "2024-01-01T00:00:00+00:00"}')
    monkeypatch.setattr(holds.fcntl, "flock", _nfs_flock(fcntl.flock))

    assert holds.live_holder("webdata", "run@abc", tmp_path) is None
    assert not path.exists()  # the stale file is removed, as on a local filesystem
    holds.refuse_held("d@v1", [("webdata", "run@abc")], {}, tmp_path)  # nothing refused


def test_a_live_holder_still_blocks_where_flock_is_nfs_like(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(holds.fcntl, "flock", _nfs_flock(fcntl.flock))
    path = holds.lease_path(tmp_path, "webdata", "run@abc")
    tmp_path.mkdir(exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # another holder's shared lock
    try:
        os.write(fd, b'{"pid": 4242, "host": "h"}')
        fcntl.flock(fd, fcntl.LOCK_SH)
        assert holds.live_holder("webdata", "run@abc", tmp_path) == {"pid": 4242, "host": "h"}
        assert path.exists()
    finally:
        os.close(fd)


def test_a_filesystem_without_locks_runs_unprotected_and_leaves_no_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """flock failing with ENOLCK (a filesystem without locks) made every web-data run with
    dataset inputs fail; now the run goes on without the lease, says so, and leaves no file
    (one left there would read as held for ever)."""
    import errno

    from aistack.storage import holds

    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(holds.fcntl, "flock", no_locks)
    with caplog.at_level("WARNING", logger="aistack.storage.holds"):
        with holds.hold_reference("webdata", "corpus@abc", tmp_path) as path:
            assert not path.exists()
    assert "does not support file locks" in caplog.text
    assert list(tmp_path.iterdir()) == []
