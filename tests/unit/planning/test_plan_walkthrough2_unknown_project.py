"""`cost report --project NAME`: an unknown project is an error that lists the known ones, in the
CLI (the server's GET /projects, or the names a records or budgets file gives) and in
GET /cost/report. It was a note over an empty report ("no allocations for project 'nope'")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli import cost as cost_cli
from aistack.cli.cost import app as cost_app
from aistack.errors import NotFoundError


def _rec(project: str) -> dict[str, Any]:
    return {
        "job_id": "j1",
        "project": project,
        "user": "ann",
        "node": "n1",
        "gpus": 8,
        "gpu_type": "H100",
        "cpus": 8,
        "start": "2026-11-01T00:00:00Z",
        "end": "2026-11-01T00:00:11Z",
        "gpu_util": 50.0,
        "cpu_util": 5.0,
    }


def test_unknown_project_in_a_records_file(tmp_path: Path, aistack_home: Path) -> None:
    f = tmp_path / "recs.json"
    f.write_text(json.dumps({"allocations": [_rec("vision")], "projects": [{"name": "nlp"}]}))
    now = ["--now", "2026-11-01T00:00:11Z"]
    res = CliRunner().invoke(cost_app, ["report", "--records", str(f), "--project", "nope", *now])
    assert isinstance(res.exception, NotFoundError), res.output
    assert str(res.exception).startswith("--project: unknown project 'nope' in ")
    assert res.exception.hint == "known projects: nlp, vision"
    ok = CliRunner().invoke(cost_app, ["report", "--records", str(f), "--project", "nlp", *now])
    assert ok.exit_code == 0, ok.output  # a known project without usage is a report


def test_unknown_project_on_the_server(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    r = api.http.put("/api/v1/projects/vision", json={"monthly_budget_usd": 100})
    assert r.status_code == 200, r.text
    monkeypatch.setattr(cost_cli, "client", lambda: api.client)
    res = CliRunner().invoke(cost_app, ["report", "--project", "nope"])
    assert isinstance(res.exception, NotFoundError), res.output
    assert res.exception.message == "--project: unknown project 'nope' on the server"
    assert res.exception.hint == "known projects: vision"
    assert CliRunner().invoke(cost_app, ["report", "--project", "vision"]).exit_code == 0

    route = api.http.get("/api/v1/cost/report", params={"project": "nope"})
    assert route.status_code == 404, route.text
    assert route.json()["message"] == "project: unknown project 'nope'"
    assert route.json()["hint"] == "known projects: vision"
    assert api.http.get("/api/v1/cost/report", params={"project": "vision"}).status_code == 200
