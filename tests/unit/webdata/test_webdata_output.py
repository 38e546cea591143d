"""The pipeline's output folder: ``--fresh`` deletes only what a run wrote, and bad output or
``--out`` paths are errors that say what to fix (not tracebacks, not lost files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli.webdata import app
from aistack.errors import ConflictError, ValidationError
from aistack.webdata.crawler import WarcWriter
from aistack.webdata.pipeline import run_pipeline
from aistack.webdata.spec import load_spec, parse_spec


def _wet(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    w = WarcWriter(path)
    w.write("conversion", "http://a/", b"one two three four five six", content_type="text/plain")
    w.close()
    return path


def _spec(inputs: list[str], out: Path | str) -> Any:
    return parse_spec(
        {"name": "t", "input": {"paths": inputs}, "output": str(out), "steps": ["dedup"]}
    )


def test_fresh_on_the_pipeline_folder_keeps_other_files(tmp_path: Path) -> None:
    """QA #1: ``output: .`` with --fresh used to rmtree the project folder (the YAML too)."""
    proj = tmp_path / "proj"
    inp = _wet(proj / "in" / "0.warc.gz")
    (proj / "notes.txt").write_text("precious")
    pipe = proj / "pipe.yaml"
    pipe.write_text(f"name: a\ninput: {{paths: ['{inp}']}}\noutput: .\nsteps: [dedup]\n")
    spec, base = load_spec(pipe)
    run_pipeline(spec, base=base)
    rep = run_pipeline(spec, base=base, fresh=True)
    assert rep["run"]["resumed_tasks"] == {"process": 0, "encode": 0}
    assert (proj / "notes.txt").read_text() == "precious"
    assert pipe.exists() and inp.exists()
    assert (proj / ".tasks" / "spec.json").exists() and (proj / "report.json").exists()


def test_fresh_deletes_the_previous_run(tmp_path: Path) -> None:
    inp = _wet(tmp_path / "in" / "0.warc.gz")
    out = tmp_path / "out"
    run_pipeline(_spec([str(inp)], out))
    (out / "corpus" / "stale.jsonl.gz").write_bytes(b"x")
    (out / "mine.txt").write_text("keep")
    rep = run_pipeline(_spec([str(inp)], out), fresh=True)
    assert rep["run"]["resumed_tasks"] == {"process": 0, "encode": 0}
    assert not (out / "corpus" / "stale.jsonl.gz").exists()
    assert (out / "mine.txt").read_text() == "keep"


def test_fresh_refuses_a_folder_that_is_not_a_pipeline_output(tmp_path: Path) -> None:
    inp = _wet(tmp_path / "in" / "0.warc.gz")
    out = tmp_path / "data"
    (out / "dataset").mkdir(parents=True)
    (out / "dataset" / "mine.bin").write_bytes(b"precious")
    with pytest.raises(ConflictError, match="not an aistack pipeline output") as ei:
        run_pipeline(_spec([str(inp)], out), fresh=True)
    assert "new or empty folder" in (ei.value.hint or "")
    assert (out / "dataset" / "mine.bin").read_bytes() == b"precious"


def test_fresh_refuses_to_delete_an_input(tmp_path: Path) -> None:
    out = tmp_path / "out"
    inp = _wet(tmp_path / "elsewhere" / "0.warc.gz")
    run_pipeline(_spec([str(inp)], out))
    moved = _wet(out / "dataset" / "in.warc.gz")
    with pytest.raises(ConflictError, match="holds"):
        run_pipeline(_spec([str(moved)], out), fresh=True)
    assert moved.exists()


def test_output_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    inp = _wet(tmp_path / "in" / "0.warc.gz")
    (tmp_path / "a.html").write_text("<p>hi</p>")
    for fresh in (False, True):
        with pytest.raises(ValidationError, match="is a file"):
            run_pipeline(_spec([str(inp)], tmp_path / "a.html"), fresh=fresh)
    assert (tmp_path / "a.html").read_text() == "<p>hi</p>"
    with pytest.raises(ValidationError, match="cannot create folders"):
        run_pipeline(_spec([str(inp)], tmp_path / "a.html" / "sub"))


def test_extract_out_errors_and_keeps_the_old_file(tmp_path: Path) -> None:
    """QA #11/#12: a bad --out was a traceback; a bad input truncated --out before failing."""
    html = tmp_path / "a.html"
    html.write_text("<html><body><p>hello there</p></body></html>")
    keep = tmp_path / "keep.jsonl"
    keep.write_text("keep\n")
    r = CliRunner()
    res = r.invoke(app, ["extract", str(tmp_path / "nonexistent.html"), "--out", str(keep)])
    assert res.exit_code != 0 and isinstance(res.exception, ValidationError)
    assert keep.read_text() == "keep\n"
    res = r.invoke(app, ["extract", str(html), "--out", str(tmp_path / "nodir" / "y.jsonl")])
    assert isinstance(res.exception, ValidationError) and "does not exist" in str(res.exception)
    res = r.invoke(app, ["extract", str(html), "--out", str(tmp_path)])
    assert isinstance(res.exception, ValidationError) and "is a folder" in str(res.exception)
    res = r.invoke(app, ["extract", str(html), "--out", str(keep), "--mode", "fast"])
    assert res.exit_code == 0, res.output
    assert json.loads(keep.read_text())["path"] == str(html)
    assert not (tmp_path / "keep.jsonl.tmp").exists()


@pytest.mark.parametrize("under", ["x.jsonl", "sub/x.jsonl"])
def test_extract_out_under_a_file_says_the_parent_is_a_file(tmp_path: Path, under: str) -> None:
    """`--out d1/a.txt/x.jsonl` (d1/a.txt a file) said to `mkdir -p d1/a.txt`, which fails."""
    html = tmp_path / "a.html"
    html.write_text("<html><body><p>hello there</p></body></html>")
    blocker = tmp_path / "d1" / "a.txt"
    blocker.parent.mkdir()
    blocker.write_text("keep\n")
    res = CliRunner().invoke(app, ["extract", str(html), "--out", str(blocker / under)])
    err = res.exception
    assert isinstance(err, ValidationError), res.output
    assert err.message == f"--out: {blocker} is a file, not a folder, so {blocker / under} " + (
        "cannot be written"
    )
    assert "mkdir" not in str(err)
    assert blocker.read_text() == "keep\n"


def test_shard_info_errors(tmp_path: Path) -> None:
    r = CliRunner()
    for arg, msg in ((tmp_path / "nope.bin", "no such file"), (tmp_path, "is a folder")):
        res = r.invoke(app, ["shard-info", str(arg)])
        assert isinstance(res.exception, ValidationError) and msg in str(res.exception)


def test_step_files_are_relative_to_the_pipeline_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA-2 #1: domains_file / badwords_file / tokenizer_file were read relative to the cwd
    (the example says paths are relative to the pipeline file), and a missing one failed in
    every worker after reading input; now it fails before anything is written."""
    proj = tmp_path / "proj"
    inp = _wet(proj / "in" / "0.warc.gz")
    (proj / "blocked.txt").write_text("a\n")
    pipe = proj / "pipe.yaml"
    pipe.write_text(
        f"input: {{paths: ['{inp}']}}\noutput: out\n"
        "workers: 2\nsteps: [{url_blocklist: {domains_file: blocked.txt}}]\n"
    )
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    spec, base = load_spec(pipe)
    rep = run_pipeline(spec, base=base)
    assert rep["counts"]["drops"] == {"url_blocklist/blocked_domain": 1}
    pipe.write_text(
        f"input: {{paths: ['{inp}']}}\noutput: out2\n"
        "steps: [dedup, {tokenize: {tokenizer_file: tok.json}}]\n"
    )
    spec, base = load_spec(pipe)
    with pytest.raises(ValidationError, match=str(proj / "tok.json")):
        run_pipeline(spec, base=base)
    assert not (proj / "out2").exists()


def test_run_refuses_a_folder_that_is_not_a_pipeline_output(tmp_path: Path) -> None:
    """QA-2 #2: without --fresh a run wrote into any folder: a user's report.txt was
    overwritten and their dataset/ files were registered along with the shards."""
    inp = _wet(tmp_path / "in" / "0.warc.gz")
    out = tmp_path / "data"
    (out / "dataset").mkdir(parents=True)
    (out / "dataset" / "mine.bin").write_bytes(b"precious")
    (out / "report.txt").write_text("my report")
    with pytest.raises(ConflictError, match="not an aistack pipeline output") as ei:
        run_pipeline(_spec([str(inp)], out))
    assert "dataset, report.txt" in str(ei.value)
    assert (out / "report.txt").read_text() == "my report"
    assert sorted(p.name for p in out.rglob("*")) == ["dataset", "mine.bin", "report.txt"]
    # empty folders of those names (made by hand, or by a run killed at once) are fine
    empty = tmp_path / "empty"
    (empty / "dataset").mkdir(parents=True)
    assert run_pipeline(_spec([str(inp)], empty))["counts"]["documents_out"] == 1
    assert run_pipeline(_spec([str(inp)], empty))["run"]["resumed_tasks"]["process"] == 1
