"""A version deleted and garbage-collected while it is being read (get, open, verify): the read
fails saying so, not 'the store lost data: re-add' (nothing was lost: the version was deleted
on purpose). A live version's missing object still says the store lost data."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from aistack.errors import ConflictError, IntegrityError
from aistack.storage import Datasets, materialize
from aistack.storage import gc as gc_mod


@pytest.fixture
def ds(local_and_memory_datasets: Datasets) -> Datasets:
    return local_and_memory_datasets


@pytest.fixture(autouse=True)
def _gc_sees_old_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    """gc's clock runs an hour ahead: every object is past the grace period (no sleep)."""
    monkeypatch.setattr(
        gc_mod, "time", SimpleNamespace(time=lambda: time.time() + 7200.0), raising=True
    )


def _two_versions(ds: Datasets, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(random.Random(1).randbytes(3000))
    (src / "b.txt").write_text("bee")
    ds.add("c", src)  # c@v1
    (src / "a.bin").write_bytes(random.Random(2).randbytes(3000))
    (src / "b.txt").write_text("other")
    ds.add("c", src)  # c@v2: no object in common with v1


def _rm_and_gc(ds: Datasets, ref: str = "c@v1") -> None:
    ds.delete(ref)
    report = ds.gc(dry_run=False, grace_s=60.0)
    assert report.objects_deleted > 0


def _deleted_message(err: ConflictError) -> None:
    from aistack.storage.objects import MissingObjectError

    assert err.message.startswith("c@v1 was deleted at ")
    assert " UTC while it was being read, and `aistack data gc` removed its data: " in err.message
    assert "is missing from the store" in err.message  # (the original, after the cause)
    assert "lost data" not in str(err)
    assert err.hint is not None
    assert err.hint.startswith("no data was lost: the version was deleted on purpose")
    assert "read a version that is left (v2; `aistack data log c`)" in err.hint
    assert err.details["ref"] == "c@v1"
    assert isinstance(err.__cause__, MissingObjectError)


def _before(fn: Callable[..., Any], first: Callable[[], None]) -> Callable[..., Any]:
    """``fn`` that runs ``first`` before its first call (gc itself may call it)."""
    done: list[bool] = []

    def wrapped(*a: Any, **kw: Any) -> Any:
        if not done:
            done.append(True)
            first()
        return fn(*a, **kw)

    return wrapped


def test_get_of_a_version_deleted_and_gc_d_meanwhile_says_so(
    ds: Datasets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _two_versions(ds, tmp_path)
    # the version is resolved and its manifest read; then it is deleted and gc runs
    monkeypatch.setattr(
        materialize, "get_into", _before(materialize.get_into, lambda: _rm_and_gc(ds))
    )
    with pytest.raises(ConflictError) as ei:
        ds.get("c@v1", tmp_path / "out")
    _deleted_message(ei.value)
    assert "files to write were written to" in ei.value.message  # how far the get came


def test_open_of_a_version_deleted_and_gc_d_meanwhile_says_so(ds: Datasets, tmp_path: Path) -> None:
    _two_versions(ds, tmp_path)
    fs = ds.open("c@v1")
    _rm_and_gc(ds)
    with pytest.raises(ConflictError) as ei:
        fs.cat_file("a.bin")
    _deleted_message(ei.value)
    assert ei.value.details["file"] == "c@v1:a.bin"


def test_manifest_of_a_version_deleted_and_gc_d_meanwhile(
    ds: Datasets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _two_versions(ds, tmp_path)
    monkeypatch.setattr(
        ds.manifests, "get", _before(ds.manifests.get, lambda: _rm_and_gc(ds))
    )  # resolved, then deleted and gc'd before its file list is read
    with pytest.raises(ConflictError) as ei:
        ds.open("c@v1")
    _deleted_message(ei.value)
    assert "manifest " in ei.value.message


def test_verify_of_a_version_deleted_and_gc_d_meanwhile_says_so(
    ds: Datasets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _two_versions(ds, tmp_path)
    monkeypatch.setattr(ds.store, "get", _before(ds.store.get, lambda: _rm_and_gc(ds)))
    with pytest.raises(ConflictError) as ei:
        ds.verify("c@v1")
    _deleted_message(ei.value)


def test_a_live_version_missing_an_object_still_says_the_store_lost_data(
    ds: Datasets, tmp_path: Path
) -> None:
    _two_versions(ds, tmp_path)
    _rm_and_gc(ds, "c@v1")  # (another version deleted: c@v2 stays live)
    [e] = [e for e in ds.files("c@v2") if e.path == "b.txt"]
    ds.store.delete(e.chunks[0])
    fs = ds.open("c@v2")
    for read in (
        lambda: ds.get("c@v2", tmp_path / "out"),
        lambda: fs.cat_file("b.txt"),
        lambda: ds.verify("c@v2"),
    ):
        with pytest.raises(IntegrityError) as ei:
            read()
        assert not isinstance(ei.value, ConflictError)
        assert f"object {e.chunks[0]} (file c@v2:b.txt) is missing from the store" in str(ei.value)
        assert ei.value.hint == "the store lost data: re-add the dataset from its source"
