"""robots.txt redirect hops back to the same host are ``delay_s`` apart, as any two requests
to one host are; they used to go back to back. The politeness waits are not counted in the
chain's ``timeout_s``, and the file the chain reaches gives the rules. Times are measured at
a local server on 127.0.0.1 (lower bounds only: nothing asserts that a crawl is fast)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from timed_http import Routes, Server

from aistack.webdata.crawler import CrawlConfig, crawl, fetch_robots

UA = "aistack-crawler/0.1 (test)"
DELAY = 0.4


ROUTES: Routes = {
    "/robots.txt": (301, "/r1", b""),
    "/r1": (302, "/r2", b""),
    "/r2": (307, "/robots-real.txt", b""),
    "/robots-real.txt": (200, None, b"User-agent: *\nDisallow: /private\n"),
    "/": (200, None, b'<html><body><a href="/a">a</a><a href="/private">p</a></body></html>'),
    "/a": (200, None, b"<html><body>a</body></html>"),
}


def test_robots_redirect_hops_to_the_same_host_wait_delay_s(
    server: Callable[[Routes], Server], tmp_path: Path
) -> None:
    srv = server(ROUTES)
    s = crawl(
        CrawlConfig(seeds=[srv.url], out_dir=tmp_path, delay_s=DELAY, timeout_s=5, user_agent=UA)
    )
    paths = srv.paths()
    assert paths == ["/robots.txt", "/r1", "/r2", "/robots-real.txt", "/", "/a"]
    assert s["robots_redirects"] == 3 and s["requests"] == 6
    # every request to the host at least delay_s after the one before (they only come
    # later: each starts delay_s after the previous one *ended*)
    assert min(srv.gaps()) >= DELAY * 0.95, srv.gaps()
    assert s["robots_blocked"] == 1 and s["pages"] == 2  # the file reached gives the rules


def test_the_politeness_waits_are_not_counted_in_the_chain_timeout(
    server: Callable[[Routes], Server],
) -> None:
    # three waits of 0.4 s: past a 1 s timeout, yet the chain's requests take milliseconds
    srv = server(ROUTES)
    rf = fetch_robots(srv.url + "robots.txt", user_agent=UA, timeout=1.0, delay_s=DELAY)
    assert rf.fetch.error is None and rf.fetch.status == 200, rf.fetch.error
    assert rf.redirects == 3 and rf.unavailable is None
    assert b"Disallow: /private" in rf.fetch.body
    assert min(srv.gaps()) >= DELAY * 0.95, srv.gaps()


def test_a_hop_to_another_host_does_not_wait_for_the_first_hosts_delay(
    server: Callable[[Routes], Server],
) -> None:
    other = server({"/robots.txt": (200, None, b"User-agent: *\nAllow: /\n")})
    first = server({"/robots.txt": (302, other.url + "robots.txt", b"")})
    rf = fetch_robots(first.url + "robots.txt", user_agent=UA, timeout=5, delay_s=30.0)
    # (a wait would take 30 s: the chain asks each host once)
    assert rf.redirects == 1 and rf.fetch.status == 200
    assert first.paths() == ["/robots.txt"]
    assert other.paths() == ["/robots.txt"]
