"""/plan router on a bare FastAPI app (the real app mounts it under /api/v1 with auth)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from aistack.errors import AistackError
from aistack.server.deps import get_ctx
from aistack.server.routers.planning import router


@pytest.fixture
def client(aistack_home: Path) -> TestClient:
    app = FastAPI()
    app.include_router(router, prefix="/api/v1")
    app.dependency_overrides[get_ctx] = lambda: SimpleNamespace(
        settings=SimpleNamespace(home=aistack_home)
    )

    @app.exception_handler(AistackError)
    async def _err(_req: Request, exc: AistackError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    return TestClient(app)


def test_train_serve_tco_catalog(client: TestClient) -> None:
    r = client.post(
        "/api/v1/plan/train", json={"params": 7e9, "tokens": 1e12, "gpu": "H100", "gpus": 64}
    )
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["flops"] == pytest.approx(4.2e22) and d["gpus"] == 64 and d["memory_per_gpu_gb"] > 0
    r = client.post(
        "/api/v1/plan/serve", json={"params": 8e9, "gpu": "H100", "kv_heads": 8, "concurrency": 8}
    )
    assert r.status_code == 200 and r.json()["gpus_per_replica"] == 1
    r = client.post(
        "/api/v1/plan/tco",
        json={
            "gpus": 8,
            "instance": "p5.48xlarge",
            "server": "dgx-h200",
            "cloud_usd_per_hour": 84,
            "horizon_months": 12,
        },
    )
    assert r.status_code == 200 and r.json()["breakeven_month"] < 12
    r = client.get("/api/v1/plan/catalog", params={"kind": "server", "today": "2026-11-28"})
    assert r.status_code == 200 and r.json()["stale_count"] > 0


def test_usage_pricing(client: TestClient) -> None:
    rec = {
        "job_id": "1",
        "project": "p",
        "user": "u",
        "node": "n",
        "gpus": 8,
        "gpu_type": "H100",
        "cpus": 8,
        "start": "2026-11-01T00:00:00Z",
        "end": "2026-11-01T10:00:00Z",
        "gpu_util": 50,
        "cpu_util": 10,
    }
    r = client.post(
        "/api/v1/plan/usage",
        json={
            "records": [rec],
            "sheet": "lambda",
            "now": "2026-11-28T00:00:00Z",
            "projects": [{"name": "p", "gpu_quota": 8, "monthly_budget_usd": 100}],
        },
    )
    assert r.status_code == 200, r.text
    d = r.json()
    assert (
        d["total"]["cost_usd"] == pytest.approx(80 * 2.99) and d["budgets"][0]["status"] == "over"
    )


def test_bad_input_is_4xx_with_field(client: TestClient) -> None:
    r = client.post(
        "/api/v1/plan/train", json={"params": 7e9, "tokens": 1e12, "gpu": "H100", "gpuz": 8}
    )
    assert r.status_code == 422 and "gpuz" in r.text
    r = client.post(
        "/api/v1/plan/train", json={"params": 7e9, "tokens": 1e12, "gpu": "H1000", "gpus": 8}
    )
    assert r.status_code == 404 and "did you mean" in r.json()["message"]
    r = client.post(
        "/api/v1/plan/train", json={"params": 405e9, "tokens": 15e12, "gpu": "H100", "days": 0.5}
    )
    assert r.status_code == 422 and "fastest possible" in r.json()["message"]


def test_hybrid(client: TestClient) -> None:
    r = client.post(
        "/api/v1/plan/hybrid", json={"profile": [16.0] * 360 + [8.0] * 360, "gpu": "H100"}
    )
    assert r.status_code == 200, r.text
    assert [o["servers"] for o in r.json()["options"]] == [0, 1, 2]
    r = client.post(
        "/api/v1/plan/hybrid", json={"intervals": [[0, 7200, 8]], "step_minutes": 30, "gpu": "H100"}
    )
    assert r.status_code == 200 and r.json()["demand_gpu_hours"] == 16
    r = client.post("/api/v1/plan/hybrid", json={"gpu": "H100"})
    assert r.status_code == 422 and "profile or intervals" in r.json()["message"]
