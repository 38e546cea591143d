"""A run whose input holds no HTML page at all (a WARC of images and JSON) says so when the
tokenizer has nothing to train on: it said "0 pages read from 1 files, all dropped (docs per
filter/reason: none)" with the hint "loosen the filters", which no filter had anything to do
with."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from aistack.errors import ValidationError
from aistack.webdata.pipeline import run_pipeline
from aistack.webdata.spec import parse_spec


def _record(url: str, content_type: str, body: bytes) -> bytes:
    http = (
        f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    head = (
        "WARC/1.0\r\nWARC-Type: response\r\n"
        f"WARC-Target-URI: {url}\r\nWARC-Record-ID: <urn:uuid:{abs(hash(url))}>\r\n"
        "WARC-Date: 2024-01-01T00:00:00Z\r\nContent-Type: application/http; msgtype=response\r\n"
        f"Content-Length: {len(http)}\r\n\r\n"
    ).encode()
    return gzip.compress(head + http + b"\r\n\r\n")


def test_no_html_pages_says_what_the_records_were(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "img.warc.gz").write_bytes(
        _record("http://a/x.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
        + _record("http://a/x.json", "application/json", b'{"a": 1}')
        + _record("http://a/y.png", "image/png", b"\x89PNG\r\n\x1a\n")
    )
    spec = parse_spec(
        {
            "input": {"paths": [str(tmp_path / "in")]},
            "output": str(tmp_path / "out"),
            "workers": 1,
            "steps": [{"extract": {}}, {"dedup": {}}, {"tokenize": {"vocab_size": 300}}],
        }
    )
    with pytest.raises(ValidationError) as ei:
        run_pipeline(spec)
    assert ei.value.message == (
        "tokenize: no documents left to train a tokenizer on: 0 pages read from 1 file, of 3 "
        "records, none is an HTML page or a WET text (skipped: not_html 3)"
    )
    assert ei.value.hint == (
        "give input.paths WARC/ARC files with HTML responses (text/html or "
        "application/xhtml+xml, HTTP status 200) or WET files"
    )


def test_pages_all_dropped_still_names_the_filters(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.warc.gz").write_bytes(
        _record("http://a/", "text/html", b"<html><body><p>Bonjour tout le monde</p></body></html>")
    )
    spec = parse_spec(
        {
            "input": {"paths": [str(tmp_path / "in")]},
            "output": str(tmp_path / "out"),
            "workers": 1,
            "steps": [
                {"extract": {}},
                {"language": {"languages": ["en"]}},
                {"tokenize": {"vocab_size": 300}},
            ],
        }
    )
    with pytest.raises(ValidationError) as ei:
        run_pipeline(spec)
    assert ei.value.message == (
        "tokenize: no documents left to train a tokenizer on: 1 page read from 1 file, all "
        "dropped (docs per filter/reason: language/other_language 1)"
    )
    assert ei.value.hint == "loosen the filters, or give tokenize.tokenizer_file"
