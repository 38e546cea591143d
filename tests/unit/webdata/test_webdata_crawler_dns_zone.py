"""Many different names of one DNS zone whose lookups hang (hundreds of subdomains of a broken
zone: a1.broken.example, a2.broken.example, ...) do not take every lookup slot: the names of
one domain (its last two labels) hold at most a share of them at once, and requests past it
wait for one of the domain's own (within their timeout) without taking a slot, so other
domains' lookups still run. The fake resolver blocks for names under broken.example (up to
30 s, until the test ends) and answers at once for the others (no network). The asserts are
on the resolver's count of lookups running at once; wall-clock asserts are hang guards only,
far below the 30 s stuck lookup."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aistack.webdata.crawler import MAX_PENDING_LOOKUPS, fetch

UA = "aistack-crawler/0.1 (test)"
ZONE = "broken.example"
SHARE = MAX_PENDING_LOOKUPS // 4  # the slots one domain's names may hold at once (4 of 16)


class Resolver:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.asked: list[str] = []
        self.running = 0  # lookups of the broken zone's names running now
        self.most = 0  # ... and the most that ever ran at once
        self.threads: list[threading.Thread] = []  # the test's fetches, ended at teardown

    def stuck(self, name: str) -> bool:
        name = name.lower().rstrip(".")
        return name == ZONE or name.endswith("." + ZONE)

    def wait_running(self, n: int, within: float = 5) -> int:
        deadline = time.monotonic() + within
        while self.running < n and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # (any more that would start have started by now)
        return self.running


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Resolver]:
    real = socket.getaddrinfo
    r = Resolver()

    def fake(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        with r.lock:
            r.asked.append(name)
        if not r.stuck(name):
            return real("127.0.0.1", port, *args, **kw)
        with r.lock:
            r.running += 1
            r.most = max(r.most, r.running)
        try:
            r.release.wait(30)
        finally:
            with r.lock:
                r.running -= 1
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    yield r
    r.release.set()
    # (with the fake still in place: a fetch left waiting for a slot would otherwise ask the
    # real resolver, or the next test's fake, once it got one)
    for t in r.threads:
        t.join(15)


def _ok_port(page_server: Callable[..., str]) -> int:
    url = page_server(lambda path, headers: (200, b"<html><body>ok</body></html>"))
    return int(url.rsplit(":", 1)[1].strip("/"))


def _fetch_in_threads(
    r: Resolver, urls: list[str], timeout: float
) -> tuple[list[threading.Thread], list[Any]]:
    results: list[Any] = []
    threads = [
        threading.Thread(
            target=lambda u=u: results.append(
                fetch(u, user_agent=UA, timeout=timeout, max_bytes=10_000)
            ),
            daemon=True,
        )
        for u in urls
    ]
    r.threads += threads
    for t in threads:
        t.start()
    return threads, results


def test_a_broken_zone_holds_its_share_of_slots_and_other_hosts_resolve(
    resolver: Resolver, page_server: Callable[..., str]
) -> None:
    port = _ok_port(page_server)
    # 40 different names of the broken zone (each request would wait 30 s on its lookup)
    stuck, stuck_results = _fetch_in_threads(
        resolver, [f"http://a{i}.{ZONE}/" for i in range(40)], timeout=30
    )
    resolver.wait_running(SHARE)
    # 10 other hosts: other domains, one of them under the same top-level domain
    others = [f"http://ok{i}.test:{port}/" for i in range(9)] + [f"http://www.ok.example:{port}/"]
    t0 = time.monotonic()
    ok, ok_results = _fetch_in_threads(resolver, others, timeout=8)
    for t in ok:
        t.join(10)
    elapsed = time.monotonic() - t0
    assert [(r.error, r.status) for r in ok_results] == [(None, 200)] * len(others), ok_results
    assert elapsed < 5, elapsed  # a hang guard (the old code waited for a slot until the timeout)
    assert stuck_results == []  # the zone's requests still wait, on a lookup or for a slot
    assert resolver.most == SHARE  # (the old code let it take all 16 slots)
    # once the zone answers, the requests that waited for its slots are looked up in turn,
    # never more than its share at once
    resolver.release.set()
    for t in stuck:
        t.join(15)
    assert len(stuck_results) == len(stuck)
    assert all(r.error.startswith("gaierror") for r in stuck_results), stuck_results
    assert sorted(n for n in resolver.asked if resolver.stuck(n)) == sorted(
        f"a{i}.{ZONE}" for i in range(40)
    )
    assert resolver.most == SHARE


def test_a_request_waiting_for_its_domains_slot_keeps_its_own_timeout(
    resolver: Resolver,
) -> None:
    _fetch_in_threads(resolver, [f"http://a{i}.{ZONE}/" for i in range(SHARE)], timeout=30)
    assert resolver.wait_running(SHARE) == SHARE
    t0 = time.monotonic()
    # another name of the zone, written in other case and with the root's dot: one domain
    res = fetch("http://B.Broken.Example./x", user_agent=UA, timeout=0.3, max_bytes=1000)
    assert time.monotonic() - t0 < 5  # a hang guard: it gave up at its own 0.3 s
    assert res.error == (
        "TimeoutError: name lookup of 'b.broken.example.': no answer within 0.3 s (as many"
        " lookups of names under 'broken.example' as may run at once still unanswered)"
    )
    assert "b.broken.example." not in resolver.asked  # it never took a slot
    assert resolver.most == SHARE


def test_the_zone_itself_and_its_subdomains_share_one_bound(resolver: Resolver) -> None:
    _fetch_in_threads(
        resolver,
        [f"http://{ZONE}/"] + [f"http://x{i}.y.{ZONE}/" for i in range(SHARE + 2)],
        timeout=30,
    )
    assert resolver.wait_running(SHARE) == SHARE
    assert resolver.most == SHARE
