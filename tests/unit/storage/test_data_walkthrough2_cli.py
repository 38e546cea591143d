"""``aistack data`` as a first-time user meets it, second pass: verify reports every damaged
object (not the first only), a failed get leaves no empty folders behind, an empty path is
an error that says so, the "in the way" hint names the CLI's option or the API's argument,
and the version detail API refuses limit=0."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from aistack.cli.data import app
from aistack.errors import AistackError, ConflictError, IntegrityError, ValidationError
from aistack.storage import Datasets
from aistack.storage.objects import MissingObjectError


def _ds(tmp_path: Path) -> Datasets:
    return Datasets.connect(f"sqlite:///{tmp_path / 'db'}", str(tmp_path / "objects"))


def _damage(ds: Datasets, oid: str) -> None:
    key = ds.store.key(oid)
    os.chmod(key, 0o644)
    with open(key, "r+b") as f:
        f.write(b"X")  # a flipped byte in the store


def _oids(ds: Datasets, ref: str) -> dict[str, str]:
    return {e.path: e.chunks[0] for e in ds.files(ref)}


def test_verify_reports_every_damaged_and_missing_object(tmp_path: Path) -> None:
    ds = _ds(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(30):
        (src / f"f{i:02d}.txt").write_text(f"content {i}")
    (src / "same.txt").write_text("content 0")  # the bytes of f00.txt: one object, two files
    v = ds.add("c", src)
    assert ds.verify(v.ref) == v.bytes
    oids = _oids(ds, v.ref)
    for i in range(23):
        _damage(ds, oids[f"f{i:02d}.txt"])
    os.unlink(ds.store.key(oids["f29.txt"]))
    with pytest.raises(IntegrityError) as ei:
        ds.verify(v.ref)
    exc = ei.value
    assert type(exc) is IntegrityError  # some corrupted: not MissingObjectError
    assert exc.details["count"] == 24  # objects; 25 (file, object) pairs
    problems = exc.details["problems"]
    assert len(problems) == 25
    assert {"file": "f29.txt", "object": oids["f29.txt"], "problem": "missing"} in problems
    assert {"file": "same.txt", "object": oids["f00.txt"], "problem": "corrupted"} in problems
    assert exc.message.startswith(
        "c@v1: 24 of its 30 objects are damaged or missing (23 corrupted, 1 missing), "
        "in 25 of its 31 files:\n  f00.txt: object "
    )
    lines = exc.message.splitlines()
    assert len(lines) == 1 + 20 + 1 and lines[-1] == "  … and 5 more"
    assert lines[2] == f"  f01.txt: object {oids['f01.txt']} is corrupted"
    assert "re-add the dataset from its source" in (exc.hint or "")


def test_verify_of_only_missing_objects_is_a_missing_object_error(tmp_path: Path) -> None:
    ds = _ds(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (src / name).write_text(name)
    v = ds.add("m", src)
    oids = _oids(ds, v.ref)
    for name in ("a.txt", "c.txt"):
        os.unlink(ds.store.key(oids[name]))
    with pytest.raises(MissingObjectError) as ei:
        ds.verify(v.ref)
    assert ei.value.details["count"] == 2
    assert ei.value.message.splitlines()[1:] == [
        f"  a.txt: object {oids['a.txt']} is missing from the store",
        f"  c.txt: object {oids['c.txt']} is missing from the store",
    ]


def test_cli_verify_lists_them_all_and_exits_1(home: Path) -> None:
    src = home / "src"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}.txt").write_text(f"content {i}")
    r = CliRunner().invoke(app, ["add", "c", str(src), "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    objects = home / "home" / "objects" / "cas" / "blake3"
    for obj in (p for p in objects.rglob("*") if p.is_file()):
        obj.chmod(0o644)
        obj.write_text("damaged")
    r = CliRunner().invoke(app, ["verify", "c@v1"], catch_exceptions=False)
    assert r.exit_code == 1 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[0] == (
        "error: c@v1: 3 of its 3 objects are damaged or missing (3 corrupted), in 3 of its 3 files:"
    )
    assert [ln.split(":")[0] for ln in lines[1:4]] == ["  f0.txt", "  f1.txt", "  f2.txt"]
    assert all(ln.endswith(" is corrupted") for ln in lines[1:4])
    assert lines[4].startswith("(the store ") and "re-add the dataset" in lines[4]
    r = CliRunner().invoke(app, ["verify", "c@v1", "--json"], catch_exceptions=False)
    assert r.exit_code == 1 and r.stdout == ""


def test_failed_get_leaves_no_folders_it_made(tmp_path: Path) -> None:
    ds = _ds(tmp_path)
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    for rel in ("a.txt", "b.txt", "sub/c.txt", "sub/deeper/d.txt"):
        (src / rel).write_text(rel)
    v = ds.add("g", src)
    for oid in _oids(ds, v.ref).values():
        _damage(ds, oid)
    new = tmp_path / "new" / "out"  # neither exists
    with pytest.raises(IntegrityError, match="0 of the 4 files to write were written to"):
        ds.get(v.ref, new, link="copy")
    assert not (tmp_path / "new").exists()
    old = tmp_path / "old"
    old.mkdir()
    (old / "mine.txt").write_text("keep")
    (old / "sub").mkdir()  # a folder that was there stays, empty as it was
    with pytest.raises(IntegrityError, match="0 of the 4 files to write were written to"):
        ds.get(v.ref, old, link="copy")
    assert sorted(p.relative_to(old).as_posix() for p in old.rglob("*")) == ["mine.txt", "sub"]
    deep = tmp_path / "deep"  # one file, its folders made before its object is read
    (deep / "x" / "y").mkdir(parents=True)
    (deep / "x" / "y" / "z.txt").write_text("deep")
    v2 = ds.add("deep", deep)
    _damage(ds, _oids(ds, v2.ref)["x/y/z.txt"])
    with pytest.raises(IntegrityError, match="0 of the 1 files to write were written to"):
        ds.get(v2.ref, old, link="copy")
    assert sorted(p.relative_to(old).as_posix() for p in old.rglob("*")) == ["mine.txt", "sub"]


def test_empty_paths_are_refused_by_the_python_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = _ds(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    v = ds.add("e", src)
    with pytest.raises(ValidationError) as ei:
        ds.add("e", "")
    assert ei.value.message == "path is empty"
    assert "existing file or directory" in (ei.value.hint or "")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    with pytest.raises(ValidationError) as ei:
        ds.get(v.ref, "")
    assert ei.value.message == "dest is empty" and ei.value.details["field"] == "dest"
    assert list(cwd.iterdir()) == []  # nothing written into the current folder


def test_in_the_way_hint_names_the_option_or_the_argument(home: Path) -> None:
    src = home / "src"
    src.mkdir()
    (src / "a.txt").write_text("A")
    r = CliRunner().invoke(app, ["add", "w", str(src)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    dest = home / "dest"
    dest.mkdir()
    (dest / "a.txt").write_text("mine")
    with pytest.raises(ConflictError) as ei:
        CliRunner().invoke(app, ["get", "w@v1", str(dest)], catch_exceptions=False)
    assert ei.value.hint == "pass --force to replace them, or get into an empty directory"
    assert "1 path(s) in " in ei.value.message and "a.txt (other bytes)" in ei.value.message
    assert ei.value.details["paths"] == ["a.txt (other bytes)"]
    ds = Datasets.from_settings()
    with pytest.raises(ConflictError) as ei:
        ds.get("w@v1", dest)
    assert ei.value.hint == "pass force=True to replace them, or get into an empty directory"
    assert (dest / "a.txt").read_text() == "mine"


def test_version_detail_refuses_limit_0(tmp_path: Path) -> None:
    from aistack.server.routers.datasets import router

    ds = _ds(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    ds.add("corpus", src)
    api = FastAPI()

    class _Ctx:
        settings = None

        def datasets(self) -> Datasets:
            return ds

    api.state.ctx = _Ctx()

    @api.exception_handler(AistackError)
    async def _err(_req: Request, exc: AistackError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    api.include_router(router, prefix="/api/v1")
    client = TestClient(api)
    r = client.get("/api/v1/datasets/corpus/versions/v1", params={"limit": 0})
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["query", "limit"]]
    r = client.get("/api/v1/datasets/corpus/versions/v1", params={"limit": 1})
    assert r.status_code == 200
    body = r.json()
    assert [f["path"] for f in body["file_list"]] == ["a.txt"]
    assert body["file_list_truncated"] is False
