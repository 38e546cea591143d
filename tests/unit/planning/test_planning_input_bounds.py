"""Bad input to the planning functions themselves (the Python API and the REST API, not only
the CLI): a TCO horizon or a server life too long to price month by month, a usage window too
long for hourly steps, a trace CSV with no header."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ValidationError
from aistack.planning import tco, whatif
from aistack.planning.catalog import load_catalog
from aistack.planning.tco import plan_tco
from aistack.planning.usage import parse_records, price_usage
from aistack.planning.whatif import demand_profile, read_trace_csv


# -- plan_tco: horizon_months -----------------------------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("months", [1201, 5000, 100_000_000])
def test_plan_tco_refuses_a_horizon_over_100_years(months: int) -> None:
    """10**8 months never finished (a cumulative cost per month and scenario): a REST request
    held a server worker. The CLI capped --months at 1200; the function did not."""
    with pytest.raises(ValidationError) as e:
        plan_tco(gpus=8, gpu="H100", horizon_months=months)
    assert e.value.message == f"horizon_months: at most 1200 months (100 years), got {months}"
    assert e.value.hint == "servers are written off in 3 to 5 years: e.g. 36 or 60"
    assert e.value.details == {"field": "horizon_months"}


def test_plan_tco_takes_a_horizon_of_100_years() -> None:
    assert tco.MAX_HORIZON_MONTHS == 1200  # as `plan tco --months`
    r = plan_tco(gpus=8, gpu="H100", horizon_months=1200)
    assert r.horizon_months == 1200
    assert len(r.scenario("cloud on-demand").cumulative_usd) == 1201


def test_rest_plan_tco_turns_the_domain_bound_into_a_422(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POST /plan/tco calls plan_tco: its ValidationError is a 422 naming the field. (The
    request schema caps horizon_months at the domain's 1200, read when the schema was built:
    a lower domain cap patched in afterwards shows the domain check is what answers.)"""
    body = {"gpus": 8, "gpu": "H100", "horizon_months": 24}
    assert api.http.post("/api/v1/plan/tco", json=body).status_code == 200
    monkeypatch.setattr(tco, "MAX_HORIZON_MONTHS", 12)
    r = api.http.post("/api/v1/plan/tco", json=body)
    assert r.status_code == 422, r.text
    assert r.json() == {
        "code": "invalid",
        "message": "horizon_months: at most 12 months (1 years), got 24",
        "hint": "servers are written off in 3 to 5 years: e.g. 36 or 60",
        "details": {"field": "horizon_months"},
    }


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("value", "shown"), [("1e9", "1e+09"), (".inf", "inf"), ("101", "101")])
def test_a_server_life_over_100_years_is_refused(tmp_path: Path, value: str, shown: str) -> None:
    """plan_tco looks for break-even month by month over the server life: depreciation_years
    1e9 in a catalog file never finished, and .inf was an OverflowError traceback."""
    f = tmp_path / "c.yaml"
    f.write_text(
        f'onprem:\n  depreciation_years: {{value: {value}, source: "x", as_of: 2026-01-01}}\n'
    )
    with pytest.raises(ValidationError) as e:
        load_catalog([f], include_user=False)
    # the message names the file the figure is in (it said "catalog onprem.…"); an infinite
    # figure is refused as not finite, as in every other catalog field
    if value == ".inf":
        assert e.value.message == (
            f"catalog file {f}: onprem.depreciation_years.value: Input should be a finite number"
        )
    else:
        assert e.value.message == (
            f"catalog file {f}: onprem.depreciation_years: value must be at most 100 years, "
            f"got {shown}"
        )
        assert e.value.hint == (
            "depreciation_years is the years a server is written off over: 3 to 5; e.g. "
            "depreciation_years: {value: 4, source: ..., as_of: YYYY-MM-DD} (the shipped "
            "figure: aistack/planning/catalog/onprem.yaml)"
        )
    f.write_text('onprem:\n  depreciation_years: {value: 100, source: "x", as_of: 2026-01-01}\n')
    cat = load_catalog([f], include_user=False)
    r = plan_tco(gpus=8, gpu="H100", horizon_months=12, catalog=cat)
    assert r.server_life_months == 1200


# -- demand_profile: the hint names how each caller sets the step ------------------------------
def test_a_too_long_demand_names_the_step_of_every_interface() -> None:
    """The hint said "raise --step-minutes" to everyone: `cost report` has no such option, nor
    has the REST API (step_minutes) or Python (step_s)."""
    ivs = [(0.0, 1e12, 8)]
    with pytest.raises(ValidationError) as e:
        demand_profile(ivs)
    assert e.value.message.startswith("the demand spans 11,574,074.1 days: at 60-minute steps")
    assert e.value.hint == (
        "use longer steps (--step-minutes of `aistack plan hybrid`, step_minutes in the API, "
        "step_s in Python), or check the trace or records for a job with an absurd duration"
    )
    with pytest.raises(ValidationError) as e:
        demand_profile(ivs, step_option="--step-minutes")
    assert e.value.hint == (
        "use longer steps (--step-minutes), or check the trace or records for a job with an "
        "absurd duration"
    )


# -- price_usage (cost report): a window too long for hourly steps -----------------------------
NOW = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
RECORDS = [
    {
        "job_id": "1",
        "project": "p",
        "user": "u",
        "node": "n",
        "gpus": 8,
        "gpu_type": "H100",
        "cpus": 8,
        "start": "2026-10-02T00:00:00Z",
        "end": "2026-11-29T00:00:00Z",
        "gpu_util": 50,
    }
]


def test_cost_report_over_a_window_too_long_for_hourly_steps_still_gives_advice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`cost report --since 739000d` (more than MAX_PROFILE_STEPS hours) failed with "raise
    --step-minutes", an option it does not have. The hybrid replay now takes whole hours per
    step, as many as fit (here the cap is lowered to 720 steps for a 60-day window: 2 h)."""
    recs = parse_records(RECORDS)
    since = NOW - dt.timedelta(days=60)
    hourly = price_usage(recs, now=NOW, since=since).recommendation_detail
    monkeypatch.setattr(whatif, "MAX_PROFILE_STEPS", 720)
    rep = price_usage(recs, now=NOW, since=since)
    d = rep.recommendation_detail
    assert "the cheapest mix owns 8 H100-SXM" in rep.recommendation
    # the demand starts and ends on even hours: 2-hour steps replay it exactly
    assert d["hybrid_best_owned_gpus"] == hourly["hybrid_best_owned_gpus"] == 8
    assert d["hybrid_best_usd_per_month"] == pytest.approx(hourly["hybrid_best_usd_per_month"])
    assert d["all_cloud_usd_per_month"] == pytest.approx(hourly["all_cloud_usd_per_month"])
    od = d["on_demand_usd_per_gpu_hour"]
    assert d["all_cloud_usd_per_month"] == pytest.approx(8 * 58 * 24 * od / (60 * 24) * 730)


# -- read_trace_csv: no header -----------------------------------------------------------------
HEADER_HINT = (
    "the first line names the columns, e.g. job_id,submission_time,duration,num_gpu; then one "
    "job per line"
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is empty: no header line"),
        ("\ufeff", "is empty: no header line"),
        ("\n", "has no header: line 1 names no columns"),
        (
            "\njob_id,submission_time,duration,num_gpu\nj,0,60,1\n",
            "has no header: line 1 names no columns",
        ),
        (" , \n", "has no header: line 1 names no columns"),
    ],
)
def test_a_trace_without_a_header_says_so(tmp_path: Path, text: str, problem: str) -> None:
    """An empty CSV said "needs columns duration, num_gpu, submission_time, has " (nothing)."""
    f = tmp_path / "t.csv"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ValidationError) as e:
        read_trace_csv(str(f))
    assert e.value.message == f"trace: {str(f)!r} {problem}"
    assert e.value.hint == HEADER_HINT


def test_a_trace_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with a BOM: it was part of the first column's name, and the
    trace was refused as lacking a column it shows."""
    f = tmp_path / "t.csv"
    f.write_text("submission_time,duration,num_gpu\n0,60,2\n", encoding="utf-8-sig")
    assert read_trace_csv(str(f)) == [(0.0, 60.0, 2)]
