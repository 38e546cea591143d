"""One host whose name lookups hang does not hold up other hosts' lookups: lookups of one
name share the one still running (a stuck name holds one lookup thread, not one per
request), so the slots left are free for other names. The fake resolver blocks for names
under .stuck (up to 30 s, until the test ends) and answers at once for the others (no
network). Wall-clock asserts are hang guards only, far below the 30 s stuck lookup."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aistack.webdata.crawler import MAX_PENDING_LOOKUPS, fetch

UA = "aistack-crawler/0.1 (test)"


class Resolver:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.asked: list[str] = []
        self.lock = threading.Lock()

    def stuck_lookups(self) -> int:
        with self.lock:
            return sum(n.endswith(".stuck") for n in self.asked)


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Resolver]:
    real = socket.getaddrinfo
    r = Resolver()

    def fake(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        with r.lock:
            r.asked.append(name)
        if name.endswith(".stuck"):
            r.release.wait(30)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real("127.0.0.1", port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    yield r
    r.release.set()


def _ok_server(page_server: Callable[..., str]) -> int:
    url = page_server(lambda path, headers: (200, b"<html><body>ok</body></html>"))
    return int(url.rsplit(":", 1)[1].strip("/"))


def _fetch_in_threads(urls: list[str], timeout: float) -> tuple[list[threading.Thread], list[Any]]:
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
    for t in threads:
        t.start()
    return threads, results


def test_a_stuck_host_does_not_hold_up_other_hosts_lookups(
    resolver: Resolver, page_server: Callable[..., str]
) -> None:
    port = _ok_server(page_server)
    # more requests to the stuck host than lookups may run at once (each waits up to 30 s)
    stuck, stuck_results = _fetch_in_threads(
        [f"http://slow.stuck/{i}" for i in range(MAX_PENDING_LOOKUPS + 4)], timeout=30
    )
    deadline = time.monotonic() + 5
    while resolver.stuck_lookups() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # (the other requests to it are waiting too by now)
    t0 = time.monotonic()
    ok, ok_results = _fetch_in_threads(
        [f"http://ok{i}.test:{port}/" for i in range(MAX_PENDING_LOOKUPS + 4)], timeout=20
    )
    for t in ok:
        t.join(20)
    elapsed = time.monotonic() - t0
    # every other host answered, while the stuck host's requests still wait on its lookup
    assert [(r.error, r.status) for r in ok_results] == [(None, 200)] * len(ok), ok_results
    assert stuck_results == []
    assert elapsed < 5, elapsed  # (the old code waited for a slot until each request's timeout)
    # the stuck name was asked of the resolver once, not once per request
    assert resolver.stuck_lookups() == 1
    resolver.release.set()
    for t in stuck:
        t.join(10)
    assert len(stuck_results) == len(stuck)
    assert all(r.error.startswith("gaierror") for r in stuck_results), stuck_results


def test_requests_that_share_a_lookup_each_keep_their_own_timeout(
    resolver: Resolver,
) -> None:
    threads, results = _fetch_in_threads(["http://slow.stuck/a"], timeout=30)
    deadline = time.monotonic() + 5
    while resolver.stuck_lookups() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    res = fetch("http://slow.stuck/b", user_agent=UA, timeout=0.3, max_bytes=1000)
    assert time.monotonic() - t0 < 5  # a hang guard: it gave up at its own 0.3 s
    assert res.error == "TimeoutError: name lookup of 'slow.stuck': no answer within 0.3 s"
    assert results == []  # the first request still waits on the lookup
    assert resolver.stuck_lookups() == 1


def test_a_lookup_that_answered_is_asked_again_next_time(
    resolver: Resolver, page_server: Callable[..., str]
) -> None:
    # (nothing is cached: a lookup is shared only while it runs)
    port = _ok_server(page_server)
    for _ in range(3):
        res = fetch(f"http://ok.test:{port}/", user_agent=UA, timeout=5, max_bytes=10_000)
        assert (res.error, res.status) == (None, 200)
    assert resolver.asked == ["ok.test"] * 3
