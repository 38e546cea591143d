"""Reading manifests must not leave Arrow's thread pool to abort the process at exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aistack.storage import manifest
from aistack.storage.manifest import FileEntry

SCRIPT = """
import sys
from aistack.storage.manifest import FileEntry, decode, encode
data = encode([FileEntry(path=f"f{i}", size=i, hash="h" * 64) for i in range(20)])
assert len(decode(data)) == 20
print("ok")
"""


THREADS = """
import os
from aistack.storage.manifest import FileEntry, decode, encode
data = encode([FileEntry(path=f"f{i}", size=i, hash="h" * 64) for i in range(20)])
before = sorted(os.listdir("/proc/self/task"))
assert len(decode(data)) == 20
print(len(before), len(os.listdir("/proc/self/task")))
"""


def test_reading_manifests_starts_no_arrow_thread(tmp_path: Path) -> None:
    """read_table(use_threads=False) still pre-buffered on Arrow's I/O pool: a pool thread
    released the Python buffer at exit and aborted `data verify`/`diff` about once in 15."""
    script = tmp_path / "threads.py"
    script.write_text(THREADS)
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-500:]
    before, after = map(int, p.stdout.split())
    assert after == before


def test_a_manifest_reads_back_as_written() -> None:
    entries = [
        FileEntry(path="a", size=1, hash="a" * 64, chunks=("b" * 64,), chunk_sizes=(1,)),
        FileEntry(path="d/x y", size=0, hash="c" * 64, executable=True),
    ]
    assert manifest.decode(manifest.encode(entries)) == entries


def test_a_process_that_read_manifests_exits_cleanly(tmp_path: Path) -> None:
    """With the pool, about one run in five ended in SIGABRT after its work (exit 134)."""
    script = tmp_path / "read.py"
    script.write_text(SCRIPT)
    codes = [
        subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
        for _ in range(12)
    ]
    assert [(p.returncode, p.stdout.strip()) for p in codes] == [(0, "ok")] * 12, [
        p.stderr[-300:] for p in codes if p.returncode
    ]
