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


_REC = {
    "job_id": "1",
    "project": "p",
    "user": "u",
    "node": "n",
    "gpus": 1,
    "gpu_type": "H100",
    "cpus": 1,
    "start": "2026-11-01T00:00:00Z",
    "end": "2026-11-01T02:00:00Z",
}
_JOB_ID = "must be a string or a whole number from 0 to 9223372036854775807"
_GPU_HINT = (
    'one accelerator name of the catalog, e.g. "gpu_type": "H100" (null when unknown or for a '
    "CPU-only record)"
)


@pytest.mark.parametrize(
    ("field", "value", "message", "hint"),
    [
        (
            "job_id",
            12.5,
            f"{_JOB_ID}, got a number 12.5",
            'e.g. "job_id": "1042" or "job_id": 1042',
        ),
        (
            "job_id",
            12.0,
            f"{_JOB_ID}, got a number 12.0",
            'e.g. "job_id": "1042" or "job_id": 1042',
        ),
        (
            "job_id",
            True,
            f"{_JOB_ID}, got a boolean true",
            'e.g. "job_id": "1042" or "job_id": 1042',
        ),
        ("job_id", -3, f"{_JOB_ID}, got a number -3", 'e.g. "job_id": "1042" or "job_id": 1042'),
        (
            "job_id",
            ["1"],
            f'{_JOB_ID}, got a list ["1"]',
            'e.g. "job_id": "1042" or "job_id": 1042',
        ),
        (
            "job_id",
            {"a": 1},
            f'{_JOB_ID}, got an object {{"a": 1}}',
            'e.g. "job_id": "1042" or "job_id": 1042',
        ),
        ("job_id", None, f"{_JOB_ID}, got null", 'e.g. "job_id": "1042" or "job_id": 1042'),
        ("gpu_type", ["H100"], 'must be a string or null, got a list ["H100"]', _GPU_HINT),
        ("gpu_type", {"a": 1}, 'must be a string or null, got an object {"a": 1}', _GPU_HINT),
        ("gpu_type", 100, "must be a string or null, got a number 100", _GPU_HINT),
        ("gpu_type", False, "must be a string or null, got a boolean false", _GPU_HINT),
        ("project", ["p"], 'must be a string, got a list ["p"]', 'e.g. "project": "vision"'),
        ("user", None, "must be a string, got null", 'e.g. "user": "alice"'),
        ("node", {"n": 1}, 'must be a string, got an object {"n": 1}', 'e.g. "node": "node-1"'),
    ],
)
def test_usage_record_text_fields_that_are_not_strings_are_422(
    client: TestClient, field: str, value: object, message: str, hint: str
) -> None:
    """``{"gpu_type": ["H100"]}`` was priced as a GPU named "['H100']" (a 404 "unknown
    accelerator"), ``{"gpu_type": {"a": 1}}`` and a list or null project, user or node were
    stored as their Python text ("None"); each is a 422 naming the record and the field."""
    r = client.post(
        "/api/v1/plan/usage",
        json={"records": [_REC, {**_REC, field: value}], "now": "2026-11-28T00:00:00Z"},
    )
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["message"] == f"records[1].{field}: {message}"
    assert body["hint"] == hint


def test_usage_record_with_a_whole_number_job_id_is_priced_under_its_decimal_text(
    client: TestClient,
) -> None:
    """Slurm's exports give job ids as JSON numbers: 12 is job "12" (the same job as "12")."""
    r = client.post(
        "/api/v1/plan/usage",
        json={
            "records": [{**_REC, "job_id": 12}, {**_REC, "job_id": "12"}],
            "sheet": "lambda",
            "now": "2026-11-28T00:00:00Z",
        },
    )
    assert r.status_code == 200, r.text
    (job,) = r.json()["by_job"]
    assert job["key"] == "12" and job["jobs"] == 1 and job["gpu_hours"] == 4.0
