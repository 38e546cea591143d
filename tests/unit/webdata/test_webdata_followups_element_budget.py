"""Quality mode (trafilatura) takes time superlinear in a page's element count: seconds for a
page of 100,000 elements, 20 s for a hostile one (1,000 chains 300 deep). A page of more than
MAX_QUALITY_ELEMENTS elements is extracted in fast mode instead; extract_page says so, and the
pipeline counts such pages (a note: the page is kept) in its report."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from aistack.webdata.crawler import WarcWriter
from aistack.webdata.extract import MAX_QUALITY_ELEMENTS, extract_page
from aistack.webdata.pipeline import run_pipeline
from aistack.webdata.spec import parse_spec

TEXT = "The river valley held a quiet town where people farmed wheat and barley for years."


def _wide(elements: int) -> str:
    """A page of about ``elements`` elements: an article, then many small cells."""
    cells = "<span>x</span>" * (elements - 8)
    return (
        f"<html><head><title>t</title></head><body><main><article><h1>Valley</h1><p>{TEXT}</p>"
        f"</article><div>{cells}</div></main></body></html>"
    )


def test_a_page_over_the_element_budget_is_extracted_in_fast_mode() -> None:
    html = _wide(MAX_QUALITY_ELEMENTS + 1000)
    page = extract_page(html, mode="quality")
    assert page.fast_fallback is True
    assert page.text == extract_page(html, mode="fast").text
    assert TEXT in page.text
    assert extract_page(html, mode="fast").fast_fallback is False  # (asked for: no fallback)


def test_a_page_within_the_budget_stays_in_quality_mode() -> None:
    html = _wide(MAX_QUALITY_ELEMENTS - 1000)
    page = extract_page(html, mode="quality")
    assert page.fast_fallback is False and TEXT in page.text


def test_a_hostile_wide_and_deep_page_falls_back_after_pruning() -> None:
    chain = "<div>" * 300 + "<p>deep</p>" + "</div>" * 300
    html = f"<html><body><main><p>{TEXT}</p>{chain * 400}</main></body></html>"
    page = extract_page(html, mode="quality")
    assert page.fast_fallback is True and page.pruned == 400
    assert TEXT in page.text


def test_the_pipeline_counts_the_pages_extracted_in_fast_mode(tmp_path: Path) -> None:
    w = WarcWriter(tmp_path / "0.warc.gz")
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    for url, html in {
        "http://wide/": _wide(MAX_QUALITY_ELEMENTS + 1000),
        "http://ok/": _wide(50),
    }.items():
        w.write("response", url, head + html.encode(), content_type="application/http")
    w.close()
    spec = parse_spec(
        {
            "name": "t",
            "input": {"paths": [str(w.path)]},
            "output": str(tmp_path / "o"),
            "steps": [{"extract": {"mode": "quality"}}],
        }
    )
    counts = run_pipeline(spec)["counts"]
    assert counts["notes"] == {"extract/fast_mode_too_many_elements": 1}
    assert counts["documents_out"] == 2
    with gzip.open(tmp_path / "o" / "corpus" / "00000.jsonl.gz", "rt") as fh:
        urls = sorted(json.loads(line)["url"] for line in fh)
    assert urls == ["http://ok/", "http://wide/"]
    txt = (tmp_path / "o" / "report.txt").read_text()
    assert f"pages extracted in fast mode (over {MAX_QUALITY_ELEMENTS:,} elements)" in txt
