"""Cost of measured usage: hand-computed GPU-hours and money, budgets, buy-vs-rent sentence."""

from __future__ import annotations

import datetime as dt

import pytest

from aistack.errors import NotFoundError, ValidationError
from aistack.planning.catalog import load_catalog
from aistack.planning.usage import (
    AllocationRecord,
    PriceSheet,
    parse_budgets,
    parse_records,
    price_usage,
)

CAT = load_catalog(include_user=False)
UTC = dt.UTC
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SHEET = PriceSheet(name="test", gpu_hour_usd={"H100-SXM": 2.0, "A100-80GB": 1.0}, cpu_hour_usd=0.1)


def rec(
    job: str,
    project: str,
    user: str,
    gpus: int,
    hours: float,
    *,
    util: float | None = 50.0,
    gpu_type: str | None = "H100",
    start: dt.datetime | None = None,
    cpus: int = 8,
    end: bool = True,
) -> AllocationRecord:
    s = start or dt.datetime(2026, 11, 20, tzinfo=UTC)
    return AllocationRecord(
        job,
        project,
        user,
        "node-1",
        gpus,
        gpu_type if gpus else None,
        cpus,
        s,
        s + dt.timedelta(hours=hours) if end else None,
        util if gpus else None,
        30.0,
    )


def test_hand_computed_costs_and_split() -> None:
    recs = [
        rec("j1", "llm", "alice", 8, 10, util=50),  # 80 GPU-h x $2 = $160, useful 40
        rec("j2", "llm", "bob", 2, 5, util=None),  # 10 GPU-h unmeasured, $20
        rec("j3", "etl", "alice", 0, 5, cpus=4),  # CPU-only: 20 CPU-h x $0.1 = $2
        rec(
            "j4", "vision", "carol", 4, 10, util=25, gpu_type="NVIDIA A100-SXM4-80GB"
        ),  # 40 x $1, useful 10
    ]
    r = price_usage(recs, sheet=SHEET, now=NOW, catalog=CAT)
    assert r.total.gpu_hours == pytest.approx(130)
    assert r.total.cost_usd == pytest.approx(160 + 20 + 2 + 40)
    assert r.total.useful_gpu_hours == pytest.approx(50)
    assert r.total.idle_gpu_hours == pytest.approx(70)
    assert r.total.unmeasured_gpu_hours == pytest.approx(10)
    assert r.total.jobs == 4
    by_proj = {x.key: x for x in r.by_project}
    assert by_proj["llm"].cost_usd == pytest.approx(180) and by_proj["llm"].jobs == 2
    assert by_proj["etl"].cpu_hours == pytest.approx(20) and by_proj["etl"].gpu_hours == 0
    by_user = {x.key: x for x in r.by_user}
    assert by_user["alice"].cost_usd == pytest.approx(162)
    assert {x.key for x in r.by_gpu_type} == {"H100-SXM", "A100-80GB", "cpu-only"}
    assert r.by_job[0].key == "j1"  # sorted by cost


def test_window_clips_running_and_early_allocations() -> None:
    start = NOW - dt.timedelta(hours=10)
    recs = [
        rec("run", "p", "u", 1, 0, start=start, end=False, util=100)
    ]  # still running: ends at now
    r = price_usage(recs, sheet=SHEET, now=NOW, since=NOW - dt.timedelta(hours=4), catalog=CAT)
    assert r.total.gpu_hours == pytest.approx(4)
    assert r.window_hours == pytest.approx(4)


def test_budgets_this_month() -> None:
    recs = [
        rec(
            "old", "llm", "a", 8, 10, start=dt.datetime(2026, 10, 5, tzinfo=UTC)
        ),  # last month: not counted
        rec("new", "llm", "a", 8, 10, start=dt.datetime(2026, 11, 5, tzinfo=UTC)),  # $160
        rec("v", "vision", "b", 1, 10, start=dt.datetime(2026, 11, 6, tzinfo=UTC)),  # $20
    ]
    r = price_usage(
        recs,
        sheet=SHEET,
        now=NOW,
        budgets={"llm": 150.0, "vision": 24.0, "idle": 10.0},
        catalog=CAT,
    )
    b = {x.project: x for x in r.budgets}
    assert b["llm"].spend_usd == pytest.approx(160) and b["llm"].status == "over"
    assert b["vision"].used_fraction == pytest.approx(20 / 24) and b["vision"].status == "near"
    assert b["idle"].spend_usd == 0 and b["idle"].status == "ok"
    assert b["llm"].month == "2026-11"


def test_recommendation_sentence_pays_back() -> None:
    # 16 H100 busy 63% of 30 days
    since = NOW - dt.timedelta(days=30)
    hours = 0.63 * 30 * 24
    recs = [rec(f"j{i}", "llm", "a", 8, hours, start=since, util=80) for i in range(2)]
    r = price_usage(recs, now=NOW, since=since, catalog=CAT)
    d = r.recommendation_detail
    assert d["owned_gpus"] == 16 and d["fleet_utilization"] == pytest.approx(0.63)
    assert d["payback_months"] is not None and 0 < d["payback_months"] < 48
    assert r.recommendation.startswith("At your measured 63% utilization over 30 days")
    assert f"pays back in {d['payback_months']:.1f} months" in r.recommendation
    assert r.cloud_on_demand_usd == pytest.approx(
        2 * 8 * hours * CAT.instance("p5.48xlarge").gpu_hour_usd()
    )
    assert r.onprem_usd is not None and r.onprem_usd < r.cloud_on_demand_usd


def test_recommendation_rent_at_low_use() -> None:
    since = NOW - dt.timedelta(days=30)
    r = price_usage([rec("j", "p", "u", 1, 24, start=since)], now=NOW, since=since, catalog=CAT)
    assert "renting stays cheaper" in r.recommendation


def test_records_from_json_and_validation() -> None:
    data = {
        "allocations": [
            {
                "job_id": "1",
                "project": "p",
                "user": "u",
                "node": "n",
                "gpus": 1,
                "gpu_type": "H100",
                "cpus": 2,
                "start": "2026-11-01T00:00:00Z",
                "end": "2026-11-01T02:00:00Z",
                "gpu_util": 40,
                "cpu_util": None,
            }
        ],
        "projects": [
            {"name": "p", "gpu_quota": 8, "monthly_budget_usd": 1000},
            {"name": "q", "gpu_quota": 1, "monthly_budget_usd": None},
        ],
    }
    recs = parse_records(data)
    assert recs[0].end - recs[0].start == dt.timedelta(hours=2) and recs[0].start.tzinfo is not None
    assert parse_budgets(data) == {"p": 1000.0}
    assert AllocationRecord.from_dict(recs[0].to_dict()) == recs[0]
    bad = dict(data["allocations"][0])
    for field, value, needle in [
        ("gpus", -1, "gpus"),
        ("gpu_util", 140, "gpu_util"),
        ("start", "yesterday", "ISO 8601"),
        ("end", "2026-10-01T00:00:00Z", "before start"),
    ]:
        with pytest.raises(ValidationError, match=needle):
            AllocationRecord.from_dict({**bad, field: value}, index=0)
    with pytest.raises(ValidationError, match="unknown field"):
        AllocationRecord.from_dict({**bad, "gpu": 1}, allow_extra=False)
    assert AllocationRecord.from_dict({**bad, "attempt": 2}) == recs[0]  # server extras are ignored


def test_unpriced_gpu_and_unknown_sheet_are_clear_errors() -> None:
    with pytest.raises(NotFoundError, match="no price for B200"):
        price_usage(
            [rec("j", "p", "u", 1, 1, gpu_type="B200")],
            sheet=SHEET,
            now=NOW,
            catalog=CAT,
            strict=True,
        )
    with pytest.raises(NotFoundError, match="did you mean"):
        price_usage(
            [rec("j", "p", "u", 1, 1, gpu_type="H1OO")],
            sheet=SHEET,
            now=NOW,
            catalog=CAT,
            strict=True,
        )
    with pytest.raises(NotFoundError, match="did you mean aws"):
        PriceSheet.named("awz", CAT)
    with pytest.raises(ValidationError, match="gpu_type"):
        price_usage(
            [rec("j", "p", "u", 1, 1, gpu_type=None)],
            sheet=SHEET,
            now=NOW,
            catalog=CAT,
            strict=True,
        )


def test_unpriced_records_are_counted_and_explained_when_not_strict() -> None:
    recs = [rec("a", "p", "u", 2, 10, gpu_type="B200"), rec("b", "p", "u", 1, 10)]
    r = price_usage(recs, sheet=SHEET, now=NOW, catalog=CAT)
    assert r.total.gpu_hours == pytest.approx(30)
    assert r.total.cost_usd == pytest.approx(20)  # only the H100 hours are priced
    assert any(
        "20.0 GPU-hours of B200 not priced" in n and "no price for B200" in n for n in r.notes
    )


def test_named_sheets() -> None:
    assert (
        PriceSheet.named("onprem", CAT).gpu_hour_usd["H100-SXM"]
        < PriceSheet.named("on-demand", CAT).gpu_hour_usd["H100-SXM"]
    )
    assert PriceSheet.named("lambda", CAT).gpu_hour_usd["H100-SXM"] == pytest.approx(2.99)
    assert PriceSheet.named("aws:spot", CAT).gpu_hour_usd["H100-SXM"] == pytest.approx(22.02 / 8)


def test_owned_servers_are_priced_at_the_measured_utilization_too() -> None:
    """The amortized rate assumes servers kept 100 % busy; a window used 7 % of the time costs
    far more to own than that rate says, and the report must say both."""
    from aistack.planning.report import render_usage
    from aistack.planning.tco import HOURS_PER_MONTH

    recs = [
        rec("j1", "research", "alice", 8, 24, start=dt.datetime(2026, 11, 1, tzinfo=UTC)),
        rec("j3", "research", "alice", 4, 12, start=dt.datetime(2026, 11, 10, tzinfo=UTC)),
    ]
    now = dt.datetime(2026, 11, 20, tzinfo=UTC)
    r = price_usage(recs, now=now, since=dt.datetime(2026, 11, 1, tzinfo=UTC), catalog=CAT)
    d = r.recommendation_detail
    assert d["servers"] == 1 and d["fleet_utilization"] == pytest.approx(240 / (8 * 19 * 24))
    fleet = d["onprem_fleet_window_usd"]
    assert r.onprem_usd is not None and fleet > 5 * r.onprem_usd  # 7 % busy: owning costs more
    monthly = fleet * HOURS_PER_MONTH / (19 * 24)
    assert monthly > d["onprem_opex_usd_per_month"]  # capex annuity on top of running costs
    text = render_usage(r)
    assert "kept 100% busy (amortized rate)" in text
    assert "at the measured 7% utilization: $" in text


def test_unpriced_gpu_hours_are_not_shown_as_zero_dollars() -> None:
    from aistack.planning.report import render_usage

    r = price_usage(
        [rec("j1", "p", "u", 8, 24, gpu_type="RTX4090")],
        sheet=SHEET,
        now=NOW,
        since=NOW - dt.timedelta(days=10),
        catalog=CAT,
    )
    assert r.total.unpriced_gpu_hours == pytest.approx(192) and r.total.cost_usd == 0
    text = render_usage(r)
    assert "No GPU usage" not in text
    # the sheet lacks the price (a provider's sheet without that GPU), not always the catalog
    assert "192.0 GPU-hours in the window are of GPU types the price sheet has no price for" in text
    rows = [line for line in text.splitlines() if line.startswith(("p ", "j1 "))]
    assert rows and all(line.rstrip().endswith("unpriced") for line in rows)


def test_budget_spend_is_the_whole_month_whatever_the_window() -> None:
    """--since later than the first of the month used to clip the budget spend to the window:
    a project $160 into a $150 budget read 'ok' at $40."""
    recs = [
        rec("early", "llm", "a", 8, 10, start=dt.datetime(2026, 11, 5, tzinfo=UTC)),  # $160
        rec("late", "llm", "a", 2, 10, start=dt.datetime(2026, 11, 25, tzinfo=UTC)),  # $40
    ]
    since = dt.datetime(2026, 11, 20, tzinfo=UTC)
    r = price_usage(recs, sheet=SHEET, now=NOW, since=since, budgets={"llm": 150.0}, catalog=CAT)
    assert r.total.cost_usd == pytest.approx(40)  # the window has only the late job
    assert r.records == 1  # allocations in the window, not all those passed
    (b,) = r.budgets
    assert b.spend_usd == pytest.approx(200) and b.status == "over"


def test_cloud_vs_owned_prices_records_with_the_default_gpu_type() -> None:
    """default_gpu_type (--gpu) priced the report but not the cloud vs owned comparison,
    which then read 'n/a' with a note that some GPU types had no price."""
    recs = [rec("a", "p", "u", 8, 10, gpu_type=None), rec("b", "p", "u", 8, 10)]
    r = price_usage(recs, now=NOW, default_gpu_type="H100", catalog=CAT)
    od = CAT.instance("p5.48xlarge").gpu_hour_usd()
    assert r.total.cost_usd == pytest.approx(160 * od)
    assert r.cloud_on_demand_usd == pytest.approx(160 * od)
    assert r.onprem_usd is not None and r.onprem_usd > 0
    assert not any("incomplete" in n for n in r.notes)


def test_records_outside_the_window_do_not_make_the_comparison_incomplete() -> None:
    old = rec("old", "p", "u", 8, 10, gpu_type="RTX4090", start=dt.datetime(2026, 9, 1, tzinfo=UTC))
    r = price_usage(
        [old, rec("b", "p", "u", 8, 10)], now=NOW, since=NOW - dt.timedelta(days=30), catalog=CAT
    )
    assert r.cloud_on_demand_usd is not None and r.cloud_on_demand_usd > 0
    assert not any("incomplete" in n for n in r.notes)


def test_allocations_after_now_do_not_blame_a_since_never_given() -> None:
    """With no since, the window started at the first record; records after --now raised
    'since (...) is after now (...) (pick an earlier --since)'."""
    later = dt.datetime(2026, 12, 5, tzinfo=UTC)
    r = price_usage([rec("x", "p", "u", 8, 10, start=later)], sheet=SHEET, now=NOW, catalog=CAT)
    assert r.total.gpu_hours == 0 and r.records == 0
    assert any("start after the end of the window" in n for n in r.notes)
    both = price_usage(
        [rec("a", "p", "u", 1, 10), rec("x", "p", "u", 8, 10, start=later)],
        sheet=SHEET,
        now=NOW,
        catalog=CAT,
    )
    assert (
        both.total.gpu_hours == pytest.approx(10) and both.since == rec("a", "p", "u", 1, 1).start
    )


def test_advice_from_a_short_window_says_so() -> None:
    """Six hours of usage read 'over 0 days' and recommended a $428,000 purchase without a word
    on how little data it rested on (plan hybrid warns under 28 days)."""
    since = NOW - dt.timedelta(hours=6)
    r = price_usage([rec("j", "p", "u", 8, 6, start=since)], now=NOW, since=since, catalog=CAT)
    assert "over 6.0 hours" in r.recommendation and "0 days" not in r.recommendation
    assert "only 6.0 hours of usage" in r.recommendation and "at least 28 days" in r.recommendation
    month = NOW - dt.timedelta(days=30)
    long = price_usage([rec("j", "p", "u", 8, 300, start=month)], now=NOW, since=month, catalog=CAT)
    assert "at least 28 days" not in long.recommendation


def _cells(text: str, first: str) -> list[str]:
    """The cells of the table row that starts with ``first`` (two or more spaces apart)."""
    import re

    for line in text.splitlines():
        if line.startswith(first + " "):
            return re.split(r"\s{2,}", line.strip())
    raise AssertionError(f"no row {first!r} in:\n{text}")


def test_small_usage_keeps_significant_digits_and_adds_up() -> None:
    """A 6-minute window printed 0.0 GPU-h, CPU-h 0.1 + 0.0 = 0.2, '$0.00', '(0.0 days, ...)' and a
    $0.001 budget as '$0.00 budget, $0.00 spent'."""
    from aistack.planning.report import render_usage

    t0 = NOW - dt.timedelta(minutes=6)
    m = dt.timedelta(minutes=1)
    recs = [
        AllocationRecord("j0", "default", "ann", "n1", 1, "H100", 2, t0, t0 + 2 * m, 50.0, 20.0),
        AllocationRecord("j1", "default", "ann", "n1", 0, None, 1, t0, t0 + 4.42 * m, None, 20.0),
        AllocationRecord("j2", "research", "bo", "n1", 0, None, 1, t0, t0 + 2.76 * m, None, 20.0),
    ]
    r = price_usage(recs, now=NOW, since=t0, budgets={"default": 0.001}, catalog=CAT)
    text = render_usage(r)
    # the window: minutes, not "0.0 days"
    assert "(6 minutes, 3 allocations)" in text and "0.0 days" not in text
    cols = ["project", "jobs", "GPU-h", "CPU-h"]
    d, rs, tot = (_cells(text, k) for k in ("default", "research", "total"))
    cpu = cols.index("CPU-h")
    # 2 CPUs x 2 min + 1 CPU x 4.42 min = 0.140; 2.76 min = 0.0460 (one decimal: 0.1 + 0.0 = 0.2)
    assert [d[cpu], rs[cpu]] == ["0.140", "0.0460"] and tot[cpu] == "0.186"
    assert float(d[cpu]) + float(rs[cpu]) == pytest.approx(float(tot[cpu]), abs=0.001)
    gpu = cols.index("GPU-h")
    assert d[gpu] == "0.0333" and tot[gpu] == "0.0333"  # 2 GPU-minutes, not 0.0
    # money: no cell reads $0.00, and the costs add up to the total
    costs = [float(row[-1].lstrip("$")) for row in (d, rs)]
    assert all(c > 0 for c in costs)
    assert sum(costs) == pytest.approx(float(tot[-1].lstrip("$")), rel=0.01)
    assert "$0.00 " not in text and not text.count("$0.00\n")
    # the budget row: a $0.001 budget and what was spent, both non-zero
    b = _cells(text, "default  2026-11")
    assert b[2] == "$0.001" and float(b[3].lstrip("$")) > 0.001 and b[-1] == "over"
    # the advice: the GPU-hours it rests on, not "0 GPU-hours"
    assert "(0.0333 GPU-hours of H100-SXM)" in r.recommendation
    assert "peak 0 GPUs" not in text


def test_fixed_and_money_keep_three_significant_figures() -> None:
    from aistack.planning.numfmt import fixed, money
    from aistack.planning.report import usd

    # large values as they always were
    assert [fixed(4320), fixed(37.4), fixed(0)] == ["4,320.0", "37.4", "0.0"]
    assert [usd(39_919.4), usd(9.9), usd(0)] == ["$39,919", "$9.90", "$0"]
    # small ones keep 3 significant figures instead of rounding to zero
    assert [fixed(0.107), fixed(0.046), fixed(0.0417), fixed(5)] == [
        "0.107",
        "0.0460",
        "0.0417",
        "5.00",
    ]
    assert [usd(0.001), usd(0.00238), usd(0.5), usd(0.344)] == [
        "$0.001",
        "$0.00238",
        "$0.50",
        "$0.344",
    ]
    assert money(-0.004) == "-0.004" and usd(None) == "n/a"


_JSON_REC = {
    "job_id": "1",
    "project": "p",
    "user": "u",
    "node": "n",
    "gpus": 1,
    "gpu_type": "H100",
    "cpus": 2,
    "start": "2026-11-01T00:00:00Z",
    "end": "2026-11-01T02:00:00Z",
}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "job_id",
            7.0,
            "must be a string or a whole number from 0 to 9223372036854775807, got a number 7.0",
        ),
        (
            "job_id",
            ("a",),
            'must be a string or a whole number from 0 to 9223372036854775807, got a list ["a"]',
        ),
        ("gpu_type", ["H100"], 'must be a string or null, got a list ["H100"]'),
        ("gpu_type", {"a": 1}, 'must be a string or null, got an object {"a": 1}'),
        ("gpu_type", 1.5, "must be a string or null, got a number 1.5"),
        ("project", None, "must be a string, got null"),
        ("user", 1001, "must be a string, got a number 1001"),
        ("node", dt.date(2026, 1, 1), "must be a string, got a date datetime.date(2026, 1, 1)"),
    ],
)
def test_parse_records_refuses_text_fields_that_are_not_strings(
    field: str, value: object, message: str
) -> None:
    """Called from Python, as the API and `aistack cost --records` call it: a value that is not
    text was turned into its Python text ("['H100']", "None") and priced under it."""
    with pytest.raises(ValidationError) as ei:
        parse_records([_JSON_REC, {**_JSON_REC, field: value}])
    assert ei.value.message == f"records[1].{field}: {message}"
    with pytest.raises(ValidationError) as ei:
        AllocationRecord.from_dict({**_JSON_REC, field: value})
    assert ei.value.message == f"record.{field}: {message}"


def test_parse_records_reads_a_whole_number_job_id_as_its_decimal_text() -> None:
    (r,) = parse_records([{**_JSON_REC, "job_id": 4294967295, "gpu_type": None}])
    assert r.job_id == "4294967295" and r.gpu_type is None
    (r,) = parse_records([{**_JSON_REC, "gpu_type": ""}])  # "" stays "not recorded"
    assert r.gpu_type is None and r.job_id == "1"
