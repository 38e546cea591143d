"""``aistack webdata crawl --max-response-bytes BYTES --timeout SECONDS``: the crawler's
``max_response_bytes`` and ``timeout_s`` from the command line (there were no options for
them: 10 MiB and 15 s always). A size is a number of bytes or has a binary unit as
``bench allreduce --sizes`` reads it (``20K``, ``10MiB``); a bad value is the crawler's own
error, naming the option. The servers are raw sockets on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from raw_http import RawServer, Route
from test_webdata_followups_crawl import HEAD, big, stall_after_part
from typer.testing import CliRunner

import aistack.webdata.crawler as crawler
from aistack.cli.webdata import app
from aistack.errors import ValidationError
from aistack.webdata.crawler import CrawlConfig
from aistack.webdata.readers import ArchiveReader


def _cli(url: str, tmp_path: Path, *extra: str) -> Any:
    return CliRunner().invoke(
        app,
        ["crawl", url, "--out", str(tmp_path / "c"), "--delay", "0", "--ignore-robots", *extra],
    )


@pytest.fixture
def configs(monkeypatch: pytest.MonkeyPatch) -> list[CrawlConfig]:
    """The CrawlConfig of each crawl the CLI starts (the crawl itself still runs)."""
    seen: list[CrawlConfig] = []
    real = crawler.crawl

    def recording(cfg: CrawlConfig) -> dict[str, Any]:
        seen.append(cfg)
        return real(cfg)

    monkeypatch.setattr(crawler, "crawl", recording)
    return seen


@pytest.mark.parametrize(
    ("given", "bound"),
    [
        ("20000", 20_000),
        (" 20000 ", 20_000),
        ("20000B", 20_000),
        ("20K", 20 * 1024),
        ("20KiB", 20 * 1024),
        ("1M", 1024 * 1024),
        ("10 MiB", 10 * 1024 * 1024),
    ],
)
def test_max_response_bytes_reaches_the_crawler(
    serve: Callable[[dict[str, Route]], RawServer],
    tmp_path: Path,
    configs: list[CrawlConfig],
    given: str,
    bound: int,
) -> None:
    srv = serve({"/": lambda s, c: c.sendall(HEAD + b"Content-Length: 3\r\n\r\nabc")})
    res = _cli(srv.url, tmp_path, "--max-response-bytes", given, "--json")
    assert res.exit_code == 0, res.output
    assert [c.max_response_bytes for c in configs] == [bound]
    assert json.loads(res.stdout)["max_response_bytes"] == bound


def test_a_response_over_the_given_bound_is_kept_cut_at_it(
    serve: Callable[[dict[str, Route]], RawServer], tmp_path: Path
) -> None:
    srv = serve({"/": big})  # a page with no end
    res = _cli(srv.url, tmp_path, "--max-response-bytes", "20K")
    assert res.exit_code == 0, res.output
    out = " ".join(res.stdout.split())
    assert "1 of them oversized (a response over the 20,480-byte bound" in out, out
    warc = next((tmp_path / "c").glob("*.warc.gz"))
    resp = [r for r in ArchiveReader(warc).records() if r.record_type == "response"]
    assert [r.truncated for r in resp] == ["length"]
    assert len(HEAD + b"\r\n") + len(resp[0].body) == 20 * 1024  # the first 20 KiB, as received


def test_timeout_reaches_the_crawler(
    serve: Callable[[dict[str, Route]], RawServer], tmp_path: Path, configs: list[CrawlConfig]
) -> None:
    srv = serve({"/": stall_after_part})  # part of the page, then nothing for 30 s
    t0 = time.monotonic()
    res = _cli(srv.url, tmp_path, "--timeout", "0.5", "--json")
    assert time.monotonic() - t0 < 10  # (the default 15 s would have waited)
    assert res.exit_code == 0, res.output
    assert [c.timeout_s for c in configs] == [0.5]
    summary = json.loads(res.stdout)
    assert (summary["timeout_s"], summary["timed_out"], summary["pages"]) == (0.5, 1, 0)
    assert summary["failed"][0]["error"].startswith(
        "TimeoutError: no complete response within 0.5 s"
    )


def test_the_defaults_are_the_crawlers(
    serve: Callable[[dict[str, Route]], RawServer], tmp_path: Path, configs: list[CrawlConfig]
) -> None:
    srv = serve({"/": lambda s, c: c.sendall(HEAD + b"Content-Length: 3\r\n\r\nabc")})
    res = _cli(srv.url, tmp_path)
    assert res.exit_code == 0, res.output
    default = CrawlConfig(seeds=[srv.url], out_dir=tmp_path / "d")
    assert (
        [(c.max_response_bytes, c.timeout_s) for c in configs]
        == [(default.max_response_bytes, default.timeout_s)]
        == [(10 * 1024 * 1024, 15.0)]
    )


@pytest.mark.parametrize(
    ("extra", "message", "hint"),
    [
        (
            ["--max-response-bytes", "0"],
            "--max-response-bytes: must be a whole number >= 1, got 0",
            "--max-response-bytes 10M",
        ),
        (
            ["--max-response-bytes", "-5"],
            "--max-response-bytes: must be a whole number >= 1, got -5",
            "--max-response-bytes 10M",
        ),
        (
            ["--max-response-bytes", "0M"],
            "--max-response-bytes: must be a whole number >= 1, got 0",
            "--max-response-bytes 10M",
        ),
        (
            ["--max-response-bytes", "1.5M"],
            "--max-response-bytes: cannot read '1.5M' as a number of bytes",
            "--max-response-bytes 10M",
        ),
        (
            ["--max-response-bytes", "lots"],
            "--max-response-bytes: cannot read 'lots' as a number of bytes",
            "--max-response-bytes 10M",
        ),
        (
            ["--max-response-bytes", ""],
            "--max-response-bytes: cannot read '' as a number of bytes",
            "--max-response-bytes 10M",
        ),
        (
            ["--timeout", "0"],
            "--timeout: must be a finite number of seconds > 0, got 0.0",
            "--timeout 15",
        ),
        (
            ["--timeout", "-1"],
            "--timeout: must be a finite number of seconds > 0, got -1.0",
            "--timeout 15",
        ),
        (
            ["--timeout", "inf"],
            "--timeout: must be a finite number of seconds > 0, got inf",
            "--timeout 15",
        ),
        (
            ["--timeout", "nan"],
            "--timeout: must be a finite number of seconds > 0, got nan",
            "--timeout 15",
        ),
    ],
)
def test_a_bad_value_is_the_crawlers_error_naming_the_option(
    tmp_path: Path, extra: list[str], message: str, hint: str
) -> None:
    res = _cli("http://127.0.0.1:1/", tmp_path, *extra)
    exc = res.exception
    assert isinstance(exc, ValidationError), res.output
    assert exc.message == message
    assert hint in (exc.hint or ""), exc.hint
    assert "_s=" not in (exc.hint or "") and "max_response_bytes" not in exc.message
    assert not (tmp_path / "c").exists()  # nothing was started


def test_a_timeout_that_is_no_number_is_a_usage_error(tmp_path: Path) -> None:
    res = _cli("http://127.0.0.1:1/", tmp_path, "--timeout", "soon")
    assert res.exit_code == 2
    out = " ".join(res.output.replace("│", " ").split())  # (rich's box, wrapped)
    assert "Invalid value for '--timeout': Input should be a valid number" in out, out
