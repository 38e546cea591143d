"""An HTTP response stored without a Content-Type header is sniffed, as the readers mean to
(a body starting with ``<!doctype`` or ``<html`` is a page): the WARC record's own type,
``application/http``, was taken for the page's, so such pages were skipped as ``not_html``."""

from __future__ import annotations

from pathlib import Path

from aistack.webdata.crawler import WarcWriter
from aistack.webdata.pipeline import read_jsonl_gz, run_pipeline
from aistack.webdata.readers import ArchiveReader, iter_html
from aistack.webdata.spec import parse_spec

PAGE = (
    "<!DOCTYPE html><html><body><article><p>The quick brown fox jumps over the lazy dog "
    "near the river bank.</p></article></body></html>"
)


def _warc(path: Path) -> Path:
    w = WarcWriter(path)
    for url, head, body in [
        ("http://a/untyped", "", PAGE.encode()),  # no Content-Type: sniffed, a page
        ("http://a/typed", "Content-Type: text/html\r\n", PAGE.replace("fox", "cat").encode()),
        ("http://a/blob", "", b"\x89PNG\r\n\x1a\n" + b"\0" * 20),  # no type, not a page
        ("http://a/img", "Content-Type: image/png\r\n", b"\x89PNG\r\n\x1a\n"),
    ]:
        block = f"HTTP/1.1 200 OK\r\n{head}\r\n".encode() + body
        w.write("response", url, block, content_type="application/http; msgtype=response")
    w.close()
    return path


def test_content_type_of_an_untyped_response_is_unknown(tmp_path: Path) -> None:
    warc = _warc(tmp_path / "a.warc.gz")
    types = {
        r.url: r.content_type for r in ArchiveReader(warc).records() if r.record_type == "response"
    }
    assert types == {
        "http://a/untyped": "",
        "http://a/typed": "text/html",
        "http://a/blob": "",
        "http://a/img": "image/png",
    }
    assert [r.url for r in iter_html(warc)] == ["http://a/untyped", "http://a/typed"]


def test_the_pipeline_extracts_an_untyped_page(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    _warc(tmp_path / "in" / "a.warc.gz")
    spec = parse_spec(
        {
            "input": {"paths": [str(tmp_path / "in")]},
            "output": str(tmp_path / "out"),
            "workers": 1,
            "steps": [{"extract": {"mode": "fast"}}],
        }
    )
    rep = run_pipeline(spec)
    assert rep["counts"]["html_documents"] == 2
    assert rep["counts"]["skipped_records"] == {"not_html": 2, "warcinfo": 1}
    rows = read_jsonl_gz(tmp_path / "out" / "corpus" / "00000.jsonl.gz")
    assert [(r["url"], r["text"]) for r in rows] == [
        ("http://a/untyped", "The quick brown fox jumps over the lazy dog near the river bank."),
        ("http://a/typed", "The quick brown cat jumps over the lazy dog near the river bank."),
    ]
