"""Wording of a run's messages and tables: "1 pages read from 1 files" (now singular where
one), a "drops per filter and reason" table with no row when nothing was dropped (now a
"none" row), and an "encode 0/0 files" progress bar on a resumed run (now no bar for a stage
with nothing to do)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_webdata_code_version_r23g import _wet
from typer.testing import CliRunner

from aistack.webdata.pipeline import _why_nothing_kept, run_pipeline
from aistack.webdata.report import render_text
from aistack.webdata.spec import parse_spec


def _proc(pages: int) -> dict[str, Any]:
    return {"html": pages, "texts": 0, "records": pages, "drops": {"c4/x": pages}, "unreadable": []}


@pytest.mark.parametrize(
    ("pages", "files", "said"),
    [
        ([1], 1, "1 page read from 1 file, "),
        ([0], 1, "0 pages read from 1 file, "),
        ([1, 0], 2, "1 page read from 2 files, "),
        ([2, 1], 2, "3 pages read from 2 files, "),
    ],
)
def test_pages_and_files_in_the_singular_where_one(pages: list[int], files: int, said: str) -> None:
    what, _ = _why_nothing_kept([_proc(n) for n in pages], files, {})
    assert what.startswith(said)


def test_nothing_dropped_says_none(tmp_path: Path) -> None:
    inp = _wet(tmp_path / "0.warc.gz", {"http://a/": "one two three four five six"})
    spec = parse_spec(
        {"input": {"paths": [inp]}, "output": str(tmp_path / "o"), "steps": [{"pii": {}}]}
    )
    rep = run_pipeline(spec)
    assert rep["counts"]["drops"] == {} and rep["counts"]["duplicates"] == {}
    drops = render_text(rep).split("drops per filter and reason")[1].split("summary")[0]
    rows = [ln.split("│")[1:3] for ln in drops.splitlines() if ln.startswith("│")]
    assert [[c.strip() for c in r] for r in rows] == [["none: no document was dropped", "0"]]


def test_a_resumed_run_shows_no_empty_progress_bars(tmp_path: Path) -> None:
    from aistack.cli.webdata import app

    inp = _wet(tmp_path / "in" / "0.warc.gz", {"http://a/": "one two three four five six"})
    p = tmp_path / "p.yaml"
    p.write_text(f"input: {{paths: [{inp}]}}\noutput: {tmp_path / 'o'}\nsteps: [dedup]\n")
    env = {"COLUMNS": "200"}
    first = CliRunner().invoke(app, ["run", str(p)], env=env)
    assert first.exit_code == 0, first.output
    assert "encode" in first.stdout and "1/1 files" in first.stdout
    again = CliRunner().invoke(app, ["run", str(p)], env=env)
    assert again.exit_code == 0, again.output
    assert "nothing to do: all 2 tasks resumed" in again.stdout
    assert "encode" not in again.stdout and "0/0" not in again.stdout
    assert again.stdout.lstrip(" ").startswith("webdata run")  # (no blank line first)
