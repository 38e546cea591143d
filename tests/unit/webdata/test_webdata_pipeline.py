"""End to end on the shared WARC samples: deterministic on 1 and 2 workers, resumable,
edge cases counted, output registered as a dataset version."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aistack.errors import ConflictError
from aistack.webdata.pipeline import read_jsonl_gz, run_pipeline
from aistack.webdata.shards import read_shard
from aistack.webdata.spec import parse_spec

WARC_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "warc"
STEPS: list[Any] = [
    {"extract": {"mode": "quality"}},
    "language",
    "gopher_repetition",
    "gopher_quality",
    "c4",
    "fineweb",
    "pii",
    "dedup",
    {"tokenize": {"vocab_size": 1024}},
]


def _spec(inputs: list[str], out: Path, steps: list[Any] = STEPS, **kw: Any) -> Any:
    return parse_spec(
        {"name": "t", "input": {"paths": inputs}, "output": str(out), "steps": steps, **kw}
    )


def _outputs(out: Path) -> dict[str, bytes]:
    files = {}
    for sub in ("corpus", "dataset"):
        for p in sorted((out / sub).iterdir()):
            if p.name != "report.json" or sub == "dataset":
                files[f"{sub}/{p.name}"] = p.read_bytes()
    return files


@pytest.fixture(scope="module")
def two_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, dict[str, Any], dict[str, Any]]:
    if not (WARC_DATA / "samples").is_dir():
        pytest.skip(f"shared test data not found at {WARC_DATA}")
    d = tmp_path_factory.mktemp("runs")
    samples = str(WARC_DATA / "samples")
    r1 = run_pipeline(_spec([samples], d / "w1"), workers=1)
    r2 = run_pipeline(_spec([samples], d / "w2"), workers=2)
    return d / "w1", d / "w2", r1, r2


def test_same_bytes_and_counts_on_1_and_2_workers(two_runs: Any) -> None:
    o1, o2, r1, r2 = two_runs
    assert r1["counts"] == r2["counts"]
    b1, b2 = _outputs(o1), _outputs(o2)
    assert b1.keys() == b2.keys()
    assert [k for k in b1 if b1[k] != b2[k]] == []
    assert r1["run"]["workers"] == 1 and r2["run"]["workers"] == 2


def test_report_counts_are_consistent(two_runs: Any) -> None:
    o1, _, r1, _ = two_runs
    c = r1["counts"]
    assert c["files"] == 7
    assert c["html_documents"] == 42  # HTML responses: extract's input
    assert c["text_documents"] == 1  # a WET conversion record: skips extract, to langid
    steps = c["steps"]
    order = [
        "extract",
        "langid",
        "language",
        "gopher_repetition",
        "gopher_quality",
        "c4",
        "fineweb",
        "pii",
        "dedup_hashing",
        "dedup",
    ]
    assert list(steps)[: len(order) + 1] == ["read", *order]
    # each step's input is the previous step's output, and drops add up per filter
    for a, b in zip(order[1:], order[2:], strict=False):
        assert steps[b]["in"] == steps[a]["out"]
    # read emits the HTML pages (to extract) and the WET texts (straight to langid)
    assert steps["read"]["out"] == c["html_documents"] + c["text_documents"]
    assert steps["extract"]["in"] == c["html_documents"]
    assert steps["langid"]["in"] == steps["extract"]["out"] + c["text_documents"]
    for name in ("language", "gopher_repetition", "gopher_quality", "c4", "fineweb"):
        dropped = sum(v for k, v in c["drops"].items() if k.startswith(name + "/"))
        assert steps[name]["in"] - steps[name]["out"] == dropped
    assert c["documents_out"] == steps["dedup"]["out"] > 0
    assert (
        c["duplicates"]["exact_duplicates"] + c["duplicates"]["near_duplicates"]
        == steps["dedup"]["in"] - steps["dedup"]["out"]
    )
    assert sum(c["languages"].values()) == steps["langid"]["in"]
    # shards: one per input file that kept documents (no header-only ones), tokens add
    # up, uint16 for a 1024 vocabulary
    total = 0
    n_docs = 0
    shards = sorted((o1 / "dataset").glob("shard-*.bin"))
    for shard in shards:
        tokens, offsets = read_shard(shard)
        assert tokens.dtype == np.uint16
        assert len(offsets) - 1 > 0, f"{shard.name} holds no documents"
        total += len(tokens)
        n_docs += len(offsets) - 1
    assert total == c["tokens"] > 0 and n_docs == c["documents_out"]
    assert len(shards) == c["shards"] < c["files"]  # some sample files keep no document
    corpus = [r for p in sorted((o1 / "corpus").glob("*.jsonl.gz")) for r in read_jsonl_gz(p)]
    assert len(corpus) == c["documents_out"]
    assert all(r["lang"] == "en" and r["lang_score"] >= 0.65 for r in corpus)
    saved = json.loads((o1 / "report.json").read_text())
    assert saved["counts"] == c
    assert "documents per step" in (o1 / "report.txt").read_text()
    t = r1["timing"]
    assert (
        t["wall_seconds"]["total"] > 0 and t["steps"]["extract"]["docs"] == steps["extract"]["in"]
    )


def test_resume_skips_finished_tasks(two_runs: Any) -> None:
    o1, _, r1, _ = two_runs
    before = _outputs(o1)
    spec = _spec(r1["files"][:0] or [str(Path(r1["files"][0]).parent)], o1)
    again = run_pipeline(spec, workers=1)
    assert again["run"]["resumed_tasks"] == {"process": 7, "encode": 7}
    assert again["counts"] == r1["counts"]
    # lose one task's result: only that one runs again, the output is unchanged
    (o1 / ".tasks" / "process-00003.done").unlink()
    (o1 / ".tasks" / "encode-00003.done").unlink()
    (o1 / "corpus" / "00003.jsonl.gz").unlink()
    third = run_pipeline(spec, workers=1)
    assert third["run"]["resumed_tasks"] == {"process": 6, "encode": 6}
    assert _outputs(o1) == before
    with pytest.raises(ConflictError, match="different pipeline"):
        run_pipeline(_spec([spec.input.paths[0]], o1, steps=STEPS[:3]), workers=1)


def test_edge_cases_are_counted_not_fatal(tmp_path: Path, warc_data: Path) -> None:
    from aistack.webdata.readers import ArchiveReader

    files = sorted((warc_data / "edge-cases").iterdir())
    expected = 0
    for f in files:
        r = ArchiveReader(f)
        list(r.records())
        # records only: a file unreadable as a whole is a bad file (it is listed all the same)
        expected += sum(1 for i in r.issues if i.kind != "file")
    rep = run_pipeline(
        _spec(
            [str(warc_data / "edge-cases")],
            tmp_path / "o",
            steps=[{"extract": {"mode": "fast"}}, "dedup"],
        )
    )
    assert rep["counts"]["unreadable_records"] == expected > 0
    assert {u["file"] for u in rep["unreadable"]} >= {
        str(warc_data / "edge-cases" / "clipped.warc.gz")
    }
    assert all({"file", "offset", "reason"} <= set(u) for u in rep["unreadable"])
    assert rep["counts"]["html_documents"] > 0
    assert "unreadable records" in (tmp_path / "o" / "report.txt").read_text()


def test_register_step(tmp_path: Path, warc_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aistack.settings import reset_settings_cache

    monkeypatch.setenv("AISTACK_HOME", str(tmp_path / "home"))
    reset_settings_cache()
    try:
        steps = [
            {"extract": {"mode": "fast"}},
            "dedup",
            {"tokenize": {"vocab_size": 512}},
            {"register": {"name": "wd-test"}},
        ]
        rep = run_pipeline(
            _spec([str(warc_data / "samples" / "sample-0000.warc.gz")], tmp_path / "o", steps=steps)
        )
        from aistack.storage import Datasets

        v = Datasets.from_settings().resolve("wd-test")
        assert v.version == 1 and v.files == 3  # shard, tokenizer.json, report.json
        assert v.metadata["webdata_report"]["tokens"] == rep["counts"]["tokens"]
        assert rep["registered"]["ref"] == "wd-test@v1"
    finally:
        reset_settings_cache()


def test_cli_run_json(tmp_path: Path, warc_data: Path) -> None:
    from typer.testing import CliRunner

    from aistack.cli.webdata import app

    p = tmp_path / "p.yaml"
    p.write_text(
        f"input: {{paths: ['{warc_data / 'samples' / 'whirlwind.warc.wet.gz'}']}}\n"
        "output: out\nsteps: [{language: {languages: [an]}}, dedup]\n"
    )
    res = CliRunner().invoke(app, ["run", str(p), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["counts"]["html_documents"] == 0  # a WET file: text records, no HTML
    assert rep["counts"]["text_documents"] == 1 and rep["counts"]["documents_out"] == 1
    assert (tmp_path / "out" / "corpus" / "00000.jsonl.gz").exists()
    res = CliRunner().invoke(app, ["run", str(p)])
    assert res.exit_code == 0 and "documents per step" in res.stdout


def _wet(path: Path, texts: dict[str, str]) -> str:
    from aistack.webdata.crawler import WarcWriter

    w = WarcWriter(path)
    for url, text in texts.items():
        w.write("conversion", url, text.encode(), content_type="text/plain")
    w.close()
    return str(path)


def test_minhash_verify_on_and_off(tmp_path: Path) -> None:
    """A, B, C: B edits A's first half, C edits B's second half (J(A,B), J(B,C) > 0.8 >
    J(A,C)). Verified (default): B is dropped as A's duplicate, C is kept. verify: false
    (FineWeb): the chain A–B–C is one cluster and C goes too. Same bytes on 1 and 2 workers."""
    import random
    import string

    from aistack.webdata.dedup import jaccard

    rng = random.Random(5)
    vocab = ["".join(rng.choice(string.ascii_lowercase) for _ in range(7)) for _ in range(5000)]
    a = [rng.choice(vocab) for _ in range(400)]
    b = list(a)
    for i in range(5, 200, 40):
        b[i] = rng.choice(vocab)
    c = list(b)
    for i in range(205, 400, 40):
        c[i] = rng.choice(vocab)
    d = [rng.choice(vocab) for _ in range(300)]
    ta, tb, tc, td = (" ".join(x) for x in (a, b, c, d))
    assert jaccard(ta, tb) > 0.8 and jaccard(tb, tc) > 0.8 and jaccard(ta, tc) < 0.8
    inputs = [
        _wet(tmp_path / "in" / "0.warc.gz", {"http://a/": ta, "http://d/": td}),
        _wet(tmp_path / "in" / "1.warc.gz", {"http://b/": tb, "http://c/": tc}),
    ]

    def run(name: str, verify: bool, workers: int) -> tuple[list[str], dict[str, Any]]:
        steps = [{"dedup": {"exact": False, "minhash": {"verify": verify}}}]
        rep = run_pipeline(_spec(inputs, tmp_path / name, steps=steps), workers=workers)
        urls = [
            r["url"]
            for p in sorted((tmp_path / name / "corpus").glob("*.jsonl.gz"))
            for r in read_jsonl_gz(p)
        ]
        return urls, rep

    urls, rep = run("v1", True, 1)
    assert urls == ["http://a/", "http://d/", "http://c/"]
    dup = rep["counts"]["duplicates"]
    assert dup["near_duplicates"] == 1 and dup["near_duplicate_clusters"] == 1
    assert dup["minhash_pairs_checked"] >= 1
    assert run("v2", True, 2)[0] == urls
    assert _outputs(tmp_path / "v1") == _outputs(tmp_path / "v2")
    urls, rep = run("f1", False, 1)
    assert urls == ["http://a/", "http://d/"]
    assert rep["counts"]["duplicates"]["near_duplicates"] == 2
    assert rep["counts"]["duplicates"]["minhash_pairs_checked"] == 0
    assert run("f2", False, 2)[0] == urls
    assert _outputs(tmp_path / "f1") == _outputs(tmp_path / "f2")


def test_resumed_run_does_not_register_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA-2 #3: every re-run of a finished pipeline (all tasks resumed) added a new dataset
    version with the same files (v2, v3, …); it now reports the version it registered,
    and registers again only when that version is gone."""
    from aistack.settings import reset_settings_cache

    monkeypatch.setenv("AISTACK_HOME", str(tmp_path / "home"))
    reset_settings_cache()
    try:
        inp = _wet(tmp_path / "in" / "0.warc.gz", {"http://a/": "one two three four five six"})
        spec = _spec([inp], tmp_path / "o", steps=["dedup", {"register": {"name": "wd-again"}}])
        first = run_pipeline(spec)
        again = run_pipeline(spec)
        assert first["registered"]["ref"] == again["registered"]["ref"] == "wd-again@v1"
        assert again["run"]["resumed_tasks"] == {"process": 1, "encode": 1, "register": 1}
        from aistack.storage import Datasets

        ds = Datasets.from_settings()
        assert [v.version for v in ds.log("wd-again")] == [1]
        ds.delete("wd-again@v1")
        third = run_pipeline(spec)
        assert third["registered"]["ref"] == "wd-again@v2"
        assert json.loads((tmp_path / "o" / "report.json").read_text())["registered"]["ref"] == (
            "wd-again@v2"
        )
    finally:
        reset_settings_cache()


def test_empty_wet_record_is_dropped(tmp_path: Path) -> None:
    """QA-2 #9: a WET conversion record without text (Common Crawl writes them for pages
    with no text) became an empty document in the corpus and a 0-token shard entry."""
    inp = _wet(tmp_path / "0.warc.gz", {"http://a/": "", "http://b/": "one two three four five"})
    rep = run_pipeline(_spec([inp], tmp_path / "o", steps=["dedup"]))
    assert rep["counts"]["documents_out"] == 1
    assert rep["counts"]["drops"] == {"read/empty_text": 1}
    assert [r["url"] for r in read_jsonl_gz(tmp_path / "o" / "corpus" / "00000.jsonl.gz")] == [
        "http://b/"
    ]


def test_no_documents_left_says_which_filter_dropped_them(tmp_path: Path) -> None:
    """QA-2 #11: 'no documents left to train a tokenizer on' gave no clue which step
    dropped everything (the report is not written on that error)."""
    from aistack.errors import ValidationError

    text = "The history of the town goes back to the twelfth century, when farmers settled."
    inp = _wet(tmp_path / "0.warc.gz", {"http://a/": text})
    steps = [{"language": {"languages": ["de"]}}, "dedup", {"tokenize": {"vocab_size": 512}}]
    with pytest.raises(ValidationError, match=r"1 page read from 1 file, all dropped") as ei:
        run_pipeline(_spec([inp], tmp_path / "o", steps=steps))
    assert "language/other_language 1" in str(ei.value)


def test_report_tables_count_documents_only(tmp_path: Path) -> None:
    """QA-2 #4: 'drops per filter and reason' (column 'docs') listed candidate pairs checked
    and clusters as if they were dropped documents."""
    from aistack.webdata.report import render_text

    inp = _wet(tmp_path / "0.warc.gz", {"http://a/": "one two three four five six"})
    rep = run_pipeline(_spec([inp], tmp_path / "o", steps=["dedup"]))
    text = render_text(rep)
    drops = text.split("drops per filter and reason")[1].split("summary")[0]
    assert "dedup/exact_duplicates" in drops and "dedup/near_duplicates" in drops
    assert "pairs" not in drops and "clusters" not in drops
    assert "0 clusters (0 candidate pairs checked)" in text


def test_an_input_changed_in_place_is_not_resumed(tmp_path: Path) -> None:
    """A WARC rewritten with other content under the same name: resuming would have kept the
    old file's documents; now the run stops and says to use --fresh."""
    inp = _wet(tmp_path / "in" / "0.warc.gz", {"http://a/": "one two three four five six"})
    spec = _spec([inp], tmp_path / "o", steps=["dedup"])
    run_pipeline(spec)
    assert run_pipeline(spec)["run"]["resumed_tasks"]["process"] == 1  # unchanged: resumed
    _wet(tmp_path / "in" / "0.warc.gz", {"http://b/": "seven eight nine ten eleven twelve"})
    with pytest.raises(ConflictError, match="changed since the earlier run") as exc:
        run_pipeline(spec)
    assert "--fresh" in exc.value.hint
    fresh = run_pipeline(spec, fresh=True)
    assert fresh["run"]["resumed_tasks"]["process"] == 0


def test_a_second_run_on_the_same_output_is_refused_while_the_first_runs(
    tmp_path: Path,
) -> None:
    import fcntl
    import os

    inp = _wet(tmp_path / "in" / "0.warc.gz", {"http://a/": "one two three four five six"})
    spec = _spec([inp], tmp_path / "o", steps=["dedup"])
    (tmp_path / "o").mkdir()
    fd = os.open(tmp_path / "o", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a run in progress holds
        with pytest.raises(ConflictError, match="another pipeline run is writing there"):
            run_pipeline(spec)
        assert list((tmp_path / "o").iterdir()) == []  # nothing written
    finally:
        os.close(fd)
    assert run_pipeline(spec)["counts"]["documents_out"] == 1


def test_report_read_back_from_json_lists_the_top_languages_first(two_runs: Any) -> None:
    from aistack.webdata.report import render_text

    o1, _, r1, _ = two_runs
    saved = json.loads((o1 / "report.json").read_text())
    assert list(saved["counts"]["steps"]) == list(r1["counts"]["steps"])  # pipeline order
    langs = saved["counts"]["languages"]
    top = max(langs, key=lambda k: langs[k])
    line = next(ln for ln in render_text(saved).splitlines() if "languages (docs)" in ln)
    assert line.split("languages (docs)")[1].replace("│", " ").split()[0] == top
    # the dataset's copy keeps sorted keys (its bytes are part of the version's id)
    counts = json.loads((o1 / "dataset" / "report.json").read_text())["counts"]
    assert render_text({**saved, "counts": counts}).count("languages (docs)") == 1


def _table_row(text: str, label: str) -> list[str]:
    """The cells of the report table row starting with ``label`` (rich's box characters)."""
    line = next(ln for ln in text.splitlines() if ln.strip("│┃ ").startswith(label))
    return [c.strip() for c in line.strip().strip("│┃").split("│")]


def test_step_table_adds_up(two_runs: Any) -> None:
    """QA-3 #3: 'read (records → HTML pages) 149 → 43', 'extract 42 → 42', 'langid 43 in':
    the WET conversion record was counted as an HTML page although it skips extract, so a
    document appeared from nowhere. The table now shows the WET texts in their own row."""
    from aistack.webdata.report import render_text

    _, _, r1, _ = two_runs
    text = render_text(r1)
    num = lambda cell: int(cell.replace(",", ""))  # noqa: E731
    read = _table_row(text, "read (records")
    extract = _table_row(text, "extract")
    wet = _table_row(text, "WET texts")
    langid = _table_row(text, "langid")
    assert num(read[2]) == num(extract[1]) + num(wet[2])  # read's docs go one way or the other
    assert num(extract[2]) + num(wet[2]) == num(langid[1])  # and meet again at langid
    assert (num(extract[1]), num(wet[2]), num(langid[1])) == (42, 1, 43)


def test_no_empty_shards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QA-3 #2: a file whose documents were all dropped got a header-only shard (72 bytes)
    in dataset/, registered with the dataset. Now it gets none: not on the first run, not
    on a resumed one, and one written by an earlier version is removed."""
    from aistack.settings import reset_settings_cache
    from aistack.storage import Datasets
    from aistack.train.loader import expand_paths
    from aistack.webdata.report import render_text
    from aistack.webdata.shards import write_shard

    monkeypatch.setenv("AISTACK_HOME", str(tmp_path / "home"))
    reset_settings_cache()
    try:
        text = "The history of the town goes back to the twelfth century, when farmers settled."
        inputs = [
            _wet(tmp_path / "in" / "0.warc.gz", {"http://a/": ""}),  # no text: nothing kept
            _wet(tmp_path / "in" / "1.warc.gz", {"http://b/": text}),
            _wet(tmp_path / "in" / "2.warc.gz", {"http://c/": ""}),
        ]
        steps = ["dedup", {"tokenize": {"vocab_size": 300}}, {"register": {"name": "wd-e"}}]
        spec = _spec(inputs, tmp_path / "o", steps=steps)
        dataset = tmp_path / "o" / "dataset"
        rep = run_pipeline(spec, workers=2)
        assert sorted(p.name for p in dataset.glob("shard-*")) == ["shard-00001.bin"]
        assert rep["counts"]["shards"] == 1 and rep["counts"]["documents_out"] == 1
        assert "token shards" in render_text(rep)
        assert Datasets.from_settings().resolve("wd-e").files == 3  # shard, tokenizer, report
        assert expand_paths(str(dataset)) == [str(dataset / "shard-00001.bin")]
        one = _outputs(tmp_path / "o")
        rep1 = run_pipeline(_spec(inputs, tmp_path / "o1", steps=steps[:2]), workers=1)
        assert rep1["counts"] == rep["counts"]
        assert {k: v for k, v in _outputs(tmp_path / "o1").items() if "report" not in k} == {
            k: v for k, v in one.items() if "report" not in k
        }
        # an output written by an earlier version: header-only shards are not kept on resume
        write_shard(dataset / "shard-00002.bin", [], 300)
        again = run_pipeline(spec)
        assert again["run"]["resumed_tasks"] == {"process": 3, "encode": 3, "register": 1}
        assert sorted(p.name for p in dataset.glob("shard-*")) == ["shard-00001.bin"]
        assert _outputs(tmp_path / "o") == one
        # an encode task run again (its .done lost) writes no shard either
        (tmp_path / "o" / ".tasks" / "encode-00000.done").unlink()
        run_pipeline(spec)
        assert _outputs(tmp_path / "o") == one
    finally:
        reset_settings_cache()


def test_rerun_of_a_finished_pipeline_reports_no_throughput(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA-3 #1: re-running a finished pipeline (every task resumed) reported 'wall time
    0.00 s, throughput 9645.2 docs/s, 3,608,210 tokens/s': the earlier run's documents over
    this run's ~0 s. Rates count only this run's work; with none, the report says so."""
    from typer.testing import CliRunner

    from aistack.cli.webdata import app
    from aistack.webdata.report import render_text

    texts = [
        "The history of the town goes back to the twelfth century, when farmers settled.",
        "A river runs through the valley and the old mill still grinds flour every autumn.",
    ]
    inputs = [
        _wet(tmp_path / "in" / f"{i}.warc.gz", {f"http://{i}/": t}) for i, t in enumerate(texts)
    ]
    steps = ["dedup", {"tokenize": {"vocab_size": 300}}]
    p = tmp_path / "p.yaml"
    p.write_text(
        json.dumps(
            {"name": "t", "input": {"paths": inputs}, "output": str(tmp_path / "o"), "steps": steps}
        )
    )
    monkeypatch.setattr("aistack.webdata.pipeline.MIN_RATE_SECONDS", 0.0)  # tiny runs are fast
    first = run_pipeline(_spec(inputs, tmp_path / "o", steps=steps))
    t = first["timing"]
    assert not t["nothing_to_do"] and t["this_run"]["documents"] == 2
    assert t["tokens_per_s"] == pytest.approx(
        first["counts"]["tokens"] / t["wall_seconds"]["total"]
    )

    again = run_pipeline(_spec(inputs, tmp_path / "o", steps=steps))
    t = again["timing"]
    assert again["run"]["resumed_tasks"] == {"process": 2, "encode": 2}
    assert t["nothing_to_do"] is True
    assert t["this_run"] == {
        "process_tasks": 0,
        "encode_tasks": 0,
        "resumed_tasks": 4,
        "documents": 0,
        "tokens": 0,
    }
    assert t["docs_per_s"] is t["docs_per_s_per_worker"] is t["tokens_per_s"] is None
    assert all(v["docs_per_s_per_core"] is None for v in t["steps"].values())
    assert again["counts"] == first["counts"]  # the counts still describe the whole output
    for out in (
        render_text(again),
        (tmp_path / "o" / "report.txt").read_text(),
        render_text(json.loads((tmp_path / "o" / "report.json").read_text())),
        CliRunner().invoke(app, ["run", str(p)], env={"COLUMNS": "200"}).stdout,
    ):
        assert "nothing to do: all 4 tasks resumed" in out
        assert not re.search(r"\d docs/s", out) and "tokens/s" not in out

    # one task lost: the rates count that task's documents and tokens only
    (tmp_path / "o" / ".tasks" / "process-00001.done").unlink()
    (tmp_path / "o" / ".tasks" / "encode-00001.done").unlink()
    third = run_pipeline(_spec(inputs, tmp_path / "o", steps=steps))
    t = third["timing"]
    assert t["this_run"]["documents"] == 1 and t["this_run"]["process_tasks"] == 1
    shard1 = read_shard(tmp_path / "o" / "dataset" / "shard-00001.bin")[0]
    assert t["this_run"]["tokens"] == len(shard1) < third["counts"]["tokens"]
    assert t["docs_per_s"] == pytest.approx(1 / t["wall_seconds"]["total"])
    assert "nothing to do" not in render_text(third)


def test_a_run_too_short_to_time_gives_no_rate() -> None:
    """Work done in less than MIN_RATE_SECONDS: the counts, not a rate over ~0 s."""
    from aistack.webdata.pipeline import _timing
    from aistack.webdata.report import throughput

    proc = {"html": 3, "texts": 1, "steps": {"read": {"in": 9, "out": 4, "seconds": 0.0}}}
    enc = {"docs": 4, "tokens": 500, "tokenize_seconds": 0.0}
    report = {"counts": {"documents_out": 4, "tokens": 500}}
    resumed = {"process": 0, "encode": 0}
    t = _timing([proc], [enc], resumed, 0, 0, 0, 0, 1e-9, 1, report)
    assert t["docs_per_s"] is t["tokens_per_s"] is None and not t["nothing_to_do"]
    assert throughput(t) == "4 docs, 500 tokens in 0.00 s (too short for a rate)"
    t = _timing([proc], [enc], resumed, 0, 0, 0, 0, 2.0, 1, report)
    assert (t["docs_per_s"], t["tokens_per_s"]) == (2.0, 250.0)
    assert throughput(t) == "2.0 docs/s, 250 tokens/s"
