"""GET /api/v1/cost/report (the dashboard's costs page, ``Client.cost_report``) prices with the
server's catalog: the shipped figures plus AISTACK_HOME/catalog/*.yaml, as /plan/usage and
`aistack cost report` do. It priced with the shipped catalog alone, so a team's own prices
changed every other cost figure but not this one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aistack.server.routers import usage as usage_router


def _cpu_record() -> dict[str, Any]:
    return {
        "job_id": "j1",
        "project": "research",
        "user": "ann",
        "node": "n1",
        "gpus": 0,
        "gpu_type": None,
        "cpus": 4,
        "start": "2026-11-01T00:00:00+00:00",
        "end": "2026-11-01T10:00:00+00:00",  # 40 vCPU-hours
        "gpu_util": None,
        "cpu_util": 50.0,
    }


def test_cost_report_route_uses_the_home_catalog(
    api: Any, aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(usage_router, "allocation_records", lambda db, **kw: [_cpu_record()])
    since = {"since": "2026-11-01T00:00:00Z"}
    shipped = api.http.get("/api/v1/cost/report", params=since)
    assert shipped.status_code == 200, shipped.text
    # 40 vCPU-h at the shipped AWS $0.0504/vCPU-h
    assert shipped.json()["total"]["cost_usd"] == pytest.approx(40 * 0.0504)

    (aistack_home / "catalog").mkdir(parents=True, exist_ok=True)
    (aistack_home / "catalog" / "ours.yaml").write_text(
        "cpu_prices:\n"
        "  - provider: aws\n"
        "    usd_per_vcpu_hour: 0.5\n"
        '    source: "our AWS bill"\n'
        "    as_of: 2026-11-01\n"
    )
    ours = api.http.get("/api/v1/cost/report", params=since)
    assert ours.status_code == 200, ours.text
    assert ours.json()["total"]["cost_usd"] == pytest.approx(40 * 0.5)
    # the same figure /plan/usage gives for the same record with the same catalog
    same = api.http.post("/api/v1/plan/usage", json={"records": [_cpu_record()], **since})
    assert same.status_code == 200, same.text
    assert same.json()["total"]["cost_usd"] == pytest.approx(40 * 0.5)
