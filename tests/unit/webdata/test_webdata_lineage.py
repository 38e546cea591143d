"""The register step records where the dataset version came from: one ``file:NAME@sha256:HEX``
node per input file → one ``webdata:NAME@ID`` node for the run → ``dataset:NAME@vN``, once
(a resumed run adds no edge), shown by ``aistack data lineage``."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from aistack.webdata.pipeline import run_pipeline
from aistack.webdata.spec import parse_spec

STEPS: list[Any] = ["dedup", {"register": {"name": "wd-lin"}}]
RUN_RE = re.compile(r"webdata:t@[0-9a-f]{16}")


def _warc(path: Path, texts: dict[str, str]) -> Path:
    from aistack.webdata.crawler import WarcWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    w = WarcWriter(path)
    for url, text in texts.items():
        w.write("conversion", url, text.encode(), content_type="text/plain")
    w.close()
    return path


def _spec(inputs: list[Path], out: Path, steps: list[Any] = STEPS) -> Any:
    return parse_spec(
        {
            "name": "t",
            "input": {"paths": [str(p) for p in inputs]},
            "output": str(out),
            "steps": steps,
        }
    )


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _edges(ref: str) -> set[tuple[str, str]]:
    from aistack.storage import Datasets

    return {(e["src"], e["dst"]) for e in Datasets.from_settings().lineage(ref)["edges"]}


def _edge_rows() -> int:
    """Every lineage row in the catalog (a duplicate would show here, not in a set)."""
    from aistack.storage import Datasets
    from aistack.storage.catalog import lineage

    cat = Datasets.from_settings().catalog
    with cat.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(lineage)).scalar() or 0)


def _two_inputs(d: Path) -> list[Path]:
    return [
        _warc(d / "crawl-0.warc.gz", {"http://a/": "one two three four five six seven"}),
        _warc(d / "crawl-1.warc.gz", {"http://b/": "eight nine ten eleven twelve thirteen"}),
    ]


def test_register_records_an_edge_from_each_input(home: Path) -> None:
    a, b = _two_inputs(home / "in")
    rep = run_pipeline(_spec([a, b], home / "out"))
    assert rep["registered"]["ref"] == "wd-lin@v1"
    run = rep["lineage"]["run"]
    assert RUN_RE.fullmatch(run), run
    fa = f"file:crawl-0.warc.gz@sha256:{_sha(a)}"
    fb = f"file:crawl-1.warc.gz@sha256:{_sha(b)}"
    assert _edges("wd-lin@v1") == {(fa, run), (fb, run), (run, "dataset:wd-lin@v1")}
    assert _edge_rows() == 3 and rep["lineage"]["edges_added"] == 3
    assert rep["lineage"]["inputs"] == [
        {"file": str(a), "node": fa},
        {"file": str(b), "node": fb},
    ]
    assert rep["lineage"]["not_recorded"] == []
    # the digest was taken by the process task (no second pass at register time)
    done = json.loads((home / "out" / ".tasks" / "process-00000.done").read_text())
    assert done["input_sha256"] == _sha(a)
    from aistack.storage import Datasets

    assert Datasets.from_settings().resolve("wd-lin@v1").metadata["webdata_run"] == run
    assert json.loads((home / "out" / "report.json").read_text())["lineage"]["run"] == run


def test_resumed_run_records_the_same_edges_once(home: Path) -> None:
    inputs = _two_inputs(home / "in")
    first = run_pipeline(_spec(inputs, home / "out"))
    again = run_pipeline(_spec(inputs, home / "out"))
    assert again["run"]["resumed_tasks"]["register"] == 1
    assert again["registered"]["ref"] == first["registered"]["ref"] == "wd-lin@v1"
    assert again["lineage"]["run"] == first["lineage"]["run"]
    assert again["lineage"]["edges_added"] == 0 and _edge_rows() == 3
    # the same pipeline over other bytes is another run node, with its own inputs
    _warc(inputs[1], {"http://c/": "fourteen fifteen sixteen seventeen eighteen"})
    third = run_pipeline(_spec(inputs, home / "out"), fresh=True)
    assert third["registered"]["ref"] == "wd-lin@v2"
    assert third["lineage"]["run"] != first["lineage"]["run"]
    run = third["lineage"]["run"]
    assert _edges("wd-lin@v2") == {
        (f"file:crawl-0.warc.gz@sha256:{_sha(inputs[0])}", run),
        (f"file:crawl-1.warc.gz@sha256:{_sha(inputs[1])}", run),
        (run, "dataset:wd-lin@v2"),
    }
    assert len(_edges("wd-lin@v1")) == 3  # v1 keeps its own
    assert _edge_rows() == 6


def test_skip_bad_rerun_registers_with_lineage_once(home: Path) -> None:
    good = _warc(home / "in" / "a.warc.gz", {"http://a/": "one two three four five six seven"})
    bad = home / "in" / "b.warc.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00" + b"\x07" * 40)
    spec = _spec([home / "in"], home / "out")
    rep = run_pipeline(spec)
    assert rep["registered"] is None and "lineage" not in rep and _edge_rows() == 0
    rep = run_pipeline(spec, skip_bad=True)
    assert rep["registered"]["ref"] == "wd-lin@v1"
    run = rep["lineage"]["run"]
    # the damaged file is an input too: what was read from it is in the version
    assert _edges("wd-lin@v1") == {
        (f"file:a.warc.gz@sha256:{_sha(good)}", run),
        (f"file:b.warc.gz@sha256:{_sha(bad)}", run),
        (run, "dataset:wd-lin@v1"),
    }
    rep = run_pipeline(spec, skip_bad=True)
    assert rep["lineage"]["edges_added"] == 0 and _edge_rows() == 3


def test_unreadable_input_gets_no_node(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that could not be read at all gave the version nothing: no edge, and the report
    says so (``not_recorded``)."""
    from aistack.webdata import tasks  # (the process task, which hashes the inputs)

    a, b = _two_inputs(home / "in")
    real = tasks.file_sha256
    monkeypatch.setattr(tasks, "file_sha256", lambda p: None if Path(p) == b else real(p))
    rep = run_pipeline(_spec([a, b], home / "out"))
    run = rep["lineage"]["run"]
    assert _edges("wd-lin@v1") == {
        (f"file:crawl-0.warc.gz@sha256:{_sha(a)}", run),
        (run, "dataset:wd-lin@v1"),
    }
    assert rep["lineage"]["not_recorded"] == [
        {"file": str(b), "reason": "the file could not be read"}
    ]


def test_output_of_an_older_run_gets_its_lineage_on_resume(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An output registered before lineage was recorded (process tasks without a digest, no
    edges): resuming it hashes the inputs once, keeps the digests and adds the edges."""
    from aistack.webdata import pipeline

    inputs = _two_inputs(home / "in")
    with monkeypatch.context() as m:  # what an older version of the pipeline left
        m.setattr(pipeline, "record_input_lineage", lambda ref, lineage: {})
        run_pipeline(_spec(inputs, home / "out"))
    for i in range(2):
        p = home / "out" / ".tasks" / f"process-{i:05d}.done"
        old = json.loads(p.read_text())
        del old["input_sha256"]
        p.write_text(json.dumps(old))
    assert _edge_rows() == 0
    rep = run_pipeline(_spec(inputs, home / "out"))
    assert rep["run"]["resumed_tasks"]["register"] == 1 and rep["lineage"]["edges_added"] == 3
    assert len(_edges("wd-lin@v1")) == 3
    for i, f in enumerate(inputs):
        done = json.loads((home / "out" / ".tasks" / f"process-{i:05d}.done").read_text())
        assert done["input_sha256"] == _sha(f)


def test_odd_file_names_make_valid_nodes(home: Path) -> None:
    names = {
        "données 1 @x:y.warc.gz": "donn%C3%A9es%201%20%40x%3Ay.warc.gz",
        os.fsdecode(b"raw\xff\nname.warc.gz"): "raw%FF%0Aname.warc.gz",
        "L" * 240 + ".warc.gz": "L" * 78 + "..." + "L" * 70 + ".warc.gz",
    }
    texts = ["alpha beta gamma delta epsilon", "zeta eta theta iota kappa", "lambda mu nu xi"]
    paths = [
        _warc(home / "in" / n, {f"http://{i}/": t})  # (its WARC-Filename is encoded too)
        for i, (n, t) in enumerate(zip(names, texts, strict=True))
    ]
    rep = run_pipeline(_spec([home / "in"], home / "out"))
    run = rep["lineage"]["run"]
    want = {(f"file:{names[p.name]}@sha256:{_sha(p)}", run) for p in paths}
    assert _edges("wd-lin@v1") == want | {(run, "dataset:wd-lin@v1")}
    for src, _ in want:
        assert re.fullmatch(r"file:[!-~]+", src) and len(src) < 380


def test_real_warc_samples(home: Path, warc_data: Path) -> None:
    """Two of the shared sample crawls (read in place)."""
    a = warc_data / "samples" / "whirlwind.warc.gz"
    b = warc_data / "samples" / "IAH-urls-wget.warc.gz"
    steps = [{"extract": {"mode": "fast"}}, *STEPS]
    rep = run_pipeline(_spec([a, b], home / "out", steps=steps))
    run = rep["lineage"]["run"]
    assert _edges("wd-lin@v1") == {
        (f"file:IAH-urls-wget.warc.gz@sha256:{_sha(b)}", run),
        (f"file:whirlwind.warc.gz@sha256:{_sha(a)}", run),
        (run, "dataset:wd-lin@v1"),
    }


def _aistack(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    """``aistack ARGS`` through the real entry point: (exit code, stdout, stderr), each with
    its whitespace collapsed (rich wraps long lines)."""
    import sys

    from aistack.cli.main import main

    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.setattr(sys, "argv", ["aistack", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as ended:
        main()
    out = capsys.readouterr()
    return int(ended.value.code or 0), " ".join(out.out.split()), " ".join(out.err.split())


def test_cli_lineage_shows_the_inputs(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = _two_inputs(home / "in")
    rep = run_pipeline(_spec([a, b], home / "out"))
    run = rep["lineage"]["run"]
    code, out, err = _aistack(capsys, monkeypatch, "data", "lineage", "wd-lin@v1")
    assert (code, err) == (0, "")
    assert out == (
        f"dataset:wd-lin@v1 ← made from └── {run} "
        f"├── file:crawl-0.warc.gz@sha256:{_sha(a)} "
        f"└── file:crawl-1.warc.gz@sha256:{_sha(b)}"
    )
    code, out, _ = _aistack(capsys, monkeypatch, "data", "lineage", "wd-lin@v1", "--json")
    g = json.loads(out)
    kinds = {n["id"]: n["kind"] for n in g["nodes"]}
    assert sorted(kinds.values()) == ["dataset", "file", "file", "webdata"]
    assert kinds[run] == "webdata"
