"""The crawler against hostile or broken servers (a raw socket server on 127.0.0.1 in a
thread, so a test controls every byte and every stall): it ends in bounded time, keeps a
bounded number of bytes, and records what happened (the WARC, the summary's counts and its
``failed`` list) instead of hanging or raising. Wall-clock asserts are hang guards only."""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from raw_http import RawServer, answer

from aistack.webdata.crawler import MAX_ROBOTS_BYTES, MAX_URL_BYTES, CrawlConfig, crawl, fetch
from aistack.webdata.readers import ArchiveReader

UA = "aistack-crawler/0.1 (test)"


def page(*links: str) -> bytes:
    return (
        "<html><body>" + "".join(f'<a href="{h}">x</a>' for h in links) + "</body></html>"
    ).encode()


def redirect(location: str) -> Callable[[RawServer, socket.socket], None]:
    return answer(302, b"", {"Location": location})


def run(srv: RawServer, tmp_path: Path, **kw: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "seeds": [srv.url],
        "out_dir": tmp_path / "out",
        "delay_s": 0.0,
        "timeout_s": 2.0,
        "user_agent": UA,
        "max_depth": 3,
        **kw,
    }
    t0 = time.monotonic()
    summary = crawl(CrawlConfig(**opts))
    assert time.monotonic() - t0 < 30  # a hang guard only
    return summary


def warc(summary: dict[str, Any]) -> list[Any]:
    reader = ArchiveReader(summary["warc"])
    recs = list(reader.records())
    assert reader.issues == []
    return recs


def responses(summary: dict[str, Any]) -> dict[str, Any]:
    return {r.url: r for r in warc(summary) if r.record_type == "response"}


# --------------------------------------------------------------------------- size


def _stream(n: int, *, head: bytes) -> Callable[[RawServer, socket.socket], None]:
    def route(srv: RawServer, conn: socket.socket) -> None:
        conn.sendall(head)
        block = b"x" * 65536
        sent = 0
        while sent < n and not srv.stop.is_set():
            conn.sendall(block)
            sent += len(block)

    return route


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 4000000\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n",  # no length: until close
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 10\r\n\r\n",  # a lie
    ],
    ids=["content-length", "no-length", "lying-length"],
)
def test_a_response_over_max_size_is_a_fetch_error_and_kept_only_up_to_the_bound(
    serve: Callable[..., RawServer], tmp_path: Path, head: bytes
) -> None:
    srv = serve({"/": _stream(4_000_000, head=head)})
    s = run(srv, tmp_path, max_response_bytes=50_000)
    assert s["pages"] == 0 and s["errors"] == 1 and s["bytes"] == 0 and s["oversized"] == 1
    assert "larger than 50000 bytes" in s["failed"][0]["error"]
    # a truncated record, as Common Crawl keeps them (WARC-Truncated: length), cut at the bound
    recs = warc(s)
    assert [r.record_type for r in recs] == ["warcinfo", "request", "response"]
    assert recs[2].truncated == "length"
    assert Path(s["warc"]).stat().st_size < 60_000


def test_a_content_length_longer_than_the_body_keeps_what_came(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    body = page()
    srv = serve({"/": answer(200, body, {"Content-Length": str(10**12)})})
    s = run(srv, tmp_path)
    assert s["pages"] == 1 and s["errors"] == 0
    assert responses(s)[srv.url].body == body


def test_chunked_encoding_that_never_ends_is_cut_at_the_size_limit(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    def forever(srv: RawServer, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while not srv.stop.is_set():
            conn.sendall(b"1000\r\n" + b"y" * 4096 + b"\r\n")

    srv = serve({"/": forever})
    s = run(srv, tmp_path, max_response_bytes=100_000)
    assert s["pages"] == 0 and s["errors"] == 1
    assert "larger than 100000 bytes" in s["failed"][0]["error"]


def test_chunked_encoding_that_trickles_forever_is_cut_at_the_timeout(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    def trickle(srv: RawServer, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while not srv.stop.wait(0.05):
            conn.sendall(b"1\r\ny\r\n")

    srv = serve({"/": trickle})
    t0 = time.monotonic()
    s = run(srv, tmp_path, timeout_s=1.0)
    assert time.monotonic() - t0 < 10
    assert s["pages"] == 0 and s["errors"] == 1
    assert s["failed"][0]["error"].startswith("TimeoutError")


# --------------------------------------------------------------------------- stalls


def _stall_after(head: bytes) -> Callable[[RawServer, socket.socket], None]:
    def route(srv: RawServer, conn: socket.socket) -> None:
        if head:
            conn.sendall(head)
        srv.stop.wait(30)

    return route


@pytest.mark.parametrize(
    "head",
    [b"", b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100\r\n\r\n<html>"],
    ids=["never-answers", "headers-then-stall"],
)
def test_a_server_that_stalls_is_a_timeout_error(
    serve: Callable[..., RawServer], tmp_path: Path, head: bytes
) -> None:
    srv = serve({"/": _stall_after(head)})
    t0 = time.monotonic()
    s = run(srv, tmp_path, timeout_s=1.0)
    assert time.monotonic() - t0 < 10
    assert s["pages"] == 0 and s["errors"] == 1
    assert s["failed"][0]["error"].startswith("TimeoutError")
    if head:  # what came before the timeout is kept, marked WARC-Truncated: time
        recs = warc(s)
        assert [r.record_type for r in recs] == ["warcinfo", "request", "response"]
        assert recs[2].truncated == "time" and recs[2].body == b"<html>"
        assert s["timed_out"] == 1
    else:  # nothing came: nothing to keep
        assert [r.record_type for r in warc(s)] == ["warcinfo"]
        assert s["timed_out"] == 0


def test_the_timeout_bounds_the_whole_request_not_each_read(
    serve: Callable[..., RawServer],
) -> None:
    # bytes trickle in for most of the timeout, then the server stalls: each read used to
    # wait a whole fresh timeout, so the request took up to twice timeout_s
    timeout = 2.0

    def slow_loris(srv: RawServer, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.9 * timeout and not srv.stop.wait(0.1):
            conn.sendall(b"z")
        srv.stop.wait(30)

    srv = serve({"/": slow_loris})
    t0 = time.monotonic()
    res = fetch(srv.url, user_agent=UA, timeout=timeout, max_bytes=10_000)
    took = time.monotonic() - t0
    assert res.error is not None and res.error.startswith("TimeoutError"), res.error
    assert took < 1.4 * timeout, took


def test_a_server_that_closes_without_answering_is_a_fetch_error(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    srv = serve({"/": lambda srv, conn: None, "/garbage": answer(200, b"")})
    s = run(srv, tmp_path)
    assert s["pages"] == 0 and s["errors"] == 1
    assert "does not start with an HTTP status line" in s["failed"][0]["error"]


# --------------------------------------------------------------------------- redirects


def test_a_redirect_loop_is_fetched_once_each(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    srv = serve({"/": redirect("/b"), "/b": redirect("/")})
    s = run(srv, tmp_path, max_depth=50)
    assert s["pages"] == 2 and s["errors"] == 0
    assert srv.paths().count("/") == 1 and srv.paths().count("/b") == 1


def test_a_long_redirect_chain_stops_at_max_depth(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    routes = {"/": redirect("/r/1")} | {f"/r/{i}": redirect(f"/r/{i + 1}") for i in range(1, 200)}
    srv = serve(routes)
    s = run(srv, tmp_path, max_depth=5, max_pages=1000)
    assert s["pages"] == 6  # depths 0..5
    assert "/r/6" not in srv.paths()
    assert all(r.http_status == 302 for r in responses(s).values())


def test_a_long_redirect_chain_stops_at_max_pages(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    routes = {"/": redirect("/r/1")} | {f"/r/{i}": redirect(f"/r/{i + 1}") for i in range(1, 200)}
    srv = serve(routes)
    s = run(srv, tmp_path, max_depth=1000, max_pages=7)
    assert s["pages"] == 7


@pytest.mark.parametrize(
    "location",
    [
        "file:///etc/passwd",
        "file://127.0.0.1/etc/passwd",
        "javascript:alert(1)",
        "ftp://127.0.0.1:{port}/ftp",
    ],
)
def test_a_redirect_to_a_non_http_scheme_is_not_followed(
    serve: Callable[..., RawServer], tmp_path: Path, location: str
) -> None:
    srv = serve({})
    srv.routes["/"] = redirect(location.format(port=srv.port))
    s = run(srv, tmp_path)
    # (file://127.0.0.1/… and ftp://127.0.0.1:PORT/… were in scope by host and fetched as
    # http: robots.txt on port 80, /ftp from this server)
    assert s["out_of_scope"] == 1, s
    assert s["errors"] == 0 and s["pages"] == 1
    assert srv.paths() == ["/robots.txt", "/"]


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:{port}/admin",
        "http://[::1]:{port}/admin",
        "http://evil.invalid/",
    ],
)
def test_a_redirect_to_another_host_stays_out_of_scope(
    serve: Callable[..., RawServer], tmp_path: Path, location: str
) -> None:
    srv = serve({})
    srv.routes["/"] = redirect(location.format(port=srv.port))
    s = run(srv, tmp_path, allowed_domains=["127.0.0.1"])
    assert s["out_of_scope"] == 1 and s["errors"] == 0 and s["pages"] == 1
    assert srv.paths() == ["/robots.txt", "/"]


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("http://127.0.0.1:99999/", "Port out of range"),
        ("http://127.0.0.1:0/", "port 0"),
        ("http://[::1/", "Invalid IPv6 URL"),
        ("http://" + "ü" * 70 + ".example/", "IDNA"),
    ],
)
def test_a_redirect_to_an_invalid_url_is_a_fetch_error_not_a_crash(
    serve: Callable[..., RawServer], tmp_path: Path, location: str, why: str
) -> None:
    # (a port out of range or an unclosed IPv6 bracket raised ValueError out of crawl())
    srv = serve({"/": redirect(location)})
    s = run(srv, tmp_path, allowed_domains=["127.0.0.1", "example"])
    assert s["pages"] == 1 and s["errors"] == 1, s
    assert s["failed"][0]["error"].startswith("InvalidURL") and why in s["failed"][0]["error"]


# --------------------------------------------------------------------------- robots.txt


def test_a_huge_robots_txt_is_read_up_to_the_limit(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    # RFC 9309 §2.5: a parsing limit (>= 500 KiB) means the rules past it are ignored; the
    # whole file used to be a "robots.txt not fetched" error and every URL a fetch error
    robots = b"User-agent: *\nDisallow: /private/\n" + b"# padding\n" * 100_000 + b"Disallow: /\n"
    srv = serve(
        {
            "/robots.txt": answer(200, robots, {"Content-Type": "text/plain"}),
            "/": answer(200, page("/private/x", "/ok")),
            "/ok": answer(200, page()),
        }
    )
    s = run(srv, tmp_path)
    assert s["pages"] == 2 and s["robots_blocked"] == 1 and s["errors"] == 0, s
    assert "/private/x" not in srv.paths()


def test_a_gzip_bomb_robots_txt_is_read_up_to_the_limit(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    robots = gzip.compress(b"User-agent: *\nDisallow: /private/\n" + b"#" * (32 << 20), 9)
    assert len(robots) < 100_000
    srv = serve(
        {
            "/robots.txt": answer(200, robots, {"Content-Encoding": "gzip"}),
            "/": answer(200, page("/private/x")),
        }
    )
    s = run(srv, tmp_path)
    assert s["pages"] == 1 and s["robots_blocked"] == 1 and s["errors"] == 0, s
    # what is kept of it: the limit, not the 32 MiB it inflates to
    res = fetch(
        srv.url + "robots.txt", user_agent=UA, timeout=5, max_bytes=MAX_ROBOTS_BYTES, truncate=True
    )
    assert res.error is None and res.truncated
    assert len(res.body) == MAX_ROBOTS_BYTES


def test_a_binary_robots_txt_allows_all(serve: Callable[..., RawServer], tmp_path: Path) -> None:
    srv = serve(
        {
            "/robots.txt": answer(200, bytes(range(256)) * 40, {"Content-Type": "image/png"}),
            "/": answer(200, page("/a")),
            "/a": answer(200, page()),
        }
    )
    s = run(srv, tmp_path)
    assert s["pages"] == 2 and s["robots_blocked"] == 0 and s["errors"] == 0


def test_a_robots_txt_that_times_out_makes_the_hosts_urls_fetch_errors(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    srv = serve({"/robots.txt": _stall_after(b"HTTP/1.1 200 OK\r\n"), "/": answer(200, page())})
    t0 = time.monotonic()
    s = run(srv, tmp_path, timeout_s=1.0)
    assert time.monotonic() - t0 < 10
    assert s["pages"] == 0 and s["errors"] == 1
    assert s["failed"][0]["error"].startswith("robots.txt not fetched: TimeoutError")
    assert srv.paths() == ["/robots.txt"]


@pytest.mark.parametrize(
    ("status", "pages", "blocked"), [(500, 0, 1), (503, 0, 1), (404, 1, 0), (403, 1, 0)]
)
def test_robots_txt_5xx_disallows_and_4xx_allows(
    serve: Callable[..., RawServer], tmp_path: Path, status: int, pages: int, blocked: int
) -> None:
    srv = serve({"/robots.txt": answer(status, b"Disallow: /"), "/": answer(200, page())})
    s = run(srv, tmp_path)
    assert (s["pages"], s["robots_blocked"], s["errors"]) == (pages, blocked, 0)
    if status >= 500:
        assert s["robots_unavailable"] == {
            f"127.0.0.1:{srv.port}": f"robots.txt answered HTTP {status}"
        }


# --------------------------------------------------------------------------- encodings


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html; charset=bogus-42", page("/a")),
        ("text/html; charset=", page("/a")),
        ("text/html", b'<meta charset="rot13">' + page("/a")),
        ("text/html; charset=utf-8", b"\xfe\x00\x80" + page("/a") + b"\xc3"),
    ],
)
def test_a_garbled_content_type_or_charset_still_yields_the_links(
    serve: Callable[..., RawServer], tmp_path: Path, content_type: str, body: bytes
) -> None:
    srv = serve({"/": answer(200, body, {"Content-Type": content_type}), "/a": answer(200, page())})
    s = run(srv, tmp_path)
    assert s["pages"] == 2 and s["errors"] == 0, s


def test_a_content_type_that_is_garbage_is_recorded_and_not_parsed(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    # (only a type naming html, or none, is parsed for links: garbage names no html)
    srv = serve({"/": answer(200, page("/a"), {"Content-Type": "\u00ff\u00fe;;;=="})})
    s = run(srv, tmp_path)
    assert s["pages"] == 1 and s["errors"] == 0
    assert responses(s)[srv.url].http_status == 200


def _encoded(enc: str, data: bytes) -> bytes:
    if enc == "gzip":
        return gzip.compress(data, 9)
    if enc == "deflate":
        return zlib.compress(data, 9)
    import brotli  # type: ignore[import-not-found]

    return brotli.compress(data, quality=1)  # type: ignore[no-any-return]


@pytest.mark.parametrize("enc", ["gzip", "deflate", "br"])
def test_a_compression_bomb_is_bounded_after_decompression(
    serve: Callable[..., RawServer], tmp_path: Path, enc: str
) -> None:
    if enc == "br":
        pytest.importorskip("brotli")
    bomb = _encoded(enc, page() + b" " * (16 << 20))
    assert len(bomb) < 100_000
    srv = serve({"/": answer(200, bomb, {"Content-Type": "text/html", "Content-Encoding": enc})})
    # fetch keeps at most max_bytes of the decompressed body (the whole 16 MiB, before)
    res = fetch(srv.url, user_agent=UA, timeout=5, max_bytes=200_000)
    assert len(res.body) <= 200_000, len(res.body)
    assert res.error is not None and "once decompressed" in res.error
    # and the crawl counts it as a fetch error; the bomb is not stored in the WARC
    s = run(srv, tmp_path, max_response_bytes=200_000)
    assert s["pages"] == 0 and s["errors"] == 1
    assert "larger than 200000 bytes once decompressed" in s["failed"][0]["error"]
    assert [r.record_type for r in warc(s)] == ["warcinfo"]


@pytest.mark.parametrize("enc", ["gzip", "deflate", "br"])
def test_a_compressed_page_within_the_limit_is_decoded(
    serve: Callable[..., RawServer], tmp_path: Path, enc: str
) -> None:
    if enc == "br":
        pytest.importorskip("brotli")
    body = _encoded(enc, page("/a"))
    srv = serve(
        {
            "/": answer(200, body, {"Content-Type": "text/html", "Content-Encoding": enc}),
            "/a": answer(200, page()),
        }
    )
    s = run(srv, tmp_path)
    assert s["pages"] == 2 and s["errors"] == 0
    assert responses(s)[srv.url].body == page("/a")


def test_chunked_and_gzip_together_are_decoded(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    z = gzip.compress(page("/a"))
    chunked = b"".join(
        b"%x\r\n" % len(z[i : i + 7]) + z[i : i + 7] + b"\r\n" for i in range(0, len(z), 7)
    )
    srv = serve(
        {
            "/": answer(
                200,
                chunked + b"0\r\n\r\n",
                {"Transfer-Encoding": "chunked", "Content-Encoding": "gzip"},
                length=False,
            ),
            "/a": answer(200, page()),
        }
    )
    s = run(srv, tmp_path)
    assert s["pages"] == 2 and s["errors"] == 0


@pytest.mark.parametrize(
    "body",
    [b"\x1f\x8b\x08\x00garbage" * 10, gzip.compress(page("/a"))[:-12]],
    ids=["corrupt", "cut"],
)
def test_a_corrupt_gzip_body_is_stored_as_received(
    serve: Callable[..., RawServer], tmp_path: Path, body: bytes
) -> None:
    srv = serve({"/": answer(200, body, {"Content-Type": "text/html", "Content-Encoding": "gzip"})})
    s = run(srv, tmp_path)
    assert s["pages"] == 1 and s["errors"] == 0
    rec = responses(s)[srv.url]
    assert rec.http_status == 200 and rec.body == body


# --------------------------------------------------------------------------- URLs


def test_unicode_and_spaces_in_a_path_are_sent_percent_encoded_as_utf8(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    # (non-ASCII went out as latin-1 bytes, or "?" outside latin-1: /caf\xe9/??)
    srv = serve(
        {
            "/": answer(200, page("/café/日本?q=ü", "/a b#frag", "/x#y")),
            "/caf%C3%A9/%E6%97%A5%E6%9C%AC?q=%C3%BC": answer(200, page()),
            "/a%20b": answer(200, page()),
            "/x": answer(200, page()),
        }
    )
    s = run(srv, tmp_path)
    assert s["pages"] == 4 and s["errors"] == 0, srv.paths()
    assert sorted(srv.paths()) == sorted(
        ["/robots.txt", "/", "/caf%C3%A9/%E6%97%A5%E6%9C%AC?q=%C3%BC", "/a%20b", "/x"]
    )


def test_an_internationalized_host_is_sent_in_its_idna_form(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    srv = serve({"/": answer(200, page())})
    url = f"http://ｌｏｃａｌｈｏｓｔ:{srv.port}/"  # fullwidth: IDNA maps it to "localhost"
    s = run(srv, tmp_path, seeds=[url])
    assert s["pages"] == 1 and s["errors"] == 0, s
    assert {h["host"] for _, h in srv.requests} == {f"localhost:{srv.port}"}


def test_userinfo_is_not_sent_and_is_not_another_host(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    srv = serve({})
    base = f"127.0.0.1:{srv.port}"
    srv.routes["/"] = answer(200, page(f"http://u1:pw@{base}/a", f"http://u2@{base}/b"))
    srv.routes["/a"] = srv.routes["/b"] = answer(200, page())
    s = run(srv, tmp_path)
    assert s["pages"] == 3 and s["errors"] == 0
    # one host: one robots.txt (each userinfo was a host of its own, with its own robots.txt
    # and its own request in flight)
    assert srv.paths().count("/robots.txt") == 1, srv.paths()
    assert all(h["host"] == base and "authorization" not in h for _, h in srv.requests)


def test_a_long_url_is_requested_and_its_answer_recorded(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    long_path = "/" + "a" * 20_000
    srv = serve({"/": redirect(long_path), long_path: answer(414, b"too long")})
    s = run(srv, tmp_path)
    assert s["pages"] == 2 and s["errors"] == 0
    assert responses(s)[srv.url.rstrip("/") + long_path].http_status == 414


def test_an_extremely_long_url_is_a_fetch_error_not_an_unreadable_warc(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    # (a 100 KB URL was fetched and written into WARC headers past the reader's 64 KiB
    # header-block limit: the crawl's own WARC could not be read back)
    long_path = "/" + "a" * 100_000
    srv = serve({"/": redirect(long_path), long_path: answer(200, page())})
    s = run(srv, tmp_path)
    assert s["pages"] == 1 and s["errors"] == 1
    assert s["failed"][0]["error"] == f"InvalidURL: longer than {MAX_URL_BYTES} bytes"
    assert long_path not in srv.paths()
    assert len(responses(s)) == 1  # (and warc() checks the reader has no issue)


def test_links_with_bad_ports_or_hosts_are_skipped_or_recorded(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    srv = serve({})
    srv.routes["/"] = answer(
        200,
        page(
            "http://127.0.0.1:99999/",
            "http://127.0.0.1:-1/",
            "http://[::1/",
            "http://" + "ü" * 70 + ".example/",
            "/ok",
        ),
    )
    srv.routes["/ok"] = answer(200, page())
    s = run(srv, tmp_path, allowed_domains=["127.0.0.1", "example"])
    assert s["pages"] == 2
    assert s["errors"] == 1 and "IDNA" in s["failed"][0]["error"]


# --------------------------------------------------------------------------- robots.txt redirects


def _robots(text: bytes) -> Callable[[RawServer, socket.socket], None]:
    return answer(200, text, {"Content-Type": "text/plain"})


def test_a_redirected_robots_txt_is_followed_and_obeyed(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    # RFC 9309 §2.3.1.2: the redirect was parsed as the file (an empty body: allow all)
    srv = serve(
        {
            "/robots.txt": answer(301, b"moved", {"Location": "/real/robots.txt"}),
            "/real/robots.txt": _robots(b"User-agent: *\nDisallow: /private/\n"),
            "/": answer(200, page("/private/x", "/ok")),
            "/ok": answer(200, page()),
        }
    )
    s = run(srv, tmp_path)
    assert (s["pages"], s["robots_blocked"], s["errors"]) == (2, 1, 0), s
    assert "/private/x" not in srv.paths()
    assert s["requests"] == 4 and s["robots_redirects"] == 1
    key = f"127.0.0.1:{srv.port}"
    assert s["robots_redirected"] == {key: f"robots.txt: 1 redirect to {srv.url}real/robots.txt"}
    assert s["robots_unavailable"] == {}


def _chain(a: RawServer, b: RawServer, n: int, final: bytes) -> None:
    """``a``'s /robots.txt redirects ``n`` times, back and forth between ``a`` and ``b``,
    to a file ``final`` (on whichever server the last hop lands)."""
    hops = [a if i % 2 == 0 else b for i in range(n + 1)]
    paths = ["/robots.txt"] + [f"/hop{i}" for i in range(1, n + 1)]
    for i in range(n):
        hops[i].routes[paths[i]] = redirect(hops[i + 1].url + paths[i + 1].lstrip("/"))
    hops[n].routes[paths[n]] = _robots(final)


def test_five_robots_redirects_across_hosts_are_followed(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    a, b = serve({}), serve({})
    _chain(a, b, 5, b"User-agent: *\nDisallow: /private/\n")
    a.routes["/"] = answer(200, page("/private/x", "/ok"))
    a.routes["/ok"] = answer(200, page())
    s = run(a, tmp_path)  # b is out of scope: only its robots.txt redirects are fetched
    assert (s["pages"], s["robots_blocked"], s["errors"]) == (2, 1, 0), s
    assert "/private/x" not in a.paths() and b.paths() == ["/hop1", "/hop3", "/hop5"]
    assert s["robots_redirects"] == 5 and s["requests"] == 6 + 2
    assert s["robots_redirected"] == {
        f"127.0.0.1:{a.port}": f"robots.txt: 5 redirects to {b.url}hop5"
    }


def test_more_than_five_robots_redirects_mean_unavailable_so_all_allowed(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    a, b = serve({}), serve({})
    _chain(a, b, 6, b"User-agent: *\nDisallow: /\n")
    a.routes["/"] = answer(200, page("/private/x"))
    a.routes["/private/x"] = answer(200, page())
    s = run(a, tmp_path)
    assert (s["pages"], s["robots_blocked"], s["errors"]) == (2, 0, 0), s
    assert "/hop6" not in a.paths() + b.paths()  # the sixth redirect is not followed
    assert s["robots_redirects"] == 5 and s["requests"] == 6 + 2
    assert s["robots_redirected"] == {
        f"127.0.0.1:{a.port}": "robots.txt unavailable (every URL allowed): more than 5 "
        f"redirects in a row, the last to {b.url}hop5"
    }


def test_a_robots_redirect_loop_is_unavailable(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    srv = serve({"/robots.txt": redirect("/robots.txt"), "/": answer(200, page())})
    s = run(srv, tmp_path)
    assert (s["pages"], s["robots_blocked"], s["errors"]) == (1, 0, 0), s
    assert srv.paths().count("/robots.txt") == 6
    assert s["robots_redirected"][f"127.0.0.1:{srv.port}"].startswith(
        "robots.txt unavailable (every URL allowed): more than 5 redirects in a row"
    )


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("file:///etc/robots.txt", "HTTP 302 to an invalid URL 'file:///etc/robots.txt'"),
        ("http://127.0.0.1:99999/robots.txt", "HTTP 302 to an invalid URL"),
        ("", "HTTP 302 without a Location"),
    ],
)
def test_a_robots_redirect_to_nowhere_is_unavailable(
    serve: Callable[..., RawServer], tmp_path: Path, location: str, why: str
) -> None:
    srv = serve(
        {
            "/robots.txt": answer(302, b"Disallow: /", {"Location": location}),
            "/": answer(200, page()),
        }
    )
    s = run(srv, tmp_path)
    assert (s["pages"], s["robots_blocked"], s["errors"]) == (1, 0, 0), s
    got = s["robots_redirected"][f"127.0.0.1:{srv.port}"]
    assert got.startswith(f"robots.txt unavailable (every URL allowed): {why}"), got
    assert s["robots_redirects"] == 0


def test_a_redirected_robots_txt_that_fails_disallows_all(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{closed.getsockname()[1]}/robots.txt"
    closed.close()  # connection refused
    srv = serve(
        {
            "/robots.txt": redirect("/r503"),
            "/r503": answer(503, b"busy"),
            "/": answer(200, page()),
        }
    )
    s = run(srv, tmp_path)
    key = f"127.0.0.1:{srv.port}"
    assert (s["pages"], s["robots_blocked"], s["errors"]) == (0, 1, 0), s
    assert s["robots_unavailable"] == {
        key: f"robots.txt (redirected to {srv.url}r503) answered HTTP 503"
    }
    # the host answered (a redirect), so its URLs are disallowed, not fetch errors
    srv.routes["/robots.txt"] = redirect(dead)
    s = run(srv, tmp_path)
    assert (s["pages"], s["robots_blocked"], s["errors"]) == (0, 1, 0), s
    assert s["robots_unavailable"][key].startswith(
        f"robots.txt (redirected to {dead}) not fetched: ConnectionRefusedError"
    )


def test_the_timeout_bounds_a_robots_txt_and_its_redirects_together(
    serve: Callable[..., RawServer], tmp_path: Path
) -> None:
    def slow_redirect(to: str) -> Callable[[RawServer, socket.socket], None]:
        def route(srv: RawServer, conn: socket.socket) -> None:
            srv.stop.wait(0.4)
            redirect(to)(srv, conn)

        return route

    srv = serve({"/": answer(200, page())})
    srv.routes["/robots.txt"] = slow_redirect("/r1")
    for i in range(1, 5):
        srv.routes[f"/r{i}"] = slow_redirect(f"/r{i + 1}")
    srv.routes["/r5"] = _robots(b"")
    t0 = time.monotonic()
    s = run(srv, tmp_path, timeout_s=1.0)  # each hop is in time, the five are not
    assert time.monotonic() - t0 < 1.9
    assert (s["pages"], s["robots_blocked"]) == (0, 1), s
    (why,) = s["robots_unavailable"].values()
    assert "not fetched: TimeoutError: no complete response within 1.0 s" in why, why
    assert "/r5" not in srv.paths()


# --------------------------------------------------------------------------- name lookups


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Names under .test resolve to 127.0.0.1; names under .stuck never answer until the
    event is set (at teardown, or by the test)."""
    real = socket.getaddrinfo
    release = threading.Event()

    def fake(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name.endswith(".stuck"):
            release.wait(20)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if name.endswith(".test"):
            return real("127.0.0.1", port, *args, **kw)
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    yield release
    release.set()


def test_a_name_lookup_that_never_answers_is_cut_at_the_timeout(
    resolver: threading.Event,
) -> None:
    t0 = time.monotonic()
    res = fetch("http://never.stuck/", user_agent=UA, timeout=0.5, max_bytes=1000)
    assert time.monotonic() - t0 < 1.5  # (waited for the resolver as long as it took)
    assert res.error == "TimeoutError: name lookup of 'never.stuck': no answer within 0.5 s"


def test_a_crawl_moves_on_from_a_host_whose_name_lookup_hangs(
    serve: Callable[..., RawServer], tmp_path: Path, resolver: threading.Event
) -> None:
    srv = serve({"/": answer(200, page())})
    t0 = time.monotonic()
    s = run(
        srv,
        tmp_path,
        seeds=["http://a.stuck/", f"http://ok.test:{srv.port}/"],
        allowed_domains=["stuck", "test"],
        timeout_s=0.5,
    )
    assert time.monotonic() - t0 < 3
    assert (s["pages"], s["errors"]) == (1, 1), s
    assert s["failed"] == [
        {
            "url": "http://a.stuck/",
            "error": "robots.txt not fetched: TimeoutError: name lookup of 'a.stuck': no "
            "answer within 0.5 s",
        }
    ]


def test_lookups_left_behind_are_capped(
    resolver: threading.Event, monkeypatch: pytest.MonkeyPatch, serve: Callable[..., RawServer]
) -> None:
    import aistack.webdata.crawler as crawler

    monkeypatch.setattr(crawler, "_lookup_slots", threading.BoundedSemaphore(2))

    def lookups() -> int:
        return sum(t.name.startswith("crawler-lookup-") for t in threading.enumerate())

    before = lookups()
    for name in ("a", "b", "c", "d"):
        res = fetch(f"http://{name}.stuck/", user_agent=UA, timeout=0.3, max_bytes=1000)
        assert res.error is not None and res.error.startswith("TimeoutError: name lookup")
    assert lookups() - before == 2  # two threads left behind, not four
    assert res.error.endswith("(as many earlier lookups as may run at once still unanswered)")
    resolver.set()  # the resolver answers at last: the slots are free again
    deadline = time.monotonic() + 5
    while lookups() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    srv = serve({"/": answer(200, page())})
    res = fetch(f"http://ok.test:{srv.port}/", user_agent=UA, timeout=2, max_bytes=1000)
    assert res.error is None and res.status == 200


# --------------------------------------------------------------------------- IDNA scope


@pytest.mark.parametrize(
    ("seed_host", "allowed"),
    [("bücher.test", "xn--bcher-kva.test"), ("xn--bcher-kva.test", "BÜCHER.test")],
    ids=["unicode-seed-punycode-allowed", "punycode-seed-unicode-allowed"],
)
def test_an_allowed_idn_domain_matches_in_unicode_and_punycode(
    serve: Callable[..., RawServer],
    tmp_path: Path,
    resolver: threading.Event,
    seed_host: str,
    allowed: str,
) -> None:
    srv = serve({})
    p = srv.port
    srv.routes["/"] = answer(
        200,
        page(
            f"http://xn--bcher-kva.test:{p}/a",
            f"http://bücher.test:{p}/b",
            f"http://www.BÜCHER.test:{p}/c",
            f"http://other.test:{p}/d",
        ),
    )
    for x in "abc":
        srv.routes[f"/{x}"] = answer(200, page())
    s = run(srv, tmp_path, seeds=[f"http://{seed_host}:{p}/"], allowed_domains=[allowed])
    assert (s["pages"], s["out_of_scope"], s["errors"]) == (4, 1, 0), s
    assert "/d" not in srv.paths()
    # one host in two spellings: one robots.txt (www. is a host of its own)
    assert srv.paths().count("/robots.txt") == 2
    assert {h["host"] for _, h in srv.requests} == {
        f"xn--bcher-kva.test:{p}",
        f"www.xn--bcher-kva.test:{p}",
    }


@pytest.mark.parametrize(
    ("url", "allowed", "inside"),
    [
        ("http://bücher.example/", {"xn--bcher-kva.example"}, True),
        ("http://xn--bcher-kva.example/", {"bücher.example"}, True),
        ("http://shop.XN--BCHER-KVA.example/", {"bücher.example"}, True),
        ("http://ＢÜＣＨＥＲ.example/", {"xn--bcher-kva.example"}, True),
        ("http://bucher.example/", {"bücher.example"}, False),
        ("http://xn--bcher-kva.example/", {"example.org"}, False),
    ],
)
def test_in_scope_compares_idn_names_in_one_form(url: str, allowed: set[str], inside: bool) -> None:
    from aistack.webdata.crawler import in_scope

    assert in_scope(url, allowed) is inside
