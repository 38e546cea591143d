"""MinHash ``ngram`` and ``num_hashes`` have generous upper bounds (1,024 and 16,384), in the
Python API and in the pipeline spec, each refusal naming the field: they had none, and an
absurd value (num_hashes 10**9: 8 GB of hash coefficients before the first document) could
exhaust the machine's memory."""

from __future__ import annotations

from typing import Any

import pytest

from aistack.errors import ValidationError
from aistack.webdata.dedup import MinHashConfig, MinHasher, minhash_dedup
from aistack.webdata.spec import DedupStep, parse_spec

TEXT = "the quick brown fox jumps over the lazy dog near the river bank today"


@pytest.mark.parametrize(
    ("kwargs", "field", "needle"),
    [
        ({"ngram": 1025}, "minhash.ngram", "minhash.ngram must be ≤ 1,024, got 1025"),
        ({"ngram": 10**12}, "minhash.ngram", "minhash.ngram must be ≤ 1,024, got 1000000000000"),
        (
            {"num_hashes": 2**20, "bands": 2**10, "rows": 2**10},
            "minhash.num_hashes",
            "minhash.num_hashes must be ≤ 16,384, got 1048576",
        ),
        (
            {"num_hashes": 10**9, "bands": 10**9, "rows": 1},
            "minhash.num_hashes",
            "minhash.num_hashes must be ≤ 16,384, got 1000000000",
        ),
    ],
)
def test_minhash_config_past_the_bound_names_the_field(
    kwargs: dict[str, Any], field: str, needle: str
) -> None:
    with pytest.raises(ValidationError) as ei:
        MinHashConfig(**kwargs)
    assert ei.value.details["field"] == field
    assert needle in ei.value.message
    assert "FineWeb uses ngram 5, num_hashes 112" in (ei.value.hint or "")


def test_the_bounds_themselves_work() -> None:
    cfg = MinHashConfig(ngram=1024, num_hashes=16384, bands=128, rows=128, threshold=0.97)
    sigs = MinHasher(cfg).signatures([TEXT, TEXT, "something else entirely"])
    assert sigs.shape == (3, 16384)
    assert minhash_dedup(sigs, cfg).removed.tolist() == [False, True, False]


@pytest.mark.parametrize(
    ("minhash", "field"),
    [
        ({"ngram": 1025}, "ngram"),
        ({"num_hashes": 10**9, "bands": 10**9, "rows": 1}, "num_hashes"),
    ],
)
def test_spec_past_the_bound_names_the_field(minhash: dict[str, Any], field: str) -> None:
    steps = [{"dedup": {"minhash": minhash}}]
    with pytest.raises(ValidationError) as ei:
        parse_spec({"input": {"paths": ["x"]}, "output": "o", "steps": steps})
    assert f"steps[0].dedup.minhash.{field}: Input should be less than or equal to" in str(ei.value)


def test_spec_at_the_bounds_is_read() -> None:
    # (threshold 0.97: 128 × 128 detects from (1/128)^(1/128) ≈ 0.963; the default 0.8 is refused)
    minhash = {"ngram": 1024, "num_hashes": 16384, "bands": 128, "rows": 128, "threshold": 0.97}
    spec = parse_spec(
        {"input": {"paths": ["x"]}, "output": "o", "steps": [{"dedup": {"minhash": minhash}}]}
    )
    step = spec.step("dedup")
    assert isinstance(step, DedupStep) and step.minhash is not None
    assert (step.minhash.ngram, step.minhash.num_hashes) == (1024, 16384)
