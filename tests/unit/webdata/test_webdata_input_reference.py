"""A dataset version read by a pipeline run (``input.dataset``) is referenced by the run
(``webdata:…``), as a job references its ``inputs:``: ``aistack data rm`` refuses to delete it
while the run reads it (before, it could be deleted under the run, which then failed to record
its lineage), and, as a job's, the reference is kept after the run: moved to the run's
lineage node when it registers a corpus."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ConflictError, ValidationError
from aistack.webdata.pipeline import run_pipeline
from aistack.webdata.spec import parse_spec

TEXTS = [
    {"http://a/": "one two three four five six seven"},
    {"http://b/": "eight nine ten eleven twelve thirteen"},
]


def _add_raw(home: Path) -> str:
    from aistack.storage import Datasets
    from aistack.webdata.crawler import WarcWriter

    src = home / "src"
    src.mkdir()
    for i, texts in enumerate(TEXTS):
        w = WarcWriter(src / f"crawl-{i}.warc.gz")
        for url, text in texts.items():
            w.write("conversion", url, text.encode(), content_type="text/plain")
        w.close()
    return str(Datasets.from_settings().add("raw", str(src)).ref)


def _spec(out: Path, register: bool = True) -> Any:
    steps: list[Any] = ["dedup"] + ([{"register": {"name": "wd-out"}}] if register else [])
    return parse_spec(
        {"name": "t", "input": {"dataset": "raw"}, "output": str(out), "steps": steps}
    )


def _refs(ref: str) -> list[tuple[str, str]]:
    from aistack.storage import Datasets

    return [(r["kind"], r["id"]) for r in Datasets.from_settings().references(ref)]


def _fingerprint(out: Path) -> str:
    return str(json.loads((out / ".tasks" / "spec.json").read_text())["fingerprint"])


def test_data_rm_of_an_input_version_is_refused_during_and_after_the_run(home: Path) -> None:
    from aistack.storage import Datasets
    from aistack.storage.refs import parse_referrer

    assert _add_raw(home) == "raw@v1"
    out = home / "out"
    refused: list[BaseException] = []
    seen_refs: list[list[tuple[str, str]]] = []

    def progress(stage: str, n: int, total: int) -> None:
        if stage == "process" and n == 0:  # the run is about to read raw@v1's files
            seen_refs.append(_refs("raw@v1"))
            try:
                Datasets.from_settings().delete("raw@v1")
            except ConflictError as exc:
                refused.append(exc)

    rep = run_pipeline(_spec(out), progress=progress)
    provisional = f"t@{_fingerprint(out)}"
    assert seen_refs == [[("webdata", provisional)]]
    (exc,) = refused
    assert (
        str(exc.message) == f"raw@v1 cannot be deleted: it is referenced by webdata {provisional}"
    )
    assert f"`aistack data unref raw@v1 --by webdata:{provisional}`" in (exc.hint or "")
    # the run read the version and recorded its lineage
    assert rep["counts"]["files"] == 2 and rep["registered"]["ref"] == "wd-out@v1"
    run = rep["lineage"]["run"]
    assert re.fullmatch(r"webdata:t@[0-9a-f]{16}", run) and run != f"webdata:{provisional}"
    # after: the reference is kept, as a job's, under the node the lineage shows
    assert _refs("raw@v1") == [("webdata", run.partition(":")[2])]
    assert rep["input_references"] == {"by": run, "versions": ["raw@v1"]}
    assert json.loads((out / "report.json").read_text())["input_references"]["by"] == run
    lineage = Datasets.from_settings().lineage("raw@v1")
    assert {(e["src"], e["dst"]) for e in lineage["edges"]} >= {("dataset:raw@v1", run)}
    with pytest.raises(ConflictError, match=f"referenced by webdata {re.escape(run[8:])}") as e:
        Datasets.from_settings().delete("raw@v1")
    assert f"--by {run}`" in (e.value.hint or "")
    # the hint's command takes it: unref, then rm works; the lineage keeps the version's row
    ds = Datasets.from_settings()
    v, left = ds.remove_references("raw@v1", [parse_referrer(run)])
    assert v.ref == "raw@v1" and left == []
    assert ds.delete("raw@v1").ref == "raw@v1"
    edges = {(e["src"], e["dst"]) for e in ds.lineage("wd-out@v1")["edges"]}
    assert ("dataset:raw@v1", run) in edges


def test_a_run_without_register_keeps_its_reference_and_a_resume_takes_no_second(
    home: Path,
) -> None:
    _add_raw(home)
    out = home / "out"
    calls = 0

    def fail_in_encode(stage: str, n: int, total: int) -> None:
        nonlocal calls
        if stage == "encode":
            calls += 1
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        run_pipeline(_spec(out, register=False), progress=fail_in_encode)
    assert calls == 1
    by = f"t@{_fingerprint(out)}"
    assert _refs("raw@v1") == [("webdata", by)]  # a failed run keeps it, as a failed job
    rep = run_pipeline(_spec(out, register=False))  # resumed: the same run, the same id
    assert rep["run"]["resumed_tasks"]["process"] == 2
    assert rep["input_references"] == {"by": f"webdata:{by}", "versions": ["raw@v1"]}
    assert _refs("raw@v1") == [("webdata", by)]
    assert "lineage" not in rep  # nothing registered: no lineage node to move it to


def test_a_local_files_run_takes_no_reference(home: Path) -> None:
    _add_raw(home)
    src = home / "src"
    spec = parse_spec(
        {"name": "t", "input": {"paths": [str(src)]}, "output": str(home / "o"), "steps": ["dedup"]}
    )
    rep = run_pipeline(spec)
    assert "input_references" not in rep and _refs("raw@v1") == []


def test_webdata_is_a_reference_kind() -> None:
    from aistack.storage.refs import REFERENCE_KINDS, parse_referrer

    assert REFERENCE_KINDS == ("job", "model", "run", "webdata")
    assert parse_referrer("webdata:corpus@3f2a9c0d1e4b5a6c") == (
        "webdata",
        "corpus@3f2a9c0d1e4b5a6c",
    )
    with pytest.raises(ValidationError, match="unknown kind 'web'") as e:
        parse_referrer("web:x")
    assert "job, model, run, webdata" in (e.value.hint or "")


def test_a_webdata_reference_id_is_checked(home: Path) -> None:
    from aistack.storage import Datasets

    _add_raw(home)
    ds = Datasets.from_settings()
    with pytest.raises(ValidationError, match="invalid webdata id 'a b'"):
        ds.add_reference("raw@v1", "webdata", "a b")
    assert ds.add_reference("raw@latest", "webdata", "t@0123456789abcdef").ref == "raw@v1"
    assert ds.remove_reference("raw@v1", "webdata", "t@0123456789abcdef") is True
    assert _refs("raw@v1") == []
