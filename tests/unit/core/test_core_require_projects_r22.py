"""AISTACK_REQUIRE_PROJECTS: jobs of a project nobody created are refused (as Slurm refuses an
unknown account with AccountingStorageEnforce=associations), naming the closest projects; off
by default, where a project is whatever a job names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from aistack.server.app import create_app
from aistack.settings import Settings


def _http(home: Path, **kw: object) -> Iterator[TestClient]:
    settings = Settings(home=home, executor="memory", mlflow_enabled=False, **kw)
    app = create_app(settings, start_loop=False)
    ctx = app.state.ctx
    with TestClient(app, raise_server_exceptions=False) as http:
        http.headers["Authorization"] = f"Bearer {ctx.token}"
        yield http
    ctx.executor.close()
    ctx.engine.dispose()


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[TestClient]:
    yield from _http(tmp_path, require_projects=True)


@pytest.fixture
def lax(tmp_path: Path) -> Iterator[TestClient]:
    yield from _http(tmp_path)


def test_an_unknown_project_is_refused_with_the_closest_named(strict: TestClient) -> None:
    r = strict.put("/api/v1/projects/research", json={"gpu_quota": 2})
    assert r.status_code == 200, r.text
    r = strict.post("/api/v1/jobs", json={"command": "true", "project": "reserach"})
    assert r.status_code in (400, 422), r.text
    body = r.json()
    assert "'reserach' does not exist" in body["message"]
    assert "did you mean 'research'" in body["message"]
    assert "aistack projects set reserach" in body["hint"]
    assert strict.get("/api/v1/jobs").json() == []  # nothing stored


def test_created_and_default_projects_are_taken(strict: TestClient) -> None:
    assert strict.put("/api/v1/projects/research", json={"gpu_quota": 2}).status_code == 200
    for project in ("research", "default"):
        r = strict.post("/api/v1/jobs", json={"command": "true", "project": project})
        assert r.status_code == 201, r.text


def test_off_by_default_a_project_is_what_a_job_names(lax: TestClient) -> None:
    r = lax.post("/api/v1/jobs", json={"command": "true", "project": "anything"})
    assert r.status_code == 201, r.text
