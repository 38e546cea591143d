"""`aistack cost report --sheet <provider>`: the buy-vs-rent advice and "the same usage on cloud
on-demand" are at that provider's on-demand price. They were always at AWS p5.48xlarge
($6.88/GPU-h): a Lambda user paying $2.99/GPU-h was told buying pays back in 22 months."""

from __future__ import annotations

import datetime as dt

import pytest

from aistack.planning.report import render_usage
from aistack.planning.usage import AllocationRecord, price_usage

UTC = dt.UTC
START = dt.datetime(2026, 10, 1, tzinfo=UTC)
NOW = dt.datetime(2026, 10, 31, tzinfo=UTC)


def _recs(gpu_type: str) -> list[AllocationRecord]:
    # 8 GPUs for 30 days and 4 for 15: 7,200 GPU-hours
    return [
        AllocationRecord(
            job_id=str(i),
            project="p",
            user="u",
            node=f"n{i}",
            gpus=g,
            gpu_type=gpu_type,
            cpus=8,
            start=START + dt.timedelta(days=d),
            end=START + dt.timedelta(days=d + n),
            gpu_util=70.0,
            cpu_util=10.0,
        )
        for i, (g, d, n) in enumerate([(8, 0, 30), (4, 4, 15)])
    ]


def test_lambda_sheet_compares_with_lambda_on_demand() -> None:
    rep = price_usage(_recs("H100"), sheet="lambda", now=NOW)
    d = rep.recommendation_detail
    assert d["instance"] == "lambda-8x-h100-sxm"
    assert d["on_demand_usd_per_gpu_hour"] == pytest.approx(2.99)
    # at $2.99/GPU-h owning 16 H100s for 62 % use does not pay back (at $6.88 it did: 22.3 months)
    assert d["payback_months"] is None
    assert "against lambda-8x-h100-sxm on-demand at $2.99 per GPU-hour" in rep.recommendation
    assert "p5.48xlarge" not in rep.recommendation
    assert rep.cloud_on_demand_usd == pytest.approx(7200 * 2.99)
    assert rep.cloud_on_demand_usd == pytest.approx(rep.total.cost_usd)
    text = render_usage(rep)
    assert (
        "same usage on cloud on-demand (H100-SXM on lambda-8x-h100-sxm at $2.99/GPU-h): $21,528"
        in text
    )


def test_default_sheet_still_compares_with_aws() -> None:
    rep = price_usage(_recs("H100"), now=NOW)
    d = rep.recommendation_detail
    assert d["instance"] == "p5.48xlarge"
    assert d["on_demand_usd_per_gpu_hour"] == pytest.approx(6.88)
    # whole p5.48xlarge instances as the demand goes: 1 (8 GPUs) for 30 days, 2 (16 GPUs for
    # the 12 in use) for the 15 days both jobs run: 5,760 + 2,880 = 8,640 GPU-hours paid for
    # the 7,200 used: 17.6 months (22.25 priced per GPU-hour used; 15.5 with every hour at the
    # peak's 16/12)
    assert d["cloud_rented_gpus"] == 16
    assert d["cloud_paid_gpu_hours"] == pytest.approx(8640)
    assert d["payback_months"] == pytest.approx(17.65, abs=0.01)
    assert rep.cloud_on_demand_usd == pytest.approx(7200 * 6.88)
    assert "(H100-SXM on p5.48xlarge at $6.88/GPU-h): $49,536" in render_usage(rep)


def test_provider_without_that_gpu_falls_back_and_says_so() -> None:
    # Lambda has no H200: the sheet cannot price it; the comparison is with the default
    # instance, named in the line and in a note
    rep = price_usage(_recs("H200"), sheet="lambda", now=NOW)
    assert rep.cloud_on_demand_usd == pytest.approx(7200 * 50.44 / 8)
    assert "(H200 on coreweave-8x-h200 at $6.30/GPU-h)" in render_usage(rep)
    assert any(
        "no lambda on-demand instance with H200" in n and "coreweave-8x-h200" in n
        for n in rep.notes
    )
