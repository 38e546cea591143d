"""Faults across processes: kill -9 in the middle of an upload, concurrent adds from processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from aistack.errors import NotFoundError
from aistack.storage import Datasets
from aistack.storage.contract import big_source, concurrent_process_adds, kill_mid_upload


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
