"""A dataset version as a pipeline's input (``input: {dataset: raw-crawl@v3}``): pinned when
the run starts, read through hard links to the store's objects (nothing copied on a local
store), and recorded in the lineage as ``dataset:raw-crawl@v3 → webdata:… → dataset:OUT@vN``
(the version is the input node; its files get none of their own)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ConflictError, NotFoundError, ValidationError
from aistack.webdata.pipeline import run_pipeline
from aistack.webdata.spec import parse_spec

STEPS: list[Any] = ["dedup", {"register": {"name": "wd-out"}}]
RUN_RE = re.compile(r"webdata:t@[0-9a-f]{16}")
TEXTS = [
    {"http://a/": "one two three four five six seven"},
    {"http://b/": "eight nine ten eleven twelve thirteen"},
    {"http://c/": "fourteen fifteen sixteen seventeen eighteen"},
]


def _warc(path: Path, texts: dict[str, str]) -> Path:
    from aistack.webdata.crawler import WarcWriter

    w = WarcWriter(path)
    for url, text in texts.items():
        w.write("conversion", url, text.encode(), content_type="text/plain")
    w.close()
    return path


def _add_raw(home: Path, texts: list[dict[str, str]], name: str = "raw") -> str:
    """A dataset version of one WARC file per text (and a dotfile the pipeline skips)."""
    from aistack.storage import Datasets

    src = home / f"src-{name}-{len(texts)}"
    src.mkdir(parents=True)
    for i, t in enumerate(texts):
        _warc(src / f"crawl-{i}.warc.gz", t)
    (src / ".listing").write_text("not an archive")
    return str(Datasets.from_settings().add(name, str(src)).ref)


def _spec(out: Path, dataset: Any = None, paths: list[Path] | None = None) -> Any:
    inp: dict[str, Any] = {}
    if dataset is not None:
        inp["dataset"] = dataset
    if paths is not None:
        inp["paths"] = [str(p) for p in paths]
    return parse_spec({"name": "t", "input": inp, "output": str(out), "steps": STEPS})


def _edges(ref: str) -> set[tuple[str, str]]:
    from aistack.storage import Datasets

    return {(e["src"], e["dst"]) for e in Datasets.from_settings().lineage(ref)["edges"]}


def test_a_dataset_version_is_read_in_place_and_is_the_input_node(home: Path) -> None:
    from aistack.storage import Datasets

    assert _add_raw(home, TEXTS[:2]) == "raw@v1"
    out = home / "out"
    rep = run_pipeline(_spec(out, dataset="raw"))  # NAME: pinned to raw@v1
    assert rep["counts"]["files"] == 2 and rep["counts"]["documents_out"] == 2
    assert rep["bad_files"] == []  # (.listing was not read)
    assert rep["registered"]["ref"] == "wd-out@v1"
    run = rep["lineage"]["run"]
    assert RUN_RE.fullmatch(run), run
    assert _edges("wd-out@v1") == {("dataset:raw@v1", run), (run, "dataset:wd-out@v1")}
    assert rep["lineage"]["inputs"] == [] and rep["lineage"]["edges_added"] == 2
    assert rep["lineage"]["datasets"] == [{"ref": "raw@v1", "node": "dataset:raw@v1", "files": 2}]
    # the input's own lineage shows what used it
    assert _edges("raw@v1") == _edges("wd-out@v1")
    # read through hard links to the store's objects: nothing was copied
    folder = out / "input-datasets" / "raw@v1"
    (info,) = rep["input_datasets"]
    assert info == {
        "ref": "raw@v1",
        "folder": str(folder),
        "files": 2,
        "materialized": "now",
        "linked": 3,  # (.listing too: the version is put there whole)
        "copied": 0,
        "unchanged": 0,
    }
    ds = Datasets.from_settings()
    for e in ds.files("raw@v1"):
        st = os.stat(folder / e.path)
        assert st.st_ino == os.stat(ds.store.key(e.chunks[0])).st_ino, e.path
    # the pinned version is in the run's spec; its files were not hashed for lineage
    spec = json.loads((out / ".tasks" / "spec.json").read_text())["spec"]
    assert spec["input"]["dataset"] == ["raw@v1"]
    done = json.loads((out / ".tasks" / "process-00000.done").read_text())
    assert done["input_sha256"] is None
    assert done["file"] == str(folder / "crawl-0.warc.gz")


def test_a_resumed_run_reads_nothing_again(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aistack.storage import Datasets

    _add_raw(home, TEXTS[:2])
    out = home / "out"
    first = run_pipeline(_spec(out, dataset="raw@v1"))
    gets: list[str] = []
    real = Datasets.get
    monkeypatch.setattr(Datasets, "get", lambda self, ref, *a, **k: gets.append(ref) or real(self, ref, *a, **k))  # fmt: skip
    again = run_pipeline(_spec(out, dataset="raw@v1"))
    assert gets == [] and again["input_datasets"][0]["materialized"].startswith("not needed")
    assert again["run"]["resumed_tasks"] == {"process": 2, "encode": 2, "register": 1}
    assert again["lineage"]["run"] == first["lineage"]["run"]
    assert again["lineage"]["edges_added"] == 0
    # its files gone (and then linked again: other mtimes) is no "input changed"
    import shutil

    shutil.rmtree(out / "input-datasets")
    (out / ".tasks" / "process-00001.done").unlink()  # one task left to run
    third = run_pipeline(_spec(out, dataset="raw@v1"))
    assert gets == ["raw@v1"] and third["input_datasets"][0]["materialized"] == "now"
    assert third["run"]["resumed_tasks"]["process"] == 1
    assert third["counts"] == first["counts"]
    # an interrupted run whose files are all there does not verify them again
    (out / ".tasks" / "process-00001.done").unlink()
    fourth = run_pipeline(_spec(out, dataset="raw@v1"))
    assert gets == ["raw@v1"] and fourth["input_datasets"][0]["materialized"] == "by an earlier run"


def test_latest_is_pinned_when_the_run_starts(home: Path) -> None:
    _add_raw(home, TEXTS[:2])
    out = home / "out"
    first = run_pipeline(_spec(out, dataset="raw@latest"))
    assert _edges("wd-out@v1") >= {("dataset:raw@v1", first["lineage"]["run"])}
    assert _add_raw(home, TEXTS) == "raw@v2"
    with pytest.raises(ConflictError, match="different pipeline or input") as e:
        run_pipeline(_spec(out, dataset="raw@latest"))  # latest is another version now
    assert "--fresh" in (e.value.hint or "")
    rep = run_pipeline(_spec(out, dataset="raw@latest"), fresh=True)
    assert rep["counts"]["files"] == 3 and rep["registered"]["ref"] == "wd-out@v2"
    run = rep["lineage"]["run"]
    assert run != first["lineage"]["run"]
    assert _edges("wd-out@v2") == {("dataset:raw@v2", run), (run, "dataset:wd-out@v2")}
    assert not (out / "input-datasets" / "raw@v1").exists()  # --fresh removed the old one
    from aistack.storage import Datasets

    ds = Datasets.from_settings()
    # the store kept its objects: every byte of v1 is there and verified
    assert ds.verify("raw@v1") == ds.resolve("raw@v1").bytes > 0


def test_dataset_and_local_files_together(home: Path) -> None:
    _add_raw(home, TEXTS[:1])
    local = _warc(home / "local.warc.gz", TEXTS[2])
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    rep = run_pipeline(_spec(home / "out", dataset=["raw@v1", "raw"], paths=[local]))
    assert rep["counts"]["files"] == 2  # raw@v1 named twice is read once
    run = rep["lineage"]["run"]
    assert _edges("wd-out@v1") == {
        (f"file:local.warc.gz@sha256:{digest}", run),
        ("dataset:raw@v1", run),
        (run, "dataset:wd-out@v1"),
    }


def test_a_missing_dataset_or_version_says_what_exists(home: Path) -> None:
    out = home / "out"
    with pytest.raises(NotFoundError, match=r"input\.dataset: dataset 'nope' does not exist") as e:
        run_pipeline(_spec(out, dataset="nope@v1"))
    assert "aistack data ls" in (e.value.hint or "")
    _add_raw(home, TEXTS[:1])
    with pytest.raises(
        NotFoundError, match=r"input\.dataset: dataset 'raw' has no version v9"
    ) as e:
        run_pipeline(_spec(out, dataset="raw@v9"))
    assert "versions: v1" in (e.value.hint or "") and "aistack data log raw" in (e.value.hint or "")
    with pytest.raises(NotFoundError, match="has no tag 'gold'"):
        run_pipeline(_spec(out, dataset="raw@gold"))
    assert not out.exists()  # bad input writes nothing


def test_a_version_without_archives_is_refused(home: Path) -> None:
    from aistack.storage import Datasets

    src = home / "only-dot"
    src.mkdir()
    (src / ".hidden").write_text("x")
    Datasets.from_settings().add("dots", str(src))
    with pytest.raises(ValidationError, match=r"dots@v1 holds no files to read \(only 1 named"):
        run_pipeline(_spec(home / "out", dataset="dots@v1"))


@pytest.mark.parametrize(
    ("inp", "message"),
    [
        ({}, "give paths (local files or folders) or dataset"),
        ({"paths": []}, "give paths (local files or folders) or dataset"),
        ({"dataset": "bad name!"}, "invalid dataset name 'bad name!'; write NAME@vN"),
        ({"dataset": "raw@"}, "names no version after '@'"),
        ({"dataset": ["raw@v1", "raw@v0"]}, "version 'v0' in 'raw@v0' is invalid"),
        ({"dataset": {"name": "raw"}}, "input.dataset: Input should be a valid list"),
    ],
)
def test_the_spec_checks_dataset_references(inp: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        parse_spec({"input": inp, "output": "o", "steps": ["dedup"]})


def test_the_fingerprint_of_a_paths_only_pipeline_is_unchanged() -> None:
    """An output made before ``input.dataset`` existed still resumes: its fingerprint (from
    the spec and the input paths) is the one the earlier version computed."""
    from aistack.webdata.pipeline import _spec_fingerprint

    spec = parse_spec({"name": "t", "input": {"paths": ["/in"]}, "output": "/out", "steps": STEPS})
    assert (
        _spec_fingerprint(spec, [Path("/in/a.warc.gz")]) == "f29b9439367ade8d"
    )  # (computed by the earlier version)
