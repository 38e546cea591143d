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


_NOT_FINITE = (
    "is not a finite number (a condition against infinity or NaN holds for every value or for none)"
)
_FINITE_HINT = "write a finite NUMBER, at most about 1.8e308 in size, e.g. 'loss<3.2'"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("loss<1e400", "1e400"),  # float() reads it as inf: "loss below infinity" always held
        ("loss>-1e400", "-1e400"),
        ("loss<inf", "inf"),
        ("accuracy>=-Infinity", "-Infinity"),
        ("loss != nan", "nan"),
        ("loss<+INF", "+INF"),
    ],
)
def test_parse_refuses_a_threshold_that_is_not_finite(text: str, value: str) -> None:
    with pytest.raises(ValidationError) as ei:
        parse_condition(text)
    assert ei.value.message == f"require: {text!r}: the threshold {value} {_NOT_FINITE}"
    assert ei.value.hint == _FINITE_HINT
    assert ei.value.details == {"condition": text}


def test_parse_conditions_names_the_index_of_a_threshold_that_is_not_finite() -> None:
    with pytest.raises(ValidationError) as ei:
        parse_conditions(["loss<3.2", "val_loss<1e400"])
    assert ei.value.message == (f"require[1]: 'val_loss<1e400': the threshold 1e400 {_NOT_FINITE}")
    # the largest finite thresholds still parse
    assert parse_condition("loss<1.7e308").threshold == 1.7e308
    assert parse_condition("loss>-1.7e308").threshold == -1.7e308


def test_the_api_answers_a_threshold_that_is_not_finite_with_a_422(api) -> None:  # type: ignore[no-untyped-def]
    """Refused before the registry is asked: a 422 naming the condition (the model 'x' does not
    exist, which the registry would have answered with a 404)."""
    r = api.http.post(
        "/api/v1/models/x/promote",
        json={"version": 1, "to": "production", "require": ["loss<1", "loss<1e400"]},
    )
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["message"] == f"require[1]: 'loss<1e400': the threshold 1e400 {_NOT_FINITE}"
    assert body["hint"] == _FINITE_HINT
