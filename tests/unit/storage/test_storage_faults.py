"""Faults across processes: kill -9 in the middle of an upload, concurrent adds from processes."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import NotFoundError
from aistack.storage import Datasets

CHILD = textwrap.dedent(
    """
    import os, sys, time
    from aistack.storage import Datasets
    db, store, src, marker = sys.argv[1:5]
    ds = Datasets.connect(db, store)
    def progress(done, total):
        if done > total // 4 and not os.path.exists(marker):
            open(marker, "w").write(str(done))
            time.sleep(120)  # parked mid-upload until the parent kills us
    ds.add("killed", src, progress=progress)
    """
)


def kill_mid_upload(
    db: str, store: str, src: Path, tmp_path: Path, env: dict[str, str] | None = None
) -> int:
    """Start an add in a child, SIGKILL it once a quarter of the bytes are stored."""
    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, db, store, str(src), str(marker)],
        env={**os.environ, **(env or {})},
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "child never reached the middle of the upload"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return int(marker.read_text())


def big_source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(24 * 1024 * 1024))
    for i in range(50):
        (src / f"small-{i:03d}.txt").write_text(f"file {i}\n" * 20)
    return src


def test_kill_9_mid_upload_leaves_no_version_and_next_add_succeeds(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'aistack.db'}"
    store = str(tmp_path / "objects")
    src = big_source(tmp_path)
    stored_before_kill = kill_mid_upload(db, store, src, tmp_path)
    assert stored_before_kill > 0
    ds = Datasets.connect(db, store)
    with pytest.raises(NotFoundError):
        ds.resolve("killed")
    assert ds.ls() == []
    v = ds.add("killed", src)
    assert v.version == 1
    assert v.bytes_written is not None and v.bytes_written < v.bytes  # reused what was stored
    out = tmp_path / "out"
    ds.get(v.ref, out, link="copy")
    assert (out / "big.bin").read_bytes() == (src / "big.bin").read_bytes()
    assert len(list(out.iterdir())) == 51
    # leftovers of the killed writer are collectable, live data is not touched
    ds.gc(dry_run=False, grace_s=0)
    ds.verify(v.ref)


def _child_add(db: str, store: str, src: str, barrier: Any, q: Any) -> None:
    try:
        ds = Datasets.connect(db, store)
        barrier.wait(timeout=60)
        v = ds.add("shared-name", src)
        q.put(("ok", v.version, src))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        q.put(("error", repr(exc), src))


def concurrent_process_adds(db: str, store: str, tmp_path: Path, n: int = 4) -> list[Any]:
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(n)
    q = ctx.Queue()
    srcs = []
    for i in range(n):
        s = tmp_path / f"src{i}"
        s.mkdir()
        (s / "part.txt").write_text(f"process {i}\n" * 100)
        srcs.append(str(s))
    procs = [ctx.Process(target=_child_add, args=(db, store, s, barrier, q)) for s in srcs]
    for p in procs:
        p.start()
    results = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return results


def test_concurrent_adds_from_processes_get_distinct_versions(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'aistack.db'}"
    store = str(tmp_path / "objects")
    results = concurrent_process_adds(db, store, tmp_path)
    assert [r for r in results if r[0] != "ok"] == []
    assert sorted(r[1] for r in results) == [1, 2, 3, 4]
    ds = Datasets.connect(db, store)
    for _, version, src in results:
        assert (
            ds.open(f"shared-name@v{version}").cat("part.txt")
            == (Path(src) / "part.txt").read_bytes()
        )
