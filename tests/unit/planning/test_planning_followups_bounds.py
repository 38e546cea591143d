"""Follow-ups to the audit of the planning inputs: one TCO horizon bound (tco.MAX_HORIZON_MONTHS)
for Python, the CLI and the REST API."""

from __future__ import annotations

from typing import Any

from aistack.planning import tco

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
