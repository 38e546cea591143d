"""gc racing an add: an object that the add uses again after gc listed the store (S3 lists a
whole store at once; a big local store takes a while to walk) is kept."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from aistack.storage import Datasets, objects
from aistack.storage import gc as gc_mod


@pytest.fixture
def ds(local_and_memory_datasets: Datasets) -> Datasets:
    return local_and_memory_datasets


def _later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """gc's clock runs ``seconds`` ahead: every object looks that much older to it (no sleep)."""
    monkeypatch.setattr(
        gc_mod, "time", SimpleNamespace(time=lambda: time.time() + seconds), raising=True
    )


def test_an_object_reused_after_the_listing_is_kept(
    ds: Datasets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Data of a deleted version, added again after gc listed the objects and before it deleted
    them: the add gave the object a new mtime, but gc judged it by the listing's and deleted it,
    so the new version's file was missing ('the store lost data')."""
    monkeypatch.setattr(objects, "REFRESH_AFTER_S", 0.0)  # every reuse refreshes the object
    _later(monkeypatch, 100.0)
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.bin").write_bytes(random.Random(7).randbytes(5000))
    ds.add("g", src)
    ds.delete("g@v1")
    real_iter = ds.store.iter_objects
    added: list[Any] = []

    def listed_then_add() -> Iterator[objects.ObjectInfo]:
        listing = list(real_iter())  # the whole listing first, as S3's find gives it
        added.append(ds.add("g", src))
        yield from listing

    monkeypatch.setattr(ds.store, "iter_objects", listed_then_add)
    report = ds.gc(dry_run=False, grace_s=50.0)
    assert added and added[0].bytes_written == 0  # reused, not uploaded again
    assert report.objects_deleted == 0 and report.objects_young == 1
    assert ds.verify("g@v2") == 5000
    out = ds.get("g@v2", tmp_path / "out")
    assert out.files == 1 and (tmp_path / "out" / "f.bin").stat().st_size == 5000


def test_gc_still_deletes_what_nothing_touched(
    ds: Datasets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _later(monkeypatch, 100.0)
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.bin").write_bytes(b"orphaned")
    ds.add("g", src)
    ds.delete("g@v1")
    report = ds.gc(dry_run=False, grace_s=50.0)
    assert report.objects_deleted == 1 and report.objects_young == 0
    assert report.manifests_deleted == 1
    assert list(ds.store.iter_objects()) == []
