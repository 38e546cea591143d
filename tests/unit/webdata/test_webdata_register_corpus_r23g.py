"""``register`` without a ``tokenize`` step registered ``dataset/`` as it was: report.json
alone (no shards are made without a tokenizer), not the cleaned text the run kept in
corpus/. The product of such a pipeline is that text, so ``dataset/corpus-NNNNN.jsonl.gz``
now holds each input file's kept documents (a hard link to ``corpus/NNNNN.jsonl.gz``) and
is registered with report.json. With tokenize the version is as before: shards,
tokenizer.json and report.json."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from aistack.webdata.pipeline import run_pipeline
from aistack.webdata.spec import parse_spec

TEXTS = [
    {"http://a/": "one two three four five six seven", "http://b/": "eight nine ten eleven"},
    {"http://c/": "twelve thirteen fourteen fifteen sixteen"},
    {},  # a file that keeps no document: no corpus file (as it gets no shard)
]


def _inputs(folder: Path) -> list[str]:
    from aistack.webdata.crawler import WarcWriter

    folder.mkdir(parents=True)
    out = []
    for i, texts in enumerate(TEXTS):
        w = WarcWriter(folder / f"crawl-{i}.warc.gz")
        for url, text in texts.items():
            w.write("conversion", url, text.encode(), content_type="text/plain")
        if not texts:
            w.write("conversion", "http://empty/", b"", content_type="text/plain")
        w.close()
        out.append(str(folder / f"crawl-{i}.warc.gz"))
    return out


def _spec(inputs: list[str], out: Path, steps: list[Any]) -> Any:
    return parse_spec({"name": "t", "input": {"paths": inputs}, "output": str(out), "steps": steps})


def _texts(data: bytes) -> list[str]:
    return [json.loads(line)["text"] for line in gzip.decompress(data).splitlines()]


def test_register_without_tokenize_registers_the_corpus(home: Path) -> None:
    from aistack.storage import Datasets

    inputs = _inputs(home / "in")
    out = home / "out"
    rep = run_pipeline(_spec(inputs, out, ["dedup", {"register": {"name": "wd-text"}}]))
    assert rep["registered"]["ref"] == "wd-text@v1"
    ds = Datasets.from_settings()
    files = sorted(e.path for e in ds.files("wd-text@v1"))
    assert files == ["corpus-00000.jsonl.gz", "corpus-00001.jsonl.gz", "report.json"]
    got = home / "got"
    ds.get("wd-text@v1", str(got))
    assert _texts((got / "corpus-00000.jsonl.gz").read_bytes()) == list(TEXTS[0].values())
    assert _texts((got / "corpus-00001.jsonl.gz").read_bytes()) == list(TEXTS[1].values())
    # the same bytes as the run's corpus/ (a link, not a second copy)
    assert (out / "dataset" / "corpus-00000.jsonl.gz").samefile(out / "corpus" / "00000.jsonl.gz")
    again = run_pipeline(_spec(inputs, out, ["dedup", {"register": {"name": "wd-text"}}]))
    assert again["registered"]["ref"] == "wd-text@v1"  # resumed: the same version
    assert [v.version for v in ds.log("wd-text")] == [1]


def test_with_tokenize_the_version_holds_shards_not_text(home: Path) -> None:
    from aistack.storage import Datasets

    inputs = _inputs(home / "in")
    steps = ["dedup", {"tokenize": {"vocab_size": 300}}, {"register": {"name": "wd-tok"}}]
    run_pipeline(_spec(inputs, home / "out", steps))
    files = sorted(e.path for e in Datasets.from_settings().files("wd-tok@v1"))
    assert files == ["report.json", "shard-00000.bin", "shard-00001.bin", "tokenizer.json"]
