"""A source file that another process truncates or writes while ``add`` reads it.

``add`` maps big files; reading a mapping past a new end of its file raises SIGBUS, which kills
the process. It now holds a read lease while it maps a file, and reads the file with ``preadv``
where it cannot take one. The adds that could crash run in child processes, so that the test
itself survives on code without the lease (there the child dies of SIGBUS, returncode -7).
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ConflictError, NotFoundError
from aistack.storage import Datasets
from aistack.storage.hashing import ChunkParams, ChunkPolicy, cut_offsets, digest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="file leases and SIGBUS are Linux behaviour"
)

MiB = 1024 * 1024
SIZE = 48 * MiB

CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from aistack.errors import ConflictError
    from aistack.storage import Datasets
    db, store, src, marker, go = sys.argv[1:6]
    ds = Datasets.connect(db, store)

    def progress(done, total):
        if done > total // 4 and not os.path.exists(marker):
            with open(marker + ".tmp", "w") as f:
                f.write(str(done))
            os.replace(marker + ".tmp", marker)
            deadline = time.monotonic() + 60
            while not os.path.exists(go) and time.monotonic() < deadline:
                time.sleep(0.02)  # parked mid-file until the parent says go

    try:
        ds.add("truncated", src, progress=progress)
    except ConflictError as exc:
        print(json.dumps({"conflict": exc.message, "path": exc.details.get("path")}))
    else:
        print(json.dumps({"conflict": None}))
    """
)

TRUNCATE = "import os, sys; os.truncate(sys.argv[1], int(sys.argv[2]))"


def _source(tmp_path: Path) -> tuple[Path, bytes]:
    src = tmp_path / "src"
    src.mkdir()
    data = random.Random(7).randbytes(SIZE)
    (src / "big.bin").write_bytes(data)
    (src / "small.txt").write_text("small\n")
    return src, data


def _result(proc: subprocess.Popen[bytes], timeout: float = 120) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, (
        f"the add died (returncode {proc.returncode}; -7 is SIGBUS): {err.decode()[-2000:]}"
    )
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def _after_refusal(db: str, store: str, src: Path, data: bytes, tmp_path: Path) -> None:
    """No version, every stored object intact, and the restored file adds."""
    ds = Datasets.connect(db, store)
    with pytest.raises(NotFoundError):
        ds.resolve("truncated")
    for obj in ds.store.iter_objects():
        ds.store.check(obj.oid)  # no object with other bytes than its name says
    (src / "big.bin").write_bytes(data)
    v = ds.add("truncated", src)
    assert v.version == 1
    out = tmp_path / "out"
    ds.get(v.ref, out, link="copy")
    assert (out / "big.bin").read_bytes() == data


def test_truncate_while_the_add_is_parked_mid_file_is_a_conflict_not_a_crash(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'aistack.db'}"
    store = str(tmp_path / "objects")
    src, data = _source(tmp_path)
    marker, go = tmp_path / "marker", tmp_path / "go"
    add = subprocess.Popen(
        [sys.executable, "-c", CHILD, db, store, str(src), str(marker), str(go)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert add.poll() is None, add.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the add never reached the middle of the file"
            time.sleep(0.02)
        # the add is parked in its progress callback, a quarter in: empty the file
        truncator = subprocess.Popen([sys.executable, "-c", TRUNCATE, str(src / "big.bin"), "0"])
        # held back by the lease only until the add stopped reading (the kernel would wait
        # lease-break-time, 45 s by default, for an add that does not answer)
        assert truncator.wait(timeout=30) == 0
        assert (src / "big.bin").stat().st_size == 0
    finally:
        go.touch()
    got = _result(add)
    assert got["path"] == "big.bin"
    assert got["conflict"] == "big.bin changed while it was being added"
    _after_refusal(db, store, src, data, tmp_path)


BUSY_CHILD = textwrap.dedent(
    """
    import json, subprocess, sys, time
    from aistack.errors import ConflictError
    from aistack.storage import Datasets
    from aistack.storage.objects import ObjectStore
    db, store, src, truncate = sys.argv[1:5]
    ds = Datasets.connect(db, store, workers=2)
    put_range = ObjectStore.put_range
    started = []

    def put_range_then_truncate(self, fd, off, view):
        # a quarter in, another process truncates the file while this chunk is stored; no
        # progress callback: the signal finds the main thread waiting for the puts
        if off > len(view) * 8 and not started:
            started.append(subprocess.Popen(
                [sys.executable, "-c", truncate, f"{src}/big.bin", str(1024 * 1024)]
            ))
            time.sleep(1)
        return put_range(self, fd, off, view)

    ObjectStore.put_range = put_range_then_truncate
    try:
        ds.add("truncated", src)
    except ConflictError as exc:
        print(json.dumps({"conflict": exc.message, "path": exc.details.get("path"),
                          "truncator": started[0].wait(timeout=30)}))
    else:
        print(json.dumps({"conflict": None}))
    """
)


def test_truncate_while_the_add_runs_stops_it_at_the_next_chunk(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'aistack.db'}"
    store = str(tmp_path / "objects")
    src, data = _source(tmp_path)
    add = subprocess.Popen(
        [sys.executable, "-c", BUSY_CHILD, db, store, str(src), TRUNCATE],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    got = _result(add)
    assert got == {
        "conflict": "big.bin changed while it was being added",
        "path": "big.bin",
        "truncator": 0,
    }
    assert (src / "big.bin").stat().st_size == MiB
    _after_refusal(db, store, src, data, tmp_path)


WRITER = textwrap.dedent(
    """
    import os, sys
    fd = os.open(sys.argv[1], os.O_WRONLY)
    print("open", flush=True)
    for line in sys.stdin:
        if line.startswith("truncate"):
            os.ftruncate(fd, int(line.split()[1]))
            print("truncated", flush=True)
    """
)


def _writer(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "open\n"
    return proc


def test_file_open_for_writing_elsewhere_is_read_not_mapped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ds = Datasets.connect(f"sqlite:///{tmp_path / 'aistack.db'}", str(tmp_path / "objects"))
    src, data = _source(tmp_path)
    writer = _writer(src / "big.bin")
    try:
        with caplog.at_level(logging.INFO, logger="aistack.storage"):
            read = ds.add("read", src)
    finally:
        writer.communicate("")
    assert any(
        "big.bin: no read lease (it is open for writing" in r.getMessage()
        and "reading it instead of mapping it" in r.getMessage()
        for r in caplog.records
    ), [r.getMessage() for r in caplog.records]
    mapped = ds.add("mapped", src)  # nothing writes now: leased and mapped
    assert read.manifest == mapped.manifest  # the same chunks, so re-adds deduplicate
    assert mapped.bytes_written == 0
    out = tmp_path / "out"
    ds.get(read.ref, out, link="copy")
    assert (out / "big.bin").read_bytes() == data


READ_CHILD = textwrap.dedent(
    """
    import json, os, sys
    from aistack.errors import ConflictError
    from aistack.storage import Datasets
    db, store, src = sys.argv[1:4]
    ds = Datasets.connect(db, store)
    asked = []

    def progress(done, total):
        # the writer, which had the file open before the add began, truncates it a quarter in
        if done > total // 4 and not asked:
            asked.append(done)
            print("truncate 1048576", flush=True)
            assert sys.stdin.readline() == "truncated\\n"

    try:
        ds.add("truncated", src, progress=progress)
    except ConflictError as exc:
        print(json.dumps({"conflict": exc.message, "path": exc.details.get("path")}))
    else:
        print(json.dumps({"conflict": None}))
    """
)


def test_file_open_for_writing_truncated_during_the_add_is_a_conflict(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'aistack.db'}"
    store = str(tmp_path / "objects")
    src, data = _source(tmp_path)
    writer = _writer(src / "big.bin")
    assert writer.stdin is not None and writer.stdout is not None
    add = subprocess.Popen(
        [sys.executable, "-c", READ_CHILD, db, store, str(src)],
        stdin=writer.stdout,  # the writer answers the add
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert add.stdout is not None
    line = add.stdout.readline().decode()
    assert line == "truncate 1048576\n", add.communicate()[1].decode()[-2000:]
    writer.stdin.write(line)
    writer.stdin.flush()
    got = _result(add)
    writer.communicate("")
    assert got["path"] == "big.bin"
    assert "big.bin" in got["conflict"] and "while it was being" in got["conflict"]
    _after_refusal(db, store, src, data, tmp_path)


def test_add_outside_the_main_thread_reads_the_file_and_chunks_it_the_same(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ds = Datasets.connect(f"sqlite:///{tmp_path / 'aistack.db'}", str(tmp_path / "objects"))
    src, _ = _source(tmp_path)
    got: list[Any] = []
    with caplog.at_level(logging.INFO, logger="aistack.storage"):
        t = threading.Thread(target=lambda: got.append(ds.add("thread", src)))
        t.start()
        t.join(120)
    assert any("outside the main thread" in r.getMessage() for r in caplog.records)
    main = ds.add("main", src)
    assert got[0].manifest == main.manifest
    assert main.bytes_written == 0


def test_sigio_handler_is_chained_during_the_add_and_put_back(tmp_path: Path) -> None:
    ds = Datasets.connect(f"sqlite:///{tmp_path / 'aistack.db'}", str(tmp_path / "objects"))
    src, data = _source(tmp_path)
    mine: list[int] = []
    during: list[Any] = []

    def handler(signum: int, frame: Any) -> None:
        mine.append(signum)

    def progress(done: int, total: int) -> None:
        if not during:
            during.append(signal.getsignal(signal.SIGIO))
            os.kill(os.getpid(), signal.SIGIO)  # the caller's own SIGIO, not a lease break

    before = signal.signal(signal.SIGIO, handler)
    try:
        v = ds.add("chained", src, progress=progress)
        assert signal.getsignal(signal.SIGIO) is handler  # put back
        assert during and during[0] is not handler  # the add's own handler was installed
        assert mine == [signal.SIGIO]  # and passed the caller's signal on
        assert v.version == 1 and v.bytes == len(data) + len("small\n")
    finally:
        signal.signal(signal.SIGIO, before)
    ds.add("default", src)
    assert signal.getsignal(signal.SIGIO) == before


# -- the reading chunker: the boundaries of the mapped path ----------------------------------
POLICY = ChunkPolicy.default()
PARAMS = {
    "small": POLICY.small,
    "large": POLICY.large,
    "huge (skips)": POLICY.huge,
    "tiny": ChunkParams(min_size=4096, avg_size=16384, max_size=65536),
}


def _shapes() -> dict[str, bytes]:
    rnd = random.Random(11)
    return {
        "random": rnd.randbytes(40 * MiB + 123),
        "zeros": bytes(40 * MiB),
        "mixed": rnd.randbytes(5 * MiB)
        + bytes(17 * MiB)
        + rnd.randbytes(3 * MiB + 7)
        + bytes(9 * MiB),
        "short": rnd.randbytes(100_000),
    }


@pytest.mark.parametrize("params", list(PARAMS.values()), ids=list(PARAMS))
def test_read_chunks_equal_the_mapped_chunks(tmp_path: Path, params: ChunkParams) -> None:
    from aistack.storage.hashing import read_chunks

    for name, data in _shapes().items():
        path = tmp_path / name
        path.write_bytes(data)
        want = [(o, n, digest("blake3", data[o : o + n])) for o, n in cut_offsets(data, params)]
        fd = os.open(path, os.O_RDONLY)
        try:
            for segment in (None, params.max_size + 1, 3 * params.max_size + 12_345):
                got = [
                    (o, len(v), digest("blake3", v))
                    for o, v in read_chunks(fd, len(data), params, segment=segment)
                ]
                assert got == want, (name, segment)
        finally:
            os.close(fd)


def test_read_chunks_of_a_file_that_shrank_is_a_conflict(tmp_path: Path) -> None:
    from aistack.storage.hashing import read_chunks

    path = tmp_path / "f"
    path.write_bytes(random.Random(1).randbytes(3 * MiB))
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(ConflictError, match="got shorter while it was being read"):
            list(read_chunks(fd, 4 * MiB, POLICY.small, segment=MiB))
    finally:
        os.close(fd)
