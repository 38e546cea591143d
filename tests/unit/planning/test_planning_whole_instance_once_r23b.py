"""One whole-instance rounding for every cloud figure, and one event sweep over allocations.

tco.py rounded the GPUs in use up to whole instances in two places, whatif.py in two more
(_rented_gpu_hours, whole_instance_gpu_hours), and the usage report swept each GPU type's
allocations twice (peak_concurrency, then whole_instance_gpu_hours)."""

from __future__ import annotations

import datetime as dt

import pytest

from aistack.planning import tco, whatif
from aistack.planning.catalog import load_catalog
from aistack.planning.tco import plan_tco, whole_instance_gpus
from aistack.planning.whatif import (
    curve_peak,
    curve_whole_instance_gpu_hours,
    demand_curve,
    peak_concurrency,
    whole_instance_gpu_hours,
)

CAT = load_catalog(include_user=False)
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _h(x: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=x)


def test_whole_instance_gpus_values() -> None:
    assert whole_instance_gpus(3, 8) == 8
    assert whole_instance_gpus(8, 8) == 8
    assert whole_instance_gpus(12, 8) == 16
    assert whole_instance_gpus(0, 8) == 0
    assert whole_instance_gpus(5, 1) == 5
    # a mean of 0.25 GPUs: one GPU a quarter of the step, billed as 8 a quarter of the step
    assert whole_instance_gpus(0.25, 8) == pytest.approx(2.0)
    # 2.5 on average: 3 GPUs 5/6 of the step, on one 8-GPU instance
    assert whole_instance_gpus(2.5, 8) == pytest.approx(2.5 * 8 / 3)


def test_tco_and_whatif_round_through_the_one_function(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both modules call tco.whole_instance_gpus: a different rounding there changes both."""
    calls: list[float] = []
    real = tco.whole_instance_gpus

    def spy(gpus: float, per_instance: int) -> float:
        calls.append(gpus)
        return real(gpus, per_instance)

    monkeypatch.setattr(tco, "whole_instance_gpus", spy)
    monkeypatch.setattr(whatif, "whole_instance_gpus", spy)
    r = plan_tco(gpus=3, gpu="H100", instance="p5.48xlarge", utilization=0.5, catalog=CAT)
    assert 3 in calls
    od = r.scenario("cloud on-demand")
    assert od.monthly_usd == pytest.approx(8 * 0.5 * 730 * r.on_demand_usd_per_gpu_hour)
    calls.clear()
    assert whole_instance_gpu_hours([(_h(0), _h(1), 3)], 8) == pytest.approx(8.0)
    assert calls == [3]


def test_demand_curve_is_the_one_sweep() -> None:
    iv = [(_h(0), _h(2), 4), (_h(1), _h(3), 8), (_h(3), _h(4), 8), (_h(5), _h(5), 99)]
    curve = demand_curve(iv)
    # ends before starts at the same instant (hour 3): 8, not 16; the empty interval drops
    assert curve == [(_h(0), _h(1), 4), (_h(1), _h(2), 12), (_h(2), _h(3), 8), (_h(3), _h(4), 8)]
    assert curve_peak(curve) == peak_concurrency(iv) == 12
    assert curve_peak([]) == 0
    # 8 + 16 + 8 + 8 GPU-hours on 8-GPU instances
    assert curve_whole_instance_gpu_hours(curve, 8) == pytest.approx(40.0)
    assert whole_instance_gpu_hours(iv, 8) == pytest.approx(40.0)
    # seconds work as datetimes do
    assert demand_curve([(0.0, 3600.0, 2)]) == [(0.0, 3600.0, 2)]
    assert curve_whole_instance_gpu_hours([(0.0, 1800.0, 2)], 8) == pytest.approx(4.0)


def test_usage_report_sweeps_each_type_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from aistack.planning import usage
    from aistack.planning.usage import AllocationRecord, price_usage

    n = 0
    real = usage.demand_curve

    def counting(iv):  # type: ignore[no-untyped-def]
        nonlocal n
        n += 1
        return real(iv)

    monkeypatch.setattr(usage, "demand_curve", counting)
    recs = [
        AllocationRecord(
            job_id=str(i),
            project="p",
            user="u",
            node="n",
            gpus=1,
            gpu_type="H100",
            cpus=1,
            start=_h(i),
            end=_h(i + 0.5),
            gpu_util=50.0,
            cpu_util=None,
        )
        for i in range(3)
    ]
    rep = price_usage(recs, now=_h(24), since=_h(0), catalog=CAT)
    assert n == 1
    assert rep.recommendation_detail["peak_gpus"] == 1
    # three 1-GPU half-hours on 8-GPU instances: 3 x 0.5 h x 8 GPUs
    assert rep.recommendation_detail["cloud_paid_gpu_hours"] == pytest.approx(12.0)
