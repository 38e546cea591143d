"""`plan tco` rents whole cloud instances: 3 H100s on the 8-GPU p5.48xlarge (the only H100 shape
the catalog has on AWS) pay for all 8 GPUs while they run. On-demand and spot were billed per
GPU-hour used, as if AWS rented 3: $15,067 a month on-demand instead of $40,179, and owning
one server broke even after 45.8 months instead of 12.4."""

from __future__ import annotations

import pytest

from aistack.planning.catalog import default_catalog
from aistack.planning.tco import HOURS_PER_MONTH, plan_tco

CAT = default_catalog()


def test_three_gpus_pay_for_the_whole_instance() -> None:
    r = plan_tco(gpus=3, gpu="H100", utilization=1.0, catalog=CAT)
    assert r.instance == "p5.48xlarge"
    od = r.scenario("cloud on-demand")
    assert od.monthly_usd == pytest.approx(55.04 * HOURS_PER_MONTH)  # one whole instance
    assert "1 x 8 GPUs for 3" in od.description
    spot = r.scenario("cloud spot")
    assert spot.monthly_usd == pytest.approx(22.02 * HOURS_PER_MONTH * 1.10)
    assert r.breakeven_month == pytest.approx(12.4, abs=0.05)
    assert any(
        n.startswith("the cloud rents whole instances: 1 x p5.48xlarge (8 GPUs) for the 3 needed")
        and "runpod-1x-h100-sxm" in n
        for n in r.notes
    )


def test_a_one_gpu_shape_rents_per_gpu() -> None:
    r = plan_tco(gpus=3, instance="runpod-1x-h100-sxm", utilization=0.5, catalog=CAT)
    od = r.scenario("cloud on-demand")
    assert od.monthly_usd == pytest.approx(3 * 0.5 * HOURS_PER_MONTH * 2.69)
    assert not any("whole instances" in n for n in r.notes)


def test_whole_multiples_are_unchanged() -> None:
    r = plan_tco(gpus=16, gpu="H100", utilization=0.5, catalog=CAT)
    od = r.scenario("cloud on-demand")
    assert od.monthly_usd == pytest.approx(16 * 0.5 * HOURS_PER_MONTH * 6.88)
    assert not any("whole instances" in n for n in r.notes)


def test_hybrid_burst_rents_whole_instances() -> None:
    # own one 8-GPU server for the base, burst 4 GPUs on one whole p5.48xlarge
    r = plan_tco(gpus=12, gpu="H100", utilization=1.0, catalog=CAT)
    own = plan_tco(gpus=8, gpu="H100", utilization=1.0, catalog=CAT).scenario("on-prem")
    hybrid = r.scenario("hybrid")
    assert hybrid.monthly_usd == pytest.approx(own.monthly_usd + 55.04 * HOURS_PER_MONTH)
