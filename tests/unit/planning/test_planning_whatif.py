"""What-if own vs burst: demand profiles and the fleet-size sweep against hand-computed costs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aistack.errors import ValidationError
from aistack.planning.catalog import load_catalog
from aistack.planning.tco import HOURS_PER_MONTH, onprem_cost
from aistack.planning.whatif import demand_profile, hybrid_sweep, read_trace_csv

CAT = load_catalog(include_user=False)
ITP = (
    Path(__file__).resolve().parents[3].parent
    / "shared"
    / "data"
    / "traces"
    / "itp"
    / "cluster01.csv"
)


def test_demand_profile_partial_steps() -> None:
    assert demand_profile([(0, 3600, 2), (1800, 5400, 4)]) == [4.0, 2.0]
    assert demand_profile([(0, 3600, 2)], origin=-3600, end=7200) == [0.0, 2.0, 0.0]
    assert demand_profile([]) == []
    with pytest.raises(ValidationError, match="step_s"):
        demand_profile([(0, 1, 1)], step_s=0)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 1e5), st.floats(1, 5e4), st.integers(1, 64)), min_size=1, max_size=30
    )
)
def test_profile_conserves_gpu_hours(jobs: list[tuple[float, float, int]]) -> None:
    ivs = [(a, a + d, g) for a, d, g in jobs]
    prof = demand_profile(ivs, step_s=900)
    assert sum(prof) * 0.25 == pytest.approx(sum((b - a) * g for a, b, g in ivs) / 3600, rel=1e-9)


def test_sweep_hand_computed() -> None:
    # 720 hours: 8 GPUs busy the whole time, another 8 for half of it
    prof = [16.0] * 360 + [8.0] * 360
    s = hybrid_sweep(prof, server="hgx-h100-oem", instance="p5.48xlarge", catalog=CAT)
    price = CAT.instance("p5.48xlarge").gpu_hour_usd()
    months = 720 / HOURS_PER_MONTH
    assert [o.servers for o in s.options] == [0, 1, 2]
    assert s.all_cloud.cost_usd == pytest.approx((16 * 360 + 8 * 360) * price)
    one = s.options[1]
    assert one.owned_utilization == pytest.approx(1.0) and one.burst_gpu_hours == pytest.approx(
        8 * 360
    )
    assert one.cost_usd == pytest.approx(
        onprem_cost(CAT.server("hgx-h100-oem"), 1, CAT).amortized_month(1.0) * months
        + 8 * 360 * price
    )
    two = s.options[2]
    assert two.owned_utilization == pytest.approx(0.75) and two.burst_gpu_hours == 0
    assert s.best == min(s.options, key=lambda o: o.cost_usd)
    assert "cheapest mix owns" in s.sentence()


def test_sweep_prefers_renting_spiky_demand() -> None:
    prof = [0.0] * 700 + [64.0] * 20  # a burst of 20 hours a month
    s = hybrid_sweep(prof, gpu="H100", catalog=CAT)
    assert s.best.servers == 0 and "renting everything is cheapest" in s.sentence()


def test_sweep_bad_input() -> None:
    with pytest.raises(ValidationError, match="no GPU demand"):
        hybrid_sweep([0.0, 0.0], gpu="H100", catalog=CAT)
    with pytest.raises(ValidationError, match="give gpu"):
        hybrid_sweep([1.0], catalog=CAT)


def test_trace_csv(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("job_id,submission_time,duration,num_gpu\na,0,3600,8\nb,100,60,1\n")
    assert read_trace_csv(str(f)) == [(0.0, 3600.0, 8), (100.0, 160.0, 1)]
    (tmp_path / "bad.csv").write_text("job,start\n1,2\n")
    with pytest.raises(ValidationError, match="needs columns"):
        read_trace_csv(str(tmp_path / "bad.csv"))


def test_itp_trace_sweep() -> None:
    if not ITP.is_file():
        pytest.skip(f"ITP traces not found at {ITP} (the shared data folder is absent)")
    ivs = read_trace_csv(str(ITP))
    s = hybrid_sweep(demand_profile(ivs), gpu="H100", server="hgx-h100-oem", catalog=CAT)
    assert s.demand_gpu_hours == pytest.approx(sum((b - a) * g for a, b, g in ivs) / 3600)
    assert s.best.cost_usd <= min(s.all_cloud.cost_usd, s.own_peak.cost_usd)
    assert 0 < s.best.owned_gpus < s.own_peak.owned_gpus


def test_unlike_gpus_between_server_and_instance_are_noted() -> None:
    """Owning H100 servers against renting A100s was compared silently (plan tco notes it)."""
    from aistack.planning.report import render_hybrid

    prof = [8.0] * 24 * 30
    s = hybrid_sweep(prof, server="hgx-h100-oem", instance="lambda-8x-a100-80gb")
    assert any("unlike GPUs" in n and "A100-80GB" in n for n in s.notes)
    assert "note: comparing unlike GPUs" in render_hybrid(s)
    assert hybrid_sweep(prof, gpu="H100").notes == []
