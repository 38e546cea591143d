"""GET /usage/samples?job_id= takes a job id or a unique prefix, as the other job routes do, and
an unknown id is a 404: it answered [] for both, so the job page opened by a prefix (its other
calls resolve it) drew no usage chart, and a mistyped id read as "no samples yet"."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aistack.server.db.models import AllocationRow, UsageSampleRow


@pytest.fixture
def http(aistack_home: Path) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from aistack.server.app import create_app
    from aistack.settings import Settings

    settings = Settings(home=aistack_home, executor="memory", mlflow_enabled=False)
    app = create_app(settings, start_loop=False)
    ctx = app.state.ctx
    c = TestClient(app, raise_server_exceptions=False)
    c.headers["Authorization"] = f"Bearer {ctx.token}"
    c.ctx = ctx  # type: ignore[attr-defined]
    yield c
    c.close()
    ctx.executor.close()
    ctx.engine.dispose()


def test_samples_by_prefix_and_unknown_job(http: Any) -> None:
    r = http.post("/api/v1/jobs", json={"command": "x"})
    assert r.status_code == 201, r.text
    jid = r.json()["id"]
    with http.ctx.sessions() as s:
        a = AllocationRow(job_id=jid, attempt=0, project="default", user="u", node="mem0")
        s.add(a)
        s.flush()
        s.add(
            UsageSampleRow(
                allocation_id=a.id,
                job_id=jid,
                t=dt.datetime(2026, 11, 1),
                cpu_percent=42.0,
                rss_mb=1.0,
            )
        )
        s.commit()
    got = http.get("/api/v1/usage/samples", params={"job_id": jid[:6]})
    assert got.status_code == 200, got.text
    assert [x["cpu_percent"] for x in got.json()] == [42.0]
    missing = http.get("/api/v1/usage/samples", params={"job_id": "zzzz-no-such-job"})
    assert missing.status_code == 404, missing.text
    assert missing.json()["code"] == "not_found"
    assert "zzzz-no-such-job" in missing.json()["message"] and missing.json()["hint"]
