"""The links of an HTML response cut short (over ``max_response_bytes``, or cut off at
``timeout_s``) are followed up to the cut, as Heritrix follows those of a truncated capture
(they were not followed at all: a page over the bound was a dead end of the crawl). A link
tag the cut ends in is no link: its half URL is never requested. The page stays a fetch
error, kept as ``WARC-Truncated``. The servers are raw sockets on 127.0.0.1."""

from __future__ import annotations

import gzip
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raw_http import RawServer, Route, answer, crawl_raw

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
LINKS = b'<html><head><title>t</title></head><body><a href="/one">1</a> <a href="two">2</a>'
FILLER = b"<p>The river valley held a quiet town where people farmed wheat.</p>\n" * 40
CUT_TAG = b'<a href="/cut-in-the-middle-of-this-url">3</a>'
# the response up to the middle of CUT_TAG's URL: the bound cuts there
BOUND = len(HEAD + LINKS + FILLER + CUT_TAG[:20])
SMALL = answer(200, b"<html><body><p>a small page</p></body></html>")


def long_page(srv: RawServer, conn: socket.socket) -> None:
    """The links, filler, a link the bound cuts, then more than the bound (no end)."""
    conn.sendall(HEAD + LINKS + FILLER + CUT_TAG + b'<a href="/after">4</a>' + FILLER * 10)


def _crawl(srv: RawServer, tmp_path: Path, **kw: Any) -> dict[str, Any]:
    return crawl_raw(srv, tmp_path, **{"max_response_bytes": BOUND, **kw})


def test_the_links_before_the_cut_of_an_oversized_page_are_followed(
    serve: Callable[[dict[str, Route]], RawServer], tmp_path: Path
) -> None:
    srv = serve({"/": long_page, "/one": SMALL, "/two": SMALL})
    s = _crawl(srv, tmp_path)
    # the two links before the cut (the old crawl stopped at the seed: ["/"], 0 pages)
    assert sorted(srv.paths()) == ["/", "/one", "/two"]
    assert not any(p.startswith("/cut") or p == "/after" for p in srv.paths())
    assert (s["pages"], s["errors"], s["oversized"]) == (2, 1, 1)
    assert s["failed"][0]["url"] == srv.url  # the cut page is still a fetch error
    assert s["failed"][0]["error"].startswith(f"ResponseTooLarge: response larger than {BOUND}")


def test_the_links_of_a_gzip_page_cut_short_are_read_from_the_part_that_came(
    serve: Callable[[dict[str, Route]], RawServer], tmp_path: Path
) -> None:
    body = gzip.compress(LINKS + FILLER * 200, compresslevel=1)

    def gz(srv: RawServer, conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n\r\n" + body
        )

    srv = serve({"/": gz, "/one": SMALL, "/two": SMALL})
    s = _crawl(srv, tmp_path, max_response_bytes=len(body) // 2)
    assert s["oversized"] == 1
    assert sorted(srv.paths()) == ["/", "/one", "/two"]


def test_the_links_of_a_page_cut_off_at_the_timeout_are_followed(
    serve: Callable[[dict[str, Route]], RawServer], tmp_path: Path
) -> None:
    def stall(srv: RawServer, conn: socket.socket) -> None:
        conn.sendall(HEAD + LINKS + FILLER + CUT_TAG[:20])  # then nothing until the test ends
        srv.stop.wait(30)

    srv = serve({"/": stall, "/one": SMALL, "/two": SMALL})
    s = _crawl(srv, tmp_path, timeout_s=1.0, max_response_bytes=1_000_000)
    assert (s["pages"], s["timed_out"]) == (2, 1)
    assert sorted(srv.paths()) == ["/", "/one", "/two"]


def test_a_cut_page_follows_no_link_past_max_depth_or_with_nofollow(
    serve: Callable[[dict[str, Route]], RawServer], tmp_path: Path
) -> None:
    srv = serve({"/": long_page, "/one": SMALL, "/two": SMALL})
    s = _crawl(srv, tmp_path, max_depth=0)
    assert (srv.paths(), s["oversized"]) == (["/"], 1)

    def nofollow(srv: RawServer, conn: socket.socket) -> None:
        meta = b'<meta name="robots" content="noindex, nofollow">'
        conn.sendall(HEAD + meta + LINKS + FILLER * 10)

    srv = serve({"/": nofollow, "/one": SMALL, "/two": SMALL})
    s = _crawl(srv, tmp_path)
    assert (srv.paths(), s["oversized"]) == (["/"], 1)


def test_an_oversized_response_that_is_not_html_gives_no_links(
    serve: Callable[[dict[str, Route]], RawServer], tmp_path: Path
) -> None:
    def text(srv: RawServer, conn: socket.socket) -> None:
        conn.sendall(HEAD.replace(b"text/html; charset=utf-8", b"text/plain") + LINKS + FILLER * 10)

    srv = serve({"/": text, "/one": SMALL, "/two": SMALL})
    s = _crawl(srv, tmp_path)
    assert (srv.paths(), s["oversized"]) == (["/"], 1)


def test_a_redirect_whose_body_is_cut_is_still_followed(
    serve: Callable[[dict[str, Route]], RawServer], tmp_path: Path
) -> None:
    """A 301 with a body over the bound: its head came whole, so its Location is followed (it
    was a dead end: a cut response was only a fetch error)."""

    def moved(srv: RawServer, conn: socket.socket) -> None:
        head = (
            b"HTTP/1.1 301 Moved Permanently\r\nLocation: /new\r\nContent-Type: text/html\r\n\r\n"
        )
        conn.sendall(head + FILLER * 10)

    srv = serve({"/": moved, "/new": SMALL})
    s = _crawl(srv, tmp_path)
    assert (s["oversized"], s["pages"]) == (1, 1)
    assert sorted(srv.paths()) == ["/", "/new"]
