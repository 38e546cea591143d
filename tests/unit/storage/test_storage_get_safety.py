"""What a `get` may and may not do to the store and to the destination, gc against a concurrent
add, and names the catalog cannot hold (regressions from a QA pass; each failed before)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aistack.errors import ConflictError, IntegrityError, ValidationError
from aistack.storage import Datasets


def _ds(tmp_path: Path) -> Datasets:
    return Datasets.connect(f"sqlite:///{tmp_path / 'db'}", str(tmp_path / "objects"))


def _src(tmp_path: Path, files: dict[str, str], name: str = "src") -> Path:
    root = tmp_path / name
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_default_get_as_root_copies_so_an_edit_cannot_reach_the_store(tmp_path: Path) -> None:
    ds = _ds(tmp_path)
    v = ds.add("d", _src(tmp_path, {"a.txt": "hello"}))
    r = ds.get(v.ref, tmp_path / "out")
    if os.geteuid() == 0:  # file modes do not stop root: no shared inode
        assert (r.linked, r.copied) == (0, 1)
        with open(tmp_path / "out" / "a.txt", "a") as f:
            f.write("EDITED")
        assert ds.verify(v.ref) == 5
    else:  # a read-only hard link, as before
        assert r.linked == 1 and not os.access(tmp_path / "out" / "a.txt", os.W_OK)


def test_a_copy_get_over_hard_links_of_an_earlier_get_makes_copies(tmp_path: Path) -> None:
    """Files an earlier `get --link hardlink` left (the store's own objects, linked) hold the
    right bytes, but a get asked for copies replaces them with files of their own: an edit of
    one must not reach the store (as root, file modes do not stop it)."""
    ds = _ds(tmp_path)
    small = {"a.txt": "hello", "b/c.txt": "world"}
    v = ds.add("d", _src(tmp_path, small))
    out = tmp_path / "out"
    first = ds.get(v.ref, out, link="hardlink")
    assert first.linked == 2 and os.stat(out / "a.txt").st_nlink > 1
    again = ds.get(v.ref, out, link="copy")
    assert (again.copied, again.unchanged) == (2, 0)
    for rel in small:
        assert os.stat(out / rel).st_nlink == 1
    os.chmod(out / "a.txt", 0o644)
    with open(out / "a.txt", "a") as f:
        f.write("EDITED")
    assert ds.verify(v.ref) == 10  # every byte of the store's objects checks out
    third = ds.get(v.ref, out, link="copy", force=True)  # copies now: c.txt is kept
    assert (third.unchanged, third.copied) == (1, 1)  # a.txt (edited) is written again


def test_adding_the_data_again_repairs_an_object_damaged_through_a_hard_link(
    tmp_path: Path,
) -> None:
    ds = _ds(tmp_path)
    src = _src(tmp_path, {"a.txt": "hello", "b.txt": "other"})
    v1 = ds.add("p", src)
    v_other = ds.add("q", src)  # the same bytes in another dataset
    ds.get(v1.ref, tmp_path / "out", link="hardlink")
    got = tmp_path / "out" / "a.txt"
    os.chmod(got, 0o644)  # what a user does before an in-place edit (root needs not even that)
    with open(got, "a") as f:
        f.write("EDITED")
    for ref in (v1.ref, v_other.ref):
        with pytest.raises(IntegrityError, match="a.txt"):
            ds.verify(ref)
    v2 = ds.add("p", src)  # the hint of that error: add the data again from its source
    assert v2.version == 1 and v2.unchanged  # the same data: no new version, objects rewritten
    for ref in (v1.ref, v2.ref, v_other.ref):
        ds.verify(ref)  # repaired everywhere: the object is one file
    assert got.read_text() == "helloEDITED"  # the outside file keeps its own (old) inode
    assert os.stat(got).st_nlink == 1


def test_refused_get_changes_nothing_and_force_replaces(tmp_path: Path) -> None:
    ds = _ds(tmp_path)
    v = ds.add("d", _src(tmp_path, {"a.txt": "A", "sub/b.txt": "B", "c.txt": "C"}))
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a.txt").write_text("my notes")  # other bytes
    (dest / "sub").write_text("a file where the version has a directory")
    (dest / "mine.txt").write_text("keep")
    os.symlink("mine.txt", dest / "c.txt")  # a symlink inside dest
    with pytest.raises(ConflictError) as ei:
        ds.get(v.ref, dest)
    msg = str(ei.value)
    assert "3 path(s)" in msg and "nothing was written" in msg
    assert "a.txt (other bytes)" in msg and "sub (a file" in msg and "c.txt (a symlink)" in msg
    assert "force=True" in (ei.value.hint or "")  # (the CLI says --force)
    # nothing changed: the symlink too (the old check unlinked it while checking)
    assert (dest / "a.txt").read_text() == "my notes"
    assert (dest / "sub").is_file() and os.path.islink(dest / "c.txt")
    r = ds.get(v.ref, dest, force=True, link="copy")
    assert r.copied == 3
    assert (dest / "a.txt").read_text() == "A" and (dest / "sub" / "b.txt").read_text() == "B"
    assert not os.path.islink(dest / "c.txt") and (dest / "c.txt").read_text() == "C"
    assert (dest / "mine.txt").read_text() == "keep"  # not the version's: left alone


def test_file_and_directory_swapped_between_versions(tmp_path: Path) -> None:
    ds = _ds(tmp_path)
    v1 = ds.add("fd", _src(tmp_path, {"x": "file"}, "one"))
    v2 = ds.add("fd", _src(tmp_path, {"x/y": "inner"}, "two"))
    ds.get(v1.ref, tmp_path / "o1")
    with pytest.raises(ConflictError, match=r"x \(a file; the version has a directory there\)"):
        ds.get(v2.ref, tmp_path / "o1")
    ds.get(v2.ref, tmp_path / "o1", force=True)
    assert (tmp_path / "o1" / "x" / "y").read_text() == "inner"
    # the other way round: a non-empty directory is never removed, not even with force
    ds.get(v2.ref, tmp_path / "o2")
    with pytest.raises(ConflictError, match="non-empty directory"):
        ds.get(v1.ref, tmp_path / "o2", force=True)
    assert (tmp_path / "o2" / "x" / "y").read_text() == "inner"


def test_failed_get_says_how_much_it_wrote(tmp_path: Path) -> None:
    ds = _ds(tmp_path)
    v = ds.add("c", _src(tmp_path, {f"f{i}.txt": f"content {i}" for i in range(6)}))
    [e] = [e for e in ds.files(v) if e.path == "f3.txt"]
    key = ds.store.key(e.chunks[0])
    os.chmod(key, 0o644)
    with open(key, "r+b") as f:
        f.write(b"X")  # a flipped byte in the store
    with pytest.raises(IntegrityError) as ei:
        ds.get(v.ref, tmp_path / "out", link="copy")
    msg = str(ei.value)
    assert "c@v1:f3.txt" in msg and "of the 6 files to write were written to" in msg


def test_long_file_names_come_back(tmp_path: Path) -> None:
    ds = _ds(tmp_path)
    name = "L" * 250  # the temp name beside it used to exceed NAME_MAX
    v = ds.add("long", _src(tmp_path, {name: "x"}))
    ds.get(v.ref, tmp_path / "out")
    assert (tmp_path / "out" / name).read_text() == "x"
    assert os.listdir(tmp_path / "out") == [name]


def test_non_utf8_name_is_refused_before_anything_is_stored(tmp_path: Path) -> None:
    ds = _ds(tmp_path)
    src = tmp_path / "weird"
    src.mkdir()
    with open(os.path.join(os.fsencode(src), b"bad\xff\xfe.txt"), "wb") as f:
        f.write(b"x" * 100)
    with pytest.raises(ValidationError, match="not valid UTF-8") as ei:
        ds.add("w", src)
    assert "rename" in (ei.value.hint or "")
    assert list(ds.store.iter_objects()) == []


def test_a_very_deep_tree(tmp_path: Path) -> None:
    src = str(tmp_path / "deep")
    # Python 3.11's os.walk recursed once per level (and so do os.makedirs and Path.mkdir)
    p = src
    os.mkdir(p)
    for _ in range(1100):
        p = os.path.join(p, "d")
        os.mkdir(p)
    with open(os.path.join(p, "f"), "w") as f:
        f.write("bottom")
    out = str(tmp_path / "out")
    try:
        ds = _ds(tmp_path)
        v = ds.add("deep", src)
        [e] = ds.files(v)
        assert e.path == "d/" * 1100 + "f"
        ds.get(v.ref, out)  # and back, 1,100 directories deep
        with open(os.path.join(out, *["d"] * 1100, "f")) as f:
            assert f.read() == "bottom"
    finally:  # pytest's cleanup (shutil.rmtree) recurses per level too
        for top in (src, out):
            path = os.path.join(top, *["d"] * 1100)
            if os.path.exists(os.path.join(path, "f")):
                os.unlink(os.path.join(path, "f"))
            while os.path.isdir(path) and path != top:
                os.rmdir(path)
                path = os.path.dirname(path)


def test_gc_keeps_the_manifest_a_concurrent_add_reuses(tmp_path: Path) -> None:
    ds = _ds(tmp_path)
    other = _ds(tmp_path)  # another process's view of the same catalog and store
    src = _src(tmp_path, {"a.txt": "same bytes"})
    ds.add("race", src)
    ds.delete("race@v1")
    orig = ds.store.iter_objects
    added = []

    def listing():  # type: ignore[no-untyped-def]
        added.append(other.add("race", src))  # identical data: the same manifest id
        yield from orig()

    ds.store.iter_objects = listing  # type: ignore[method-assign]
    report = ds.gc(dry_run=False)
    assert added[0].ref == "race@v2" and report.manifests_deleted == 0
    _ds(tmp_path).get("race@v2", tmp_path / "out")
    assert (tmp_path / "out" / "a.txt").read_text() == "same bytes"


def test_gc_counts_referenced_versions_not_manifests(tmp_path: Path) -> None:
    ds = _ds(tmp_path)
    src = _src(tmp_path, {"a.txt": "x"})
    refs = [ds.add("p", src).ref, ds.add("p", src, if_changed=False).ref, ds.add("q", src).ref]
    for r in refs:
        ds.add_reference(r, "job", "j1")
    assert ds.gc(dry_run=True).protected_versions == 3


def test_cli_refuses_a_memory_store(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aistack.cli.data import app
    from aistack.settings import reset_settings_cache

    monkeypatch.setenv("AISTACK_STORAGE_URL", "memory://qa")
    reset_settings_cache()
    src = _src(home, {"a.txt": "x"})
    with pytest.raises(ValidationError, match="each `aistack data` command is a new process"):
        CliRunner().invoke(app, ["add", "mem", str(src)], catch_exceptions=False)


def test_cli_verify_and_get_force(home: Path) -> None:
    from aistack.cli.data import app

    src = _src(home, {"a.txt": "hello"})
    run = CliRunner().invoke
    assert run(app, ["add", "v", str(src)], catch_exceptions=False).exit_code == 0
    r = run(app, ["verify", "v@v1", "--json"], catch_exceptions=False)
    out = json.loads(r.stdout)
    assert (out["ref"], out["files"], out["bytes"], out["ok"]) == ("v@v1", 1, 5, True)
    dest = home / "out"
    dest.mkdir()
    (dest / "a.txt").write_text("mine")
    with pytest.raises(ConflictError):
        run(app, ["get", "v@v1", str(dest)], catch_exceptions=False)
    r = run(app, ["get", "v@v1", str(dest), "--force", "--json"], catch_exceptions=False)
    assert json.loads(r.stdout)["copied"] + json.loads(r.stdout)["linked"] == 1
    assert (dest / "a.txt").read_text() == "hello"


def test_tag_that_reads_as_a_version_is_refused(tmp_path: Path) -> None:
    ds = _ds(tmp_path)
    v = ds.add("t", _src(tmp_path, {"a.txt": "x"}))
    for bad in ("V3", "v3", "3", "latest"):
        with pytest.raises(ValidationError, match="invalid tag"):
            ds.tag(v.ref, bad)


def test_a_filesystem_that_cannot_clone_is_asked_once(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Each failed clone costs an open, a create and an unlink per file (a default get of
    20,000 small files as root took 1.7x the time of --copy); and each file is read once."""
    from aistack.storage import objects

    calls = {"reflink": 0, "get": 0}

    def no_clone(src: str, dst: str) -> bool:
        calls["reflink"] += 1
        return False  # EOPNOTSUPP: this filesystem cannot clone

    ds = _ds(tmp_path)
    v = ds.add("m", _src(tmp_path, {f"f{i}.txt": f"bytes {i}" for i in range(5)}))
    real_get = ds.store.get

    def counting_get(oid: str, *, context: str = "") -> bytes:
        calls["get"] += 1
        return real_get(oid, context=context)

    monkeypatch.setattr(objects, "_reflink", no_clone)
    monkeypatch.setattr(ds.store, "get", counting_get)
    r = ds.get(v.ref, tmp_path / "out", link="hardlink")
    assert r.linked == 5 and calls == {"reflink": 1, "get": 5}


def test_the_execute_bit_comes_back(tmp_path: Path) -> None:
    """As DVC keeps `isexec`: a script added executable is executable after a get, whatever
    the link mode (an executable never shares the store's inode: its mode would change the
    object's); data without executables keeps the manifest bytes it had before."""
    import stat as st_

    from aistack.storage.manifest import encode

    ds = _ds(tmp_path)
    src = _src(tmp_path, {"run.sh": "#!/bin/sh\necho hi\n", "data.txt": "x"})
    os.chmod(src / "run.sh", 0o755)
    v1 = ds.add("x", src)
    for link in ("auto", "hardlink", "copy"):
        out = tmp_path / f"out-{link}"
        ds.get(v1.ref, out, link=link)
        assert os.access(out / "run.sh", os.X_OK), link
        assert not os.stat(out / "data.txt").st_mode & st_.S_IXUSR
        assert os.stat(out / "run.sh").st_nlink == 1
    obj = ds.store.key([e for e in ds.files(v1) if e.path == "run.sh"][0].chunks[0])
    assert not os.stat(obj).st_mode & 0o222 and not os.stat(obj).st_mode & st_.S_IXUSR
    os.chmod(src / "run.sh", 0o644)
    v2 = ds.add("x", src)
    d = ds.diff(v1.ref, v2.ref)
    assert [c.path for c in d.changed] == ["run.sh"]  # the mode changed, not the bytes
    assert (d.changed[0].mode, d.changed[0].content) == ("-x", False)
    plain = [e for e in ds.files(v2)]
    assert b"executable" not in encode(plain)


def test_get_over_the_same_bytes_sets_the_versions_mode_both_ways(tmp_path: Path) -> None:
    """A file DEST already holds with the version's bytes is kept, and its execute bit now
    follows the version both ways (it was only ever added, never removed)."""
    ds = _ds(tmp_path)
    src = _src(tmp_path, {"run.sh": "#!/bin/sh\n"})
    os.chmod(src / "run.sh", 0o755)
    exe = ds.add("m", src)
    os.chmod(src / "run.sh", 0o644)
    plain = ds.add("m", src)
    out = tmp_path / "d"
    ds.get(exe.ref, out, link="copy")
    assert os.access(out / "run.sh", os.X_OK)
    r = ds.get(plain.ref, out, link="copy")
    assert r.unchanged == 1 and not os.stat(out / "run.sh").st_mode & 0o111
    assert ds.get(exe.ref, out, link="copy").unchanged == 1 and os.access(out / "run.sh", os.X_OK)


def test_non_utf8_name_of_a_single_file_is_refused_before_anything_is_stored(
    tmp_path: Path,
) -> None:
    # `data add NAME FILE` with such a name died in the manifest encoder (UnicodeEncodeError
    # traceback) after the bytes were uploaded
    ds = _ds(tmp_path)
    bad = os.path.join(os.fsencode(tmp_path), b"caf\xe9.txt")
    with open(bad, "wb") as f:
        f.write(b"x" * 100)
    with pytest.raises(ValidationError, match="not valid UTF-8") as ei:
        ds.add("w", os.fsdecode(bad))
    assert "rename" in (ei.value.hint or "")
    assert list(ds.store.iter_objects()) == []
