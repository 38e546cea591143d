"""``taskfiles.atomic_write``: a failed write removes its ``.tmp`` and leaves the old file as it
was (the ``.tmp`` was left beside it), and the data is fsynced before the rename, the folder
after it (it was never fsynced: a crash could leave an empty file a ``.done`` record vouched
for)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from aistack.webdata import taskfiles
from aistack.webdata.taskfiles import atomic_write, write_done


def _calls(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[tuple[str, bytes | None]]:
    """Record each fsync: ``("file", bytes at path then)`` or ``("folder", None)``."""
    seen: list[tuple[str, bytes | None]] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            seen.append(("folder", None))
        else:
            seen.append(("file", path.read_bytes() if path.exists() else None))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def test_data_is_fsynced_before_the_rename_and_the_folder_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "00000.jsonl.gz"
    path.write_bytes(b"old")
    seen = _calls(monkeypatch, path)
    atomic_write(path, b"new")
    # the file's fsync ran while the old file was still at the path; the folder's after
    assert seen == [("file", b"old"), ("folder", None)]
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000.jsonl.gz"]


def test_done_records_are_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "00003.done"
    seen = _calls(monkeypatch, path)
    write_done(path, {"docs": 3})
    assert seen == [("file", None), ("folder", None)]
    assert path.read_text() == '{"docs": 3}'


def test_a_failed_rename_removes_the_tmp_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "00000.npy"
    path.write_bytes(b"old")

    def replace(src: object, dst: object) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="I/O error"):
        atomic_write(path, b"new")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000.npy"]  # no .tmp left


def test_a_failed_write_removes_the_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "00000.npy"
    path.write_bytes(b"old")

    def fsync(fd: int) -> None:  # the disk fills up as the data is flushed
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, b"new")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000.npy"]


def test_a_folder_at_the_path_leaves_no_tmp(tmp_path: Path) -> None:
    path = tmp_path / "00000.done"
    path.mkdir()
    with pytest.raises(OSError):
        atomic_write(path, b"{}")
    assert path.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00000.done"]


def test_a_folder_that_cannot_be_fsynced_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.fsync

    def fsync(fd: int) -> None:  # as some filesystems answer for a folder
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write(tmp_path / "x", b"data")
    assert (tmp_path / "x").read_bytes() == b"data"


def test_sync_false_skips_the_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # (one file per input file of a dataset input: a re-run writes again one that is not whole)
    path = tmp_path / "ref"
    seen = _calls(monkeypatch, path)
    taskfiles.atomic_write(path, b"ref", sync=False)
    assert seen == [] and path.read_bytes() == b"ref"
