"""Audit of the planners' Python API: bad input is a ValidationError naming the field, never a
TypeError, a silently dropped or truncated value, or a message about something nobody gave."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ValidationError
from aistack.planning import demand_profile, hybrid_sweep, plan_tco, price_usage
from aistack.planning.usage import parse_budgets, parse_records
from aistack.planning.whatif import read_trace_csv

NOW = dt.datetime(2026, 11, 10, tzinfo=dt.UTC)
REC = {
    "job_id": "1",
    "project": "vision",
    "user": "alice",
    "node": "n1",
    "gpus": 8,
    "gpu_type": "H100",
    "cpus": 4,
    "start": "2026-11-01T00:00:00Z",
    "end": "2026-11-02T00:00:00Z",
    "gpu_util": 50,
    "cpu_util": 10,
}


@pytest.mark.parametrize("value", ["0.1", None, [0.1]])
def test_tco_spot_overhead_that_is_not_a_number(value: Any) -> None:
    # a TypeError from the comparison
    with pytest.raises(ValidationError) as ei:
        plan_tco(gpus=8, gpu="H100", spot_overhead=value)
    assert ei.value.details == {"field": "spot_overhead"}


@pytest.mark.parametrize("field", ["gpu", "instance", "server"])
@pytest.mark.parametrize("value", ["", "   "])
def test_tco_an_empty_name_is_named_not_none(field: str, value: str) -> None:
    # it said "server: unknown server 'None'"
    kw: dict[str, Any] = {"gpu": "H100", field: value}
    with pytest.raises(ValidationError) as ei:
        plan_tco(gpus=8, **kw)
    assert ei.value.details == {"field": field}
    assert "None" not in str(ei.value)


def test_tco_utilization_given_as_a_percent_says_the_fraction() -> None:
    with pytest.raises(ValidationError) as ei:
        plan_tco(gpus=8, gpu="H100", utilization=80)
    assert "0.8" in (ei.value.hint or "")


@pytest.mark.parametrize(
    ("profile", "needle"),
    [([math.nan], "finite"), ([-1.0], "finite"), (["2"], "'2'"), ([True, 2.0], "True")],
)
def test_sweep_profile_values_that_are_not_gpu_counts(profile: list[Any], needle: str) -> None:
    # [nan] and [-1] were "no GPU demand to plan for", ["2"] a TypeError, [True] one GPU
    with pytest.raises(ValidationError) as ei:
        hybrid_sweep(profile, gpu="H100")
    assert "profile[0]" in ei.value.message and needle in ei.value.message


def test_sweep_an_empty_name_is_named_not_none() -> None:
    # "instance: unknown instance 'None'"
    with pytest.raises(ValidationError) as ei:
        hybrid_sweep([8.0], gpu="")
    assert ei.value.details == {"field": "gpu"}


@pytest.mark.parametrize(
    ("interval", "needle"),
    [
        ((3600.0, 0.0, 4), "ends"),
        ((0.0, math.nan, 4), "end_s"),
        ((0.0, 3600.0, -1), "gpus"),
        ((0.0, 3600.0, 2.5), "gpus"),
    ],
)
def test_demand_intervals_that_cannot_be_right(interval: tuple[Any, ...], needle: str) -> None:
    # dropped without a word (or 2.5 GPUs read as 2): the demand was understated
    with pytest.raises(ValidationError) as ei:
        demand_profile([(0.0, 7200.0, 8), interval], step_s=3600.0)  # type: ignore[list-item]
    assert "intervals[1]" in ei.value.message and needle in ei.value.message


def test_demand_profile_of_valid_intervals_is_unchanged() -> None:
    assert demand_profile([(0.0, 7200.0, 8), (3600.0, 3600.0, 4)], step_s=3600.0) == [8.0, 8.0]


def test_a_trace_with_a_fractional_gpu_count_is_refused(tmp_path: Path) -> None:
    # 2.5 was read as 2 GPUs
    f = tmp_path / "t.csv"
    f.write_text("submission_time,duration,num_gpu\n0,3600,8\n0,3600,2.5\n", encoding="utf-8")
    with pytest.raises(ValidationError) as ei:
        read_trace_csv(str(f))
    assert "line 3" in ei.value.message and "2.5" in ei.value.message


@pytest.mark.parametrize("budget", [math.nan, -5.0, True])
def test_usage_budgets_that_are_not_amounts(budget: Any) -> None:
    # NaN and -5 read "over" whatever the spend
    with pytest.raises(ValidationError) as ei:
        price_usage(parse_records([REC]), now=NOW, budgets={"vision": budget})
    assert "vision" in ei.value.message


def test_usage_a_sheet_that_is_not_a_name() -> None:
    # an AttributeError
    with pytest.raises(ValidationError) as ei:
        price_usage(parse_records([REC]), now=NOW, sheet=5)  # type: ignore[arg-type]
    assert ei.value.details == {"field": "sheet"}


def test_usage_a_project_budget_given_twice_is_refused() -> None:
    # the later one silently won
    with pytest.raises(ValidationError) as ei:
        parse_budgets(
            [
                {"name": "vision", "monthly_budget_usd": 5},
                {"name": "vision", "monthly_budget_usd": 500},
            ]
        )
    assert "projects[1]" in ei.value.message and "twice" in ei.value.message


def test_usage_utilization_given_as_fractions_gets_a_note() -> None:
    # gpu_util is a percent: 0.8 (for 80 %) read as under 1 % busy, without a word
    rep = price_usage(parse_records([{**REC, "gpu_util": 0.8}]), now=NOW)
    assert any("percent" in n and "multiply them by 100" in n for n in rep.notes), rep.notes
    rep = price_usage(parse_records([REC]), now=NOW)
    assert not any("multiply them by 100" in n for n in rep.notes)
