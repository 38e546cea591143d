"""A verified MinHash threshold below the Jaccard similarity the bands × rows LSH detects,
(1/bands)^(1/rows), was accepted and not honoured: pairs between the two are rarely LSH
candidates, so never checked, and stayed (threshold 0.5 with 14 × 8: 5 % of the pairs at
0.5 are checked). The pipeline's spec refuses it, saying the detected threshold and the
bands/rows to use; the SDK's MinHashConfig warns."""

from __future__ import annotations

import warnings

import pytest

from aistack.errors import ValidationError
from aistack.webdata.dedup import (
    MinHashConfig,
    bands_rows_for,
    candidate_probability,
    lsh_threshold,
)
from aistack.webdata.spec import parse_spec


def _spec(minhash: dict[str, object]) -> object:
    return parse_spec(
        {"input": {"paths": ["in"]}, "output": "out", "steps": [{"dedup": {"minhash": minhash}}]}
    )


def test_the_s_curve_numbers() -> None:
    assert lsh_threshold(14, 8) == pytest.approx(0.7190, abs=1e-4)
    assert candidate_probability(0.8, 14, 8) == pytest.approx(0.924, abs=1e-3)
    assert candidate_probability(0.5, 14, 8) == pytest.approx(0.053, abs=1e-3)
    assert bands_rows_for(0.5, 112) == (28, 4)  # (1/28)^(1/4) = 0.435
    assert bands_rows_for(0.8, 112) == (14, 8)
    assert bands_rows_for(0.005, 112) is None  # (112 × 1 detects from 1/112)


def test_a_threshold_below_the_lsh_curve_is_refused() -> None:
    with pytest.raises(ValidationError) as ei:
        _spec({"threshold": 0.5})
    assert ei.value.message == (
        "pipeline: steps[0].dedup.minhash: threshold 0.5 is below the Jaccard similarity that "
        "14 bands × 8 rows detect, (1/bands)^(1/rows) ≈ 0.720: a pair at 0.5 becomes an LSH "
        "candidate (and is checked) with probability 0.05, so the other such duplicates are "
        "never checked and stay. For a threshold of 0.5 with num_hashes 112, use bands: 28, "
        "rows: 4 (detects from 0.435); in general choose bands × rows = num_hashes with "
        "(1/bands)^(1/rows) at or a little below the threshold (more bands lowers it, more "
        "rows raises it), or raise the threshold to 0.720 or more"
    )


def test_the_default_threshold_with_steep_bands_is_refused_as_the_default() -> None:
    with pytest.raises(ValidationError) as ei:
        _spec({"bands": 4, "rows": 28})
    msg = ei.value.message
    assert "threshold 0.8 (the default) is below" in msg
    assert "4 bands × 28 rows detect, (1/bands)^(1/rows) ≈ 0.952" in msg
    assert "use bands: 14, rows: 8 (detects from 0.719)" in msg


@pytest.mark.parametrize(
    "minhash",
    [
        {},  # FineWeb's 14 × 8 at 0.8
        {"threshold": 0.72},  # (0.7190)
        {"threshold": 0.5, "bands": 28, "rows": 4},
        {"verify": False, "bands": 4, "rows": 28},  # (no threshold: LSH's own)
    ],
)
def test_thresholds_the_curve_detects_are_accepted(minhash: dict[str, object]) -> None:
    _spec(minhash)


def test_the_sdk_config_warns() -> None:
    with pytest.warns(UserWarning, match=r"threshold 0\.5 is below .* ≈ 0\.720"):
        MinHashConfig(threshold=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MinHashConfig()
        MinHashConfig(threshold=0.5, bands=28, rows=4)
