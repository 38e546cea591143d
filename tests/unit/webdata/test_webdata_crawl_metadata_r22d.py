"""The crawler does not connect by name to a link-local or cloud metadata address: a site in
scope whose DNS names 169.254.169.254 would otherwise have the VM's metadata (credentials
included) fetched and kept in the WARC. A name that resolves to loopback is still fetched (the
documented behaviour the local test servers rely on), and of a name with other addresses
those are used. The fake resolver answers without network; the blocked addresses are never
connected to (the fetch fails at once, well within its timeout)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aistack.webdata.crawler import CrawlConfig, crawl, fetch

UA = "aistack-crawler/0.1 (test)"
ANSWERS: dict[str, list[str]] = {
    "imds.example": ["169.254.169.254"],
    "imds6.example": ["fe80::a9fe:a9fe"],
    "mapped.example": ["::ffff:169.254.169.254"],
    "aws6.example": ["fd00:ec2::254"],
    "mixed.example": ["169.254.169.254", "127.0.0.1"],
    "site.example": ["127.0.0.1"],
}


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in ANSWERS:
            return real(host, port, *args, **kw)
        out = []
        for a in ANSWERS[name]:
            if ":" in a:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)))
        return out

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def _port(page_server: Callable[..., str]) -> int:
    url = page_server(lambda path, headers: (200, b"<html><body>secret-free page</body></html>"))
    return int(url.rsplit(":", 1)[1].strip("/"))


@pytest.mark.parametrize(
    ("name", "address"),
    [
        ("imds.example", "169.254.169.254"),
        ("imds6.example", "fe80::a9fe:a9fe"),
        ("mapped.example", "::ffff:169.254.169.254"),
        ("aws6.example", "fd00:ec2::254"),
    ],
)
def test_name_resolving_to_metadata_address_is_not_fetched(name: str, address: str) -> None:
    t0 = time.monotonic()
    f = fetch(f"http://{name}/latest/meta-data/", user_agent=UA, timeout=5.0, max_bytes=1 << 20)
    assert time.monotonic() - t0 < 2.0  # refused, not a connection attempt that timed out
    assert f.status is None and f.response == b"" and f.ip is None
    assert f.error is not None and f.error.startswith("BlockedAddress: ")
    assert f"{name!r} resolves to {address}" in f.error
    assert "name the address in the URL" in f.error


def test_other_addresses_of_the_name_are_used(page_server: Callable[..., str]) -> None:
    port = _port(page_server)
    f = fetch(f"http://mixed.example:{port}/", user_agent=UA, timeout=5.0, max_bytes=1 << 20)
    assert f.error is None and f.status == 200
    assert f.ip == "127.0.0.1"


def test_loopback_name_still_fetched(page_server: Callable[..., str]) -> None:
    port = _port(page_server)
    f = fetch(f"http://site.example:{port}/", user_agent=UA, timeout=5.0, max_bytes=1 << 20)
    assert f.error is None and f.status == 200 and b"secret-free page" in f.body


def test_crawl_reports_the_blocked_host(tmp_path: Path) -> None:
    out = crawl(
        CrawlConfig(
            seeds=["http://imds.example/latest/meta-data/"],
            out_dir=tmp_path,
            delay_s=0.0,
            timeout_s=5.0,
        )
    )
    assert out["pages"] == 0 and out["errors"] == 1
    failed = json.dumps(out["failed"])
    assert "BlockedAddress" in failed and "169.254.169.254" in failed
