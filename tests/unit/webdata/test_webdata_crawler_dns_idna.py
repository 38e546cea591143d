"""Host names are converted as browsers convert them (UTS 46 / IDNA 2008), not with IDNA
2003 (Python's ``encodings.idna``): ``straße`` is ``xn--strae-oqa``, not ``strasse``; a
final sigma is kept; a name IDNA 2008 refuses (a symbol such as ``☃``) is a per-URL fetch
error and the crawl goes on. Names resolve through a fake resolver (no network): the names
it knows resolve to 127.0.0.1, every other name is unknown."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aistack.webdata.crawler import CrawlConfig, crawl, fetch, host_name, in_scope

UA = "aistack-crawler/0.1 (test)"

STRASSE = "xn--strae-oqa.test"  # straße.test under UTS 46 / IDNA 2008 ("strasse.test" in 2003)
BOLOS = "xn--nxasmm1c.test"  # βόλος.test (final sigma kept; "xn--nxasmq6b" in 2003)
SNOWMAN_2003 = "xn--n3h.test"  # ☃.test: IDNA 2003 allows the symbol, IDNA 2008 refuses it


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names asked of the resolver, in order; the IDNA 2008 names above and ok.test
    resolve to 127.0.0.1 (so do their IDNA 2003 spellings: a request under the old mapping
    reaches the server, and its Host header tells)."""
    real = socket.getaddrinfo
    asked: list[str] = []
    known = {STRASSE, BOLOS, "ok.test", "strasse.test", "xn--nxasmq6b.test", SNOWMAN_2003}
    lock = threading.Lock()

    def fake(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        with lock:
            asked.append(name)
        if name in known:
            return real("127.0.0.1", port, *args, **kw)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    yield asked


def _recording_server(
    page_server: Callable[..., str], body: Callable[[str], bytes] | None = None
) -> tuple[int, list[str]]:
    hosts: list[str] = []

    def respond(path: str, headers: Any) -> tuple[int, bytes]:
        hosts.append(headers.get("Host", ""))
        if path == "/robots.txt":
            return 404, b""
        return 200, body(path) if body else b"<html><body>ok</body></html>"

    url = page_server(respond)
    return int(url.rsplit(":", 1)[1].strip("/")), hosts


@pytest.mark.parametrize(
    ("name", "expected"),
    [("straße.test", STRASSE), ("STRASSE.test", "strasse.test"), ("βόλος.test", BOLOS)],
)
def test_host_name_maps_as_uts46_does(name: str, expected: str) -> None:
    assert host_name(name) == expected


def test_straße_and_strasse_are_two_hosts_in_scope() -> None:
    # (IDNA 2003 made them one: a crawl limited to strasse.test went to straße.test)
    assert not in_scope("http://straße.test/", {"strasse.test"})
    assert in_scope("http://straße.test/", {STRASSE})
    assert in_scope(f"http://{STRASSE}/", {"straße.test"})


def test_a_fetch_asks_for_the_host_a_browser_asks_for(
    page_server: Callable[..., str], lookups: list[str]
) -> None:
    port, hosts = _recording_server(page_server)
    res = fetch(f"http://straße.test:{port}/", user_agent=UA, timeout=5, max_bytes=10_000)
    assert res.error is None and res.status == 200, res.error
    assert lookups == [STRASSE]
    assert hosts == [f"{STRASSE}:{port}"]


def test_a_crawl_of_idn_hosts_requests_their_uts46_names(
    page_server: Callable[..., str], lookups: list[str], tmp_path: Path
) -> None:
    port, hosts = _recording_server(page_server)
    s = crawl(
        CrawlConfig(
            seeds=[f"http://straße.test:{port}/", f"http://βόλος.test:{port}/"],
            out_dir=tmp_path,
            delay_s=0,
            timeout_s=5,
            user_agent=UA,
        )
    )
    assert (s["pages"], s["errors"]) == (2, 0), s
    assert set(hosts) == {f"{STRASSE}:{port}", f"{BOLOS}:{port}"}
    assert set(lookups) == {STRASSE, BOLOS}


def test_a_name_idna_2008_refuses_is_a_fetch_error_and_the_crawl_goes_on(
    page_server: Callable[..., str], lookups: list[str], tmp_path: Path
) -> None:
    port = 0

    def body(path: str) -> bytes:
        if path == "/":
            links = f'<a href="http://☃.test:{port}/x">s</a><a href="/next">n</a>'
            return f"<html><body>{links}</body></html>".encode()
        return b"<html><body>leaf</body></html>"

    port, hosts = _recording_server(page_server, body)
    s = crawl(
        CrawlConfig(
            seeds=[f"http://ok.test:{port}/"],
            out_dir=tmp_path,
            allowed_domains=["test"],
            delay_s=0,
            timeout_s=5,
            user_agent=UA,
        )
    )
    assert (s["pages"], s["errors"]) == (2, 1), s  # / and /next; ☃ recorded as failed
    [failed] = s["failed"]
    assert failed["url"] == f"http://☃.test:{port}/x"
    assert failed["error"].startswith("InvalidURL: host '☃.test' is not a valid IDNA name")
    assert "U+2603" in failed["error"]
    assert SNOWMAN_2003 not in lookups
    assert all(h == f"ok.test:{port}" for h in hosts), hosts


def test_a_refused_seed_is_a_fetch_error_not_a_crash(
    page_server: Callable[..., str], lookups: list[str], tmp_path: Path
) -> None:
    port, hosts = _recording_server(page_server)
    s = crawl(
        CrawlConfig(
            seeds=[f"http://☃.test:{port}/", f"http://ok.test:{port}/"],
            out_dir=tmp_path,
            delay_s=0,
            timeout_s=5,
            user_agent=UA,
        )
    )
    assert (s["pages"], s["errors"]) == (1, 1), s
    assert s["failed"][0]["url"] == f"http://☃.test:{port}/"
    assert "not a valid IDNA name" in s["failed"][0]["error"]
    assert SNOWMAN_2003 not in lookups


def test_ascii_labels_of_an_idn_name_are_kept_as_browsers_keep_them() -> None:
    # (IDNA 2008 refuses "_" in a label; browsers, and UTS 46 without STD3 rules, keep it:
    # an underscore in an ASCII label of an internationalized name is no reason to fail)
    assert host_name("My_Host.Straße.test") == f"my_host.{STRASSE}"
    assert host_name("ok.test") == "ok.test"
    assert host_name("bücher。test") == "xn--bcher-kva.test"  # an ideographic full stop
