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


def test_reading_manifests_uses_no_arrow_thread_pool(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import pyarrow.parquet as pq

    seen: list[object] = []
    real = pq.read_table

    def spy(*a, **kw):  # type: ignore[no-untyped-def]
        seen.append(kw.get("use_threads", True))
        return real(*a, **kw)

    monkeypatch.setattr(pq, "read_table", spy)
    data = manifest.encode([FileEntry(path="a", size=1, hash="h" * 64)])
    assert [e.path for e in manifest.decode(data)] == ["a"]
    assert seen == [False]


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
