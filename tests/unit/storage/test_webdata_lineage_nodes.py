"""Lineage nodes of input files and pipeline runs (``file:NAME@sha256:HEX``,
``webdata:NAME@ID``) in the catalog: checked, recorded in one go, printed in bounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aistack.errors import ValidationError

H = "ab" * 32  # a SHA-256 in hex


def test_lineage_node_kinds() -> None:
    from aistack.storage.datasets import lineage_node

    assert lineage_node("file", f"a.warc.gz@sha256:{H}") == f"file:a.warc.gz@sha256:{H}"
    assert lineage_node("webdata", "corpus@0123") == "webdata:corpus@0123"
    assert lineage_node("job", "42") == "job:42"  # the kinds of storage.refs still work
    with pytest.raises(ValidationError, match="invalid lineage node kind 'bogus'") as e:
        lineage_node("bogus", "x")
    assert "dataset, job, run, model, file, webdata" in (e.value.hint or "")
    with pytest.raises(ValidationError, match="names no content digest"):
        lineage_node("file", "a.warc.gz")
    with pytest.raises(ValidationError, match="invalid file id") as e:
        lineage_node("file", f"a b.warc@sha256:{H}")
    assert "percent-encode" in (e.value.hint or "")
    with pytest.raises(ValidationError, match="invalid webdata id"):
        lineage_node("webdata", "x" * 381)


def test_record_edges_checks_every_node_first(home: Path) -> None:
    from aistack.storage import Datasets

    src = home / "f.txt"
    src.write_text("x")
    ds = Datasets.from_settings()
    ds.add("corpus", str(src))
    f = f"file:a.warc.gz@sha256:{H}"
    with pytest.raises(ValidationError, match="names no content digest"):
        ds.record_edges([(f, "webdata:r@1"), ("file:b.warc", "webdata:r@1")])
    assert ds.lineage("corpus@v1")["edges"] == []  # nothing recorded
    edges = [(f, "webdata:r@1"), (f, "webdata:r@1"), ("webdata:r@1", "dataset:corpus@latest")]
    assert ds.record_edges(edges) == 2  # stored once; dataset refs pinned
    assert ds.record_edges(edges) == 0
    assert {(e["src"], e["dst"]) for e in ds.lineage("corpus@v1")["edges"]} == {
        (f, "webdata:r@1"),
        ("webdata:r@1", "dataset:corpus@v1"),
    }


def test_cli_lineage_with_many_inputs_stays_short(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from aistack.cli.main import main
    from aistack.storage import Datasets

    src = home / "f.txt"
    src.write_text("x")
    ds = Datasets.from_settings()
    ds.add("corpus", str(src))
    files = [f"file:crawl-{i:04d}.warc.gz@sha256:{H}" for i in range(1000)]
    ds.record_edges([(f, "webdata:c@1") for f in files] + [("webdata:c@1", "dataset:corpus@v1")])

    def aistack(*args: str) -> str:
        monkeypatch.setenv("COLUMNS", "200")
        monkeypatch.setattr(sys, "argv", ["aistack", "data", *args])
        capsys.readouterr()
        with pytest.raises(SystemExit) as ended:
            main()
        assert ended.value.code in (0, None)
        return capsys.readouterr().out

    out = aistack("lineage", "corpus@v1")
    lines = out.splitlines()
    assert lines[0] == "dataset:corpus@v1 ← made from"
    assert lines[1] == "└── webdata:c@1"
    assert [ln.split("── ")[1] for ln in lines[2:22]] == files[:20]
    assert lines[22] == "    └── … 980 more (980 file); --json lists them all"
    assert len(lines) == 23
    g = json.loads(aistack("lineage", "corpus@v1", "--json"))
    assert len(g["edges"]) == 1001
