"""A file of an input dataset version that a local store cut into chunks (most WARCs) is not
copied into ``OUT/input-datasets/``: a small dataset file reference lies there, and the
process task reads the file from the store's chunks (``Datasets.open``)."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from aistack.webdata.pipeline import run_pipeline
from aistack.webdata.spec import parse_spec

SAMPLES = ("sample-0000.warc.gz", "sample-0001.warc.gz", "IAH-urls-wget.warc.gz")
STEPS: list[Any] = [{"extract": {"mode": "fast"}}, "dedup"]


def _big_warc(warc_data: Path, dest: Path) -> Path:
    """A multi-member .warc.gz of real crawls, several MiB: the store cuts it into chunks
    (gzip files one after the other are one valid gzip file)."""
    one = b"".join((warc_data / "samples" / n).read_bytes() for n in SAMPLES)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(one * 10)
    return dest


def _spec(out: Path, steps: list[Any], **inp: Any) -> Any:
    return parse_spec({"name": "t", "input": inp, "output": str(out), "steps": steps})


def _outputs(out: Path) -> dict[str, Any]:
    """Every file a run wrote under stage1/, dedup/ and corpus/ (gzip files decompressed)."""
    got: dict[str, Any] = {}
    for sub in ("stage1", "dedup", "corpus"):
        for f in sorted((out / sub).rglob("*")):
            if f.is_file():
                data = f.read_bytes()
                got[str(f.relative_to(out))] = gzip.decompress(data) if f.suffix == ".gz" else data
    return got


def _bytes_under(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def test_a_chunked_input_file_is_read_in_the_store_not_copied(home: Path, warc_data: Path) -> None:
    from aistack.storage import Datasets

    src = _big_warc(warc_data, home / "src" / "crawl.warc.gz")
    size = src.stat().st_size
    ds = Datasets.from_settings()
    ref = str(ds.add("raw", str(src.parent)).ref)
    (entry,) = ds.files(ref)
    assert len(entry.chunks) > 1, "the test file must be one the store cuts into chunks"

    by_path = run_pipeline(_spec(home / "plain", STEPS, paths=[str(src)]), workers=1)
    out = home / "out"
    rep = run_pipeline(_spec(out, STEPS, dataset=ref), workers=1)

    # the same documents as when the file is named as a path
    assert rep["counts"] == by_path["counts"]
    assert rep["counts"]["html_documents"] > 0 and rep["bad_files"] == []
    assert _outputs(out) == _outputs(home / "plain")
    # nothing of the file was copied: a reference of a few hundred bytes lies there
    folder = out / "input-datasets" / ref
    assert _bytes_under(folder) < 4096 < size
    (info,) = rep["input_datasets"]
    assert (info["linked"], info["copied"], info["in_store"]) == (0, 0, 1)


def test_a_reference_is_hashed_as_the_file_it_names(home: Path, warc_data: Path) -> None:
    from aistack.storage import Datasets
    from aistack.webdata.lineage import file_sha256
    from aistack.webdata.readers import open_input

    src = _big_warc(warc_data, home / "src" / "crawl.warc.gz")
    small = (warc_data / "samples" / "whirlwind.warc.gz").read_bytes()
    (home / "src" / "small.warc.gz").write_bytes(small)  # one object: linked
    ref = str(Datasets.from_settings().add("raw", str(src.parent)).ref)
    out = home / "out"
    rep = run_pipeline(_spec(out, [*STEPS, {"register": {"name": "wd-out"}}], dataset=ref))
    folder = out / "input-datasets" / ref
    (info,) = rep["input_datasets"]
    assert (info["linked"], info["copied"], info["in_store"]) == (1, 0, 1)
    assert (folder / "small.warc.gz").read_bytes() == small and rep["bad_files"] == []
    # the version stays the run's input node, as before
    assert rep["lineage"]["datasets"] == [{"ref": ref, "node": f"dataset:{ref}", "files": 2}]
    assert rep["lineage"]["inputs"] == []
    # named as a path, the reference is the file's bytes: its digest is theirs
    assert file_sha256(folder / "crawl.warc.gz") == hashlib.sha256(src.read_bytes()).hexdigest()
    with open_input(folder / "crawl.warc.gz") as f:
        f.seek(1000)
        assert f.read(64) == src.read_bytes()[1000:1064]


def test_a_reference_that_does_not_match_the_store_is_a_bad_file(
    home: Path, warc_data: Path
) -> None:
    from aistack.storage import Datasets
    from aistack.webdata.readers import DATASET_FILE_MAGIC, ArchiveReader, open_input

    src = _big_warc(warc_data, home / "src" / "crawl.warc.gz")
    ref = str(Datasets.from_settings().add("raw", str(src.parent)).ref)
    run_pipeline(_spec(home / "out", STEPS, dataset=ref))
    f = home / "out" / "input-datasets" / ref / "crawl.warc.gz"
    body = json.loads(f.read_bytes()[len(DATASET_FILE_MAGIC) :])
    bad = home / "bad.warc.gz"
    bad.write_bytes(DATASET_FILE_MAGIC + json.dumps({**body, "size": 5}).encode())
    r = ArchiveReader(bad)
    assert list(r.records()) == []
    (issue,) = r.issues
    assert issue.kind == "file" and "--fresh" in issue.reason and "5 bytes" in issue.reason
    bad.write_bytes(DATASET_FILE_MAGIC + b"{not json")
    with pytest.raises(OSError, match="damaged dataset file reference"):
        open_input(bad)
