"""The crawler against a real HTTP server on 127.0.0.1 (http.server in a thread)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from aistack.webdata.crawler import CrawlConfig, crawl
from aistack.webdata.readers import ArchiveReader

ROBOTS = b"User-agent: *\nDisallow: /private/\n"


def _page(title: str, links: list[str]) -> bytes:
    body = "".join(f'<p><a href="{href}">{href}</a></p>' for href in links)
    return f"<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>".encode()


PAGES = {
    "/": _page("home", ["/a.html", "/b.html", "/private/secret.html", "http://other.invalid/x"]),
    "/a.html": _page("a", ["/c.html", "/b.html#frag"]),
    "/b.html": _page("b", ["/"]),
    "/c.html": _page("c", ["/d.html"]),
    "/d.html": _page("d", []),
    "/private/secret.html": _page("secret", []),
}


class _Server:
    def __init__(self, robots: bytes | None = ROBOTS, robots_status: int = 200) -> None:
        self.log: list[tuple[float, str, str]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.log.append((time.monotonic(), self.path, self.headers.get("User-Agent", "")))
                if self.path == "/robots.txt":
                    if robots is None:
                        self.send_error(404)
                        return
                    self.send_response(robots_status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(robots)))
                    self.end_headers()
                    self.wfile.write(robots)
                    return
                body = PAGES.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *a: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_crawler_obeys_robots_delay_and_writes_warc(tmp_path: Path) -> None:
    delay = 0.3
    with _Server() as srv:
        summary = crawl(
            CrawlConfig(seeds=[srv.url], out_dir=tmp_path, max_pages=20, max_depth=2, delay_s=delay)
        )
    paths = [p for _, p, _ in srv.log]
    assert paths[0] == "/robots.txt"
    assert "/private/secret.html" not in paths
    assert summary["robots_blocked"] == 1
    # depth 0: /, depth 1: a, b, depth 2: c; d is depth 3 (beyond max_depth)
    assert sorted(paths[1:]) == ["/", "/a.html", "/b.html", "/c.html"]
    assert summary["pages"] == 4
    # one request at a time, at least `delay` apart (measured at the server)
    times = [t for t, _, _ in srv.log]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= delay * 0.95, gaps
    assert all(ua.startswith("aistack-crawler/") for _, _, ua in srv.log)
    # the WARC holds warcinfo + a request and a response record per page, readable by our reader
    reader = ArchiveReader(summary["warc"])
    recs = list(reader.records())
    assert reader.issues == []
    kinds = [r.record_type for r in recs]
    assert kinds.count("warcinfo") == 1
    assert kinds.count("request") == 4 and kinds.count("response") == 4
    resp = {r.url: r for r in recs if r.record_type == "response"}
    assert resp[srv.url].http_status == 200
    assert b"<h1>home</h1>" in resp[srv.url].body


def test_crawler_crawl_delay_from_robots_and_max_pages(tmp_path: Path) -> None:
    robots = b"User-agent: *\nCrawl-delay: 0.5\nAllow: /\n"
    with _Server(robots=robots) as srv:
        summary = crawl(
            CrawlConfig(seeds=[srv.url], out_dir=tmp_path, max_pages=2, max_depth=5, delay_s=0.05)
        )
    assert summary["pages"] == 2
    times = [t for t, _, _ in srv.log]
    assert len(times) == 3  # robots.txt + 2 pages
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.5 * 0.95, gaps


@pytest.mark.parametrize(("robots", "status", "expect_pages"), [(None, 404, 6), (b"oops", 503, 0)])
def test_crawler_robots_missing_allows_and_server_error_disallows(
    tmp_path: Path, robots: bytes | None, status: int, expect_pages: int
) -> None:
    with _Server(robots=robots, robots_status=status) as srv:
        summary = crawl(
            CrawlConfig(seeds=[srv.url], out_dir=tmp_path, max_pages=10, max_depth=3, delay_s=0.0)
        )
    assert summary["pages"] == expect_pages


def test_crawler_rejects_bad_seed(tmp_path: Path) -> None:
    from aistack.errors import ValidationError

    with pytest.raises(ValidationError, match="not an http"):
        CrawlConfig(seeds=["ftp://x"], out_dir=tmp_path)


def test_cli_crawl_json(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from aistack.cli.webdata import app

    with _Server() as srv:
        res = CliRunner().invoke(
            app,
            [
                "crawl",
                srv.url,
                "--out",
                str(tmp_path),
                "--max-pages",
                "2",
                "--delay",
                "0.05",
                "--json",
            ],
        )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["pages"] == 2 and Path(summary["warc"]).parent == tmp_path
    assert summary["user_agent"].startswith("aistack-crawler/")


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # free again once closed: nothing listens there


def test_an_unreachable_host_is_a_fetch_error_not_a_robots_disallow(tmp_path: Path) -> None:
    """`crawl http://127.0.0.1:1/` said "1 URLs disallowed by robots.txt, 0 errors", exit 0:
    the robots.txt that could not be fetched (connection refused) was taken for a disallow."""
    import json

    from typer.testing import CliRunner

    from aistack.cli.webdata import app

    url = f"http://127.0.0.1:{_closed_port()}/"
    summary = crawl(CrawlConfig(seeds=[url], out_dir=tmp_path / "c", delay_s=0.0))
    assert (summary["pages"], summary["robots_blocked"], summary["errors"]) == (0, 0, 1)
    assert summary["failed"][0]["url"] == url
    assert "robots.txt not fetched" in summary["failed"][0]["error"]
    assert "Connection refused" in summary["failed"][0]["error"]

    res = CliRunner().invoke(app, ["crawl", url, "--out", str(tmp_path / "c"), "--delay", "0"])
    assert res.exit_code == 1, res.output  # nothing was fetched: not a success
    assert f"fetch error: {url}: robots.txt not fetched" in res.stderr
    assert "0 URLs disallowed by robots.txt, 1 errors" in res.stdout
    assert "nothing was fetched" in res.stderr
    res = CliRunner().invoke(
        app, ["crawl", url, "--out", str(tmp_path / "c"), "--delay", "0", "--json"]
    )
    assert res.exit_code == 1 and json.loads(res.stdout)["errors"] == 1


def test_a_robots_txt_server_error_says_why_its_urls_are_disallowed(tmp_path: Path) -> None:
    with _Server(robots=b"oops", robots_status=503) as srv:
        summary = crawl(CrawlConfig(seeds=[srv.url], out_dir=tmp_path, delay_s=0.0))
    assert (summary["pages"], summary["robots_blocked"], summary["errors"]) == (0, 1, 0)
    assert list(summary["robots_unavailable"].values()) == ["robots.txt answered HTTP 503"]


@pytest.mark.parametrize("under", ["", "sub"])
def test_out_that_is_a_file_or_under_one_is_refused_before_crawling(
    tmp_path: Path, under: str
) -> None:
    """`--out d1/a.txt` (a file) was a FileExistsError traceback after setup."""
    from aistack.errors import ValidationError

    f = tmp_path / "d1" / "a.txt"
    f.parent.mkdir()
    f.write_text("keep\n")
    out = f / under if under else f
    with pytest.raises(ValidationError) as ei:
        crawl(CrawlConfig(seeds=["http://127.0.0.1:9/"], out_dir=out))
    assert f"--out: {f} is a file" in ei.value.message
    assert "--out crawl" in (ei.value.hint or "")
    assert f.read_text() == "keep\n"


def test_allowed_domains_that_exclude_every_seed_are_refused(tmp_path: Path) -> None:
    """--allowed-domain without the seed's domain crawled 0 pages, exit 0, with no word."""
    from typer.testing import CliRunner

    from aistack.cli.webdata import app
    from aistack.errors import ValidationError

    with pytest.raises(ValidationError) as ei:
        CrawlConfig(seeds=["http://127.0.0.1:9/"], out_dir=tmp_path, allowed_domains=["a.org"])
    assert "no seed is inside the allowed domains (a.org)" in ei.value.message
    assert "--allowed-domain" in (ei.value.hint or "")
    with _Server() as srv:  # one seed outside: a warning, the other is crawled
        res = CliRunner().invoke(
            app,
            [
                "crawl",
                srv.url,
                "http://other.invalid/x",
                "--out",
                str(tmp_path),
                "--allowed-domain",
                "127.0.0.1",
                "--max-pages",
                "1",
                "--delay",
                "0",
            ],
        )
    assert res.exit_code == 0, res.output
    assert "warning: seed http://other.invalid/x is outside the allowed domains" in res.stderr
    assert "fetched 1 pages" in res.stdout
