"""Follow-ups to the audit of the planning inputs: one TCO horizon bound (tco.MAX_HORIZON_MONTHS)
for Python, the CLI and the REST API; a price override with a lower bound as well as an upper
one; a demand profile's step within 1 second and 366 days, in every interface."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli.plan import app as plan_app
from aistack.errors import ValidationError
from aistack.planning import limits, tco, whatif
from aistack.planning.tco import plan_tco
from aistack.planning.whatif import demand_profile, hybrid_sweep

runner = CliRunner()
_TCO = {"gpus": 8, "gpu": "H100"}


# -- horizon_months: one bound ----------------------------------------------------------------
def test_rest_tco_horizon_has_the_python_apis_bound(api: Any) -> None:
    """The schema capped horizon_months at 240 while plan_tco and `plan tco --months` take 1200."""
    assert tco.MAX_HORIZON_MONTHS == 1200
    r = api.http.post("/api/v1/plan/tco", json={**_TCO, "horizon_months": 1200})
    assert r.status_code == 200, r.text
    assert r.json()["horizon_months"] == 1200
    r = api.http.post("/api/v1/plan/tco", json={**_TCO, "horizon_months": 1201})
    assert r.status_code == 422, r.text
    assert "horizon_months" in r.json()["message"] and "1200" in r.json()["message"]


def test_the_schema_reads_the_horizon_bound_from_tco() -> None:
    from aistack.server.schemas.planning import TcoRequest

    le = [m.le for m in TcoRequest.model_fields["horizon_months"].metadata if hasattr(m, "le")]
    assert le == [tco.MAX_HORIZON_MONTHS]


# -- price overrides: a lower bound -----------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "low"),
    [
        ("cloud_usd_per_hour", 1e-300, "0.01"),
        ("cloud_usd_per_hour", 0.001, "0.01"),
        ("server_price_usd", 1e-300, "1,000"),
        ("server_price_usd", 45.0, "1,000"),  # $450,000 typed in ten-thousands
    ],
)
def test_plan_tco_refuses_a_price_override_below_any_real_price(
    field: str, value: float, low: str
) -> None:
    with pytest.raises(ValidationError) as e:
        plan_tco(gpus=8, gpu="H100", **{field: value})
    assert e.value.message == f"{field}: must be at least {low}, got {limits.number(value)}"
    assert e.value.details == {"field": field}
    assert e.value.hint


def test_plan_tco_takes_price_overrides_at_the_bounds() -> None:
    assert limits.MIN_USD_PER_HOUR == 0.01 and limits.MIN_SERVER_USD == 1_000.0
    r = plan_tco(gpus=8, gpu="H100", cloud_usd_per_hour=0.01, server_price_usd=1_000.0)
    assert r.gpus == 8


def test_rest_plan_tco_refuses_a_tiny_cloud_price(api: Any) -> None:
    r = api.http.post("/api/v1/plan/tco", json={**_TCO, "cloud_usd_per_hour": 1e-300})
    assert r.status_code == 422, r.text
    assert r.json()["message"] == "cloud_usd_per_hour: must be at least 0.01, got 1e-300"
    assert r.json()["details"] == {"field": "cloud_usd_per_hour"}


def test_cli_plan_tco_names_the_option_of_a_tiny_server_price() -> None:
    res = runner.invoke(plan_app, ["tco", "--gpus", "8", "--gpu", "H100", "--server-price", "5"])
    assert isinstance(res.exception, ValidationError), res.output
    assert str(res.exception.message) == "--server-price: must be at least 1,000, got 5"


# -- a demand profile's step ------------------------------------------------------------------
_SPAN = "from 1 second to 366 days"


@pytest.mark.parametrize("step_s", [1e300, 1e-300, 0.5, 366 * 86_400.0 + 1])
def test_demand_profile_refuses_an_absurd_step(step_s: float) -> None:
    with pytest.raises(ValidationError) as e:
        demand_profile([(0, 3600, 8)], step_s=step_s)
    assert e.value.message == (
        f"step_s: must be {_SPAN} (1 to 31,622,400 seconds), got {limits.number(step_s)}"
    )
    assert e.value.details == {"field": "step_s"}


@pytest.mark.parametrize("step_h", [1e300, 1e-300])
def test_hybrid_sweep_refuses_an_absurd_step(step_h: float) -> None:
    """step_h 1e300 priced a demand of 1e300 GPU-hours; 1e-300 one of nothing."""
    with pytest.raises(ValidationError) as e:
        hybrid_sweep([8.0, 16.0], step_h=step_h, gpu="H100")
    assert e.value.message.startswith(f"step_h: must be {_SPAN} (0.000278 to 8,784 hours), got ")
    assert e.value.details == {"field": "step_h"}


def test_the_step_bounds_take_their_ends() -> None:
    assert (whatif.MIN_STEP_S, whatif.MAX_STEP_S) == (1.0, 366 * 86_400.0)
    assert demand_profile([(0, 2, 1)], step_s=1.0) == [1.0, 1.0]
    assert demand_profile([(0, 3600, 8)], step_s=366 * 86_400.0) == [8 * 3600 / (366 * 86_400)]
    assert hybrid_sweep([8.0], step_h=366 * 24.0, gpu="H100").span_hours == 366 * 24.0


@pytest.mark.parametrize(
    ("body", "got"),
    [
        ({"profile": [8, 16], "step_minutes": 1e300}, "1e+300"),
        ({"profile": [8, 16], "step_minutes": 1e-300}, "1e-300"),
        ({"intervals": [[0, 3600, 8]], "step_minutes": 1e-300}, "1e-300"),
        ({"intervals": [[0, 3600, 8]], "step_minutes": 600_000}, "600,000"),
    ],
)
def test_rest_plan_hybrid_refuses_an_absurd_step(api: Any, body: dict[str, Any], got: str) -> None:
    r = api.http.post("/api/v1/plan/hybrid", json={**body, "gpu": "H100"})
    assert r.status_code == 422, r.text
    assert r.json()["message"] == (
        f"step_minutes: must be {_SPAN} (0.0167 to 527,040 minutes), got {got}"
    )
    assert r.json()["details"] == {"field": "step_minutes"}
    assert r.json()["hint"]


def test_cli_plan_hybrid_refuses_an_absurd_step(tmp_path: Any) -> None:
    f = tmp_path / "t.csv"
    f.write_text("job_id,submission_time,duration,num_gpu\nx,0,3600,8\n")
    res = runner.invoke(
        plan_app, ["hybrid", "--trace", str(f), "--gpu", "H100", "--step-minutes", "1e300"]
    )
    assert isinstance(res.exception, ValidationError), res.output
    assert res.exception.message == (
        f"--step-minutes: must be {_SPAN} (0.0167 to 527,040 minutes), got 1e+300"
    )
