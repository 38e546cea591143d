"""gc deleting an object at the moment another operation uses it.

* ``materialize`` read and verified an object, then gc removed it before the hard link (or
  reflink) was made: the link failed with a raw ENOENT. Now the bytes it read are written.
* gc read an object's mtime for the last time, then an add reused the object (refreshing that
  time), then gc deleted it: the add's new version was missing it. On a local store gc now
  moves the object to ``cas/trash`` and judges it there (put back when touched); on the memory
  store (as on S3) the loss is reported by gc, naming the object.
* an add found the object stored, then gc removed it before the add refreshed it: the refresh's
  ENOENT was ignored and the version was missing it. Now the add writes it again.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from aistack.errors import ConflictError
from aistack.storage import Datasets, objects
from aistack.storage import gc as gc_mod


@pytest.fixture
def ds(local_and_memory_datasets: Datasets) -> Datasets:
    return local_and_memory_datasets


@pytest.fixture
def local(tmp_path: Path) -> Datasets:
    return Datasets.connect(f"sqlite:///{tmp_path / 'aistack.db'}", str(tmp_path / "objects"))


def _later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """gc's clock runs ``seconds`` ahead: every object looks that much older to it (no sleep)."""
    monkeypatch.setattr(
        gc_mod, "time", SimpleNamespace(time=lambda: time.time() + seconds), raising=True
    )


class _Os:
    """``os`` for :mod:`aistack.storage.objects` that runs ``hook`` once, when one of its
    functions ``names`` is first called on ``path``; ``after``: after that call, else before.
    (Old code removed an object with ``os.unlink``, this one with ``os.rename`` to the trash.)"""

    def __init__(
        self, names: tuple[str, ...], path: str, hook: Callable[[], Any], *, after: bool = False
    ) -> None:
        self._names, self._path, self._hook, self._after = names, path, hook, after
        self.fired = False

    def __getattr__(self, attr: str) -> Any:
        real = getattr(os, attr)
        if attr not in self._names or self.fired:
            return real

        def call(*a: Any, **kw: Any) -> Any:
            if self.fired or not a or os.fspath(a[0]) != self._path:
                return real(*a, **kw)
            self.fired = True
            if not self._after:
                self._hook()
            out = real(*a, **kw)
            if self._after:
                self._hook()
            return out

        return call


def _deleted_version(ds: Datasets, tmp_path: Path) -> tuple[Path, str]:
    """A source of one file added as g@v1 and deleted: its one object is garbage."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.bin").write_bytes(random.Random(7).randbytes(5000))
    ds.add("g", src)
    [e] = ds.files("g@v1")
    ds.delete("g@v1")
    return src, e.chunks[0]


# -- materialize vs gc --------------------------------------------------------------------------
@pytest.mark.parametrize("link", ["auto", "hardlink"])
def test_materialize_of_an_object_gc_removes_after_it_was_read_writes_the_bytes(
    local: Datasets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, link: str
) -> None:
    """Raised FileNotFoundError ([Errno 2] No such file or directory) from os.link."""
    _later(monkeypatch, 7200.0)
    store = local.store
    data = random.Random(3).randbytes(4000)
    oid, _ = store.put(data)  # no version uses it: garbage
    real_get = store.get

    def get_then_gc(o: str, **kw: Any) -> bytes:
        out = real_get(o, **kw)
        assert local.gc(dry_run=False, grace_s=60.0).objects_deleted == 1
        return out

    monkeypatch.setattr(store, "get", get_then_gc)
    dest = tmp_path / "out.bin"
    assert store.materialize(oid, str(dest), link=link) == "copy"
    assert dest.read_bytes() == data
    assert not store.exists(oid)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".aistack-tmp")] == []


def test_get_of_a_version_deleted_and_gc_d_between_read_and_link_writes_its_files(
    ds: Datasets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through Datasets.get (local store): was a BackendError 'could not write g@v1 into ...:
    [Errno 2]'. (As root link="auto" copies: no link, no race; "hardlink" links.)"""
    _later(monkeypatch, 7200.0)
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.bin").write_bytes(random.Random(5).randbytes(6000))
    ds.add("g", src)
    real_get = ds.store.get

    def get_then_rm_and_gc(o: str, **kw: Any) -> bytes:
        out = real_get(o, **kw)
        if ds.catalog.live_manifests():
            ds.delete("g@v1")
            assert ds.gc(dry_run=False, grace_s=60.0).objects_deleted == 1
        return out

    monkeypatch.setattr(ds.store, "get", get_then_rm_and_gc)
    got = ds.get("g@v1", tmp_path / "out", link="hardlink")
    assert got.files == 1
    assert (tmp_path / "out" / "f.bin").read_bytes() == (src / "f.bin").read_bytes()


def test_a_reader_finds_an_object_gc_is_deleting_in_the_trash(
    local: Datasets, tmp_path: Path
) -> None:
    """An object moved to cas/trash (gc judging it; put back if an add touched it) is read
    from there, not reported missing."""
    store = local.store
    data = random.Random(4).randbytes(3000)
    oid, _ = store.put(data)
    trash = Path(store.backend.path("cas", "trash"))
    trash.mkdir(parents=True, exist_ok=True)
    os.rename(store.key(oid), trash / f"{oid}.123-456")
    assert store.get(oid) == data
    assert store.check(oid) == 3000
    dest = tmp_path / "out.bin"
    store.materialize(oid, str(dest))
    assert dest.read_bytes() == data


# -- add vs gc ----------------------------------------------------------------------------------
def test_an_add_reusing_an_object_just_before_gc_deletes_it_keeps_it(
    local: Datasets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The add runs after gc's last look at the object and before gc removes it (old code:
    between the stat and the unlink, a window of microseconds): the object was deleted and
    the add's version was missing it ('the store lost data')."""
    monkeypatch.setattr(objects, "REFRESH_AFTER_S", 0.0)
    _later(monkeypatch, 100.0)
    src, oid = _deleted_version(local, tmp_path)
    key = local.store.key(oid)
    added: list[Any] = []
    fake = _Os(("rename", "unlink"), key, lambda: added.append(local.add("g", src)))
    monkeypatch.setattr(objects, "os", fake)
    report = local.gc(dry_run=False, grace_s=50.0)
    assert fake.fired and added and added[0].bytes_written == 0  # reused, not written again
    assert report.objects_deleted == 0 and report.objects_young == 1
    assert local.verify("g@v2") == 5000
    assert os.listdir(local.store.backend.path("cas", "trash")) == []
    assert local.gc(dry_run=False, grace_s=50.0).objects_deleted == 0  # v2 is live


def test_an_add_that_comes_while_gc_holds_the_object_in_the_trash_writes_it_again(
    local: Datasets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _later(monkeypatch, 100.0)
    src, oid = _deleted_version(local, tmp_path)
    added: list[Any] = []
    key = local.store.key(oid)
    fake = _Os(("rename",), key, lambda: added.append(local.add("g", src)), after=True)
    monkeypatch.setattr(objects, "os", fake)
    report = local.gc(dry_run=False, grace_s=50.0)
    assert fake.fired and added and added[0].bytes_written == 5000  # found missing: written
    assert report.objects_deleted == 1
    assert local.verify("g@v2") == 5000


def test_an_add_that_finds_the_object_then_loses_it_before_refreshing_it_writes_it_again(
    local: Datasets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gc removed the object between the add's stat and its utime: the utime's ENOENT was
    ignored, the object taken for stored, and the new version was missing it."""
    src, oid = _deleted_version(local, tmp_path)
    key = local.store.key(oid)
    fake = _Os(("utime",), key, lambda: os.unlink(key))  # a gc's delete, at that moment
    monkeypatch.setattr(objects, "os", fake)
    v2 = local.add("g", src)
    assert fake.fired and v2.bytes_written == 5000
    assert local.verify("g@v2") == 5000


def test_on_the_memory_store_gc_says_which_objects_an_add_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No atomic rename there: an add reusing the object between gc's last look and its
    delete still loses it; gc says so, naming the object and the file, and how to repair."""
    import uuid

    ds = Datasets.connect(
        f"sqlite:///{tmp_path / 'aistack.db'}", f"memory://aistack-test-{uuid.uuid4().hex[:12]}"
    )
    monkeypatch.setattr(objects, "REFRESH_AFTER_S", 0.0)
    _later(monkeypatch, 100.0)
    src, oid = _deleted_version(ds, tmp_path)
    fs = ds.store.fs
    real_rm = fs.rm_file
    added: list[Any] = []

    def add_then_rm(path: str, *a: Any, **kw: Any) -> Any:
        if not added and path.endswith(oid[2:]):
            added.append(ds.add("g", src))
        return real_rm(path, *a, **kw)

    monkeypatch.setattr(fs, "rm_file", add_then_rm)
    with pytest.raises(ConflictError) as ei:
        ds.gc(dry_run=False, grace_s=50.0)
    assert added and added[0].bytes_written == 0
    msg = str(ei.value)
    assert f"{oid} (file f.bin)" in msg
    assert "while an add that ran at the same time was reusing them" in msg
    assert ei.value.hint is not None and "add the same data again" in ei.value.hint
    assert ei.value.details["objects"] == [oid]
    monkeypatch.setattr(fs, "rm_file", real_rm)
    ds.add("g", src)  # the repair the hint names
    assert ds.verify("g@v2") == 5000


def test_a_trash_entry_a_killed_gc_left_is_put_back_and_judged_again(
    local: Datasets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.bin").write_bytes(b"live data")
    local.add("g", src)
    [e] = local.files("g@v1")
    oid = e.chunks[0]
    trash = Path(local.store.backend.path("cas", "trash"))
    trash.mkdir(parents=True, exist_ok=True)
    os.rename(local.store.key(oid), trash / f"{oid}.99-1")  # the gc was killed here
    _later(monkeypatch, 7200.0)
    report = local.gc(dry_run=False, grace_s=60.0)
    assert report.objects_deleted == 0
    assert os.listdir(trash) == []
    assert local.verify("g@v1") == len(b"live data")
