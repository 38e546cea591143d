"""An output folder inside (or equal to) an input folder: a re-run does not read the first
run's results as inputs, so it resumes, and --fresh starts over."""

from __future__ import annotations

from pathlib import Path

import pytest

from aistack.webdata.pipeline import run_pipeline
from aistack.webdata.spec import parse_spec

pytest.importorskip("tokenizers")

STEPS = [{"extract": {}}, {"dedup": {}}, {"tokenize": {"vocab_size": 300, "min_frequency": 1}}]


@pytest.mark.parametrize("output", ["in/out", "in"])
def test_rerun_with_the_output_inside_the_input_folder_resumes(
    warc_data: Path, tmp_path: Path, output: str
) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "example.warc.gz").symlink_to(warc_data / "edge-cases" / "example.warc.gz")
    spec = parse_spec({"input": {"paths": ["in"]}, "output": output, "steps": STEPS})
    first = run_pipeline(spec, base=tmp_path)
    assert first["counts"]["files"] == 1
    assert first["counts"]["shards"] == 1
    shard = tmp_path / output / "dataset" / "shard-00000.bin"
    before = shard.read_bytes()
    # (the re-run read stage1/, dataset/ and .tasks/ files as inputs: 'holds a run of a
    # different pipeline or input')
    again = run_pipeline(spec, base=tmp_path)
    assert again["files"] == first["files"]
    assert again["run"]["resumed_tasks"] == {"process": 1, "encode": 1}
    assert shard.read_bytes() == before
    # (--fresh refused: it 'would delete .../stage1, which holds .../stage1/00000.jsonl.gz')
    fresh = run_pipeline(spec, base=tmp_path, fresh=True)
    assert fresh["counts"] == first["counts"]
    assert fresh["run"]["resumed_tasks"] == {"process": 0, "encode": 0}
    assert (inp / "example.warc.gz").is_symlink()
