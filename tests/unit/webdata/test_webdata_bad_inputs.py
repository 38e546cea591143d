"""Bad input files: a damaged, unreadable or cut-short file is reported (name, reason) and
the other files go on; records cut short by the end of a file are counted with their bytes;
the CLI's exit status says so unless --skip-bad."""

from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.errors import ValidationError
from aistack.webdata import readers
from aistack.webdata.evaluation import generate_page
from aistack.webdata.pipeline import read_jsonl_gz, run_pipeline
from aistack.webdata.readers import ArchiveReader
from aistack.webdata.spec import parse_spec


def _record(body: bytes, url: str = "http://x/") -> bytes:
    head = (
        f"WARC/1.0\r\nWARC-Type: resource\r\nWARC-Target-URI: {url}\r\n"
        f"Content-Type: text/html\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body + b"\r\n\r\n"


def _spec(inputs: list[str], out: Path, steps: list[Any] | None = None) -> Any:
    steps = steps if steps is not None else [{"extract": {"mode": "fast"}}, "dedup"]
    return parse_spec({"name": "t", "input": {"paths": inputs}, "output": str(out), "steps": steps})


def _wet(path: Path, texts: dict[str, str]) -> Path:
    from aistack.webdata.crawler import WarcWriter

    w = WarcWriter(path)
    for url, text in texts.items():
        w.write("conversion", url, text.encode(), content_type="text/plain")
    w.close()
    return path


# --------------------------------------------------------------------------- reader


def test_a_record_cut_by_the_end_of_the_file_is_reported_with_its_bytes(tmp_path: Path) -> None:
    recs = [_record(f"<html>{i}</html>".encode() * 40) for i in range(3)]
    data = b"".join(recs)
    third = len(recs[0]) + len(recs[1])
    whole = len(recs[2]) - 4  # the record without the two CRLFs that end it
    p = tmp_path / "cut.warc"
    # inside the last record's block
    p.write_bytes(data[: third + 150])
    r = ArchiveReader(p)
    assert len(list(r.records())) == 2
    [issue] = r.issues
    assert (issue.kind, issue.offset) == ("truncated", third)
    assert (issue.bytes_present, issue.bytes_expected) == (150, whole)
    assert issue.to_dict()["bytes_present"] == 150 and r.failed
    # inside its header block: the size is unknown
    p.write_bytes(data[: third + 30])
    r = ArchiveReader(p)
    assert len(list(r.records())) == 2
    assert [(i.kind, i.bytes_present, i.bytes_expected) for i in r.issues] == [
        ("truncated", 30, None)
    ]
    # inside its version line ("WA"): used to be "expected a WARC/ version line"
    p.write_bytes(data[: third + 2])
    r = ArchiveReader(p)
    assert len(list(r.records())) == 2
    assert [(i.kind, i.offset, i.bytes_present) for i in r.issues] == [("truncated", third, 2)]
    assert "version line" in r.issues[0].reason


def test_issue_kinds_say_what_was_lost(tmp_path: Path) -> None:
    good = tmp_path / "good.warc"
    good.write_bytes(_record(b"<html>a</html>"))
    r = ArchiveReader(good)
    assert len(list(r.records())) == 1 and r.issues == [] and not r.failed
    # one malformed record among good ones: a record issue, the file is not bad
    mixed = tmp_path / "mixed.warc"
    mixed.write_bytes(
        _record(b"<html>a</html>")
        + b"WARC/1.0\r\nWARC-Type: resource\r\nContent-Length: abc\r\n\r\n"
        + _record(b"<html>b</html>")
    )
    r = ArchiveReader(mixed)
    assert len(list(r.records())) == 2
    assert [i.kind for i in r.issues] == ["record"] and not r.failed
    for name, data, reason in (
        ("junk.warc.gz", b"\x1f\x8b\x08\x00garbage-garbage", "gzip data corrupt"),
        ("text.warc", b"hello, I am not a WARC\n", "not a WARC or ARC file"),
        ("empty.warc.gz", b"", "empty file"),
    ):
        (tmp_path / name).write_bytes(data)
        r = ArchiveReader(tmp_path / name)
        assert list(r.records()) == []
        assert [(i.kind, i.reason.split(" (")[0].split(":")[0]) for i in r.issues] == [
            ("file", reason)
        ]
        assert r.failed and r.issues[0].to_dict()["kind"] == "file"


def test_clipped_gzip_edge_case_counts_its_truncated_record(warc_data: Path) -> None:
    r = ArchiveReader(warc_data / "edge-cases" / "clipped.warc.gz")
    assert list(r.records()) == []
    assert [i.kind for i in r.issues] == ["truncated", "file"]
    t = r.issues[0]
    # Content-Length 88275, 75207 bytes of the block present, after the same header bytes
    assert t.bytes_expected is not None and t.bytes_present is not None
    assert t.bytes_expected - t.bytes_present == 88275 - 75207
    assert 75207 < t.bytes_present < 75207 + 2048


def test_arc_record_cut_by_the_end_of_the_file(warc_data: Path, tmp_path: Path) -> None:
    raw = (warc_data / "edge-cases" / "example.arc").read_bytes()
    p = tmp_path / "cut.arc"
    p.write_bytes(raw[:1000])
    r = ArchiveReader(p)
    assert list(r.records()) == []
    [issue] = r.issues
    assert issue.kind == "truncated" and issue.bytes_present == 1000 - issue.offset
    assert issue.bytes_expected is not None and issue.bytes_expected > issue.bytes_present


# --------------------------------------------------------------------------- pipeline


@pytest.fixture
def mixed_inputs(tmp_path: Path, warc_data: Path) -> Path:
    """A folder of real WARC/WET files (symlinked from the shared data) and bad ones."""
    d = tmp_path / "in"
    d.mkdir()
    sample = warc_data / "samples" / "sample-0000.warc.gz"
    os.symlink(sample, d / "a-good.warc.gz")
    raw = (warc_data / "samples" / "sample-0001.warc.gz").read_bytes()
    (d / "b-clipped.warc.gz").write_bytes(raw[: len(raw) // 2])
    (d / "c-garbage.warc.gz").write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(64))
    (d / "d-empty.warc.gz").write_bytes(b"")
    (d / "e-notgzip.warc.gz").write_bytes(b"<html>saved with the wrong name</html>\n")
    os.symlink(warc_data / "samples" / "whirlwind.warc.wet.gz", d / "f-good.warc.wet.gz")
    return d


def test_pipeline_goes_on_past_bad_files_and_names_each(mixed_inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    rep = run_pipeline(_spec([str(mixed_inputs)], out), workers=1)
    c = rep["counts"]
    assert c["files"] == 6 and c["bad_files"] == 4
    bad = {Path(b["file"]).name: b for b in rep["bad_files"]}
    assert list(bad) == ["b-clipped.warc.gz", "c-garbage.warc.gz", "d-empty.warc.gz",
                         "e-notgzip.warc.gz"]  # fmt: skip
    assert "record truncated" in bad["b-clipped.warc.gz"]["reason"]
    assert "file clipped" in bad["b-clipped.warc.gz"]["reason"]
    assert bad["c-garbage.warc.gz"]["reason"].startswith("gzip data corrupt")
    assert bad["d-empty.warc.gz"]["reason"].startswith("empty file")
    assert bad["e-notgzip.warc.gz"]["reason"].startswith("not a WARC or ARC file")
    assert [bad[n]["records"] for n in list(bad)[1:]] == [0, 0, 0]
    # what the clipped file held before the cut is read and kept
    assert bad["b-clipped.warc.gz"]["records"] > 0
    assert read_jsonl_gz(out / "corpus" / "00001.jsonl.gz")
    # the good files after the bad ones were processed
    assert read_jsonl_gz(out / "corpus" / "00000.jsonl.gz")
    assert [r["url"] for r in read_jsonl_gz(out / "corpus" / "00005.jsonl.gz")]
    # the clipped file's last record: counted, with its bytes
    [t] = [u for u in rep["unreadable"] if u["kind"] == "truncated"]
    assert c["truncated_records"] == 1 and c["truncated_bytes"] == t["bytes_present"] > 0
    assert Path(t["file"]).name == "b-clipped.warc.gz"
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["bad_files"] == rep["bad_files"]
    assert on_disk["counts"]["truncated_records"] == 1
    text = (out / "report.txt").read_text()
    assert "bad input files" in text and "truncated records" in text
    assert all(name in text for name in bad)


class _FailingRaw(io.RawIOBase):
    """A file whose reads fail after ``ok`` bytes (a disk or network error mid-file)."""

    def __init__(self, data: bytes, ok: int) -> None:
        self._data, self._ok, self._pos = data, ok, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._pos >= self._ok:
            raise OSError(5, "Input/output error")
        n = min(len(b), self._ok - self._pos)
        b[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


def test_a_read_error_mid_file_stops_that_file_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It used to stop the whole run (the exception left the worker): now the file is a bad
    file with the reason, its records before the error are kept, the next file is read."""
    d = tmp_path / "in"
    d.mkdir()
    texts = {f"http://a/{i}": generate_page(10 + i).main_text for i in range(6)}
    _wet(d / "0.warc.gz", texts)
    _wet(d / "1.warc.gz", {"http://b/": "another page with enough words in it to keep"})
    plain = gzip.decompress((d / "0.warc.gz").read_bytes())
    real_open = readers.open_archive

    def open_archive(path: str | Path) -> tuple[io.BufferedReader, object | None]:
        if Path(path).name == "0.warc.gz":  # decompressed, then failing after 3 records
            cut = plain.rindex(b"WARC/", 0, plain.index(b"http://a/3"))
            return io.BufferedReader(_FailingRaw(plain, cut), 64), None
        return real_open(path)

    monkeypatch.setattr(readers, "open_archive", open_archive)
    rep = run_pipeline(_spec([str(d)], tmp_path / "o", steps=["dedup"]), workers=1)
    [bad] = rep["bad_files"]
    assert Path(bad["file"]).name == "0.warc.gz"
    assert bad["reason"].startswith("reading stopped: OSError")
    assert "Input/output error" in bad["reason"]
    kept = [r["url"] for r in read_jsonl_gz(tmp_path / "o" / "corpus" / "00000.jsonl.gz")]
    assert kept == ["http://a/0", "http://a/1", "http://a/2"]
    assert [r["url"] for r in read_jsonl_gz(tmp_path / "o" / "corpus" / "00001.jsonl.gz")] == [
        "http://b/"
    ]
    assert rep["counts"]["bad_files"] == 1 and rep["counts"]["documents_out"] == 4


def test_cli_run_exit_status_names_bad_files(tmp_path: Path) -> None:
    from aistack.cli.webdata import app

    d = tmp_path / "in"
    d.mkdir()
    _wet(d / "a.warc.gz", {"http://a/": "one two three four five six seven"})
    (d / "b.warc.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"\x07" * 40)
    p = tmp_path / "p.yaml"
    p.write_text("input: {paths: [in]}\noutput: out\nsteps: [dedup]\n")
    res = CliRunner().invoke(app, ["run", str(p), "--json"])
    assert res.exit_code == 1, res.output  # (the run ended; bad files: 1, not 0)
    rep = json.loads(res.stdout)
    assert [Path(b["file"]).name for b in rep["bad_files"]] == ["b.warc.gz"]
    assert rep["counts"]["documents_out"] == 1  # the good file's document is written
    assert f"bad input file {d / 'b.warc.gz'}: gzip data corrupt" in res.stderr
    assert "--skip-bad" in res.stderr
    res = CliRunner().invoke(app, ["run", str(p), "--skip-bad"])  # resumes the same output
    assert res.exit_code == 0, res.output
    assert "bad input file" in res.stderr and "skipped (--skip-bad)" in res.stderr
    assert "bad input files" in res.stdout  # the summary table
    assert read_jsonl_gz(tmp_path / "out" / "corpus" / "00000.jsonl.gz")[0]["url"] == "http://a/"


# --------------------------------------------------------------------------- extract CLI


def test_cli_extract_goes_on_past_bad_gz_files(tmp_path: Path) -> None:
    from aistack.cli.webdata import app
    from aistack.webdata.extract import extract_files

    d = tmp_path / "pages"
    d.mkdir()
    (d / "a.html").write_text(generate_page(1).html)
    good_gz = gzip.compress(generate_page(2).html.encode())
    corrupt = bytearray(good_gz)
    corrupt[len(corrupt) // 2 : len(corrupt) // 2 + 8] = b"\xff" * 8
    (d / "b.html.gz").write_bytes(bytes(corrupt))  # bad deflate data (zlib.error)
    (d / "c.html.gz").write_bytes(good_gz[: len(good_gz) // 2])  # clipped (EOFError)
    (d / "d.html.gz").write_bytes(good_gz)
    out = tmp_path / "texts.jsonl"
    r = CliRunner()
    res = r.invoke(app, ["extract", str(d), "--mode", "fast", "--out", str(out), "--json"])
    assert res.exit_code == 1, res.output
    summary = json.loads(res.stdout)
    assert summary["files"] == 2
    assert [(Path(b["file"]).name, b["reason"].split(" (")[0]) for b in summary["bad_files"]] == [
        ("b.html.gz", "not a readable gzip file"),
        ("c.html.gz", "not a readable gzip file"),
    ]
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [Path(x["path"]).name for x in rows] == ["a.html", "d.html.gz"]
    assert f"bad input file {d / 'b.html.gz'}" in res.stderr
    assert f"bad input file {d / 'c.html.gz'}" in res.stderr
    assert "2 of 4 input files were bad" in res.stderr
    res = r.invoke(app, ["extract", str(d), "--mode", "fast", "--out", str(out), "--skip-bad"])
    assert res.exit_code == 0, res.output
    assert len(out.read_text().splitlines()) == 2
    # to stdout (no --out): the good rows are printed, the exit status still says it
    res = r.invoke(app, ["extract", str(d), "--mode", "fast"])
    assert res.exit_code == 1
    assert [Path(json.loads(x)["path"]).name for x in res.stdout.splitlines()] == [
        "a.html",
        "d.html.gz",
    ]
    # the library call without on_error still raises on the first bad file
    with pytest.raises(ValidationError, match="b.html.gz: not a readable gzip file"):
        list(extract_files([d], mode="fast"))


# --------------------------------------------------------------------------- register


def _dataset_exists(name: str) -> bool:
    from aistack.errors import NotFoundError
    from aistack.storage import Datasets

    try:
        return bool(Datasets.from_settings().log(name))
    except NotFoundError:
        return False


def test_bad_files_are_not_registered_unless_skip_bad(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review #1: with a bad input file the register step still registered a dataset version,
    and the exit status 1 came after it. Now, as DVC does not commit an output whose stage
    failed: no version without --skip-bad (exit 1, the report says why and how); with
    --skip-bad (a resumed run: nothing is read again) a version that lists the bad files."""
    from aistack.cli.webdata import app
    from aistack.settings import reset_settings_cache
    from aistack.storage import Datasets

    monkeypatch.setenv("AISTACK_HOME", str(tmp_path / "home"))
    reset_settings_cache()
    try:
        d = tmp_path / "in"
        d.mkdir()
        _wet(d / "a.warc.gz", {"http://a/": "one two three four five six seven"})
        (d / "b.warc.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"\x07" * 40)
        p = tmp_path / "p.yaml"
        p.write_text(
            "input: {paths: [in]}\noutput: out\nsteps: [dedup, {register: {name: wd-bad}}]\n"
        )
        res = CliRunner().invoke(app, ["run", str(p), "--json"])
        assert res.exit_code == 1, res.output
        rep = json.loads(res.stdout)
        assert rep["registered"] is None
        assert rep["register_skipped"]["reason"].startswith("1 of 2 input files were bad")
        assert "--skip-bad" in rep["register_skipped"]["hint"]
        on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
        assert (
            on_disk["registered"] is None and on_disk["register_skipped"] == rep["register_skipped"]
        )
        assert "NOT registered" in res.stderr and "--skip-bad to register" in res.stderr
        assert not _dataset_exists("wd-bad")
        assert not (tmp_path / "out" / ".tasks" / "register.done").exists()
        # the human-readable run says it too
        res = CliRunner().invoke(app, ["run", str(p)])
        assert res.exit_code == 1 and "dataset not registered: 1 of 2 input files" in res.stdout
        assert not _dataset_exists("wd-bad")
        # --skip-bad: the same output resumed, registered, marked, exit 0
        res = CliRunner().invoke(app, ["run", str(p), "--json", "--skip-bad"])
        assert res.exit_code == 0, res.output
        rep = json.loads(res.stdout)
        assert rep["registered"]["ref"] == "wd-bad@v1" and "register_skipped" not in rep
        assert rep["run"]["resumed_tasks"] == {"process": 2, "encode": 2}
        v = Datasets.from_settings().resolve("wd-bad")
        assert v.version == 1
        assert v.metadata["webdata_bad_files"] == [
            {"file": str(d / "b.warc.gz"), "reason": rep["bad_files"][0]["reason"]}
        ]
        assert v.metadata["webdata_report"]["bad_files"] == 1
        assert v.message == "webdata pipeline corpus (1 bad input files skipped)"
        assert json.loads((tmp_path / "out" / "report.json").read_text())["registered"]["ref"] == (
            "wd-bad@v1"
        )
        # a run without bad files registers as before, with no mark
        (d / "b.warc.gz").unlink()
        p.write_text(
            "input: {paths: [in]}\noutput: out2\nsteps: [dedup, {register: {name: wd-good}}]\n"
        )
        res = CliRunner().invoke(app, ["run", str(p), "--json"])
        assert res.exit_code == 0, res.output
        v = Datasets.from_settings().resolve("wd-good")
        assert "webdata_bad_files" not in v.metadata and v.message == "webdata pipeline corpus"
    finally:
        reset_settings_cache()


# --------------------------------------------------------------------------- skipped records


_BAD_RECORD = b"WARC/1.0\r\nWARC-Type: resource\r\nContent-Length: abc\r\n\r\n"


def test_cli_run_says_on_stderr_when_records_were_skipped(tmp_path: Path) -> None:
    """A file with an unreadable record (not a bad file): exit 0 and nothing on stderr; the
    damage showed only in the report's table."""
    from aistack.cli.webdata import app

    d = tmp_path / "in"
    d.mkdir()
    page = generate_page(1).html.encode()
    (d / "a.warc").write_bytes(
        _record(page, "http://a/") + _BAD_RECORD + _record(page, "http://b/")
    )
    (d / "b.warc.gz").write_bytes(
        gzip.compress(_record(page, "http://c/")) + gzip.compress(_BAD_RECORD)
    )
    p = tmp_path / "p.yaml"
    p.write_text("input: {paths: [in]}\noutput: out\nsteps: [{extract: {mode: fast}}]\n")
    out = tmp_path / "out"
    for args in (["--json"], []):
        res = CliRunner().invoke(app, ["run", str(p), "--fresh", *args])
        assert res.exit_code == 0, res.output
        line = " ".join(res.stderr.split())
        assert line == (
            f"2 records could not be read, in 2 files; skipped. Each is listed in {out}/report.txt "
            f'and under "unreadable" in {out}/report.json; skipped records do not change the exit '
            "status"
        )
    rep = json.loads((out / "report.json").read_text())
    # P8: which offset is which: the plain file's, the gzip file's decompressed stream
    assert [(Path(u["file"]).name, u["offset"], u["offset_in"]) for u in rep["unreadable"]] == [
        ("a.warc", len(_record(page, "http://a/")), "file"),
        ("b.warc.gz", len(_record(page, "http://c/")), "decompressed"),
    ]
    text = (out / "report.txt").read_text()
    assert f"{len(_record(page, 'http://a/')):,} (in the file)" in text
    assert f"{len(_record(page, 'http://c/')):,} (in the decompressed" in text
    assert "stream)" in text


def test_truncated_records_count_bytes_read_and_missing(tmp_path: Path) -> None:
    """'truncated records … (N bytes)' counted the bytes present, and the README says 'the
    bytes lost': label them exactly, and count the missing ones too."""
    from aistack.webdata.report import render_text, truncated_summary

    recs = [_record(generate_page(i).html.encode(), f"http://x/{i}") for i in range(2)]
    d = tmp_path / "in"
    d.mkdir()
    (d / "cut.warc").write_bytes(recs[0] + recs[1][:300])
    (d / "cut-head.warc").write_bytes(recs[0] + recs[1][:30])  # inside the header: no length
    rep = run_pipeline(_spec([str(d)], tmp_path / "o"), workers=1, skip_bad=True)
    c = rep["counts"]
    whole = len(recs[1]) - 4  # without the two CRLFs that end the record
    assert (c["truncated_records"], c["truncated_bytes"]) == (2, 330)
    assert (c["truncated_missing_bytes"], c["truncated_unknown_length"]) == (whole - 300, 1)
    assert truncated_summary(c) == (
        f"2 (330 bytes read and dropped; {whole - 300:,} bytes missing, 1 of the records with "
        "no length (cut inside the header))"
    )
    text = render_text(rep)  # (the table wraps the cell)
    assert "2 (330 bytes read and dropped;" in text and f"{whole - 300:,} bytes missing" in text


def _txt_row(txt: str, item: str) -> str | None:
    """The value of the summary row ``item`` in report.txt, its wrapped lines joined."""
    lines = iter(txt.splitlines())
    for line in lines:
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0] == item:
            parts = [cells[1]]
            for more in lines:
                cells = [c.strip() for c in more.split("│")[1:-1]]
                if len(cells) != 2 or cells[0]:
                    break
                parts.append(cells[1])
            return " ".join(parts)
    return None


def test_report_txt_says_what_the_register_step_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """report.txt was written before the register step: with registration skipped for bad
    files (report.json's ``register_skipped``) it did not say so, nor which version a run
    registered. Now it is written again after the step and agrees with report.json."""
    from aistack.cli.webdata import app
    from aistack.settings import reset_settings_cache

    monkeypatch.setenv("AISTACK_HOME", str(tmp_path / "home"))
    reset_settings_cache()
    try:
        d = tmp_path / "in"
        d.mkdir()
        _wet(d / "a.warc.gz", {"http://a/": "one two three four five six seven"})
        (d / "b.warc.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"\x07" * 40)
        p = tmp_path / "p.yaml"
        p.write_text(
            "input: {paths: [in]}\noutput: out\nsteps: [dedup, {register: {name: wd-txt}}]\n"
        )
        res = CliRunner().invoke(app, ["run", str(p), "--json"])
        assert res.exit_code == 1, res.output
        rep = json.loads((tmp_path / "out" / "report.json").read_text())
        skipped = rep["register_skipped"]
        txt = (tmp_path / "out" / "report.txt").read_text()
        assert skipped["reason"].startswith("1 of 2 input files were bad")
        assert _txt_row(txt, "registered") == f"NO: {skipped['reason']}; {skipped['hint']}"
        res = CliRunner().invoke(app, ["run", str(p), "--json", "--skip-bad"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["registered"]["ref"] == "wd-txt@v1"
        txt = (tmp_path / "out" / "report.txt").read_text()
        assert _txt_row(txt, "registered") == "dataset version wd-txt@v1"
    finally:
        reset_settings_cache()


@pytest.mark.parametrize(
    ("bad", "total", "want"),
    [
        ([{"records": 0}], 2, "1 of 2 input files were bad; the others were processed and written"),
        ([{"records": 0}], 1, "the only input file was bad; nothing was read from it, nothing "
         "processed"),
        ([{"records": 9}], 1, "the only input file was bad; only the 9 records read before the "
         "damage were processed and written"),
        ([{"records": 1}, {"records": 0}], 2, "all 2 input files were bad; only the 1 record "
         "read before the damage was processed and written"),
        ([{"records": 0}] * 3, 3, "all 3 input files were bad; nothing was read from them, "
         "nothing processed"),
    ],
)  # fmt: skip
def test_bad_files_summary_words_the_case_where_no_file_was_good(
    bad: list[dict[str, Any]], total: int, want: str
) -> None:
    from aistack.webdata.report import bad_files_summary

    assert bad_files_summary(bad, total) == want


def test_a_run_whose_only_input_file_is_bad_does_not_say_the_others_were_processed(
    tmp_path: Path,
) -> None:
    """ "1 of 1 input files were bad; the others were processed and written": there were no
    others. Now it says what was read of the only file (here: a cut lz4 WARC, whose records
    before the cut were processed)."""
    from fastwarc.stream_io import Lz4Writer

    from aistack.cli.webdata import app

    d = tmp_path / "in"
    d.mkdir()
    full = tmp_path / "full.warc.lz4"
    w = Lz4Writer(str(full))
    w.write(b"".join(_record(generate_page(i).html.encode()) for i in range(3)))
    w.close()
    (d / "a.warc.lz4").write_bytes(full.read_bytes()[:-1])  # the end mark cut
    p = tmp_path / "p.yaml"
    p.write_text("input: {paths: [in]}\noutput: out\nsteps: [{extract: {mode: fast}}]\n")
    res = CliRunner().invoke(app, ["run", str(p), "--json"])
    assert res.exit_code == 1, res.output
    rep = json.loads(res.stdout)
    assert [(Path(b["file"]).name, b["records"]) for b in rep["bad_files"]] == [("a.warc.lz4", 3)]
    assert "lz4 frame cut short" in rep["bad_files"][0]["reason"]
    err = " ".join(res.stderr.split())
    assert "the only input file was bad; only the 3 records read before the damage were " in err
    assert "the others" not in err and "1 of 1" not in err
    (d / "a.warc.lz4").write_bytes(b"\x1f\x8b\x08\x00" + b"\x07" * 40)  # nothing readable
    res = CliRunner().invoke(app, ["run", str(p), "--json", "--fresh"])
    assert res.exit_code == 1, res.output
    err = " ".join(res.stderr.split())
    assert "the only input file was bad; nothing was read from it, nothing processed." in err


def _bad_files_title(txt: str) -> str:
    """The bad-files table's title in report.txt (rich centres and wraps it above the
    table's top border), its lines joined."""
    lines = txt.splitlines()
    top = next(i for i, ln in enumerate(lines) if "records read" in ln) - 1  # (its top border)
    head = []
    for ln in reversed(lines[:top]):
        if not ln.strip() or ln.lstrip().startswith("└"):
            break
        head.append(ln.strip())
    return " ".join(reversed(head))


@pytest.mark.parametrize(
    ("files", "want"),
    [
        (["bad"], "bad input files: the only input file was bad; nothing was read from it, "
         "nothing processed"),
        (["bad", "bad"], "bad input files: all 2 input files were bad; nothing was read from "
         "them, nothing processed"),
        (["bad", "good"], "bad input files: 1 of 2 input files were bad; the others were "
         "processed and written"),
    ],
)  # fmt: skip
def test_the_bad_files_table_title_says_the_others_went_on_only_where_there_were_others(
    tmp_path: Path, files: list[str], want: str
) -> None:
    """Its title said "(the run went on with the others)" also where the only input file (or
    every one) was bad: there were no others."""
    from aistack.webdata.report import render_text

    d = tmp_path / "in"
    d.mkdir()
    for i, kind in enumerate(files):
        if kind == "bad":
            (d / f"{i}.warc.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"\x07" * 40)
        else:
            _wet(d / f"{i}.warc.gz", {"http://a/": "one two three four five six seven"})
    out = tmp_path / "o"
    rep = run_pipeline(_spec([str(d)], out, steps=["dedup"]), workers=1, skip_bad=True)
    assert rep["counts"]["bad_files"] == files.count("bad")
    txt = (out / "report.txt").read_text()
    assert _bad_files_title(txt) == want
    assert "went on" not in txt
    saved = json.loads((out / "report.json").read_text())
    assert _bad_files_title(render_text(saved)) == want  # (as read back from report.json)
    from aistack.webdata.report import bad_files_title

    assert bad_files_title(rep) == want
