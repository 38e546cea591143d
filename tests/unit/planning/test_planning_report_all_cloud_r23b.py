"""The cost report's two "rent everything" figures come from one demand curve.

The advice paid whole instances from the allocation records (GPUs in use at each moment), the
hybrid sweep from hourly means: two 1-GPU jobs in the same half hour on 8-GPU instances were 4
GPU-hours in the advice (one instance for half an hour) and 8 in the sweep (a mean of 1 GPU,
billed as one GPU all the hour), so one report said both $26 and $52 a month."""

from __future__ import annotations

import datetime as dt

import pytest

from aistack.errors import ValidationError
from aistack.planning.catalog import load_catalog
from aistack.planning.usage import AllocationRecord, price_usage

CAT = load_catalog(include_user=False)
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _rec(i: int, start_h: float, hours: float, gpus: int) -> AllocationRecord:
    s = T0 + dt.timedelta(hours=start_h)
    return AllocationRecord(
        job_id=str(i),
        project="p",
        user="u",
        node="n",
        gpus=gpus,
        gpu_type="H100",
        cpus=1,
        start=s,
        end=s + dt.timedelta(hours=hours),
        gpu_util=50.0,
        cpu_util=None,
    )


def test_two_overlapping_half_hours_one_all_cloud_figure() -> None:
    recs = [_rec(0, 10, 0.5, 1), _rec(1, 10, 0.5, 1)]
    rep = price_usage(recs, now=T0 + dt.timedelta(days=30), since=T0, catalog=CAT)
    d = rep.recommendation_detail
    assert d["cloud_paid_gpu_hours"] == pytest.approx(4.0)  # one 8-GPU instance, half an hour
    assert d["all_cloud_usd_per_month"] == pytest.approx(d["cloud_usd_per_month"], rel=1e-9)
    od = d["on_demand_usd_per_gpu_hour"]
    assert d["all_cloud_usd_per_month"] == pytest.approx(4.0 * od * 730 / (30 * 24))
    assert f"${d['all_cloud_usd_per_month']:,.0f} a month" in rep.recommendation


def test_busy_records_agree_and_the_fleet_serves_the_moment() -> None:
    # 16 GPUs for 10 minutes, then 4 GPUs for 50 minutes, every day for 30 days: the hourly
    # mean (16/6 + 4*5/6 = 6 GPUs) fits one 8-GPU server; the moment does not
    recs = []
    for d in range(30):
        recs.append(_rec(2 * d, 24 * d, 1 / 6, 16))
        recs.append(_rec(2 * d + 1, 24 * d + 1 / 6, 5 / 6, 4))
    rep = price_usage(recs, now=T0 + dt.timedelta(days=30), since=T0, catalog=CAT)
    d = rep.recommendation_detail
    assert d["all_cloud_usd_per_month"] == pytest.approx(d["cloud_usd_per_month"], rel=1e-9)
    from aistack.planning.whatif import hybrid_sweep_curve

    sweep = hybrid_sweep_curve(
        [(1 / 6, 16), (5 / 6, 4)] * 30, span_h=30 * 24, server=d["server"], instance=d["instance"]
    )
    one = sweep.options[1]  # one 8-GPU server: the 8 GPUs over it for 10 minutes a day rented
    assert one.burst_gpu_hours == pytest.approx(30 * 8 / 6)
    assert one.rented_gpu_hours == pytest.approx(30 * 8 / 6)
    assert sweep.all_cloud.rented_gpu_hours == pytest.approx(30 * (16 / 6 + 8 * 5 / 6))
    assert sweep.peak_gpus == 16 and sweep.peak_at_once


@pytest.mark.parametrize(
    ("curve", "span", "words"),
    [
        ([(1.0, float("nan"))], 10.0, "curve[0]: GPUs must be a finite number"),
        ([(-1.0, 2)], 10.0, "curve[0]: hours and GPUs must be >= 0"),
        ([(5.0, 2)], 4.0, "span_h: must be a positive number of hours, at least"),
        ([(1.0, 0)], 4.0, "curve: no GPU demand"),
    ],
)
def test_curve_bad_input(curve: list[tuple[float, float]], span: float, words: str) -> None:
    from aistack.planning.whatif import hybrid_sweep_curve

    with pytest.raises(ValidationError, match=words.replace("[", r"\[").replace("]", r"\]")):
        hybrid_sweep_curve(curve, span_h=span, gpu="H100", catalog=CAT)
