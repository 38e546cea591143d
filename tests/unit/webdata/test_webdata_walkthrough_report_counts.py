"""The run report's counts add up: every record read is an HTML page, a WET text, a drop, or a
skipped record counted by why (``counts.skipped_records``); ``unreadable_records`` counts
records only (a file that is not a WARC at all is a bad file, not a record)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ValidationError
from aistack.webdata.pipeline import run_pipeline
from aistack.webdata.report import tables
from aistack.webdata.spec import parse_spec

STEPS: list[Any] = [{"extract": {"mode": "fast"}}, "dedup"]


def _run(inputs: list[str], out: Path) -> dict[str, Any]:
    spec = parse_spec({"name": "t", "input": {"paths": inputs}, "output": str(out), "steps": STEPS})
    return run_pipeline(spec, workers=1)


def _summary(report: dict[str, Any]) -> dict[str, str]:
    """The report's summary table as {item: value}, cells as plain text."""
    summary = next(t for t in tables(report) if str(t.title) == "summary")
    items, values = (list(col.cells) for col in summary.columns)
    return {str(k): str(v) for k, v in zip(items, values, strict=True)}


def test_read_step_records_add_up_by_reason(tmp_path: Path, warc_data: Path) -> None:
    wget = warc_data / "samples" / "IAH-urls-wget.warc.gz"
    wet = warc_data / "samples" / "whirlwind.warc.wet.gz"
    rep = _run([str(wget), str(wet)], tmp_path / "o")
    c = rep["counts"]
    # IAH-urls-wget.warc.gz: 1 warcinfo, 16 requests, 9 redirects (301/302), 8 records that are
    # not HTML (text/plain, images, XML; 3 resource records of wget's log), 2 HTML pages;
    # whirlwind.warc.wet.gz: 1 warcinfo, 1 text
    assert c["skipped_records"] == {
        "request": 16,
        "http_status_not_200": 9,
        "not_html": 8,
        "warcinfo": 2,
    }
    assert c["html_documents"] == 2
    assert c["text_documents"] == 1  # the WET file's one text
    assert c["records"] == (
        c["html_documents"]
        + c["text_documents"]
        + sum(c["skipped_records"].values())
        + c["drops"].get("read/empty_text", 0)
    )
    txt = (tmp_path / "o" / "report.txt").read_text()
    read_row = next(line for line in txt.splitlines() if "read (records" in line)
    cells = [x.strip() for x in read_row.split("│")]
    dropped = c["records"] - c["html_documents"] - c["text_documents"]
    assert cells[2:5] == [f"{c['records']:,}", "3", f"{dropped:,}"]
    assert "records skipped (not an HTML page or WET text)" in txt
    assert _summary(rep)["records skipped (not an HTML page or WET text)"] == (
        "35 records: request 16, http_status_not_200 9, not_html 8, warcinfo 2"
    )


def test_input_format_wet_counts_the_responses_it_skips(tmp_path: Path, warc_data: Path) -> None:
    spec = parse_spec(
        {
            "name": "t",
            "input": {"paths": [str(warc_data / "edge-cases" / "example.warc")], "format": "wet"},
            "output": str(tmp_path / "o"),
            "steps": STEPS,
        }
    )
    # (no page at all: an error since r23c, which names format: wet; the report is written)
    with pytest.raises(ValidationError, match="input.format: wet reads only WET"):
        run_pipeline(spec, workers=1)
    c = json.loads((tmp_path / "o" / "report.json").read_text())["counts"]
    # 2 warcinfo, 2 request, 1 response, 1 revisit: nothing is a WET text, the response is
    # skipped because the input is read as WET only
    assert c["records"] == 6
    assert c["skipped_records"] == {"request": 2, "warcinfo": 2, "format_wet": 1, "revisit": 1}


def test_unreadable_records_are_records_not_files(tmp_path: Path, warc_data: Path) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copyfile(warc_data / "edge-cases" / "example.warc", inp / "good.warc")
    (inp / "notes.txt").write_text("hello world, not a WARC\n")
    (inp / "neg.warc").write_bytes(b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: -5\r\n\r\n")
    rep = _run([str(inp)], tmp_path / "o")
    c = rep["counts"]
    kinds = sorted(u["kind"] for u in rep["unreadable"])
    assert kinds == ["file", "record"]  # notes.txt as a whole, neg.warc's one record
    assert c["unreadable_records"] == 1
    assert c["bad_files"] == 1
    assert _summary(rep)["unreadable records"] == "1"
    assert "unreadable records and files" in (tmp_path / "o" / "report.txt").read_text()
