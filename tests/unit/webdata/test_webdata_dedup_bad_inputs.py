"""MinHash and exact dedup: a config or input that cannot work is an error naming it (not a
numpy error from inside, nor a config that silently dedups nothing)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from aistack.errors import ValidationError
from aistack.webdata.dedup import (
    MinHashConfig,
    MinHasher,
    exact_hash,
    lsh_clusters,
    minhash_dedup,
)
from aistack.webdata.spec import parse_spec

TEXT = "the quick brown fox jumps over the lazy dog near the river bank today"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_hashes": 0, "bands": 0, "rows": 8}, "minhash.num_hashes"),  # (compared nothing)
        ({"num_hashes": 112, "bands": -14, "rows": -8}, "minhash.bands"),  # (-14 × -8 = 112)
        ({"seed": -1}, "minhash.seed"),  # (numpy: expected non-negative integer)
        ({"ngram": 2.5}, "minhash.ngram"),  # (numpy cast error when hashing)
        ({"ngram": True}, "minhash.ngram"),
        ({"threshold": "0.8"}, "minhash.threshold"),  # ('<' not supported)
        ({"threshold": float("nan")}, "minhash.threshold"),
        ({"threshold": 0}, "minhash.threshold"),
        ({"threshold": 1.5}, "minhash.threshold"),
        ({"verify": "no"}, "minhash.verify"),  # (a non-empty string was true)
    ],
)
def test_bad_minhash_config_names_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field) as ei:
        MinHashConfig(**kwargs)
    assert ei.value.details["field"] == field


def test_threshold_one_and_numpy_numbers_are_fine() -> None:
    cfg = MinHashConfig(threshold=1, ngram=np.int64(3), seed=0)
    sigs = MinHasher(cfg).signatures([TEXT, TEXT, TEXT + " and more"])
    assert minhash_dedup(sigs, cfg).removed.tolist() == [False, True, False]


def test_spec_refuses_a_negative_seed() -> None:
    # (it was read, then every worker's MinHasher died with numpy's ValueError)
    steps = [{"dedup": {"minhash": {"seed": -1}}}]
    with pytest.raises(ValidationError, match=r"steps\[0\]\.dedup\.minhash\.seed"):
        parse_spec({"input": {"paths": ["x"]}, "output": "o", "steps": steps})


@pytest.mark.parametrize(
    "sigs",
    [
        np.zeros((3, 10), np.uint32),  # (numpy: 'When changing to a larger dtype...')
        np.zeros(3, np.uint32),  # (AxisError)
        np.zeros((3, 112), np.float64),
    ],
)
def test_signatures_that_do_not_fit_the_config_are_named(sigs: np.ndarray) -> None:
    with pytest.raises(ValidationError, match=r"signatures must be a \(documents, 112\) uint32"):
        minhash_dedup(sigs)
    with pytest.raises(ValidationError, match="signatures must be"):
        lsh_clusters(sigs)


def test_lone_surrogates_are_hashed_not_a_unicode_error() -> None:
    a, b = TEXT + " \ud800", TEXT + " \udfff"
    assert exact_hash(a) == exact_hash(a)
    assert exact_hash(a) != exact_hash(b)
    sigs = MinHasher().signatures([a, a, "an unrelated page about something else entirely"])
    assert (sigs[0] == sigs[1]).all()
    assert minhash_dedup(sigs).removed.tolist() == [False, True, False]


@pytest.mark.parametrize(
    ("texts", "needle"),
    [
        ([TEXT, None], r"texts\[1\] is NoneType"),
        ([b"x"], r"texts\[0\] is bytes"),
        (TEXT, "one string, not a list"),
    ],
)
def test_texts_that_are_not_str_are_named(texts: Any, needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        MinHasher().signatures(texts)
    with pytest.raises(ValidationError, match=r"texts\[0\] is"):
        exact_hash(None)  # type: ignore[arg-type]
