"""CrawlConfig refuses what would crash or never end a crawl later, in the Python API as the
CLI does: a non-finite delay or timeout (time.sleep(inf) is an OverflowError; NaN passed the
"< 0" test), a count that is not a whole number (max_pages=nan never stopped the crawl), and a
URL that urllib.parse cannot split (a ValueError traceback). A malformed link or Crawl-delay
found while crawling is skipped, not a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ValidationError
from aistack.webdata.crawler import CrawlConfig, crawl, crawl_delay, extract_links

SEED = "http://127.0.0.1:1/"


@pytest.mark.parametrize(
    ("kwargs", "message", "hint"),
    [
        (
            {"delay_s": float("inf")},
            "crawl: delay_s must be a finite number of seconds >= 0, got inf",
            "e.g. --delay 1: seconds between requests to one host",
        ),
        (
            {"delay_s": float("nan")},
            "crawl: delay_s must be a finite number of seconds >= 0, got nan",
            "e.g. --delay 1: seconds between requests to one host",
        ),
        (
            {"delay_s": -1},
            "crawl: delay_s must be a finite number of seconds >= 0, got -1",
            "e.g. --delay 1: seconds between requests to one host",
        ),
        (
            {"timeout_s": float("inf")},
            "crawl: timeout_s must be a finite number of seconds > 0, got inf",
            "e.g. timeout_s=15: seconds per request",
        ),
        (
            {"timeout_s": 0},
            "crawl: timeout_s must be a finite number of seconds > 0, got 0",
            "e.g. timeout_s=15: seconds per request",
        ),
        (
            {"max_pages": float("nan")},
            "crawl: max_pages must be a whole number >= 1, got nan",
            "e.g. --max-pages 100",
        ),
        (
            {"max_depth": 1.5},
            "crawl: max_depth must be a whole number >= 0, got 1.5",
            "e.g. --max-depth 2: links followed from a seed",
        ),
        (
            {"concurrency": 0},
            "crawl: concurrency must be a whole number >= 1, got 0",
            "e.g. --concurrency 4: hosts fetched at once",
        ),
    ],
)
def test_a_bad_number_is_refused_naming_the_field(
    tmp_path: Path, kwargs: dict[str, Any], message: str, hint: str
) -> None:
    with pytest.raises(ValidationError) as e:
        CrawlConfig(seeds=[SEED], out_dir=tmp_path / "c", **kwargs)
    assert e.value.message == message
    assert e.value.hint == hint
    assert e.value.details == {"field": next(iter(kwargs))}
    assert not (tmp_path / "c").exists()


def test_whole_numbers_given_as_floats_are_taken_as_ints(tmp_path: Path) -> None:
    """(From JSON or YAML, where 3.0 is a number like 3.)"""
    kw: dict[str, Any] = {"max_pages": 3.0, "max_depth": 0.0}
    cfg = CrawlConfig(seeds=[SEED], out_dir=tmp_path, delay_s=0, **kw)
    assert (cfg.max_pages, cfg.max_depth) == (3, 0)
    assert isinstance(cfg.max_pages, int) and isinstance(cfg.max_depth, int)


@pytest.mark.parametrize(
    ("seed", "why"),
    [
        ("http://[::1/", "Invalid IPv6 URL"),
        ("http://127.0.0.1:abc/", "Port could not be cast to integer value as 'abc'"),
        ("http://127.0.0.1:99999/", "Port out of range 0-65535"),
    ],
)
def test_a_seed_urllib_cannot_split_is_refused(tmp_path: Path, seed: str, why: str) -> None:
    """Was a ValueError traceback: from urlsplit in CrawlConfig, or from .port in fetch()."""
    with pytest.raises(ValidationError) as e:
        CrawlConfig(seeds=[seed], out_dir=tmp_path / "c")
    assert e.value.message == f"crawl: seed {seed!r} is not a valid URL ({why})"
    assert e.value.hint == "e.g. https://example.org/ or http://[::1]:8080/"
    assert e.value.details == {"field": "seeds"}


def test_an_infinite_crawl_delay_in_robots_txt_is_ignored() -> None:
    """ "Crawl-delay: inf" made the host's next request time infinite: time.sleep(inf) raised
    OverflowError and ended the crawl."""
    assert crawl_delay("User-agent: *\nCrawl-delay: inf\n", "aistack-crawler/0.1") == 0.0
    assert crawl_delay("User-agent: *\nCrawl-delay: 1e999\n", "aistack-crawler/0.1") == 0.0
    assert crawl_delay("User-agent: *\nCrawl-delay: 2.5\n", "aistack-crawler/0.1") == 2.5


def test_a_malformed_link_or_base_is_skipped() -> None:
    html = (
        b'<html><head><base href="http://[::1/"></head><body><a href="a">a</a>'
        b'<a href="http://[::1/">v6</a><a href="http://h:abc/">port</a><a href="/b">b</a>'
        b"</body></html>"
    )
    assert extract_links("http://h/x/", html) == (["http://h/x/a", "http://h/b"], False)


@pytest.mark.parametrize("obey_robots", [False, True])
@pytest.mark.parametrize(
    "href", ["http://[::1/", "http://127.0.0.1:abc/", "http://127.0.0.1:99999/"]
)
def test_a_page_with_a_malformed_link_does_not_end_the_crawl(
    tmp_path: Path, page_server: Any, href: str, obey_robots: bool
) -> None:
    """One such link on a crawled page was a ValueError out of crawl(): nothing fetched after."""
    page = f'<html><body><a href="{href}">x</a><a href="/ok">ok</a></body></html>'.encode()
    paths: list[str] = []

    def respond(path: str, _headers: Any) -> tuple[int, bytes]:
        paths.append(path)
        if path == "/robots.txt":
            return 404, b""
        return 200, page if path == "/" else b"<html>leaf</html>"

    url = page_server(respond)
    summary = crawl(
        CrawlConfig(seeds=[url], out_dir=tmp_path, delay_s=0, obey_robots=obey_robots, max_depth=1)
    )
    assert (summary["pages"], summary["errors"], summary["failed"]) == (2, 0, [])
    assert [p for p in paths if p != "/robots.txt"] == ["/", "/ok"]
