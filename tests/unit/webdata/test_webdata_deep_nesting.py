"""HTML nested far deeper than any real page: quality mode extracted '' (libxml2 drops
elements nested deeper than 256 levels) and fast mode took minutes (resiliparse's walk is
quadratic in the depth). Then both modes refused such a page (TooDeeplyNested), which dropped
the shallow main text of a page that merely held deeply nested junk. Now both modes prune the
elements nested deeper than MAX_NESTING_DEPTH (their subtrees with them) and extract the rest,
at once; the pipeline counts the pruned pages as extract/pruned_deep_nesting (a note: the page
is kept when it has text)."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest

pytest.importorskip("resiliparse")
pytest.importorskip("trafilatura")

from aistack.webdata.extract import (  # noqa: E402
    MAX_NESTING_DEPTH,
    PageText,
    extract_files,
    extract_page,
    extract_text,
)
from aistack.webdata.pipeline import run_pipeline  # noqa: E402
from aistack.webdata.spec import parse_spec  # noqa: E402

TEXT = "The history of the town goes back to the twelfth century, when farmers settled. " * 12
JUNK = "Deep junk that is nested far below the main text of the page, buy now, buy now. " * 12


def _page(divs: int) -> str:
    """<p> at depth divs + 3 (<html> 1, <body> 2, the divs, then <p>)."""
    return f"<html><body>{'<div>' * divs}<p>{TEXT}</p>{'</div>' * divs}</body></html>"


def _shallow_text_and_deep_junk(divs: int, subtrees: int = 1) -> str:
    """The main text in an <article> at depth 3, and ``subtrees`` <section>s (depth 3) each
    holding JUNK in a <p> below ``divs`` nested <div>s (the <p> at depth divs + 4)."""
    junk = f"<section>{'<div>' * divs}<p>{JUNK}</p>{'</div>' * divs}</section>"
    return f"<html><body><article><p>{TEXT}</p></article>{junk * subtrees}</body></html>"


@pytest.mark.parametrize("mode", ["quality", "fast"])
def test_a_page_at_the_limit_is_extracted_unpruned(mode: str) -> None:
    assert MAX_NESTING_DEPTH == 256
    page = extract_page(_page(MAX_NESTING_DEPTH - 3), mode=mode)  # <p> at depth 256
    assert page == PageText(TEXT.strip(), 0)


@pytest.mark.parametrize("mode", ["quality", "fast"])
@pytest.mark.parametrize("divs", [MAX_NESTING_DEPTH - 2, 5_000, 200_000])
def test_a_page_whose_only_text_is_too_deep_is_pruned_to_nothing(mode: str, divs: int) -> None:
    # the <p> one level too deep (divs 254: depth 257), or far deeper (fast mode's old walk
    # took ~0.2 s at 5,000 and minutes at 200,000)
    t0 = time.perf_counter()
    page = extract_page(_page(divs), mode=mode)
    assert time.perf_counter() - t0 < 1
    assert page == PageText("", 1)


@pytest.mark.parametrize("mode", ["quality", "fast"])
@pytest.mark.parametrize("divs", [MAX_NESTING_DEPTH, 200_000])
def test_shallow_text_beside_deep_junk_is_kept(mode: str, divs: int) -> None:
    html = _shallow_text_and_deep_junk(divs)
    t0 = time.perf_counter()
    page = extract_page(html, mode=mode)
    assert time.perf_counter() - t0 < 1
    assert page == PageText(TEXT.strip(), 1)
    assert extract_text(html, mode=mode) == TEXT.strip()


@pytest.mark.parametrize("mode", ["quality", "fast"])
def test_what_is_at_the_limit_stays_and_only_what_is_deeper_goes(mode: str) -> None:
    # each <section> (depth 3) nests <div>s down to depth 256, which hold text (kept) and a
    # <span> at depth 257 (pruned, its text with it); three such subtrees: three pruned
    kept, lost = "Kept at the limit, " * 40, "Lost below the limit, " * 40
    divs = MAX_NESTING_DEPTH - 3
    deep = f"<section>{'<div>' * divs}{kept}<span>{lost}</span>{'</div>' * divs}</section>"
    page = extract_page(f"<html><body>{deep * 3}</body></html>", mode=mode)
    assert page.pruned == 3
    assert page.text.startswith(kept.strip())
    assert "Lost below the limit" not in page.text


def test_extract_files_extracts_a_pruned_page(tmp_path: Path) -> None:
    (tmp_path / "deep.html").write_text(_shallow_text_and_deep_junk(200_000))
    (tmp_path / "ok.html").write_text(_page(10))
    errors: list[tuple[str, str]] = []
    rows = list(extract_files([tmp_path], on_error=lambda p, why: errors.append((p.name, why))))
    assert [(Path(str(r["path"])).name, r["text"]) for r in rows] == [
        ("deep.html", TEXT.strip()),
        ("ok.html", TEXT.strip()),
    ]
    assert errors == []


def _html_warc(path: Path, pages: dict[str, str]) -> str:
    from aistack.webdata.crawler import WarcWriter

    w = WarcWriter(path)
    for url, html in pages.items():
        block = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html.encode()
        w.write("response", url, block, content_type="application/http; msgtype=response")
    w.close()
    return str(path)


@pytest.mark.parametrize("mode", ["quality", "fast"])
def test_the_pipeline_keeps_and_counts_pruned_pages(tmp_path: Path, mode: str) -> None:
    inp = _html_warc(
        tmp_path / "0.warc.gz",
        {
            "http://deep/": _page(200_000),  # nothing left: no_text
            "http://shallow-and-deep/": _shallow_text_and_deep_junk(200_000, subtrees=2),
            "http://ok/": _page(10),
            "http://empty/": "<html></html>",
        },
    )
    spec = parse_spec(
        {
            "name": "t",
            "input": {"paths": [inp]},
            "output": str(tmp_path / "o"),
            "steps": [{"extract": {"mode": mode}}],
        }
    )
    t0 = time.perf_counter()
    rep = run_pipeline(spec)
    assert time.perf_counter() - t0 < 60
    counts = rep["counts"]
    assert counts["html_documents"] == 4
    assert counts["documents_out"] == 2
    assert counts["drops"] == {"extract/no_text": 2}
    with gzip.open(tmp_path / "o" / "corpus" / "00000.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for line in fh]
    assert sorted((r["url"], r["text"]) for r in rows) == [
        ("http://ok/", TEXT.strip()),
        ("http://shallow-and-deep/", TEXT.strip()),
    ]
    # the pruned pages (one per page, however many subtrees it lost), in the task's result
    done = json.loads((tmp_path / "o" / ".tasks" / "process-00000.done").read_text())
    assert done["notes"] == {"extract/pruned_deep_nesting": 2}
    assert done["drops"] == {"extract/no_text": 2}
    # and in the run's report (report.json, report.txt)
    assert counts["notes"] == {"extract/pruned_deep_nesting": 2}
    txt = (tmp_path / "o" / "report.txt").read_text()
    assert "pages pruned below 256 nested elements (kept)" in txt


def test_quality_mode_gives_trafilatura_the_page_as_is_unless_pruned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import aistack.webdata.extract as ex

    seen: list[str] = []
    monkeypatch.setattr(ex, "_trafilatura_extract", lambda html, url: seen.append(html) or "")
    ordinary = _page(10)
    deep = _shallow_text_and_deep_junk(1_000)
    ex.extract_text(ordinary, mode="quality")
    ex.extract_text(deep, mode="quality")
    assert seen[0] is ordinary  # the very string: same output, no serialising
    assert TEXT in seen[1] and "Deep junk" not in seen[1]
    assert seen[1].count("<div>") == MAX_NESTING_DEPTH - 3  # <section> 3, <div>s 4..256
