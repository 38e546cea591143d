"""TCO: the issue's worked example, break-even monotonic in utilization, missing prices."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aistack.errors import NotFoundError, ValidationError
from aistack.planning.catalog import load_catalog
from aistack.planning.tco import HOURS_PER_MONTH, breakeven_month, onprem_cost, plan_tco

CAT = load_catalog(include_user=False)


@pytest.mark.parametrize("server_price", [400_000, 450_000, 500_000])
def test_worked_example_p5_vs_dgx_h200(server_price: float) -> None:
    """p5.48xlarge at ~$84/h around the clock ~ $735k/year; a DGX H200 at $400-500k pays back in < 1 year."""
    r = plan_tco(
        gpus=8,
        instance="p5.48xlarge",
        server="dgx-h200",
        cloud_usd_per_hour=84.0,
        utilization=1.0,
        horizon_months=12,
        server_price_usd=server_price,
        catalog=CAT,
    )
    od = r.scenario("cloud on-demand")
    assert od.total_usd == pytest.approx(84 * 8760, rel=0.001)  # 735,840 USD/year
    assert od.total_usd == pytest.approx(735_000, rel=0.01)
    assert r.breakeven_month is not None and r.breakeven_month < 12
    own = r.scenario("on-prem")
    assert own.upfront_usd == server_price + 40_000 + 15_000  # server + network + storage per node
    assert own.total_usd < od.total_usd
    assert r.scenario("on-prem").breakeven_month_vs_on_demand == pytest.approx(
        r.breakeven_month, rel=1e-6
    )


def test_onprem_cost_components_hand_computed() -> None:
    c = onprem_cost(CAT.server("dgx-h200"), 2, CAT)
    op = CAT.onprem
    assert c.capex_usd == 2 * (
        450_000 + op.network_usd_per_node.value + op.storage_usd_per_node.value
    )
    kw = 2 * 10.2
    full_power = kw * op.pue.value * op.electricity_usd_per_kwh.value * HOURS_PER_MONTH
    assert c.power_idle_usd_month + c.power_busy_usd_month == pytest.approx(full_power)
    assert c.colocation_usd_month == pytest.approx(kw * op.colocation_usd_per_kw_month.value)
    n = 12 * op.depreciation_years.value
    i = op.cost_of_capital.value / 12
    assert c.annuity_usd_month == pytest.approx(c.capex_usd * i / (1 - (1 + i) ** -n))


@settings(max_examples=60, deadline=None)
@given(
    st.floats(0.05, 1.0),
    st.floats(0.05, 1.0),
    st.sampled_from(["p5.48xlarge", "a3-highgpu-8g", "lambda-8x-h100-sxm"]),
)
def test_breakeven_month_monotonic_in_utilization(u1: float, u2: float, inst: str) -> None:
    lo, hi = sorted((u1, u2))
    cost = onprem_cost(CAT.server("hgx-h100-oem"), 2, CAT)
    p = CAT.instance(inst).gpu_hour_usd()
    m_lo = breakeven_month(cost, cloud_usd_per_gpu_hour=p, gpus=16, utilization=lo)
    m_hi = breakeven_month(cost, cloud_usd_per_gpu_hour=p, gpus=16, utilization=hi)
    a = math.inf if m_lo is None else m_lo
    b = math.inf if m_hi is None else m_hi
    assert b <= a + 1e-9


def test_breakeven_utilization_separates_buy_and_rent() -> None:
    r = plan_tco(gpus=16, gpu="H100", server="hgx-h100-oem", horizon_months=48, catalog=CAT)
    u = r.breakeven_utilization
    assert u is not None and 0 < u < 1
    above = plan_tco(
        gpus=16,
        gpu="H100",
        server="hgx-h100-oem",
        utilization=min(1.0, u + 0.05),
        horizon_months=48,
        catalog=CAT,
    )
    below = plan_tco(
        gpus=16,
        gpu="H100",
        server="hgx-h100-oem",
        utilization=u - 0.05,
        horizon_months=48,
        catalog=CAT,
    )
    # over exactly one depreciation life, owning wins above u and loses below it
    assert above.scenario("on-prem").total_usd < above.scenario("cloud on-demand").total_usd
    assert below.scenario("on-prem").total_usd > below.scenario("cloud on-demand").total_usd


def test_scenarios_cumulative_and_costs_finite() -> None:
    r = plan_tco(gpus=20, gpu="H100", utilization=0.6, horizon_months=60, catalog=CAT)
    names = [s.name for s in r.scenarios]
    assert (
        names[:2] == ["on-prem", "cloud on-demand"] and "hybrid" in names and "cloud spot" in names
    )
    assert r.servers == 3  # 20 GPUs -> 3 x 8-GPU servers
    onprem = r.scenario("on-prem")
    # servers bought again after the 4-year depreciation life within a 5-year horizon; the
    # refresh serves 12 of its 48 months inside the horizon and is charged that share
    step = onprem.cumulative_usd[48] - onprem.cumulative_usd[47]
    assert step == pytest.approx(onprem.upfront_usd * 12 / 48 + onprem.monthly_usd)
    for s in r.scenarios:
        assert len(s.cumulative_usd) == 61
        assert all(b >= a for a, b in zip(s.cumulative_usd, s.cumulative_usd[1:], strict=False))
        assert math.isfinite(s.total_usd) and math.isfinite(s.cost_per_useful_gpu_hour)
    assert r.hybrid_base_gpus == 8  # 12 GPUs of average load -> one whole server owned


def test_missing_prices_are_reported_not_nan() -> None:
    r = plan_tco(gpus=8, instance="p4de.24xlarge", catalog=CAT)  # on-demand only in the catalog
    assert any("no spot price for p4de.24xlarge" in m for m in r.missing)
    assert {s.name for s in r.scenarios} >= {"on-prem", "cloud on-demand"}
    with pytest.raises(NotFoundError, match="price for any cloud instance with V100"):
        plan_tco(gpus=8, gpu="V100", catalog=CAT)
    with pytest.raises(NotFoundError, match="did you mean"):
        plan_tco(gpus=8, instance="p5.48xlarg", catalog=CAT)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"gpus": 0, "gpu": "H100"}, "gpus"),
        ({"gpus": 8, "gpu": "H100", "utilization": 0}, "utilization"),
        ({"gpus": 8, "gpu": "H100", "utilization": 1.5}, "utilization"),
        ({"gpus": 8, "gpu": "H100", "horizon_months": -1}, "horizon_months"),
        ({"gpus": 8}, "give gpu"),
        ({"gpus": 8, "gpu": "H100", "cloud_usd_per_hour": float("nan")}, "cloud_usd_per_hour"),
    ],
)
def test_tco_bad_input(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        plan_tco(catalog=CAT, **kwargs)


def test_commitment_is_paid_for_its_whole_term() -> None:
    """QA #4: a 3-year reservation over 6 months was billed 6 months and called the cheapest."""
    r = plan_tco(gpus=8, instance="p4d.24xlarge", server="dgx-a100", horizon_months=6, catalog=CAT)
    c3 = r.scenario("cloud 3-year commitment")
    assert c3.total_usd == pytest.approx(36 * c3.monthly_usd)
    assert r.scenario("cloud 1-year commitment").total_usd == pytest.approx(
        12 * r.scenario("cloud 1-year commitment").monthly_usd
    )
    cheapest = min(r.scenarios, key=lambda s: s.total_usd)
    assert cheapest.name != "cloud 3-year commitment"
    assert any("36 months must be paid" in n for n in r.notes)
    # over whole terms nothing changes
    r36 = plan_tco(gpus=8, gpu="H100", horizon_months=36, catalog=CAT)
    c = r36.scenario("cloud 3-year commitment")
    assert c.total_usd == pytest.approx(36 * c.monthly_usd)


def test_commitment_buys_whole_instances() -> None:
    """QA #4: 12 GPUs on 8-GPU instances were priced as 1.5 instances."""
    r = plan_tco(gpus=12, gpu="H100", utilization=0.3, horizon_months=36, catalog=CAT)
    from aistack.planning.catalog import default_catalog

    inst = (CAT or default_catalog()).instance(r.instance)
    c1 = r.scenario("cloud 1-year commitment")
    assert c1.monthly_usd == pytest.approx(
        2 * inst.gpus * HOURS_PER_MONTH * inst.gpu_hour_usd("committed_1y")
    )


def test_one_month_past_the_server_life_does_not_buy_a_whole_fleet() -> None:
    """QA #6: month 49 added a full second fleet (+$434k for one month) and flipped the ranking."""
    r48 = plan_tco(gpus=8, gpu="H100", horizon_months=48, catalog=CAT)
    r49 = plan_tco(gpus=8, gpu="H100", horizon_months=49, catalog=CAT)
    o48, o49 = r48.scenario("on-prem"), r49.scenario("on-prem")
    step = o49.total_usd - o48.total_usd
    assert step == pytest.approx(o49.monthly_usd + o49.upfront_usd / 48)
    assert min(r48.scenarios, key=lambda s: s.total_usd).name == "on-prem"
    assert min(r49.scenarios, key=lambda s: s.total_usd).name == "on-prem"


def test_breakeven_one_definition_past_the_horizon() -> None:
    """QA #5: the table said "never (within the server life)" while the summary said 9.2."""
    from aistack.planning.report import render_tco

    kw = dict(instance="p5.48xlarge", server="dgx-h200", cloud_usd_per_hour=84, catalog=CAT)
    r1 = plan_tco(gpus=8, horizon_months=1, **kw)  # type: ignore[arg-type]
    r12 = plan_tco(gpus=8, horizon_months=12, **kw)  # type: ignore[arg-type]
    assert r1.breakeven_month == pytest.approx(r12.breakeven_month)
    assert r1.scenario("on-prem").breakeven_month_vs_on_demand == pytest.approx(r1.breakeven_month)
    text = render_tco(r1)
    assert "never" not in text
    assert f"{r1.breakeven_month:.1f} months (after the 1-month horizon)" in text
    # 12 GPUs (16 owned): table and summary agree too
    r = plan_tco(gpus=12, horizon_months=1, **kw)  # type: ignore[arg-type]
    assert r.breakeven_month == r.scenario("on-prem").breakeven_month_vs_on_demand
    assert r.breakeven_month is not None


def test_breakeven_utilization_for_a_part_used_server() -> None:
    """3 GPUs needed, one 8-GPU server owned: at utilization u the server is busy u·3/8 of the
    time, so it draws busy power for that share only. The break-even read 91 % instead of 88 %."""
    r = plan_tco(gpus=3, gpu="H100", utilization=0.5, catalog=CAT)
    own = onprem_cost(CAT.server(r.server), 1, CAT)
    u = r.breakeven_utilization
    assert u is not None
    owning = own.amortized_month(u * 3 / 8)
    # the cloud rents the whole 8-GPU p5.48xlarge for 3 GPUs: all 8 are paid while in use
    renting = 8 * u * HOURS_PER_MONTH * r.on_demand_usd_per_gpu_hour
    assert owning == pytest.approx(renting)


def test_hybrid_base_of_zero_is_not_explained_as_a_small_load() -> None:
    r = plan_tco(gpus=8, gpu="L40S", hybrid_base_gpus=0, catalog=CAT)
    assert not any("under one" in n for n in r.notes)
    assert any("base of 0 GPUs" in n for n in r.notes)


def test_never_breaks_even_names_the_span_searched() -> None:
    """Over a 120-month horizon (refreshes included) 'never' is within the horizon, not within
    the 48-month server life."""
    from aistack.planning.report import render_tco

    r = plan_tco(gpus=8, gpu="H100", utilization=0.3, horizon_months=120, catalog=CAT)
    assert r.breakeven_month is None
    text = render_tco(r)
    assert "never (within the 120-month horizon)" in text and "server life" not in text
    short = plan_tco(gpus=8, gpu="H100", utilization=0.3, horizon_months=12, catalog=CAT)
    assert "never (within the 48-month server life)" in render_tco(short)
    assert "over 1 month (" in render_tco(plan_tco(gpus=8, gpu="H100", horizon_months=1))


@pytest.mark.parametrize(
    ("figure", "value", "needle"),
    [("depreciation_years", 0.01, "at least one month"), ("idle_power_fraction", 1.5, "[0, 1]")],
)
def test_onprem_figures_that_break_the_maths_are_refused(
    tmp_path, figure: str, value: float, needle: str
) -> None:  # type: ignore[no-untyped-def]
    """depreciation_years 0.01 rounded to a 0-month life: a ZeroDivisionError traceback."""
    f = tmp_path / "c.yaml"
    f.write_text(f'onprem:\n  {figure}: {{value: {value}, source: "x", as_of: 2026-01-01}}\n')
    with pytest.raises(ValidationError, match=figure) as e:
        load_catalog([f], include_user=False)
    assert needle in str(e.value)


def test_chart_does_not_draw_a_breakeven_line_past_the_horizon(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The line sat at month 12.6 on a 1-month chart, the curves stopping at month 1."""
    import matplotlib.axes

    from aistack.planning.chart import tco_chart_png

    lines: list[float] = []
    texts: list[str] = []
    orig_line, orig_text = matplotlib.axes.Axes.axvline, matplotlib.axes.Axes.text

    def axvline(self, x=0, *a, **k):  # type: ignore[no-untyped-def]
        lines.append(x)
        return orig_line(self, x, *a, **k)

    def text(self, x, y, s, *a, **k):  # type: ignore[no-untyped-def]
        texts.append(s)
        return orig_text(self, x, y, s, *a, **k)

    monkeypatch.setattr(matplotlib.axes.Axes, "axvline", axvline)
    monkeypatch.setattr(matplotlib.axes.Axes, "text", text)
    r = plan_tco(gpus=8, gpu="H100", horizon_months=1, catalog=CAT)
    tco_chart_png(r, tmp_path / "c.png")
    assert lines == [] and any("after the 1-month horizon" in t for t in texts)
    r36 = plan_tco(gpus=8, gpu="H100", horizon_months=36, catalog=CAT)
    tco_chart_png(r36, tmp_path / "d.png")
    assert lines == [pytest.approx(r36.breakeven_month)]
