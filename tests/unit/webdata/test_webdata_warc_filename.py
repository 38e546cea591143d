"""WarcWriter's warcinfo record names its file (WARC-Filename) percent-encoded, as the
lineage's file nodes do: a name whose bytes are not UTF-8 is written (it raised
UnicodeEncodeError), and a line break in a name cannot end the header early."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aistack.webdata.crawler import WarcWriter
from aistack.webdata.readers import ArchiveReader

NAMES = {
    os.fsdecode(b"raw\xff\xfename.warc.gz"): "raw%FF%FEname.warc.gz",  # not UTF-8
    "a\r\nWARC-Type: response\r\n.warc.gz": "a%0D%0AWARC-Type%3A%20response%0D%0A.warc.gz",
    "données 1.warc.gz": "donn%C3%A9es%201.warc.gz",
    "crawl-00001.warc.gz": "crawl-00001.warc.gz",
    "100%.warc.gz": "100%25.warc.gz",  # (so the encoding can be undone)
}


@pytest.mark.parametrize(("name", "header"), NAMES.items())
def test_warc_filename_header(tmp_path: Path, name: str, header: str) -> None:
    path = tmp_path / name
    w = WarcWriter(path)
    w.write("conversion", "http://a/", b"some text here", content_type="text/plain")
    w.close()
    reader = ArchiveReader(path)
    recs = list(reader.records())
    assert reader.issues == []
    assert [r.record_type for r in recs] == ["warcinfo", "conversion"]
    info = recs[0]
    assert info.headers["warc-filename"] == header
    assert info.headers["warc-type"] == "warcinfo"  # no header was injected by the name
    assert set(info.headers) == {
        "warc-type",
        "warc-record-id",
        "warc-date",
        "warc-filename",
        "warc-block-digest",
        "content-type",
        "content-length",
    }


def test_warc_filename_is_the_lineage_encoding() -> None:
    """The header names a file as its lineage node does (``file:NAME@sha256:…``, NAME being
    :func:`readable_id`, unshortened)."""
    from aistack.webdata.crawler import warc_filename
    from aistack.webdata.pipeline import readable_id

    for name, header in NAMES.items():
        assert warc_filename(name) == header == readable_id(name, 10_000)
