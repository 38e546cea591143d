"""Audit of the planning REST API and CLI: a boolean where a number is wanted, an interval that
ends before it starts, an empty name and a near-miss kind are errors that say what to fix."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from aistack.cli.plan import app as plan_app
from aistack.errors import AistackError
from aistack.server.deps import get_ctx
from aistack.server.routers.planning import router

runner = CliRunner()


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


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        # {"gpus": true} planned for 1 GPU, {"utilization": true} for 100 %
        ("/plan/tco", {"gpus": True, "gpu": "H100"}, "gpus"),
        ("/plan/tco", {"gpus": 8, "gpu": "H100", "utilization": True}, "utilization"),
        ("/plan/tco", {"gpus": 8, "gpu": "H100", "hybrid_base_gpus": False}, "hybrid_base_gpus"),
        ("/plan/hybrid", {"profile": [True, 2], "gpu": "H100"}, "profile.0"),
        ("/plan/hybrid", {"intervals": [[0, 3600, True]], "gpu": "H100"}, "intervals.0.2"),
        ("/plan/train", {"params": 7e9, "tokens": 1e12, "gpu": "H100", "gpus": True}, "gpus"),
        ("/plan/serve", {"params": 7e9, "gpu": "H100", "concurrency": True}, "concurrency"),
    ],
)
def test_rest_a_boolean_for_a_number_is_refused(
    api: Any, path: str, body: dict[str, Any], where: str
) -> None:
    # the request schema refuses it (a router dependency did): the server's handler for
    # request validation answers, so the whole app (api), with the field as pydantic locates it
    r = api.http.post(f"/api/v1{path}", json=body)
    assert r.status_code == 422, r.text
    [problem] = r.json()["details"]["problems"]
    assert problem.startswith(f"{where}: must be a number, got true") or problem.startswith(
        f"{where}: must be a number, got false"
    )


def test_rest_a_boolean_field_still_takes_a_boolean(client: TestClient) -> None:
    r = client.post(
        "/api/v1/plan/train",
        json={"params": 7e9, "tokens": 1e12, "gpu": "H100", "gpus": 64, "recompute": False},
    )
    assert r.status_code == 200, r.text


def test_rest_an_interval_that_ends_before_it_starts_is_refused(client: TestClient) -> None:
    # it was dropped: the demand was understated, or "no GPU demand to plan for"
    r = client.post(
        "/api/v1/plan/hybrid",
        json={"intervals": [[0, 7200, 8], [7200, 3600, 4]], "gpu": "H100"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["message"] == "intervals[1]: ends (3600 s) before it starts (7200 s)"


def test_rest_catalog_kind_suggests_the_close_one(client: TestClient) -> None:
    r = client.get("/api/v1/plan/catalog", params={"kind": "servers"})
    assert r.status_code == 422 and "did you mean 'server'?" in r.json()["message"]


def test_cli_an_empty_gpu_is_named_as_the_option() -> None:
    # it said "server: unknown server 'None'"
    res = runner.invoke(plan_app, ["tco", "--gpus", "8", "--gpu", ""])
    assert res.exit_code != 0
    assert str(res.exception).startswith("--gpu: must be a name from the catalog")


def test_cli_an_unknown_gpu_is_named_as_the_option() -> None:
    # it said "gpu: unknown GPU 'h10o'" (the error had no field to turn into the option)
    res = runner.invoke(plan_app, ["tco", "--gpus", "8", "--gpu", "h10o"])
    assert res.exit_code != 0
    assert str(res.exception).startswith("--gpu: unknown GPU 'h10o'; did you mean")


def test_cli_catalog_kind_suggests_the_close_one() -> None:
    res = runner.invoke(plan_app, ["catalog", "--kind", "servers"])
    assert res.exit_code != 0 and "did you mean 'server'?" in str(res.exception)


def test_cli_hybrid_records_with_a_running_job_that_starts_after_now(tmp_path: Path) -> None:
    # (guards the interval check: an open record after now lasts nothing, it is not an error)
    import json

    base = {"project": "p", "user": "u", "node": "n", "gpu_type": "H100", "cpus": 1}
    recs = [
        {
            **base,
            "job_id": "1",
            "gpus": 8,
            "start": "2026-01-01T00:00:00Z",
            "end": "2026-01-02T00:00:00Z",
        },
        {**base, "job_id": "2", "gpus": 8, "start": "2999-01-01T00:00:00Z", "end": None},
    ]
    f = tmp_path / "r.json"
    f.write_text(json.dumps(recs))
    res = runner.invoke(plan_app, ["hybrid", "--records", str(f), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["peak_gpus"] == 8
