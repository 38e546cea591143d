"""Hostile source trees for ``Datasets.add``: symlink loops, directories and files that cannot be
read, files removed between the scan and the upload, metadata nested past the interpreter's
limit. Each is an aistack error naming the path (or argument), never an OSError or
RecursionError from deep inside, and no version is made."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ConflictError, ValidationError
from aistack.storage import Datasets
from aistack.storage import datasets as datasets_mod
from aistack.storage import upload as upload_mod


@pytest.fixture
def ds(tmp_path: Path) -> Datasets:
    return Datasets.connect(f"sqlite:///{tmp_path / 'db'}", str(tmp_path / "objects"))


@pytest.fixture
def src(tmp_path: Path) -> Path:
    d = tmp_path / "src"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("hello")
    (d / "sub" / "b.txt").write_text("world")
    (d / "big.bin").write_bytes(os.urandom(3 << 20))  # chunked through the mapped path
    return d


def _names(ds: Datasets) -> list[str]:
    return [s.name for s in ds.ls()]


@pytest.mark.parametrize("links", [{"self": "self"}, {"a": "b", "b": "a"}])
def test_a_symlink_loop_is_refused_naming_it(
    ds: Datasets, src: Path, links: dict[str, str]
) -> None:
    """os.stat of a loop raised OSError ELOOP out of ``add``."""
    for name, target in links.items():
        os.symlink(target, src / "sub" / name)
    with pytest.raises(ValidationError, match="symlink loop") as exc:
        ds.add("corpus", src)
    assert exc.value.details["path"] in {f"sub/{n}" for n in links}
    assert _names(ds) == []


def test_a_broken_symlink_names_its_target(ds: Datasets, src: Path) -> None:
    os.symlink("gone.txt", src / "dangling")
    with pytest.raises(ValidationError, match=r"'dangling': broken symlink \(gone.txt\)") as exc:
        ds.add("corpus", src)
    assert exc.value.details["path"] == "dangling"
    assert "restore its target" in (exc.value.hint or "")


def test_an_unreadable_directory_is_named(
    ds: Datasets, src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory without read permission: PermissionError from os.scandir (simulated: the
    tests may run as root, who reads anything)."""
    real = os.scandir
    locked = str(src / "sub")

    def scandir(path: Any) -> Any:
        if os.fspath(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", locked)
        return real(path)

    monkeypatch.setattr(upload_mod.os, "scandir", scandir)
    with pytest.raises(ValidationError, match="cannot read directory 'sub': permission") as exc:
        ds.add("corpus", src)
    assert exc.value.details["path"] == "sub"
    assert "chmod u+rx" in (exc.value.hint or "")
    assert _names(ds) == []


@pytest.mark.parametrize("victim", ["a.txt", "big.bin"])
def test_a_file_unreadable_at_upload_is_named(
    ds: Datasets, src: Path, monkeypatch: pytest.MonkeyPatch, victim: str
) -> None:
    """open() of a small file failed in a worker thread (PermissionError out of ``add``), of a
    big one in the calling thread."""
    real = open
    locked = str(src / victim)

    def fake_open(path: Any, *a: Any, **kw: Any) -> Any:
        if os.fspath(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", locked)
        return real(path, *a, **kw)

    monkeypatch.setattr(upload_mod, "open", fake_open, raising=False)
    with pytest.raises(ValidationError, match=f"cannot read file '{victim}': permission") as exc:
        ds.add("corpus", src)
    assert exc.value.details["path"] == victim
    assert _names(ds) == []


@pytest.mark.parametrize("victim", ["sub/b.txt", "big.bin"])
def test_a_file_removed_after_the_scan_is_a_conflict_naming_it(
    ds: Datasets, src: Path, monkeypatch: pytest.MonkeyPatch, victim: str
) -> None:
    """A file listed by the scan and removed before the upload read it: FileNotFoundError."""
    v1 = ds.add("corpus", src)
    real_scan = datasets_mod.scan

    def scan_then_remove(path: Any) -> Any:
        out = real_scan(path)
        os.unlink(src / victim)
        return out

    monkeypatch.setattr(datasets_mod, "scan", scan_then_remove)
    with pytest.raises(ConflictError, match=f"{victim} was removed while it was being added"):
        ds.add("corpus", src)
    assert [v.ref for v in ds.log("corpus")] == [v1.ref]
    assert ds.verify(v1.ref) == v1.bytes  # nothing stored was lost


def test_metadata_nested_too_deeply_is_refused(ds: Datasets, src: Path) -> None:
    """json.dumps raised RecursionError out of ``add``."""
    meta: dict[str, Any] = {}
    cur = meta
    for _ in range(100_000):
        cur["a"] = {}
        cur = cur["a"]
    with pytest.raises(ValidationError, match="nested too deeply") as exc:
        ds.add("corpus", src, metadata=meta)
    assert exc.value.details["field"] == "metadata"
    assert _names(ds) == []
