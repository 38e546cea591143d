"""A robots.txt redirect to another host the crawl is fetching from waits for that host's
politeness, as any request to it does: ``delay_s`` (or its Crawl-delay) after its last
request ended, and never while a request to it is in flight. Only hops within one redirect
chain were spaced; a hop from host A's robots.txt landed on host B at once, back to back
with B's own requests. Two servers on 127.0.0.1 (two ports: two hosts); each records when
every request came and when its answer was sent. Lower bounds only: nothing asserts that a
crawl is fast."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from timed_http import Routes, Server

from aistack.webdata.crawler import CrawlConfig, crawl

UA = "aistack-crawler/0.1 (test)"
DELAY = 0.4


PAGE = b"<html><body>ok</body></html>"
ALLOW = b"User-agent: *\nAllow: /\n"


def _crawl(tmp_path: Path, *seeds: str) -> dict[str, object]:
    return crawl(
        CrawlConfig(
            seeds=list(seeds),
            out_dir=tmp_path,
            delay_s=DELAY,
            timeout_s=5,
            user_agent=UA,
            max_depth=0,
            concurrency=4,
        )
    )


def _two_hosts(
    server: Callable[[Routes], Server],
    *,
    b_robots: bytes = ALLOW,
    b_page_wait: float = 0.0,
    a_robots_wait: float = 0.0,
) -> tuple[Server, Server]:
    b = server(
        {
            "/robots.txt": (200, None, b_robots, 0.0),
            "/robots-a.txt": (200, None, ALLOW, 0.0),
            "/": (200, None, PAGE, b_page_wait),
        }
    )
    a = server(
        {
            "/robots.txt": (302, b.url + "robots-a.txt", b"", a_robots_wait),
            "/": (200, None, PAGE, 0.0),
        }
    )
    return a, b


def test_a_robots_hop_to_a_crawled_host_waits_for_its_delay(
    server: Callable[[Routes], Server], tmp_path: Path
) -> None:
    a, b = _two_hosts(server)
    s = _crawl(tmp_path, a.url, b.url)
    assert (s["pages"], s["errors"], s["robots_redirects"]) == (2, 0, 1), s
    assert a.paths() == ["/robots.txt", "/"]
    assert sorted(b.paths()) == ["/", "/robots-a.txt", "/robots.txt"]
    # every request to B at least delay_s after the one before ended (the hop from A's
    # robots.txt came back to back with B's own robots.txt)
    assert min(b.pauses()) >= DELAY * 0.95, (b.paths(), b.pauses())


def test_a_robots_hop_waits_for_the_target_hosts_crawl_delay(
    server: Callable[[Routes], Server], tmp_path: Path
) -> None:
    # B's robots.txt (read first: A's answers late) asks for 1 s between requests
    a, b = _two_hosts(server, b_robots=b"User-agent: *\nCrawl-delay: 1\n", a_robots_wait=0.3)
    s = _crawl(tmp_path, a.url, b.url)
    assert (s["pages"], s["errors"]) == (2, 0), s
    assert b.paths()[0] == "/robots.txt"
    assert min(b.pauses()) >= 0.95, (b.paths(), b.pauses())


def test_a_robots_hop_does_not_overlap_a_request_in_flight_to_the_target(
    server: Callable[[Routes], Server], tmp_path: Path
) -> None:
    # B's page takes 0.8 s; A's robots.txt redirects to B while it is being answered
    a, b = _two_hosts(server, b_page_wait=0.8, a_robots_wait=0.7)
    s = _crawl(tmp_path, a.url, b.url)
    assert (s["pages"], s["errors"]) == (2, 0), s
    assert b.paths()[:2] == ["/robots.txt", "/"]
    assert min(b.pauses()) >= DELAY * 0.95, (b.paths(), b.pauses())
