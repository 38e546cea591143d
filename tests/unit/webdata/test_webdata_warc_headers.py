"""A WARC header value cannot hold a line break: it would end the header and start another
one (``WARC-Target-URI: http://a/\\r\\nWARC-Type: resource``). The writer refuses such a
``url``, ``extra`` value or name, and the crawler refuses such a ``--user-agent`` (it also goes
into every request's header and the warcinfo record) or seed; a link found while crawling is
percent-encoded instead, so one odd ``href`` does not stop a crawl."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ValidationError
from aistack.webdata.crawler import DEFAULT_USER_AGENT, CrawlConfig, WarcWriter, crawl, safe_url
from aistack.webdata.readers import ArchiveReader


def _writer(tmp_path: Path) -> tuple[WarcWriter, Path]:
    path = tmp_path / "a.warc.gz"
    return WarcWriter(path), path


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"url": "http://a/\r\nWARC-Type: resource"}, "url", "WARC header WARC-Target-URI: "),
        ({"url": "http://a/\nx"}, "url", "holds a line break"),
        ({"url": "http://a/\u2028x"}, "url", "holds a line break"),
        ({"extra": {"WARC-IP-Address": "1.2.3.4\r\nX: y"}}, "extra['WARC-IP-Address']", "1.2.3.4"),
        ({"extra": {"WARC-Bad:\r\nX": "v"}}, "extra['WARC-Bad:\\r\\nX']", "is not an HTTP token"),
        ({"extra": {"": "v"}}, "extra['']", "is not an HTTP token"),
        ({"content_type": "text/plain\r\nX: y"}, "content_type", "WARC header Content-Type"),
        ({"date": "2026-01-01T00:00:00Z\n"}, "date", "WARC header WARC-Date"),
        ({"rtype": "resource\r\n"}, "rtype", "WARC header WARC-Type"),
    ],
)
def test_a_header_with_a_line_break_is_refused(
    tmp_path: Path, kwargs: dict[str, object], field: str, message: str
) -> None:
    w, path = _writer(tmp_path)
    args: dict[str, object] = {
        "rtype": "resource",
        "url": "http://a/",
        "content_type": "text/plain",
        **kwargs,
    }
    with pytest.raises(ValidationError, match="line break|HTTP token") as e:
        w.write(args.pop("rtype"), args.pop("url"), b"body", **args)  # type: ignore[arg-type]
    assert e.value.details["field"] == field
    assert message in e.value.message
    assert "percent-encode" in (e.value.hint or "") or "letters, digits" in (e.value.hint or "")
    w.close()
    # nothing written: only the warcinfo record is in the file
    assert w.records == 1
    assert [r.record_type for r in ArchiveReader(path).records()] == ["warcinfo"]


def test_a_good_record_is_written_and_read_back(tmp_path: Path) -> None:
    w, path = _writer(tmp_path)
    w.write(
        "resource",
        "http://a/b%20c",
        b"body",
        content_type="text/plain",
        extra={"WARC-IP-Address": "127.0.0.1"},
    )
    w.close()
    (rec,) = [r for r in ArchiveReader(path).records() if r.record_type == "resource"]
    assert rec.url == "http://a/b%20c" and rec.body == b"body"


def test_software_with_a_line_break_is_refused_before_the_file_is_made(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="WARC software") as e:
        WarcWriter(tmp_path / "x.warc.gz", software="me\r\nformat: evil")
    assert e.value.details["field"] == "software"
    assert not (tmp_path / "x.warc.gz").exists()


@pytest.mark.parametrize(
    "agent", ["bot/1\r\nX-Evil: 1", "bot/1\nfrom: x", "bot\x00", "bøt/1", "", "   "]
)
def test_a_bad_user_agent_is_refused(tmp_path: Path, agent: str) -> None:
    with pytest.raises(ValidationError, match="crawl: user agent") as e:
        CrawlConfig(seeds=["http://127.0.0.1/"], out_dir=tmp_path, user_agent=agent)
    assert e.value.details["field"] == "user_agent" and "--user-agent" in (e.value.hint or "")
    assert not list(tmp_path.iterdir())


def test_a_seed_with_a_line_break_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="holds a space, line break") as e:
        CrawlConfig(seeds=["http://127.0.0.1/a\r\nX: y"], out_dir=tmp_path)
    assert e.value.details["field"] == "seeds"


def test_safe_url() -> None:
    assert safe_url("http://a/b c\x0bd\ne\x7f") == "http://a/b%20c%0Bd%0Ae%7F"
    assert safe_url("http://a/é?q=1&r=%20") == "http://a/é?q=1&r=%20"  # the rest kept


def test_a_crawl_encodes_an_odd_link_and_sends_the_agent_as_given(
    tmp_path: Path, page_server: Any
) -> None:
    seen: list[tuple[str, str]] = []
    page = b'<!doctype html><html><body><a href="/x\x0by z.html">x</a></body></html>'

    def respond(path: str, headers: Any) -> tuple[int, bytes]:
        seen.append((path, headers.get("User-Agent", "")))
        return 200, page if path == "/" else b"<!doctype html><html>leaf</html>"

    url = page_server(respond)
    summary = crawl(
        CrawlConfig(seeds=[url], out_dir=tmp_path, delay_s=0, obey_robots=False, max_depth=1)
    )
    assert summary["pages"] == 2 and summary["errors"] == 0
    assert seen == [("/", DEFAULT_USER_AGENT), ("/x%0By%20z.html", DEFAULT_USER_AGENT)]
    urls = [r.url for r in ArchiveReader(summary["warc"]).records() if r.record_type == "response"]
    assert urls == [url, url + "x%0By%20z.html"]
    # every header line of the file is one header: no value spilled onto a line of its own
    raw = gzip.decompress(Path(summary["warc"]).read_bytes())
    assert raw.count(b"WARC-Target-URI: ") == 4  # 2 requests + 2 responses
