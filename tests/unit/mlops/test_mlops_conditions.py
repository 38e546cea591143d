"""Promotion-gate conditions: parsing, evaluation and the reasons given."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aistack.errors import ValidationError
from aistack.mlops.registry import (
    Condition,
    check_conditions,
    parse_condition,
    parse_conditions,
)


@pytest.mark.parametrize(
    ("text", "metric", "op", "threshold"),
    [
        ("val_loss<3.2", "val_loss", "<", 3.2),
        (" accuracy >= 0.9 ", "accuracy", ">=", 0.9),
        ("eval/f1>.5", "eval/f1", ">", 0.5),
        ("loss<=1e-3", "loss", "<=", 1e-3),
        ("step==100", "step", "==", 100.0),
        ("delta!=-2", "delta", "!=", -2.0),
        ("system/gpu_0_utilization_percentage>40", "system/gpu_0_utilization_percentage", ">", 40),
    ],
)
def test_parse_valid(text, metric, op, threshold):
    c = parse_condition(text)
    assert (c.metric, c.op, c.threshold) == (metric, op, threshold)


@pytest.mark.parametrize(
    "text", ["", "val_loss", "val_loss<", "<3", "val_loss<abc", "val_loss=3", "a<3<4", "x => 1"]
)
def test_parse_malformed_says_the_syntax(text):
    with pytest.raises(ValidationError) as ei:
        parse_condition(text)
    assert "is not a condition" in str(ei.value)
    assert "METRIC OP NUMBER" in str(ei.value)


def test_parse_conditions_names_the_index():
    with pytest.raises(ValidationError, match=r"require\[1\]: 'oops' is not a condition"):
        parse_conditions(["a<1", "oops"])
    assert parse_conditions(None) == []


def test_check_conditions_reasons():
    conds = parse_conditions(["val_loss<3.2", "accuracy>=0.9", "f1>0.5"])
    res = check_conditions(conds, {"val_loss": 3.41, "accuracy": 0.9})
    assert [r.passed for r in res] == [False, True, False]
    assert res[0].reason == "val_loss=3.41 does not satisfy val_loss<3.2"
    assert res[0].actual == 3.41
    assert res[1].reason == "accuracy=0.9 satisfies accuracy>=0.9"
    assert res[2].actual is None
    assert "metric 'f1' was not logged by the run (logged: accuracy, val_loss)" == res[2].reason


def test_nan_never_passes():
    c = parse_condition("loss<10")
    assert c.holds(3.0) and not c.holds(math.nan)
    assert not parse_condition("loss!=1").holds(math.nan)


_OPS = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__}


@given(
    metric=st.from_regex(r"[A-Za-z_][A-Za-z0-9_./-]{0,20}", fullmatch=True),
    op=st.sampled_from(sorted(_OPS)),
    threshold=st.floats(allow_nan=False, allow_infinity=False, width=32),
    value=st.floats(allow_nan=False, allow_infinity=False, width=32),
)
def test_roundtrip_and_semantics(metric, op, threshold, value):
    text = f"{metric}{op}{threshold!r}"
    c = parse_condition(text)
    assert c == Condition(metric=metric, op=op, threshold=threshold, text=text)
    (r,) = check_conditions([c], {metric: value})
    assert r.passed == _OPS[op](float(value), float(threshold))
