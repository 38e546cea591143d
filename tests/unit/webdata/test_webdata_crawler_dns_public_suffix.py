"""The domain whose share of the name-lookup slots a host takes is its registrable domain by
the Public Suffix List (the copy the ``publicsuffixlist`` package ships), not its last two
labels: every name under ``co.uk`` or ``github.io`` was one domain, so one stuck site there
held the share that all the others waited for. The fetch tests reuse the fake resolver of
``test_webdata_crawler_dns_zone`` (no network) with its stuck zone moved under a public
suffix of two labels."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import publicsuffixlist
import pytest
import test_webdata_crawler_dns_zone as zone
from test_webdata_crawler_dns_zone import (  # noqa: F401 (resolver: the fixture)
    SHARE,
    UA,
    Resolver,
    _fetch_in_threads,
    _ok_port,
    resolver,
)

import aistack.webdata.crawler as crawler
from aistack.webdata.crawler import fetch, lookup_domain


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        # under a public suffix of two labels (ICANN's co.uk, the list's private github.io)
        ("a.b.co.uk", "b.co.uk"),
        ("c.co.uk", "c.co.uk"),
        ("www.bbc.co.uk", "bbc.co.uk"),
        ("x.github.io", "x.github.io"),
        ("y.github.io", "y.github.io"),
        ("deep.x.github.io", "x.github.io"),
        ("a.b.c.kawasaki.jp", "b.c.kawasaki.jp"),  # a wildcard rule (*.kawasaki.jp)
        ("city.kawasaki.jp", "city.kawasaki.jp"),  # ... and its exception (!city.kawasaki.jp)
        # under a one-label suffix, as before; in other case, with the root's dot
        ("a.example.com", "example.com"),
        ("b.example.com", "example.com"),
        ("A.Example.COM.", "example.com"),
        ("example.com", "example.com"),
        # a top-level domain the list does not know: a one-label public suffix
        ("a1.broken.example", "broken.example"),
        ("x.y.corp.internal", "corp.internal"),
        # no registrable domain: its own
        ("co.uk", "co.uk"),
        ("github.io", "github.io"),
        ("uk", "uk"),
        ("localhost", "localhost"),
        ("a..b.co.uk", "a..b.co.uk"),  # an empty label: the list reads no domain in it
        # IP addresses: each its own (never looked up; not "0.1" for 127.0.0.1)
        ("127.0.0.1", "127.0.0.1"),
        ("10.1.2.3", "10.1.2.3"),
        ("::1", "::1"),
        ("[2001:DB8::0:1]", "2001:db8::1"),
        # internationalized names: punycode as the crawler asks for it, or Unicode
        ("xn--strae-oqa.de", "xn--strae-oqa.de"),
        ("www.straße.de", "xn--strae-oqa.de"),
        ("a.b.xn--55qx5d.cn", "b.xn--55qx5d.cn"),  # 公司.cn is a public suffix
        ("a.b.公司.cn", "b.xn--55qx5d.cn"),
        ("shop.xn--fiqs8s", "shop.xn--fiqs8s"),  # under 中国, a top-level domain in punycode
    ],
)
def test_lookup_domain_is_the_registrable_domain(host: str, domain: str) -> None:
    assert lookup_domain(host) == domain


def test_sites_under_one_public_suffix_are_different_domains() -> None:
    assert lookup_domain("a.b.co.uk") != lookup_domain("c.co.uk")  # (both were "co.uk")
    assert lookup_domain("x.github.io") != lookup_domain("y.github.io")  # ("github.io")
    assert lookup_domain("a.example.com") == lookup_domain("b.example.com")


def test_the_list_is_read_once_from_the_package_without_the_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[Any] = []
    real = publicsuffixlist.PublicSuffixList

    def counting(*args: Any, **kw: Any) -> Any:
        time.sleep(0.05)  # (a window for the threads below to race in)
        made.append((args, kw))
        return real(*args, **kw)

    def no_network(*args: Any, **kw: Any) -> Any:
        raise AssertionError("the Public Suffix List was fetched from the network")

    monkeypatch.setattr(publicsuffixlist, "PublicSuffixList", counting)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(crawler, "_psl", None)
    start = threading.Barrier(8)
    got: list[str] = []

    def ask() -> None:
        start.wait()
        got.append(lookup_domain("www.bbc.co.uk"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert got == ["bbc.co.uk"] * 8
    assert made == [((), {"accept_unknown": True})]  # one list, the package's own copy
    assert lookup_domain("x.github.io") == "x.github.io"
    assert len(made) == 1  # kept for the process


# --------------------------------------------------------------------------- the lookup slots


@pytest.mark.parametrize(
    ("stuck_zone", "other"),
    [("bbc.co.uk", "www.itv.co.uk"), ("stuck.github.io", "ok.github.io")],
)
def test_a_stuck_site_under_a_public_suffix_leaves_its_neighbours_their_lookups(
    monkeypatch: pytest.MonkeyPatch,
    resolver: Resolver,  # noqa: F811
    page_server: Callable[..., str],
    stuck_zone: str,
    other: str,
) -> None:
    monkeypatch.setattr(zone, "ZONE", stuck_zone)  # (what the fake resolver never answers)
    port = _ok_port(page_server)
    # more names of the stuck site than its share: it holds SHARE slots, the rest wait
    stuck, stuck_results = _fetch_in_threads(
        resolver, [f"http://a{i}.{stuck_zone}/" for i in range(SHARE + 3)], timeout=30
    )
    assert resolver.wait_running(SHARE) == SHARE
    # another site under the same public suffix: its own domain, its own share (the old
    # code counted both as "co.uk" / "github.io": it waited for the stuck site's slots and
    # gave up at its timeout, "as many lookups of names under 'co.uk' ...")
    t0 = time.monotonic()
    res = fetch(f"http://{other}:{port}/", user_agent=UA, timeout=3, max_bytes=10_000)
    assert (res.error, res.status) == (None, 200)
    assert time.monotonic() - t0 < 2.5  # a hang guard, below the 3 s timeout
    assert other in resolver.asked
    assert resolver.most == SHARE  # the stuck site's names still share one bound
    assert stuck_results == []
    resolver.release.set()
    for t in stuck:
        t.join(15)
    assert len(stuck_results) == len(stuck)
    assert resolver.most == SHARE
