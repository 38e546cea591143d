"""``aistack data ...`` end to end on a temporary AISTACK_HOME (JSON output checked by value)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli.data import app, fmt_bytes
from aistack.errors import ConflictError, NotFoundError
from aistack.storage.contract import stale_reference


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


def aistack(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    """``aistack data ARGS`` through the real entry point: (exit code, stdout, stderr), each
    with its whitespace collapsed (rich wraps long lines)."""
    import sys

    from aistack.cli.main import main

    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(sys, "argv", ["aistack", "data", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as ended:
        main()
    out = capsys.readouterr()
    code = ended.value.code
    return int(code or 0), " ".join(out.out.split()), " ".join(out.err.split())


def test_tag_delete(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = home / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    run("add", "corpus", str(src), "--tag", "gold")
    (src / "b.txt").write_text("world")
    run("add", "corpus", str(src), "--tag", "best")
    code, out, err = aistack(capsys, monkeypatch, "tag", "corpus", "gold", "--delete")
    assert (code, out, err) == (0, "deleted tag corpus@gold (was corpus@v1)", "")
    assert [(x["ref"], x["tags"]) for x in run("log", "corpus")] == [  # type: ignore[index]
        ("corpus@v2", ["best"]),
        ("corpus@v1", []),
    ]
    got = run("get", "corpus@v1", str(home / "out"))  # the version and its bytes stay
    assert got["files"] == 1 and (home / "out" / "a.txt").read_text() == "hello"  # type: ignore[call-overload]
    # a missing tag: exit 2, the tags there are, nothing changed
    code, out, err = aistack(capsys, monkeypatch, "tag", "corpus", "gold", "-d")
    assert code == 2 and out == ""
    assert "dataset 'corpus' has no tag 'gold' (its tags: best (v2))" in err
    # NAME@VERSION that the tag does not point at: refused, the tag stays
    code, _, err = aistack(capsys, monkeypatch, "tag", "corpus@v1", "best", "-d")
    assert code == 2
    assert "tag 'best' of corpus points at corpus@v2, not corpus@v1; nothing was deleted" in err
    assert "aistack data tag corpus best --delete" in err
    code, _, err = aistack(capsys, monkeypatch, "tag", "corpus", "latest", "-d")
    assert code == 2 and "'latest' always names the newest version" in err
    code, _, err = aistack(capsys, monkeypatch, "tag", "corpus", "v2", "-d")
    assert code == 2 and "it names a version" in err and "aistack data rm corpus@vN" in err
    code, _, err = aistack(capsys, monkeypatch, "tag", "nope", "best", "-d")
    assert code == 2 and "dataset 'nope' does not exist" in err and "known: corpus" in err
    assert run("tag", "corpus@v2", "best", "--delete") == {
        "name": "corpus",
        "tag": "best",
        "was": "corpus@v2",
        "deleted": True,
    }
    assert [x["tags"] for x in run("log", "corpus")] == [[], []]  # type: ignore[index]
    assert [x["ref"] for x in run("log", "corpus")] == ["corpus@v2", "corpus@v1"]  # type: ignore[index]


def test_unref_then_rm(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:

    from aistack.storage import Datasets

    src = home / "f.txt"
    src.write_text("x")
    run("add", "d", str(src))
    ds = Datasets.from_settings()
    ds.add_reference("d@v1", "job", "j1")
    ds.add_reference("d@v1", "model", "m@v1")
    code, _, err = aistack(capsys, monkeypatch, "rm", "d@v1")
    assert code == 2 and "d@v1 cannot be deleted: it is referenced by job j1, model m@v1" in err
    cmd = "aistack data unref d@v1 --by job:j1 --by model:m@v1"
    assert f"drop the references first: `{cmd}`" in err
    # a reference that is not there: exit 2, the ones there are listed, none dropped
    code, _, err = aistack(capsys, monkeypatch, "unref", "d@v1", "--by", "job:j1", "--by", "job:x")
    assert code == 2
    assert "d@v1 has no reference job:x (its references: job:j1, model:m@v1;" in err
    code, _, err = aistack(capsys, monkeypatch, "unref", "d@v1")
    assert code == 2 and "no reference of d@v1 to drop was given" in err
    assert "name one with --by KIND:ID; its references: job:j1, model:m@v1" in err
    code, _, err = aistack(capsys, monkeypatch, "unref", "d@v1", "--by", "jobs:j1")
    assert code == 2 and "invalid reference 'jobs:j1': unknown kind 'jobs'" in err
    assert "job, model, run" in err
    code, _, err = aistack(capsys, monkeypatch, "unref", "d@v1", "--by", "j1")
    assert code == 2 and "invalid reference 'j1': no KIND:ID" in err
    code, _, err = aistack(capsys, monkeypatch, "unref", "d@v9", "--by", "job:j1")
    assert code == 2 and "dataset 'd' has no version v9" in err
    assert [(r["kind"], r["id"]) for r in ds.references("d@v1")] == [
        ("job", "j1"),
        ("model", "m@v1"),
    ]
    code, out, err = aistack(capsys, monkeypatch, "unref", "d@v1", "--by", "job:j1")
    assert (code, err) == (0, "")
    assert out == "dropped job:j1 from d@v1 still referenced by model:m@v1"
    assert run("unref", "d@v1", "--by", "model:m@v1") == {
        "ref": "d@v1",
        "removed": [{"kind": "model", "id": "m@v1"}],
        "references": [],
    }
    code, out, _ = aistack(capsys, monkeypatch, "rm", "d@v1")
    assert code == 0 and out.startswith("deleted d@v1")


def test_unref_command_from_the_rm_hint_works_as_written(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import re
    import shlex

    from aistack.storage import Datasets

    src = home / "f.txt"
    src.write_text("x")
    run("add", "d", str(src))
    ds = Datasets.from_settings()
    ds.add_reference("d@v1", "run", "abc def")  # an id that needs quoting
    ds.add_reference("d@v1", "job", "j1")
    code, _, err = aistack(capsys, monkeypatch, "rm", "d@v1")
    assert code == 2
    [cmd] = re.findall(r"`(aistack data unref [^`]*)`", err)
    argv = shlex.split(cmd)
    assert argv[:4] == ["aistack", "data", "unref", "d@v1"]
    code, out, _ = aistack(capsys, monkeypatch, *argv[2:])
    assert code == 0 and out == (
        "dropped job:j1, run:abc def from d@v1 "
        "nothing references d@v1 now: `aistack data rm d@v1` deletes it"
    )
    code, _, _ = aistack(capsys, monkeypatch, "rm", "d@v1")
    assert code == 0


def test_lineage_of_a_deleted_version(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistack.storage import Datasets

    src = home / "f.txt"
    src.write_text("x")
    run("add", "raw", str(src))
    src.write_text("y")
    run("add", "tokens", str(src))
    ds = Datasets.from_settings()
    ds.record_lineage(["raw@v1"], "job-1", ["tokens@v1"])
    code, _, _ = aistack(capsys, monkeypatch, "rm", "raw@v1")
    assert code == 0
    deleted_at = ds.catalog.version_row("raw", 1)["deleted_at"]  # type: ignore[index]
    when = deleted_at.strftime("%Y-%m-%d %H:%M:%S")
    code, out, err = aistack(capsys, monkeypatch, "lineage", "raw@v1")
    assert (code, err) == (0, "")
    assert out.startswith(f"dataset:raw@v1 (deleted {when} UTC, ")
    assert "→ used by └── job:job-1 └── dataset:tokens@v1" in out
    code, out, _ = aistack(capsys, monkeypatch, "lineage", "tokens@v1")
    assert code == 0 and f"dataset:raw@v1 (deleted {when} UTC, " in out
    assert out.startswith("dataset:tokens@v1 ← made from")  # the live root is not marked
    g = run("lineage", "raw@v1")
    nodes = {n["id"]: n["deleted_at"] for n in g["nodes"]}  # type: ignore[call-overload]
    assert nodes["dataset:raw@v1"].startswith(deleted_at.isoformat())
    assert nodes["dataset:tokens@v1"] is None and nodes["job:job-1"] is None
    code, _, err = aistack(capsys, monkeypatch, "get", "raw@v1", str(home / "o"))
    assert code == 2 and "raw: version v1 was deleted" in err  # only lineage shows it


def test_tag_delete_at_latest_is_an_explicit_version(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `ds@latest silver -d` deleted silver (on v1) although latest is v2
    src = home / "f.txt"
    src.write_text("x")
    run("add", "ds", str(src), "--tag", "silver")
    src.write_text("y")
    run("add", "ds", str(src))
    code, out, err = aistack(capsys, monkeypatch, "tag", "ds@latest", "silver", "-d")
    assert (code, out) == (2, "")
    assert err == (
        "error: tag 'silver' of ds points at ds@v1, not ds@v2; nothing was deleted (to delete "
        "it anyway: `aistack data tag ds silver --delete`)"
    )
    assert [(x["ref"], x["tags"]) for x in run("log", "ds")] == [  # type: ignore[index]
        ("ds@v2", []),
        ("ds@v1", ["silver"]),
    ]
    run("tag", "ds@latest", "gold")
    code, out, _ = aistack(capsys, monkeypatch, "tag", "ds@latest", "gold", "-d")
    assert (code, out) == (0, "deleted tag ds@gold (was ds@v2)")


def test_unref_needs_an_explicit_version(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistack.storage import Datasets

    src = home / "f.txt"
    src.write_text("x")
    run("add", "ds", str(src), "--tag", "gold")
    ds = Datasets.from_settings()
    ds.add_reference("ds@v1", "job", "X")
    for loose in ("ds", "ds@latest", "ds@gold"):
        code, out, err = aistack(capsys, monkeypatch, "unref", loose, "--by", "job:X")
        assert (code, out) == (2, "")
        assert err == (
            f"error: dropping a reference needs an explicit version, not {loose!r} (write ds@vN)"
        )
    assert [(r["kind"], r["id"]) for r in ds.references("ds@v1")] == [("job", "X")]
    code, out, _ = aistack(capsys, monkeypatch, "unref", "ds@v1", "--by", "job:X")
    assert code == 0 and out.startswith("dropped job:X from ds@v1")


def test_unref_of_a_deleted_version_says_it_is_deleted(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = home / "f.txt"
    src.write_text("x")
    run("add", "ds", str(src))
    src.write_text("y")
    run("add", "ds", str(src))
    assert aistack(capsys, monkeypatch, "rm", "ds@v1")[0] == 0
    code, out, err = aistack(capsys, monkeypatch, "unref", "ds@v1", "--by", "job:X")
    assert (code, out) == (2, "")
    assert err == (
        "error: ds@v1 is already deleted and has no reference job:X (no references are left "
        "on it: nothing to drop)"
    )
    code, out, err = aistack(capsys, monkeypatch, "unref", "ds@v1")
    assert (code, out) == (2, "")
    assert err == (
        "error: no reference of ds@v1 to drop was given (ds@v1 is already deleted and has no "
        "references)"
    )
    # a live version without references still points at `data rm`
    code, _, err = aistack(capsys, monkeypatch, "unref", "ds@v2", "--by", "job:X")
    assert code == 2 and "none keeps `aistack data rm ds@v2` from deleting it" in err


def test_references_left_on_a_deleted_version_can_still_be_dropped(home: Path) -> None:
    from aistack.storage import Datasets

    src = home / "f.txt"
    src.write_text("x")
    run("add", "ds", str(src))
    ds = Datasets.from_settings()
    ds.delete("ds@v1")
    v = ds.catalog.version_row("ds", 1)
    assert v is not None
    stale_reference(ds, int(v["id"]), "job", "late")  # left by a catalog from before the lock
    assert run("unref", "ds@v1", "--by", "job:late") == {
        "ref": "ds@v1",
        "removed": [{"kind": "job", "id": "late"}],
        "references": [],
    }


def test_lineage_leaves_out_an_empty_side(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistack.storage import Datasets

    src = home / "f.txt"
    src.write_text("x")
    run("add", "raw", str(src))
    src.write_text("y")
    run("add", "tokens", str(src))
    run("add", "alone", str(src))
    Datasets.from_settings().record_lineage(["raw@v1"], "job-1", ["tokens@v1"])
    code, out, err = aistack(capsys, monkeypatch, "lineage", "raw@v1")
    assert (code, err) == (0, "")
    assert out == "dataset:raw@v1 → used by └── job:job-1 └── dataset:tokens@v1"
    code, out, _ = aistack(capsys, monkeypatch, "lineage", "tokens@v1")
    assert out == "dataset:tokens@v1 ← made from └── job:job-1 └── dataset:raw@v1"
    code, out, _ = aistack(capsys, monkeypatch, "lineage", "alone@v1")
    assert out == (
        "dataset:alone@v1 no lineage recorded yet (jobs with `inputs:` record it, and so does "
        "the register step of `aistack webdata run`)"
    )


def test_usage_lines_name_arguments_plainly() -> None:
    from aistack.cli.main import app as main_app

    want = {
        "add": "NAME PATH",
        "log": "NAME",
        "diff": "A B",
        "get": "REF DEST",
        "tag": "REF TAG",
        "unref": "REF",
        "lineage": "REF",
        "verify": "REF",
        "rm": "REF",
        "ls": "",
        "gc": "",
    }
    for cmd, args in want.items():
        r = CliRunner().invoke(
            main_app, ["data", cmd, "--help"], prog_name="aistack", env={"COLUMNS": "200"}
        )
        assert r.exit_code == 0, r.output
        [usage] = [line.strip() for line in r.output.splitlines() if "Usage:" in line]
        assert usage == f"Usage: aistack data {cmd} [OPTIONS] {args}".rstrip()
    r = CliRunner().invoke(main_app, ["data", "tag", "ds@v1"], env={"COLUMNS": "200"})
    assert r.exit_code == 2 and "Missing argument 'TAG'" in r.output


def test_unref_hint_keeps_the_rm_command_on_one_line(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from aistack.cli.main import main
    from aistack.storage import Datasets

    src = home / "f.txt"
    src.write_text("x")
    run("add", "a-rather-long-dataset-name", str(src))
    Datasets.from_settings().add_reference("a-rather-long-dataset-name@v1", "job", "j1")
    monkeypatch.setenv("COLUMNS", "30")
    argv = ["aistack", "data", "unref", "a-rather-long-dataset-name@v1", "--by", "job:j1"]
    monkeypatch.setattr(sys, "argv", argv)
    capsys.readouterr()
    with pytest.raises(SystemExit) as ended:
        main()
    assert ended.value.code in (0, None)
    lines = capsys.readouterr().out.splitlines()
    assert "`aistack data rm a-rather-long-dataset-name@v1` deletes it" in lines[-1]


def _referenced(home: Path, *refs: tuple[str, str]) -> Any:
    """``d@v1`` with ``refs``; the Datasets it is in."""
    from aistack.storage import Datasets

    src = home / "f.txt"
    src.write_text("x")
    run("add", "d", str(src))
    ds = Datasets.from_settings()
    for kind, ident in refs:
        ds.add_reference("d@v1", kind, ident)
    return ds


def _refs(ds: Any) -> list[tuple[str, str]]:
    return [(r["kind"], r["id"]) for r in ds.references("d@v1")]


@pytest.mark.parametrize("state", ["QUEUED", "STARTING", "RUNNING", "CANCELLING", "PREEMPTING"])
def test_unref_keeps_the_reference_of_a_job_that_has_not_finished(
    home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    aistack_server: Any,
    state: str,
) -> None:
    # the job reads d@v1: dropping its reference let `data rm` and gc delete its input
    ds = _referenced(home, ("job", "j1"), ("model", "m@v1"))
    aistack_server.jobs["j1"] = state
    code, out, err = aistack(capsys, monkeypatch, "unref", "d@v1", "--by", "job:j1")
    assert (code, out) == (2, "")
    assert err == (
        f"error: job j1 is {state}: its reference to d@v1 cannot be dropped, since `aistack "
        "data rm` and gc could then delete data it still reads; nothing was dropped (wait for "
        "it to end (`aistack wait j1`), cancel it (`aistack cancel j1`), or pass --force to "
        "drop its reference anyway)"
    )
    # all or nothing: the model's reference given with it stays too
    code, _, err = aistack(
        capsys, monkeypatch, "unref", "d@v1", "--by", "model:m@v1", "--by", "job:j1"
    )
    assert code == 2 and f"job j1 is {state}" in err
    assert _refs(ds) == [("job", "j1"), ("model", "m@v1")]
    assert aistack_server.asked == ["j1", "j1"] and aistack_server.closed == 2
    code, out, err = aistack(capsys, monkeypatch, "unref", "d@v1", "--by", "job:j1", "--force")
    assert (code, out, err) == (0, "dropped job:j1 from d@v1 still referenced by model:m@v1", "")
    assert aistack_server.asked == ["j1", "j1"]  # --force: not asked
    assert _refs(ds) == [("model", "m@v1")]


def test_unref_names_every_unfinished_job(
    home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    aistack_server: Any,
) -> None:
    ds = _referenced(home, ("job", "a"), ("job", "b"), ("job", "c"))
    aistack_server.jobs.update(a="RUNNING", b="SUCCEEDED", c="QUEUED")
    code, _, err = aistack(
        capsys, monkeypatch, "unref", "d@v1", "--by", "job:a", "--by", "job:b", "--by", "job:c"
    )
    assert code == 2
    assert err.startswith(
        "error: job a is RUNNING, job c is QUEUED: their references to d@v1 cannot be dropped"
    )
    assert "cancel them (`aistack cancel a c`)" in err
    assert _refs(ds) == [("job", "a"), ("job", "b"), ("job", "c")]


@pytest.mark.parametrize("state", ["SUCCEEDED", "FAILED", "CANCELLED", "TIMEOUT", None])
def test_unref_drops_the_reference_of_a_finished_or_unknown_job(
    home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    aistack_server: Any,
    state: str | None,
) -> None:
    ds = _referenced(home, ("job", "j1"))
    if state:  # None: the server does not know the job (404)
        aistack_server.jobs["j1"] = state
    code, out, err = aistack(capsys, monkeypatch, "unref", "d@v1", "--by", "job:j1")
    assert (code, err) == (0, "")
    assert out == (
        "dropped job:j1 from d@v1 nothing references d@v1 now: `aistack data rm d@v1` deletes it"
    )
    assert aistack_server.asked == ["j1"] and _refs(ds) == []


def test_unref_warns_when_the_server_cannot_say(
    home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    aistack_server: Any,
) -> None:
    from aistack.errors import AuthError, ConnectionFailed

    ds = _referenced(home, ("job", "a"), ("job", "b"), ("job", "c"))
    down = ConnectionFailed(
        "cannot reach the aistack server at http://127.0.0.1:8765: [Errno 111] refused",
        hint="start it with `aistack up --detach`, or set AISTACK_URL",
    )
    aistack_server.jobs.update(a=AuthError("invalid token"), b=down)
    code, out, err = aistack(
        capsys, monkeypatch, "unref", "d@v1", "--by", "job:a", "--by", "job:b", "--by", "job:c"
    )
    assert code == 0
    assert out.startswith("dropped job:a, job:b, job:c from d@v1")
    assert aistack_server.asked == ["a", "b"]  # c not asked: the server is gone
    assert err == (
        "warning: could not check whether job a is still running (invalid token); dropping "
        "the reference to d@v1 anyway "
        "warning: could not check whether jobs b, c are still running (cannot reach the "
        "aistack server at http://127.0.0.1:8765: [Errno 111] refused); dropping the "
        "reference to d@v1 anyway"
    )
    assert _refs(ds) == []


def test_unref_warns_on_one_line(
    home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    aistack_server: Any,
) -> None:
    import sys

    from aistack.cli.main import main
    from aistack.errors import ConnectionFailed

    _referenced(home, ("job", "j1"))
    aistack_server.jobs["j1"] = ConnectionFailed("cannot reach the aistack server at http://x")
    monkeypatch.setenv("COLUMNS", "30")
    monkeypatch.setattr(sys, "argv", ["aistack", "data", "unref", "d@v1", "--by", "job:j1"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as ended:
        main()
    assert ended.value.code in (0, None)
    assert capsys.readouterr().err == (
        "warning: could not check whether job j1 is still running (cannot reach the aistack "
        "server at http://x); dropping the reference to d@v1 anyway\n"
    )


def test_unref_asks_the_server_only_about_job_references_the_version_has(
    home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    aistack_server: Any,
) -> None:
    ds = _referenced(home, ("job", "j1"), ("run", "r1"))
    aistack_server.jobs["x"] = "RUNNING"
    code, _, err = aistack(capsys, monkeypatch, "unref", "d@v1", "--by", "job:x")
    assert code == 2 and "d@v1 has no reference job:x (its references: job:j1, run:r1;" in err
    left = run("unref", "d@v1", "--by", "run:r1")["references"]  # type: ignore[call-overload]
    assert [(r["kind"], r["id"]) for r in left] == [("job", "j1")]
    assert aistack_server.asked == []
    assert _refs(ds) == [("job", "j1")]


def test_log_deleted_lists_deleted_versions(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistack.storage import Datasets

    src = home / "f.txt"
    for body in ("a", "bb", "ccc"):
        src.write_text(body)
        run("add", "d", str(src))
    assert aistack(capsys, monkeypatch, "rm", "d@v2")[0] == 0
    deleted_at = Datasets.from_settings().catalog.version_row("d", 2)["deleted_at"]  # type: ignore[index]
    assert [(x["ref"], x["deleted"], x["deleted_at"]) for x in run("log", "d")] == [  # type: ignore[index]
        ("d@v3", False, None),
        ("d@v1", False, None),
    ]
    for flag in ("--deleted", "--all", "-a"):
        rows = run("log", "d", flag)
        assert [(x["ref"], x["bytes"], x["deleted"], x["deleted_at"]) for x in rows] == [  # type: ignore[index]
            ("d@v3", 3, False, None),
            ("d@v2", 2, True, deleted_at.replace(tzinfo=dt.UTC).isoformat()),
            ("d@v1", 1, False, None),
        ]
    code, out, err = aistack(capsys, monkeypatch, "log", "d", "--deleted")
    assert (code, err) == (0, "")
    when = deleted_at.strftime("%Y-%m-%d %H:%M:%S")
    assert out.count(f"deleted {when} UTC") == 1
    assert out.index("v3") < out.index("v2") < out.index(f"deleted {when}") < out.index("v1")
    code, out, _ = aistack(capsys, monkeypatch, "log", "d")
    assert code == 0 and "v2" not in out and "deleted" not in out
