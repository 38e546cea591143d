"""gc with a short grace period and adds: an object a running add reuses on a remote store,
a lost manifest of a version added during gc, and objects written just after gc's time."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from aistack.storage import Datasets
from aistack.storage.gc import collect_garbage
from aistack.storage.objects import MissingObjectError


def _src(tmp_path: Path, name: str = "src") -> Path:
    src = tmp_path / name
    src.mkdir()
    (src / "a.txt").write_text("alpha " * 100)
    return src


def test_gc_no_grace_keeps_an_object_a_running_add_reuses_on_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An add reusing a 1.5 s old object on memory:// did not refresh it (only objects 60 s
    old were), and gc --grace 0 during the add deleted it: the version read 'missing'."""
    db = f"sqlite:///{tmp_path / 'aistack.db'}"
    url = f"memory://gcfix-{uuid.uuid4().hex}"
    adder, collector = Datasets.connect(db, url), Datasets.connect(db, url)
    src = _src(tmp_path)
    adder.add("a", src)
    adder.delete("a@v1")
    time.sleep(1.5)
    reports = []
    put = adder.manifests.put

    def gc_first(entries):  # type: ignore[no-untyped-def]
        reports.append(collector.gc(dry_run=False, grace_s=0))
        return put(entries)

    monkeypatch.setattr(adder.manifests, "put", gc_first)
    v = adder.add("b", src)
    assert (reports[0].objects_deleted, reports[0].objects_young) == (0, 1)
    assert adder.verify(v.ref) == v.bytes
    # with no add running, the object (once referenced by nothing) is garbage again
    monkeypatch.undo()
    adder.delete(v.ref)
    time.sleep(1.1)
    assert collector.gc(dry_run=False, grace_s=0).objects_deleted == 1


def test_a_lost_manifest_of_a_version_added_during_gc_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version of this store committed while gc ran whose manifest is missing was skipped
    as 'added to another store'; it is the store's data loss and gc says so."""
    db = f"sqlite:///{tmp_path / 'aistack.db'}"
    url = f"memory://gcfix-{uuid.uuid4().hex}"
    ds = Datasets.connect(db, url)
    junk = _src(tmp_path, "junk")
    ds.add("junk", junk)
    ds.delete("junk@v1")
    time.sleep(1.1)  # older than gc's minimum grace: it is deleted (remote: `gone`)
    late = _src(tmp_path, "late")
    (late / "a.txt").write_text("late data")
    store = ds.store
    iterate = store.iter_objects
    added: list[str] = []

    def add_meanwhile():  # type: ignore[no-untyped-def]
        # an add on another host (no shared lease) commits while gc lists the objects
        v = ds.add("late", late)
        added.append(v.manifest)
        ds.manifests.backend.fs.rm_file(ds.manifests.key(v.manifest))  # and it is lost
        yield from iterate()

    monkeypatch.setattr(store, "iter_objects", add_meanwhile)
    with pytest.raises(MissingObjectError) as exc:
        collect_garbage(
            ds.catalog, store, ds.manifests, dry_run=False, grace_s=0, store_id=ds.store_id
        )
    assert added[0] in exc.value.message
    # a version added meanwhile to another store (its manifest is not here) is left out
    ds.delete("late@v1")
    time.sleep(1.1)
    other = _src(tmp_path, "other")
    (other / "a.txt").write_text("other store's data")
    elsewhere: list[str] = []

    def add_elsewhere():  # type: ignore[no-untyped-def]
        v = ds.add("other", other)
        elsewhere.append(v.manifest)
        ds.manifests.backend.fs.rm_file(ds.manifests.key(v.manifest))
        yield from iterate()

    stores = ds.catalog.manifest_stores
    monkeypatch.setattr(
        ds.catalog,
        "manifest_stores",
        lambda mid: ["s3://elsewhere"] if mid in elsewhere else stores(mid),
    )
    monkeypatch.setattr(store, "iter_objects", add_elsewhere)
    r = collect_garbage(
        ds.catalog, store, ds.manifests, dry_run=False, grace_s=0, store_id=ds.store_id
    )
    assert (r.objects_deleted, r.objects_young) == (1, 1)  # late's; other's is new
