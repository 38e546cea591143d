"""Whole-instance renting follows the demand: each moment (or step) pays the instances that
hold what is in use then, not every hour at the peak's rounding (12 GPUs at once pay 16, but
3 GPUs alone pay 8: 16/12 of 3 is 4)."""

from __future__ import annotations

import datetime as dt

import pytest

from aistack.planning.whatif import (
    hybrid_sweep,
    peak_concurrency,
    whole_instance_gpu_hours,
)

T0 = dt.datetime(2026, 10, 1)


def _h(x: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=x)


def test_each_moment_pays_its_own_whole_instances() -> None:
    # 12 GPUs for an hour, then 3 for an hour, on 8-GPU instances: 16 + 8 GPU-hours
    iv = [(_h(0), _h(1), 8), (_h(0), _h(2), 3), (_h(0), _h(1), 1)]
    assert peak_concurrency(iv) == 12
    assert whole_instance_gpu_hours(iv, 8) == pytest.approx(24.0)
    assert whole_instance_gpu_hours(iv, 1) == pytest.approx(15.0)  # per GPU: what was used
    assert whole_instance_gpu_hours([], 8) == 0.0
    assert whole_instance_gpu_hours([(_h(1), _h(1), 4)], 8) == 0.0  # empty interval


def test_the_sweep_rents_each_steps_overflow_in_whole_instances() -> None:
    sweep = hybrid_sweep([12.0, 3.0], gpu="H100", server="dgx-h100", instance="p5.48xlarge")
    cloud = sweep.all_cloud
    assert cloud.burst_gpu_hours == pytest.approx(15.0)
    assert cloud.rented_gpu_hours == pytest.approx(24.0)  # 16 + 8 (20 at the peak's 16/12)
    # a fractional step (a mean): 0.5 GPUs is one GPU half the step, paid as 8 half the step
    half = hybrid_sweep([0.5], gpu="H100", server="dgx-h100", instance="p5.48xlarge")
    assert half.all_cloud.rented_gpu_hours == pytest.approx(4.0)
