"""``aistack data`` as a first-time user meets it: verify's exit status on damage, and what gc
says about the temp files a killed add left."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from typer.testing import CliRunner

from aistack.cli.data import app


def _add(home: Path, text: str) -> None:
    src = home / "src"
    src.mkdir()
    (src / "a.txt").write_text(text)
    r = CliRunner().invoke(app, ["add", "c", str(src), "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["ref"] == "c@v1"


def _object(home: Path) -> Path:
    [obj] = [p for p in (home / "home" / "objects" / "cas" / "blake3").rglob("*") if p.is_file()]
    return obj


def test_verify_exits_1_on_a_damaged_object_as_its_help_says(home: Path) -> None:
    _add(home, "hello")
    obj = _object(home)
    ok = CliRunner().invoke(app, ["verify", "c@v1", "--json"], catch_exceptions=False)
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"] is True
    obj.chmod(0o644)
    obj.write_text("HELLO")
    r = CliRunner().invoke(app, ["verify", "c@v1"], catch_exceptions=False)
    assert r.exit_code == 1
    assert "is corrupted" in r.stderr and "c@v1:a.txt" in r.stderr
    obj.unlink()
    r = CliRunner().invoke(app, ["verify", "c@latest", "--json"], catch_exceptions=False)
    assert r.exit_code == 1 and r.stdout == ""
    assert "is missing from the store" in r.stderr


def test_gc_says_it_removed_the_temp_files_of_a_killed_add(home: Path) -> None:
    _add(home, "hello")
    tmp = home / "home" / "objects" / "cas" / "tmp"
    tmp.mkdir(exist_ok=True)
    for i in range(2):  # as a `data add` killed mid-write leaves them
        (tmp / f"{i:032x}").write_bytes(b"x" * 1000)
        old = time.time() - 7200
        os.utime(tmp / f"{i:032x}", (old, old))
    r = CliRunner().invoke(app, ["gc", "--dry-run"], catch_exceptions=False)
    assert r.exit_code == 0
    assert "would delete 0 objects (0 B), 0 manifests and 2 temp files of interrupted adds;" in (
        " ".join(r.stdout.split())
    )
    assert len(list(tmp.iterdir())) == 2
    r = CliRunner().invoke(app, ["gc"], catch_exceptions=False)
    assert "deleted 0 objects (0 B), 0 manifests and 2 temp files of interrupted adds;" in (
        " ".join(r.stdout.split())
    )
    assert list(tmp.iterdir()) == []
    r = CliRunner().invoke(app, ["gc"], catch_exceptions=False)
    assert " ".join(r.stdout.split()).startswith("deleted 0 objects (0 B) and 0 manifests; kept 1")


def test_one_file_is_not_called_1_files(home: Path) -> None:
    _add(home, "hello")  # (c@v1 holds one file)
    out = []
    for args in (
        ["add", "c", str(home / "src")],
        ["get", "c@v1", str(home / "out"), "--copy"],
        ["verify", "c@v1"],
    ):
        r = CliRunner().invoke(app, args, catch_exceptions=False)
        assert r.exit_code == 0, r.output
        out.append(" ".join(r.stdout.split()))
    assert out[0].startswith("c@v1 unchanged: 1 file, 5 B are the same")
    assert out[1].startswith("c@v1 → ") and ": 1 file, 5 B (0 linked, 1 copied)" in out[1]
    assert out[2].startswith("c@v1: 1 file, 5 B verified in ")
