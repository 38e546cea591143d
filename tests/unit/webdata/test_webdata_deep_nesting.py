"""HTML nested far deeper than any real page: quality mode extracted '' (libxml2 drops
elements nested deeper than 256 levels) and fast mode took minutes (resiliparse's walk is
quadratic in the depth); the pipeline then dropped the page as "no_text" without saying why.
Now both modes refuse it at once and the pipeline counts it as extract/too_deeply_nested."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("resiliparse")
pytest.importorskip("trafilatura")

from aistack.errors import ValidationError  # noqa: E402
from aistack.webdata.extract import (  # noqa: E402
    MAX_NESTING_DEPTH,
    TooDeeplyNested,
    extract_files,
    extract_text,
)
from aistack.webdata.pipeline import run_pipeline  # noqa: E402
from aistack.webdata.spec import parse_spec  # noqa: E402

TEXT = "The history of the town goes back to the twelfth century, when farmers settled. " * 12


def _page(divs: int) -> str:
    """<p> at depth divs + 3 (<html> 1, <body> 2, the divs, then <p>)."""
    return f"<html><body>{'<div>' * divs}<p>{TEXT}</p>{'</div>' * divs}</body></html>"


@pytest.mark.parametrize("mode", ["quality", "fast"])
def test_a_page_at_the_limit_is_extracted(mode: str) -> None:
    assert MAX_NESTING_DEPTH == 256
    out = extract_text(_page(MAX_NESTING_DEPTH - 3), mode=mode)  # <p> at depth 256
    assert out == TEXT.strip()


@pytest.mark.parametrize(
    ("mode", "divs"),
    # fast mode's old walk took ~0.2 s at 5,000 and minutes at 200,000 (and extracted it)
    [("quality", 200_000), ("quality", MAX_NESTING_DEPTH - 2), ("fast", 5_000)],
)
def test_a_page_nested_too_deep_is_refused_with_a_reason(mode: str, divs: int) -> None:
    t0 = time.perf_counter()
    with pytest.raises(TooDeeplyNested) as ei:
        extract_text(_page(divs), mode=mode)
    assert time.perf_counter() - t0 < 5
    assert isinstance(ei.value, ValidationError)
    assert ei.value.message == ("the page nests HTML elements more than 256 deep: not extracted")
    assert ei.value.details == {"field": "html"}


def test_fast_mode_stays_bounded_at_200000_levels() -> None:
    t0 = time.perf_counter()
    with pytest.raises(TooDeeplyNested):
        extract_text(_page(200_000), mode="fast")
    assert time.perf_counter() - t0 < 5


def test_extract_files_reports_the_reason(tmp_path: Path) -> None:
    (tmp_path / "deep.html").write_text(_page(200_000))
    (tmp_path / "ok.html").write_text(_page(10))
    errors: list[tuple[str, str]] = []
    rows = list(extract_files([tmp_path], on_error=lambda p, why: errors.append((p.name, why))))
    assert [Path(str(r["path"])).name for r in rows] == ["ok.html"]
    assert errors == [
        ("deep.html", "the page nests HTML elements more than 256 deep: not extracted")
    ]


def _html_warc(path: Path, pages: dict[str, str]) -> str:
    from aistack.webdata.crawler import WarcWriter

    w = WarcWriter(path)
    for url, html in pages.items():
        block = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html.encode()
        w.write("response", url, block, content_type="application/http; msgtype=response")
    w.close()
    return str(path)


@pytest.mark.parametrize("mode", ["quality", "fast"])
def test_the_pipeline_counts_too_deeply_nested_pages(tmp_path: Path, mode: str) -> None:
    inp = _html_warc(
        tmp_path / "0.warc.gz",
        {"http://deep/": _page(200_000), "http://ok/": _page(10), "http://empty/": "<html></html>"},
    )
    spec = parse_spec(
        {
            "name": "t",
            "input": {"paths": [inp]},
            "output": str(tmp_path / "o"),
            "steps": [{"extract": {"mode": mode}}, "dedup"],
        }
    )
    t0 = time.perf_counter()
    rep = run_pipeline(spec)
    assert time.perf_counter() - t0 < 60
    counts = rep["counts"]
    assert counts["documents_out"] == 1
    assert counts["drops"] == {"extract/no_text": 1, "extract/too_deeply_nested": 1}
    assert counts["html_documents"] == 3
