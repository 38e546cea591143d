"""A checkpoint that CheckpointStore.save reports written survives a power loss (the folder is
fsynced after the rename), and the temporary file of a writer that was killed (SIGKILL, the OOM
killer) does not stay forever: a store opening the folder removes it, and never the file of a
writer that may still be writing."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from aistack.train import checkpoint as ckmod  # noqa: E402
from aistack.train.checkpoint import CheckpointStore  # noqa: E402

HOUR = 3600.0


def _dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _leftover(folder: Path, name: str, *, age_s: float) -> Path:
    path = folder / name
    path.write_bytes(b"half a checkpoint")
    when = time.time() - age_s
    os.utime(path, (when, when))
    return path


def test_leftovers_of_dead_writers_are_removed_when_a_store_opens_the_folder(
    tmp_path: Path,
) -> None:
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "step_00000004.pt").write_bytes(b"a complete checkpoint, however old")
    os.utime(ck / "step_00000004.pt", (0, 0))
    old = 2 * HOUR  # the grace period is one hour (see CheckpointStore.sweep_leftovers)
    dead = _dead_pid()
    killed = _leftover(ck, f".step_00000008.pt.{dead}.tmp", age_s=old)
    probe = _leftover(ck, f".probe.{dead}.tmp", age_s=old)
    # this pid, but this process writes no such file: a restarted container reuses pids
    mine = _leftover(ck, f".step_00000009.pt.{os.getpid()}.tmp", age_s=old)
    # a dead pid here, but written to a minute ago: maybe a writer on another host or in
    # another PID namespace sharing the folder
    fresh = _leftover(ck, f".step_00000010.pt.{dead}.tmp", age_s=60)
    other = _leftover(ck, "notes.tmp", age_s=old)  # not a name this store writes
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = _leftover(ck, f".step_00000011.pt.{live.pid}.tmp", age_s=old)
        store = CheckpointStore(str(ck))  # the old store left all of them forever
        names = sorted(p.name for p in ck.iterdir())
    finally:
        live.kill()
        live.wait()
    assert not killed.exists() and not probe.exists() and not mine.exists()
    assert names == sorted(["step_00000004.pt", fresh.name, other.name, alive.name])
    assert store.steps() == [4]


def test_a_file_this_process_is_writing_is_never_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CheckpointStore(str(tmp_path / "ck"))
    real_open = store.fs.open
    swept: list[list[str]] = []
    seen: list[list[str]] = []

    def open_then_sweep(path: str, mode: str = "rb", **kw: Any) -> Any:
        fh = real_open(path, mode, **kw)
        if "w" in mode:  # the .tmp exists now: another store opening the folder sweeps
            swept.append(CheckpointStore(str(tmp_path / "ck")).sweep_leftovers(grace_s=-1))
            seen.append(sorted(p.name for p in (tmp_path / "ck").iterdir()))
        return fh

    with monkeypatch.context() as m:
        m.setattr(store.fs, "open", open_then_sweep)
        store.save(3, {"step": 3})
    assert swept == [[]]
    assert seen == [[f".step_00000003.pt.{os.getpid()}.tmp"]]
    assert store.load()["step"] == 3
    # once written, a leftover of this pid is this process's no more
    _leftover(tmp_path / "ck", f".step_00000005.pt.{os.getpid()}.tmp", age_s=0)
    assert store.sweep_leftovers(grace_s=-1) == [
        f"{store.root}/.step_00000005.pt.{os.getpid()}.tmp"
    ]


def test_the_folder_is_fsynced_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CheckpointStore(str(tmp_path / "ck"))
    store.save(1, {"step": 1})  # the folder exists
    folder = os.stat(tmp_path / "ck")
    final = tmp_path / "ck" / "step_00000002.pt"
    calls: list[tuple[str, bool]] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            assert (st.st_dev, st.st_ino) == (folder.st_dev, folder.st_ino)
            calls.append(("dir", final.exists()))
        else:
            calls.append(("file", final.exists()))
        real_fsync(fd)

    monkeypatch.setattr(ckmod.os, "fsync", spy)
    store.save(2, {"step": 2})
    # the file's data before the rename, then the folder (the rename itself) after it; the
    # old store synced the file only
    assert calls == [("file", False), ("dir", True)]


def test_a_folder_that_cannot_be_fsynced_still_saves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync

    def no_dir_fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(22, "Invalid argument")  # as some filesystems answer
        real_fsync(fd)

    monkeypatch.setattr(ckmod.os, "fsync", no_dir_fsync)
    store = CheckpointStore(str(tmp_path / "ck"))
    store.save(1, {"step": 1})
    assert store.load()["step"] == 1
