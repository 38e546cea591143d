"""A response over the crawler's ``max_response_bytes`` is kept cut at the bound, as WARC 1.1
says and Common Crawl does (``WARC-Truncated: length``); it left no record at all before. It
is still a fetch error, counted in ``oversized``. The readers read such a record, its body
decoded up to the cut (chunked or compressed included), and ``iter_html`` yields it for
extraction. The server is a raw socket server on 127.0.0.1."""

from __future__ import annotations

import gzip
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from raw_http import RawServer, Route, crawl_raw

from aistack.webdata.extract import extract_text
from aistack.webdata.readers import ArchiveReader, iter_html

BOUND = 20_000
PARA = "<p>" + "The river valley held a quiet town where people farmed wheat. " * 5 + "</p>\n"
# (a serial number in each paragraph, a random word: gzip keeps it over the bound too)
_RNG = random.Random(0)
HTML = "<html><head><title>t</title></head><body><main><article><h1>Valley</h1>" + "".join(
    f"<p>{i} {_RNG.getrandbits(128):032x}</p>{PARA}" for i in range(2000)
)
HTML_BYTES = HTML.encode()  # ~130 KB, no end: the bound cuts it


@pytest.fixture
def serve(serve: Callable[..., RawServer]) -> Callable[[dict[str, bytes]], RawServer]:
    """conftest's raw servers, each path answered with its bytes as given, then closed."""

    def sends(data: bytes) -> Route:
        return lambda srv, conn: conn.sendall(data)

    return lambda answers: serve({path: sends(data) for path, data in answers.items()})


def _http(body: bytes, **headers: str) -> bytes:
    hs = {"Content-Type": "text/html; charset=utf-8", **headers}
    head = "HTTP/1.1 200 OK\r\n" + "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in hs.items())
    return head.encode() + b"\r\n" + body


def _chunked(data: bytes, size: int = 4096) -> bytes:
    parts = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def _crawl(srv: RawServer, tmp_path: Path, **kw: Any) -> dict[str, Any]:
    return crawl_raw(srv, tmp_path, **{"max_response_bytes": BOUND, **kw})


def _records(s: dict[str, Any]) -> list[Any]:
    reader = ArchiveReader(s["warc"])
    recs = list(reader.records())
    assert reader.issues == []
    return recs


ANSWERS = {
    "identity": _http(HTML_BYTES, Content_Length=str(len(HTML_BYTES))),
    "no-length": _http(HTML_BYTES),
    "chunked": _http(_chunked(HTML_BYTES), Transfer_Encoding="chunked"),
    "gzip": _http(
        gzip.compress(HTML_BYTES, 6),
        Content_Encoding="gzip",
    ),
}


@pytest.mark.parametrize("kind", list(ANSWERS))
def test_an_oversized_response_is_kept_truncated_and_counted(
    serve: Callable[[dict[str, bytes]], RawServer], tmp_path: Path, kind: str
) -> None:
    srv = serve({"/": ANSWERS[kind]})
    assert len(ANSWERS[kind]) > BOUND
    s = _crawl(srv, tmp_path)
    # counted as before: a fetch error, no page; and as oversized
    assert s["oversized"] == 1 and s["errors"] == 1 and s["pages"] == 0
    assert f"larger than {BOUND} bytes" in s["failed"][0]["error"]
    recs = _records(s)
    assert [r.record_type for r in recs] == ["warcinfo", "request", "response"]
    resp = recs[2]
    assert resp.url == srv.url
    assert resp.headers["warc-truncated"] == "length" and resp.truncated == "length"
    assert int(resp.headers["content-length"]) == BOUND  # the bytes kept, up to the bound
    assert resp.headers["warc-concurrent-to"] == recs[1].headers["warc-record-id"]
    assert resp.http_status == 200
    # the body decoded up to the cut: no chunk-size lines, no gzip bytes
    assert resp.body.startswith(b"<html><head><title>t</title>")
    assert b"\r\n1000\r\n" not in resp.body
    # iter_html yields it, and its text before the cut is extracted
    pages = list(iter_html(s["warc"]))
    assert [p.url for p in pages] == [srv.url]
    text = extract_text(pages[0].body.decode(), mode="fast")
    assert "The river valley held a quiet town" in text


def test_a_response_within_the_bound_is_not_marked(
    serve: Callable[[dict[str, bytes]], RawServer], tmp_path: Path
) -> None:
    small = HTML_BYTES[:5000]
    srv = serve({"/": _http(small, Content_Length=str(len(small)))})
    s = _crawl(srv, tmp_path)
    assert s["oversized"] == 0 and s["errors"] == 0 and s["pages"] == 1
    resp = _records(s)[2]
    assert "warc-truncated" not in resp.headers and resp.truncated is None
    assert resp.body == small


def test_a_compression_bomb_is_still_not_kept(
    serve: Callable[[dict[str, bytes]], RawServer], tmp_path: Path
) -> None:
    # within the bound as received, over it once decompressed: nothing worth keeping
    bomb = gzip.compress(b"<html><body>" + b" " * (8 << 20), 9)
    assert len(bomb) < BOUND
    srv = serve({"/": _http(bomb, Content_Encoding="gzip", Content_Length=str(len(bomb)))})
    s = _crawl(srv, tmp_path)
    assert s["errors"] == 1 and s["oversized"] == 0 and s["pages"] == 0
    assert "once decompressed" in s["failed"][0]["error"]
    assert [r.record_type for r in _records(s)] == ["warcinfo"]
