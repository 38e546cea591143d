"""Labels already in punycode (``xn--...``) are checked as labels in Unicode are: decoded with
the ``idna`` package and held to IDNA 2008, so a name with an invalid punycode label (one that
does not decode, or decodes to what IDNA 2008 refuses, or is not the canonical spelling) is a
per-URL error like other invalid names, never asked of the resolver, and the crawl goes on.
Names resolve through a fake resolver (no network): the names it knows resolve to 127.0.0.1,
every other name is unknown."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aistack.webdata.crawler import CrawlConfig, crawl, fetch, host_name, idna_host

UA = "aistack-crawler/0.1 (test)"

STRASSE = "xn--strae-oqa.test"  # straße.test
SNOWMAN = "xn--n3h.test"  # ☃.test: IDNA 2003 allowed the symbol, IDNA 2008 refuses it
BAD = [
    (SNOWMAN, "U+2603"),  # decodes, to a symbol IDNA 2008 refuses
    ("xn--.test", "no Punycode"),  # nothing after the prefix
    ("xn--abc-.test", "hyphen"),  # an A-label does not end with a hyphen
    ("xn--a.test", "U+0080"),  # decodes to a control character
    ("ok.xn--zz-zzzzzzzzz.test", "not allowed"),  # any label of the name, not only the first
]


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    real = socket.getaddrinfo
    asked: list[str] = []
    lock = threading.Lock()

    def fake(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        with lock:
            asked.append(name)
        if name in {"ok.test", STRASSE} or name.startswith("xn--"):  # (the bad ones too)
            return real("127.0.0.1", port, *args, **kw)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    yield asked


@pytest.mark.parametrize(("name", "why"), BAD)
def test_an_invalid_punycode_label_is_refused(name: str, why: str) -> None:
    with pytest.raises(UnicodeError, match=re.escape(why)):
        idna_host(name)
    assert host_name(name.upper()) == name  # (the scope checks keep it as it is, lower-cased)


def test_valid_punycode_labels_are_kept_lower_cased() -> None:
    assert idna_host("XN--STRAE-OQA.Test") == STRASSE
    assert idna_host("www.xn--bcher-kva.example.") == "www.xn--bcher-kva.example."
    assert idna_host("my_host.ok.test") == "my_host.ok.test"  # (no punycode: unchecked)


@pytest.mark.parametrize(("name", "why"), BAD)
def test_a_fetch_of_an_invalid_punycode_name_is_an_error_not_a_lookup(
    name: str, why: str, lookups: list[str], page_server: Callable[..., str]
) -> None:
    port = int(page_server(lambda p, h: (200, b"ok")).rsplit(":", 1)[1].strip("/"))
    res = fetch(f"http://{name}:{port}/", user_agent=UA, timeout=5, max_bytes=10_000)
    assert res.status is None
    assert res.error is not None
    assert res.error.startswith(f"ValueError: host {name!r} is not a valid IDNA name"), res.error
    assert why in res.error
    assert lookups == []


def test_a_crawl_records_invalid_punycode_links_as_fetch_errors_and_goes_on(
    page_server: Callable[..., str], lookups: list[str], tmp_path: Path
) -> None:
    port = 0
    hosts: list[str] = []

    def respond(path: str, headers: Any) -> tuple[int, bytes]:
        hosts.append(headers.get("Host", ""))
        if path == "/robots.txt":
            return 404, b""
        if path == "/":
            links = "".join(f'<a href="http://{n}:{port}/x">b</a>' for n, _ in BAD)
            links += f'<a href="http://{STRASSE}:{port}/s">s</a><a href="/next">n</a>'
            return 200, f"<html><body>{links}</body></html>".encode()
        return 200, b"<html><body>leaf</body></html>"

    port = int(page_server(respond).rsplit(":", 1)[1].strip("/"))
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
    assert (s["pages"], s["errors"]) == (3, len(BAD)), s  # /, /next, straße's /s
    failed = {f["url"]: f["error"] for f in s["failed"]}
    assert set(failed) == {f"http://{n}:{port}/x" for n, _ in BAD}
    for n, why in BAD:
        err = failed[f"http://{n}:{port}/x"]
        assert err.startswith(f"InvalidURL: host {n!r} is not a valid IDNA name"), err
        assert why in err
    assert set(lookups) == {"ok.test", STRASSE}
    assert {h for h in hosts} == {f"ok.test:{port}", f"{STRASSE}:{port}"}
