"""Object and manifest ids that a manifest or a catalog record names become keys (paths) in the
store: one that is not letters and digits ('../../secret', '/etc/passwd', NUL) is refused
before anything is read (it read a file outside the store, and the error printed its hash)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aistack.errors import ValidationError
from aistack.storage import Datasets
from aistack.storage.manifest import FileEntry, decode, encode


def _ds(tmp_path: Path) -> Datasets:
    return Datasets.connect(f"sqlite:///{tmp_path / 'db'}", str(tmp_path / "objects"))


def _version_with(ds: Datasets, name: str, entries: list[FileEntry]) -> str:
    mid = ds.manifests.put(entries)
    ds.catalog.add_version(
        name=name,
        manifest=mid,
        hash_algo=ds.store.algo,
        files=len(entries),
        nbytes=sum(e.size for e in entries),
        message=None,
        meta={},
        tag_names=(),
        reuse_same=False,
    )
    return f"{name}@latest"


def test_a_chunk_id_that_leads_out_of_the_store_is_refused(tmp_path: Path) -> None:
    ds = _ds(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hi")
    ds.add("d", src)  # the store's folders exist
    secret = tmp_path / "secret"
    secret.write_text("top secret")
    # key = <store>/cas/<algo>/<id[:2]>/<id[2:]>: '..' + '/' + a path from cas/ to the secret
    hostile = "../" + os.path.relpath(secret, tmp_path / "objects" / "cas")
    assert os.path.realpath(ds.store.key(hostile)) == str(secret.resolve())
    entry = FileEntry(path="x.txt", size=10, hash=hostile, chunks=(hostile,), chunk_sizes=(10,))
    ref = _version_with(ds, "evil", [entry])
    out = tmp_path / "out"
    with pytest.raises(ValidationError) as ei:
        ds.get(ref, out)
    assert "is not an object id" in ei.value.message
    assert ei.value.details.get("field") == "hash"
    assert "letters and digits only" in (ei.value.hint or "")
    assert not out.exists() or list(out.rglob("*")) == []


@pytest.mark.parametrize(
    "bad", ["../../x", "/etc/passwd", "ab\x00cd" * 8, "ab/cd", "..", ".", "", "ab\\cd"]
)
def test_manifest_entries_with_bad_ids_are_refused(bad: str) -> None:
    good = "0" * 64
    for entry, field in [
        (FileEntry(path="f", size=1, hash=bad, chunks=(good,), chunk_sizes=(1,)), "hash"),
        (FileEntry(path="f", size=1, hash=good, chunks=(good, bad), chunk_sizes=(1, 0)), "chunks"),
    ]:
        with pytest.raises(ValidationError) as ei:
            decode(encode([entry]), name="m")
        assert ei.value.details.get("field") == field


def test_nested_relative_paths_and_real_ids_still_decode() -> None:
    e = FileEntry(path="a/b/c.txt", size=1, hash="f" * 64, chunks=("f" * 64,), chunk_sizes=(1,))
    assert decode(encode([e])) == [e]
    from aistack.storage.manifest import check_oid

    assert check_oid("0123456789abcdef" * 4, what="x", field="y") == "0123456789abcdef" * 4


@pytest.mark.parametrize("mid", ["../../../secret", "", "/etc/passwd", "x\x00y"])
def test_a_manifest_id_from_the_catalog_must_be_an_id(tmp_path: Path, mid: str) -> None:
    ds = _ds(tmp_path)
    with pytest.raises(ValidationError) as ei:
        ds.manifests.get(mid)
    assert ei.value.details.get("field") == "manifest"


def test_manifest_path_escapes_are_refused_on_get(tmp_path: Path) -> None:
    """(already so before: the file names of a manifest are checked; kept as a regression)"""
    good = "0" * 64
    for path in ["../../x", "/etc/passwd", "a/\x00b", "a/./b", "a//b"]:
        data = encode([FileEntry(path=path, size=1, hash=good, chunks=(good,), chunk_sizes=(1,))])
        with pytest.raises(ValidationError):
            decode(data)
