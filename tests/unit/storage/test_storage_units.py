"""Pieces of the storage layer: references, path safety, manifests, backends, link modes."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aistack.errors import ConflictError, IntegrityError, NotSupportedError, ValidationError
from aistack.storage import Datasets, parse_ref
from aistack.storage.backends import split_url
from aistack.storage.hashing import ChunkParams, chunk_list_hash, cut, digest
from aistack.storage.manifest import FileEntry, decode, encode
from aistack.storage.paths import check_relpath, safe_dest

# -- references ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "version", "tag"),
    [
        ("a", None, None),
        ("a@latest", None, None),
        ("a@v3", 3, None),
        ("a@12", 12, None),
        ("a@gold", None, "gold"),
    ],
)
def test_parse_ref(ref: str, version: int | None, tag: str | None) -> None:
    r = parse_ref(ref)
    assert (r.name, r.version, r.tag) == ("a", version, tag)


@pytest.mark.parametrize(
    "bad",
    ["", "@v1", "a/b@v1", "../x", "a@v0", "a@bad tag", "a@", "a@ ", "-a", "a@v" + "9" * 20],
)
def test_bad_refs_name_the_problem(bad: str) -> None:
    # "a@" names nothing (it used to mean latest); a version past the catalog's 64-bit
    # integers is refused here, not by the database (an OverflowError, HTTP 500)
    with pytest.raises(ValidationError) as err:
        parse_ref(bad)
    assert err.value.hint


@settings(deadline=None)
@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,40}", fullmatch=True), st.integers(1, 10**6))
def test_ref_roundtrip(name: str, v: int) -> None:
    r = parse_ref(f"{name}@v{v}")
    assert str(r) == f"{name}@v{v}"
    assert parse_ref(str(r)) == r


# -- path safety -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "/etc/passwd",
        "../x",
        "a/../../x",
        "a//b",
        "./a",
        "a/./b",
        "a\\b",
        "C:/x",
        "a/",
        "..",
        "x\x00",
    ],
)
def test_check_relpath_refuses_escapes(bad: str) -> None:
    with pytest.raises(ValidationError):
        check_relpath(bad)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "..", ".", "", "/", "c.txt", "\\"]), min_size=1, max_size=6)
)
def test_accepted_paths_never_escape(parts: list[str]) -> None:
    rel = "/".join(parts)
    try:
        check_relpath(rel)
    except ValidationError:
        return
    joined = os.path.normpath(os.path.join("/root/ds", rel))
    assert joined.startswith("/root/ds/")


def test_safe_dest_refuses_symlink_file_pointing_outside(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (tmp_path / "victim").write_text("keep")
    (dest / "f.txt").symlink_to(tmp_path / "victim")
    with pytest.raises(ValidationError, match="outside"):
        safe_dest(dest, "f.txt")
    assert (tmp_path / "victim").read_text() == "keep"


def test_manifest_with_escaping_path_is_refused(tmp_path: Path) -> None:
    bad = encode(
        [FileEntry(path="../../etc/cron.d/x", size=1, hash="h", chunks=("h",), chunk_sizes=(1,))]
    )
    with pytest.raises(ValidationError, match="escapes"):
        decode(bad, name="m")


def test_manifest_roundtrip_sorted() -> None:
    entries = [
        FileEntry(path="b.txt", size=3, hash="x", chunks=("x",), chunk_sizes=(3,)),
        FileEntry(path="a/c.bin", size=10, hash="y", chunks=("p", "q"), chunk_sizes=(4, 6)),
    ]
    assert decode(encode(entries)) == sorted(entries, key=lambda e: e.path)
    with pytest.raises(IntegrityError, match="unreadable"):
        decode(b"not parquet", name="m1")


# -- hashing / chunking ----------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=0, max_size=300_000))
def test_chunks_cover_the_input_exactly(data: bytes) -> None:
    params = ChunkParams(min_size=4096, avg_size=16384, max_size=65536)
    parts = [bytes(c) for c in cut(data, params)]
    assert b"".join(parts) == data
    assert all(len(p) <= params.max_size for p in parts)


def test_chunk_boundaries_resynchronise_after_an_insert() -> None:
    data = random.Random(7).randbytes(2_000_000)  # (seeded: the same chunks every run)
    params = ChunkParams(min_size=16384, avg_size=65536, max_size=262144)
    a = {digest("sha256", c) for c in cut(data, params)}
    b = {digest("sha256", c) for c in cut(data[:1_000_000] + b"INSERT" + data[1_000_000:], params)}
    assert len(b - a) <= 3  # only the chunks around the insert are new
    assert chunk_list_hash("sha256", ["a", "b"]) != chunk_list_hash("sha256", ["b", "a"])


# -- backends ----------------------------------------------------------------------------------------


def test_split_url(tmp_path: Path) -> None:
    assert split_url(str(tmp_path)) == ("file", str(tmp_path))
    assert split_url(f"file://{tmp_path}") == ("file", str(tmp_path))
    assert split_url("s3://bucket/pre/fix/") == ("s3", "bucket/pre/fix")
    assert split_url("memory://x") == ("memory", "x")
    with pytest.raises(NotSupportedError, match="gs"):
        split_url("gs://bucket")
    with pytest.raises(ValidationError, match="no bucket"):
        split_url("s3://")


def test_settings_pick_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aistack.settings import reset_settings_cache

    monkeypatch.setenv("AISTACK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AISTACK_STORAGE_URL", raising=False)
    monkeypatch.delenv("AISTACK_DATABASE_URL", raising=False)
    reset_settings_cache()
    try:
        ds = Datasets.from_settings()
        f = tmp_path / "f.txt"
        f.write_text("x")
        ds.add("s", f)
        assert (tmp_path / "home" / "objects" / "cas" / "config.json").exists()
        assert (tmp_path / "home" / "aistack.db").exists()
    finally:
        reset_settings_cache()


# -- get link modes ------------------------------------------------------------------------------------


def _ds(tmp_path: Path) -> Datasets:
    return Datasets.connect(f"sqlite:///{tmp_path / 'db'}", str(tmp_path / "objects"))


def test_get_links_on_local_store_and_copy_is_independent(tmp_path: Path) -> None:
    ds = _ds(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_text("shared bytes")
    v = ds.add("l", src)
    r = ds.get(v.ref, tmp_path / "linked", link="hardlink")  # "auto" copies as root
    st_ = os.stat(tmp_path / "linked" / "f.txt")
    assert r.linked == 1 and r.copied == 0
    assert st_.st_nlink >= 2  # shares the store's inode (or a reflink where supported)
    assert not st_.st_mode & stat.S_IWUSR  # read-only, like the object
    r2 = ds.get(v.ref, tmp_path / "copied", link="copy")
    assert (r2.linked, r2.copied) == (0, 1)
    p = tmp_path / "copied" / "f.txt"
    p.write_text("edited")  # a copy can be edited without touching the store
    ds.verify(v.ref)
    # re-getting over an edited file is refused (nothing written) unless forced
    with pytest.raises(ConflictError, match=r"1 path\(s\) in .* f.txt \(other bytes\)"):
        ds.get(v.ref, tmp_path / "copied", link="copy")
    assert p.read_text() == "edited"
    r3 = ds.get(v.ref, tmp_path / "copied", link="copy", force=True)
    assert p.read_text() == "shared bytes" and r3.copied == 1
    r4 = ds.get(v.ref, tmp_path / "copied", link="copy")  # already there: nothing to write
    assert (r4.copied, r4.linked, r4.unchanged) == (0, 0, 1)
    with pytest.raises(ValidationError, match="link"):
        ds.get(v.ref, tmp_path / "x", link="symlink")


def test_get_into_a_file_is_refused(tmp_path: Path) -> None:
    ds = _ds(tmp_path)
    f = tmp_path / "f.txt"
    f.write_text("x")
    ds.add("g", f)
    with pytest.raises(ValidationError, match="not a directory"):
        ds.get("g@v1", f)


def test_add_validates_input(tmp_path: Path) -> None:
    ds = _ds(tmp_path)
    with pytest.raises(ValidationError, match="does not exist"):
        ds.add("x", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValidationError, match="no files"):
        ds.add("x", tmp_path / "empty")
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(ValidationError, match="name"):
        ds.add("bad name", f)
    with pytest.raises(ValidationError, match="tag"):
        ds.add("x", f, tags=("latest",))
    with pytest.raises(ValidationError, match="JSON"):
        ds.add("x", f, metadata={"obj": object()})
    d = tmp_path / "withfifo"
    d.mkdir()
    (d / "ok.txt").write_text("ok")
    os.mkfifo(d / "pipe")
    with pytest.raises(ValidationError, match="not a regular file"):
        ds.add("x", d)
    assert ds.ls() == []  # nothing was recorded by the refused adds
