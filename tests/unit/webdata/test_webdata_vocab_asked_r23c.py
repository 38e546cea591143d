"""A trained tokenizer can hold fewer ids than tokenize.vocab_size asks (the BPE trainer
stops when no pair occurs min_frequency times): the example pipeline asked 4,096 and the
summary said "vocabulary 3,475 ids (uint16)" with no word of why. It says so now."""

from __future__ import annotations

import gzip
from pathlib import Path

from aistack.webdata.pipeline import run_pipeline
from aistack.webdata.report import tables
from aistack.webdata.spec import parse_spec


def _wet(path: Path, texts: list[str]) -> None:
    out = b""
    for i, text in enumerate(texts):
        body = text.encode()
        out += gzip.compress(
            (
                "WARC/1.0\r\nWARC-Type: conversion\r\n"
                f"WARC-Target-URI: http://a/{i}\r\nWARC-Record-ID: <urn:uuid:{i}>\r\n"
                "Content-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
            + b"\r\n\r\n"
        )
    path.write_bytes(out)


def test_fewer_ids_than_asked_says_why(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    _wet(tmp_path / "in" / "a.warc.gz", ["the cat sat on the mat", "a dog ran far away"])
    spec = parse_spec(
        {
            "input": {"paths": [str(tmp_path / "in")]},
            "output": str(tmp_path / "out"),
            "workers": 1,
            "steps": [{"tokenize": {"vocab_size": 4096}}],
        }
    )
    rep = run_pipeline(spec)
    got = rep["counts"]["vocab_size"]
    assert 256 < got < 4096
    assert rep["tokenizer"]["vocab_size_asked"] == 4096
    summary = next(t for t in tables(rep) if str(t.title) == "summary")
    items, values = (list(col.cells) for col in summary.columns)
    assert dict(zip(map(str, items), map(str, values), strict=True))["vocabulary"] == (
        f"{got:,} ids (uint16; 4,096 asked: the kept text has no more pairs seen 2 times or "
        "more to merge)"
    )
