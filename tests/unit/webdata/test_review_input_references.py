"""Review fixes around a run's references on its input dataset versions (``input.dataset``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ConflictError
from aistack.webdata.pipeline import run_pipeline
from aistack.webdata.spec import parse_spec

TEXTS = [
    {"http://a/": "one two three four five six seven"},
    {"http://b/": "eight nine ten eleven twelve thirteen"},
]


def _add(home: Path, name: str, texts: dict[str, str]) -> str:
    from aistack.storage import Datasets
    from aistack.webdata.crawler import WarcWriter

    src = home / f"src-{name}"
    src.mkdir()
    w = WarcWriter(src / "crawl.warc.gz")
    for url, text in texts.items():
        w.write("conversion", url, text.encode(), content_type="text/plain")
    w.close()
    return str(Datasets.from_settings().add(name, str(src)).ref)


def _spec(out: Path, dataset: list[str]) -> Any:
    return parse_spec({"name": "t", "input": {"dataset": dataset}, "output": str(out), "steps": ["dedup"]})  # fmt: skip


def _refs(ref: str) -> list[tuple[str, str]]:
    from aistack.storage import Datasets

    return [(r["kind"], r["id"]) for r in Datasets.from_settings().references(ref)]


def test_a_version_deleted_after_pinning_leaves_no_reference_on_the_others(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """b@v1 is deleted between the pin (before the output folder is locked and, with --fresh,
    cleared) and the reference: the run stops with a ConflictError naming input.dataset, and
    a@v1 keeps no reference of it (before, a@v1 stayed referenced by a run that never read it,
    so `aistack data rm a@v1` was refused until an unref by hand)."""
    from aistack.storage import Datasets
    from aistack.webdata import lineage

    assert _add(home, "a", TEXTS[0]) == "a@v1"
    assert _add(home, "b", TEXTS[1]) == "b@v1"
    real = lineage.resolve_dataset_inputs

    def pin_then_delete(refs: list[str], out: Path) -> Any:
        got = real(refs, out)
        Datasets.from_settings().delete("b@v1")  # (someone else's `aistack data rm`)
        return got

    monkeypatch.setattr("aistack.webdata.pipeline.resolve_dataset_inputs", pin_then_delete)
    with pytest.raises(ConflictError) as e:
        run_pipeline(_spec(home / "out", ["a@v1", "b@v1"]))
    assert e.value.message.startswith("input.dataset: b@v1 was deleted after this run pinned it")
    assert e.value.message.endswith("nothing was read")
    assert "aistack data log b" in (e.value.hint or "")
    assert _refs("a@v1") == []
    assert not (home / "out" / "input-datasets").exists()
    Datasets.from_settings().delete("a@v1")  # nothing keeps it


def test_a_resumed_run_keeps_its_earlier_references_when_one_version_is_gone(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the references this call took are dropped: a run resumed over a@v1 (which its
    earlier part referenced) keeps that one."""
    from aistack.storage import Datasets
    from aistack.webdata.lineage import DatasetInput, reference_inputs

    _add(home, "a", TEXTS[0])
    _add(home, "b", TEXTS[1])
    _add(home, "c", TEXTS[0])
    a, b, c = (DatasetInput(ref=r, folder=home, files=[]) for r in ("a@v1", "b@v1", "c@v1"))
    assert reference_inputs([a], "t@1") == {"by": "webdata:t@1", "versions": ["a@v1"]}
    Datasets.from_settings().delete("b@v1")
    with pytest.raises(ConflictError, match="input.dataset: b@v1 was deleted"):
        reference_inputs([a, c, b], "t@1")
    assert _refs("a@v1") == [("webdata", "t@1")]  # the earlier run's, kept
    assert _refs("c@v1") == []  # taken by this call, dropped


def test_latest_moved_on_says_how_to_resume_the_earlier_run(home: Path) -> None:
    """An interrupted run over ``raw`` (pinned to raw@v1), then raw@v2 added: the error names
    both versions and how to resume the earlier run (pin raw@v1), not only --fresh (which
    throws its processed tasks away)."""
    _add(home, "raw", TEXTS[0])
    out = home / "out"
    run_pipeline(_spec(out, ["raw"]))
    (out / ".tasks" / "process-00000.done").unlink()  # as if it had been interrupted
    from aistack.storage import Datasets

    src2 = home / "src-raw2"
    src2.mkdir()
    (src2 / "more.warc").write_bytes((home / "src-raw" / "crawl.warc.gz").read_bytes())
    assert str(Datasets.from_settings().add("raw", str(src2)).ref) == "raw@v2"
    with pytest.raises(ConflictError) as e:
        run_pipeline(_spec(out, ["raw"]))
    assert e.value.message == (
        f"output {out} holds a run of a different pipeline or input: it read raw@v1, and "
        "input.dataset now pins raw@v2"
    )
    assert "write input.dataset: [raw@v1]" in (e.value.hint or "")
    assert "--fresh" in (e.value.hint or "")
    assert _refs("raw@v2") == []  # refused before anything was referenced
    rep = run_pipeline(_spec(out, ["raw@v1"]))  # what the hint says: it resumes
    assert rep["run"]["resumed_tasks"]["encode"] == 1
