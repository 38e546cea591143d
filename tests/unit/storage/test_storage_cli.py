"""``aistack data ...`` end to end on a temporary AISTACK_HOME (JSON output checked by value)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aistack.cli.data import app, fmt_bytes
from aistack.errors import ConflictError, NotFoundError


def run(*args: str) -> dict | list:  # type: ignore[type-arg]
    r = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_data_commands(home: Path) -> None:
    src = home / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    v1 = run("add", "corpus", str(src), "-m", "first", "--tag", "raw")
    assert (v1["ref"], v1["files"], v1["bytes"], v1["tags"]) == ("corpus@v1", 1, 5, ["raw"])
    assert v1["seconds"] >= 0
    (src / "b.txt").write_text("world!")
    v2 = run("add", "corpus", str(src))
    assert v2["ref"] == "corpus@v2" and v2["bytes_written"] == 6
    [row] = run("ls")  # type: ignore[misc]
    assert (row["name"], row["versions"], row["latest"]) == ("corpus", 2, "corpus@v2")
    assert row["updated_at"] >= row["created_at"]
    assert [x["ref"] for x in run("log", "corpus")] == ["corpus@v2", "corpus@v1"]  # type: ignore[index]
    d = run("diff", "corpus@raw", "corpus@latest")
    assert [c["path"] for c in d["added"]] == ["b.txt"] and d["bytes_added"] == 6  # type: ignore[index,call-overload]
    got = run("get", "corpus@v2", str(home / "out"))
    assert got["files"] == 2 and (home / "out" / "b.txt").read_text() == "world!"  # type: ignore[call-overload]
    assert run("tag", "corpus@v2", "gold")["ref"] == "corpus@v2"  # type: ignore[call-overload]
    g = run("lineage", "corpus@gold")
    assert g["root"] == "dataset:corpus@v2" and g["edges"] == []  # type: ignore[call-overload]
    gc = run("gc", "--dry-run", "--grace", "0")
    assert gc["dry_run"] is True and gc["objects_deleted"] == 0 and gc["objects_total"] == 2  # type: ignore[call-overload]
    rm = run("rm", "corpus@v2")
    assert rm["deleted"] is True  # type: ignore[call-overload]
    from aistack.errors import ValidationError

    with pytest.raises(ValidationError, match="--grace 0 s: an add running now could lose"):
        run("gc", "--grace", "0")  # a concurrent add's fresh objects are not referenced yet
    assert run("gc", "--grace", "0", "--force")["objects_deleted"] == 1  # type: ignore[call-overload]


def test_unchanged_re_add_says_so_and_makes_no_version(home: Path) -> None:
    src = home / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    run("add", "c", str(src), "-m", "first")
    again = run("add", "c", str(src), "--tag", "gold")
    assert (again["ref"], again["unchanged"], again["message"]) == ("c@v1", True, "first")
    r = CliRunner().invoke(app, ["add", "c", str(src), "-m", "x"], catch_exceptions=False)
    assert r.exit_code == 0 and "c@v1 unchanged" in r.output and "--always-new" in r.output
    assert run("add", "c", str(src), "--always-new")["ref"] == "c@v2"
    assert [x["ref"] for x in run("log", "c")] == ["c@v2", "c@v1"]  # type: ignore[index]
    assert run("tag", "c@gold", "x")["ref"] == "c@v1"  # type: ignore[call-overload]


def test_human_output_has_units(home: Path) -> None:
    src = home / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"x" * 2048)
    r = CliRunner().invoke(app, ["add", "c", str(src)], catch_exceptions=False)
    assert r.exit_code == 0
    assert "c@v1" in r.output and "2.0 KiB" in r.output and " s" in r.output
    r = CliRunner().invoke(app, ["gc", "--dry-run"], catch_exceptions=False)
    assert "would delete 0 objects (0 B)" in r.output
    assert fmt_bytes(3 * 1024**3) == "3.0 GiB"


def test_errors_are_aistack_errors(home: Path) -> None:
    with pytest.raises(NotFoundError, match="aistack data ls"):
        CliRunner().invoke(app, ["get", "nope@v1", str(home / "o")], catch_exceptions=False)
    src = home / "f.txt"
    src.write_text("x")
    run("add", "d", str(src))
    from aistack.storage import Datasets

    Datasets.from_settings().add_reference("d@v1", "model", "m@v1")
    with pytest.raises(ConflictError, match="model m@v1"):
        CliRunner().invoke(app, ["rm", "d@v1"], catch_exceptions=False)


def test_diff_says_when_only_the_mode_changed(home: Path) -> None:
    import os

    src = home / "src"
    src.mkdir()
    (src / "run.sh").write_text("#!/bin/sh\n")
    run("add", "m", str(src))
    os.chmod(src / "run.sh", 0o755)
    run("add", "m", str(src))
    r = CliRunner().invoke(app, ["diff", "m@v1", "m@v2"], catch_exceptions=False)
    assert "~ run.sh (10 B, same bytes, mode +x)" in r.output
    [c] = run("diff", "m@v1", "m@v2")["changed"]  # type: ignore[call-overload]
    assert (c["mode"], c["content"]) == ("+x", False)


def test_get_into_a_path_under_a_file_is_an_aistack_error(home: Path) -> None:
    # os.makedirs of DEST ran before the error handling: a raw NotADirectoryError traceback
    from aistack.errors import BackendError

    src = home / "f.txt"
    src.write_text("x")
    run("add", "d", str(src))
    blocker = home / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(BackendError, match="could not write d@v1 into") as ei:
        CliRunner().invoke(app, ["get", "d@v1", str(blocker / "out")], catch_exceptions=False)
    assert "permissions" in (ei.value.hint or "")
    assert blocker.read_text() == "not a directory"
