"""Follow-ups to the truncated WARC records of the crawler.

* ``aistack webdata crawl`` says how many responses were over the size bound (``oversized``:
  kept cut at it, ``WARC-Truncated: length``) where it says the other counts, and a crawl
  whose every response was cut still wrote a usable WARC: exit 0, with a message that says
  no complete page was fetched and what was kept (it said "nothing was fetched", exit 1).
* A response cut off by the whole-request timeout is kept as it came, ``WARC-Truncated:
  time`` (it left no record), and stays a fetch error, counted in ``timed_out``.

The servers are raw sockets on 127.0.0.1.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from raw_http import RawServer, Route, crawl_raw
from typer.testing import CliRunner

import aistack.webdata.crawler as crawler
from aistack.cli.webdata import app
from aistack.webdata.crawler import CrawlConfig
from aistack.webdata.readers import ArchiveReader, iter_html

BOUND = 20_000
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
PAGE = b"<html><head><title>t</title></head><body><main><article><h1>Valley</h1>" + (
    b"<p>The river valley held a quiet town where people farmed wheat and barley.</p>\n" * 50
)


def big(srv: RawServer, conn: socket.socket) -> None:
    """A page over BOUND (no end: the bound cuts it)."""
    conn.sendall(HEAD + b"\r\n" + PAGE * 20)


def small(srv: RawServer, conn: socket.socket) -> None:
    body = PAGE + b"</main></body></html>"
    conn.sendall(HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def stall_after_part(srv: RawServer, conn: socket.socket) -> None:
    """Headers and part of the body, then nothing until the test ends."""
    conn.sendall(HEAD + b"Content-Length: 100000\r\n\r\n" + PAGE)
    srv.stop.wait(30)


def _records(summary: dict[str, Any]) -> list[Any]:
    reader = ArchiveReader(summary["warc"])
    recs = list(reader.records())
    assert reader.issues == []
    return recs


def _crawl(srv: RawServer, tmp_path: Path, **kw: Any) -> dict[str, Any]:
    return crawl_raw(srv, tmp_path, **{"max_response_bytes": BOUND, **kw})


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def small_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's crawls with ``max_response_bytes`` = BOUND, whatever ``--max-response-bytes``
    says (its default is 10 MiB)."""
    real = crawler.crawl

    def crawl_with_bound(cfg: CrawlConfig) -> dict[str, Any]:
        cfg.max_response_bytes = BOUND
        return real(cfg)

    monkeypatch.setattr(crawler, "crawl", crawl_with_bound)


def _cli(url: str, tmp_path: Path, *extra: str) -> Any:
    return CliRunner().invoke(
        app,
        ["crawl", url, "--out", str(tmp_path / "c"), "--delay", "0", "--ignore-robots", *extra],
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def test_the_cli_says_the_oversized_count_with_its_meaning(
    serve: Callable[[dict[str, Route]], RawServer], tmp_path: Path, small_bound: None
) -> None:
    srv = serve(
        {"/": lambda s, c: c.sendall(HEAD + b"\r\n" + b'<a href="/big">b</a>'), "/big": big}
    )
    res = _cli(srv.url, tmp_path)
    assert res.exit_code == 0, res.output
    out = _one_line(res.stdout)
    assert "fetched 1 pages" in out and "1 errors" in out
    assert (
        f"1 of them oversized (a response over the {BOUND:,}-byte bound, kept cut at it "
        "in the WARC: WARC-Truncated: length)" in out
    ), out
    assert f"fetch error: {srv.url}big: ResponseTooLarge" in _one_line(res.stderr)
    assert "no complete page" not in res.stderr


def test_a_crawl_whose_every_response_was_oversized_kept_a_usable_warc_and_exits_0(
    serve: Callable[[dict[str, Route]], RawServer], tmp_path: Path, small_bound: None
) -> None:
    srv = serve({"/": big})
    res = _cli(srv.url, tmp_path)
    # records were written, and the pipeline reads them: the WARC is usable (as Heritrix and
    # Common Crawl count a truncated capture); it said "nothing was fetched", exit status 1
    assert res.exit_code == 0, res.output
    assert "nothing was fetched" not in res.stderr
    err = _one_line(res.stderr)
    assert (
        "no complete page was fetched: 1 response was cut short and kept in the WARC as it "
        "came (1 over the size bound; WARC-Truncated records, readable and extracted)" in err
    ), err
    warc = next((tmp_path / "c").glob("*.warc.gz"))
    assert [p.url for p in iter_html(warc)] == [srv.url]
    res = _cli(srv.url, tmp_path, "--json")
    assert res.exit_code == 0
    import json

    summary = json.loads(res.stdout)
    assert summary["pages"] == 0 and summary["oversized"] == 1 and summary["errors"] == 1


def test_nothing_fetched_and_nothing_kept_still_exits_1(
    serve: Callable[[dict[str, Route]], RawServer], tmp_path: Path, small_bound: None
) -> None:
    srv = serve({"/": lambda s, c: None})  # closes without answering
    res = _cli(srv.url, tmp_path)
    assert res.exit_code == 1, res.output
    assert "nothing was fetched: 1 URL could not be fetched" in _one_line(res.stderr)


# --------------------------------------------------------------------------- timeouts


def test_a_response_cut_by_the_timeout_is_kept_as_truncated_time(
    serve: Callable[[dict[str, Route]], RawServer], tmp_path: Path
) -> None:
    srv = serve({"/": stall_after_part})
    s = _crawl(srv, tmp_path, timeout_s=1.0)
    # still a fetch error, no page; counted as timed out, not as oversized
    assert (s["pages"], s["errors"], s["oversized"], s["timed_out"]) == (0, 1, 0, 1)
    err = s["failed"][0]["error"]
    assert err.startswith("TimeoutError: no complete response within 1.0 s"), err
    assert "WARC-Truncated: time" in err
    recs = _records(s)
    assert [r.record_type for r in recs] == ["warcinfo", "request", "response"]
    resp = recs[2]
    assert resp.truncated == "time" and resp.headers["warc-truncated"] == "time"
    assert resp.http_status == 200
    assert resp.body == PAGE  # what came, as it came
    assert resp.headers["warc-concurrent-to"] == recs[1].headers["warc-record-id"]
    assert [p.url for p in iter_html(s["warc"])] == [srv.url]


def test_a_timeout_before_any_byte_still_leaves_no_record(
    serve: Callable[[dict[str, Route]], RawServer], tmp_path: Path
) -> None:
    srv = serve({"/": lambda s, c: s.stop.wait(30)})
    s = _crawl(srv, tmp_path, timeout_s=1.0)
    assert (s["pages"], s["errors"], s["timed_out"]) == (0, 1, 0)
    assert s["failed"][0]["error"] == "TimeoutError: no complete response within 1.0 s"
    assert [r.record_type for r in _records(s)] == ["warcinfo"]


def test_the_cli_says_the_timed_out_count(
    serve: Callable[[dict[str, Route]], RawServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = crawler.crawl

    def crawl_fast_timeout(cfg: CrawlConfig) -> dict[str, Any]:
        cfg.timeout_s = 1.0
        return real(cfg)

    monkeypatch.setattr(crawler, "crawl", crawl_fast_timeout)
    srv = serve({"/": stall_after_part})
    res = _cli(srv.url, tmp_path)
    assert res.exit_code == 0, res.output
    out = _one_line(res.stdout)
    assert (
        "1 of them timed out (a response cut off at the 1.0 s request timeout, kept as it "
        "came in the WARC: WARC-Truncated: time)" in out
    ), out
    assert "(0 over the size bound" not in _one_line(res.stderr)
    assert "1 cut off at the timeout" in _one_line(res.stderr)
