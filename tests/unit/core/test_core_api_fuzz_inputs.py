"""Malformed input found by fuzzing the REST API: each is a 4xx in the error shape that names
the parameter or field at fault, never a 500 (nor a 4xx that blames another field)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def db_api(aistack_home: Path, database_url: str | None) -> Iterator[Any]:
    """The app in process on SQLite and on PostgreSQL (which refuses NUL in text: a NUL that
    reached a query was a 500 there)."""
    from fastapi.testclient import TestClient

    from aistack.server.app import create_app
    from aistack.settings import Settings

    settings = Settings(
        home=aistack_home, executor="memory", mlflow_enabled=False, database_url=database_url
    )
    app = create_app(settings, start_loop=False)
    ctx = app.state.ctx
    http = TestClient(app, raise_server_exceptions=False)
    http.headers["Authorization"] = f"Bearer {ctx.token}"
    yield http
    http.close()
    ctx.executor.close()
    ctx.engine.dispose()


@pytest.mark.parametrize(
    ("method", "path", "params", "name"),
    [
        ("GET", "/api/v1/jobs/a%00b", None, "job_id"),
        ("GET", "/api/v1/jobs/%00/logs", None, "job_id"),
        ("GET", "/api/v1/jobs/%00/events", None, "job_id"),
        ("POST", "/api/v1/jobs/%00/cancel", None, "job_id"),
        ("GET", "/api/v1/jobs", {"project": "\x00"}, "project"),
        ("GET", "/api/v1/jobs", {"before": "a\x00"}, "before"),
        ("GET", "/api/v1/projects/a%00b", None, "name"),
        ("GET", "/api/v1/usage/allocations", {"project": "\x00"}, "project"),
        ("GET", "/api/v1/usage/allocations", {"job_id": "\x00"}, "job_id"),
        ("GET", "/api/v1/usage/samples", {"job_id": "\x00"}, "job_id"),
        ("GET", "/api/v1/cost/report", {"project": "p\x00"}, "project"),
    ],
)
def test_a_nul_character_in_a_parameter_is_422(  # type: ignore[no-untyped-def]
    db_api, method: str, path: str, params: dict[str, str] | None, name: str
) -> None:
    r = db_api.request(method, path, params=params)
    assert r.status_code == 422, r.text
    body = r.json()
    assert set(body) == {"code", "message", "hint", "details"}, body
    assert body["code"] == "invalid" and name in body["message"] and body["hint"], body
    assert body["details"]["field"] == name


def test_a_refused_nul_cancel_leaves_the_jobs_alone(db_api) -> None:  # type: ignore[no-untyped-def]
    r = db_api.post("/api/v1/jobs", json={"command": "x"})
    assert r.status_code == 201, r.text
    before = db_api.get("/api/v1/jobs").json()
    assert db_api.post(f"/api/v1/jobs/{r.json()['id']}%00/cancel").status_code == 422
    assert db_api.get("/api/v1/jobs").json() == before


# -- /plan/usage: allocation records ---------------------------------------------------------------
def _record(**over: Any) -> str:
    fields = {
        "job_id": '"j"',
        "project": '"p"',
        "user": '"u"',
        "node": '"n"',
        "gpus": "1",
        "gpu_type": '"H100"',
        "cpus": "1",
        "start": '"2025-01-01T00:00:00Z"',
        "end": '"2025-01-01T01:00:00Z"',
    }
    fields.update(over)
    return '{"records": [{' + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}]}"


@pytest.mark.parametrize("field", ["gpus", "cpus"])
@pytest.mark.parametrize(
    "value", ["NaN", "Infinity", "-Infinity", "1e400", "1" + "0" * 400, "1e300"]
)
def test_plan_usage_record_counts_that_are_not_finite_or_too_big_are_422(  # type: ignore[no-untyped-def]
    api, field: str, value: str
) -> None:
    """NaN was a 500, a 400-digit integer a 500 (its price overflowed), infinity a 422 that
    blamed "a start or end time", 1e300 GPUs a priced report."""
    r = api.http.post(
        "/api/v1/plan/usage",
        content=_record(**{field: value}),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422, r.text
    msg = r.json()["message"]
    assert f"records[0].{field}" in msg and "time" not in msg, msg


def test_plan_usage_record_at_the_count_limit_is_priced(api) -> None:  # type: ignore[no-untyped-def]
    r = api.http.post(
        "/api/v1/plan/usage",
        content=_record(gpus="1000000", cpus="1000000.0"),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["total"]["gpu_hours"] == 1_000_000


# -- /plan/tco and /plan/hybrid: an empty name -------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/plan/tco", {"gpus": 8, "gpu": ""}, "gpu"),
        ("/api/v1/plan/tco", {"gpus": 8, "server": ""}, "server"),
        ("/api/v1/plan/tco", {"gpus": 8, "instance": ""}, "instance"),
        ("/api/v1/plan/hybrid", {"profile": [1, 2], "gpu": ""}, "gpu"),
        ("/api/v1/plan/hybrid", {"profile": [1, 2], "server": ""}, "server"),
        ("/api/v1/plan/hybrid", {"profile": [1, 2], "instance": ""}, "instance"),
    ],
)
def test_an_empty_catalog_name_is_422_naming_it(api, path: str, body, field: str) -> None:  # type: ignore[no-untyped-def]
    """``gpu: ""`` was a 404 "unknown server 'None'" (or instance): a name nobody gave."""
    r = api.http.post(path, json=body)
    assert r.status_code == 422, r.text
    msg = r.json()["message"]
    assert f"{field}:" in msg and "'None'" not in msg, msg


# -- lone surrogates (a JSON "\ud800" escape): not text, cannot be stored or sent back -------------
_LONE = '"\\ud800"'
_REC = (
    '{"job_id": %s, "project": "p", "user": "u", "node": "n", "gpus": 1, "gpu_type": %s,'
    ' "cpus": 1, "start": "2025-01-01T00:00:00Z"}'
)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/jobs", '{"command": "\\ud800"}', "command"),
        ("/api/v1/jobs", '{"script": "\\ud800"}', "script"),
        ("/api/v1/jobs", '{"command": "x", "workdir": "\\ud800"}', "workdir"),
        ("/api/v1/jobs", '{"command": "x", "env": {"A": "\\ud800"}}', "env.A"),
        ("/api/v1/jobs", '{"command": "x", "inputs": ["d@v1", "\\udc00"]}', "inputs.1"),
        ("/api/v1/jobs", '{"command": "x", "env": {"\\ud800": "1"}}', "env.\\ud800"),
        (
            "/api/v1/plan/usage",
            '{"records": [%s]}' % (_REC % (_LONE, '"H100"')),
            "records.0.job_id",
        ),
        ("/api/v1/plan/usage", '{"records": [%s]}' % (_REC % ('"j"', _LONE)), "records.0.gpu_type"),
        (
            "/api/v1/plan/usage",
            '{"records": [], "projects": [{"name": "\\ud800", "monthly_budget_usd": 1}]}',
            "projects.0.name",
        ),
        (
            "/api/v1/plan/usage",
            '{"records": [], "default_gpu_type": "\\ud800"}',
            "default_gpu_type",
        ),
    ],
)
def test_a_lone_surrogate_in_a_body_is_422_and_stores_nothing(  # type: ignore[no-untyped-def]
    api, path: str, body: str, field: str
) -> None:
    """``{"command": "\\ud800"}`` stored the job, then answered 500 (its echo could not be
    encoded); env values were stored as they came, plan/usage answered 500."""
    before = api.http.get("/api/v1/jobs").json()
    r = api.http.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    got = r.json()
    assert got["code"] == "invalid" and got["message"].startswith(f"{field}: "), got
    assert got["hint"] and got["details"]["field"] == field
    assert api.http.get("/api/v1/jobs").json() == before


def test_a_surrogate_pair_escape_is_one_character(api) -> None:  # type: ignore[no-untyped-def]
    r = api.http.post(
        "/api/v1/jobs",
        content='{"command": "echo \\ud83d\\ude00"}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["command"] == "echo \U0001f600"


def test_a_body_the_json_decoder_refuses_says_how_to_fix_it(api) -> None:  # type: ignore[no-untyped-def]
    """A number of more than 4,300 digits (Python's int limit) makes FastAPI answer a bare
    "There was an error parsing the body" with no hint; now it says what to send."""
    before = api.http.get("/api/v1/jobs").json()
    body = '{"command": "echo hi", "priority": ' + "9" * 5000 + "}"
    r = api.http.post("/api/v1/jobs", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()
    assert err["message"] == "the body could not be read as JSON"
    assert "4,300 digits" in err["hint"] and "set_int_max_str_digits" not in r.text
    assert api.http.get("/api/v1/jobs").json() == before
