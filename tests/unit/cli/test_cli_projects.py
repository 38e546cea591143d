"""`aistack projects set|ls` against the app in process: partial updates, clearing, bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from aistack.cli.projects import app
from aistack.errors import ValidationError

runner = CliRunner()


@pytest.fixture
def cli(api, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr("aistack.cli.projects.client", lambda: api.client)
    return api


def _set(*args: str) -> dict:  # type: ignore[type-arg]
    res = runner.invoke(app, ["set", *args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def test_set_changes_only_the_options_given(cli) -> None:  # type: ignore[no-untyped-def]
    p = _set("p5", "--gpu-quota", "4", "--share", "3", "--budget", "50")
    assert (p["gpu_quota"], p["share"], p["monthly_budget_usd"]) == (4, 3.0, 50.0)
    p = _set("p5", "--budget", "100")
    assert (p["gpu_quota"], p["share"], p["monthly_budget_usd"]) == (4, 3.0, 100.0)
    p = _set("p5", "--share", "2")
    assert (p["gpu_quota"], p["share"], p["monthly_budget_usd"]) == (4, 2.0, 100.0)
    [row] = json.loads(runner.invoke(app, ["ls", "--json"]).stdout)
    assert row == {"name": "p5", "gpu_quota": 4, "monthly_budget_usd": 100.0, "share": 2.0}


def test_no_gpu_quota_and_no_budget_clear_on_purpose(cli) -> None:  # type: ignore[no-untyped-def]
    _set("p6", "--gpu-quota", "4", "--share", "3", "--budget", "50")
    p = _set("p6", "--no-gpu-quota")
    assert (p["gpu_quota"], p["share"], p["monthly_budget_usd"]) == (None, 3.0, 50.0)
    p = _set("p6", "--no-budget")
    assert (p["gpu_quota"], p["share"], p["monthly_budget_usd"]) == (None, 3.0, None)
    res = runner.invoke(app, ["set", "p6", "--gpu-quota", "2", "--no-gpu-quota"])
    assert isinstance(res.exception, ValidationError) and "not both" in str(res.exception)


def test_new_project_gets_defaults_and_text_output(cli) -> None:  # type: ignore[no-untyped-def]
    res = runner.invoke(app, ["set", "fresh", "--budget", "10"])
    assert res.exit_code == 0, res.output
    assert "quota unlimited, fair-share weight 1, budget $10.00/month" in res.stdout


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--share", "nan"], "--share"),
        (["--budget", "inf"], "--budget"),
    ],
)
def test_non_finite_numbers_are_clear_errors(cli, args: list[str], field: str) -> None:  # type: ignore[no-untyped-def]
    res = runner.invoke(app, ["set", "p7", *args])
    assert isinstance(res.exception, ValidationError), res.output
    assert field in str(res.exception) and "finite" in str(res.exception)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--gpu-quota", "-1"], "--gpu-quota -1: must be greater than or equal to 0"),
        (["--gpu-quota", "99999999"], "--gpu-quota 99999999: must be less than or equal to"),
        (["--budget", "-5"], "--budget -5: must be greater than or equal to 0"),
        (["--share", "0"], "--share 0: must be greater than 0"),
    ],
)
def test_bad_values_name_the_option_not_the_api_field(cli, args: list[str], said: str) -> None:  # type: ignore[no-untyped-def]
    res = runner.invoke(app, ["set", "p1", *args])
    assert isinstance(res.exception, ValidationError), res.output
    msg = str(res.exception)
    assert said in msg and f"`aistack projects set p1 {args[0]} " in msg
    assert "/api/v1/docs" not in msg and "gpu_quota" not in msg and "budget_usd" not in msg
    assert cli.http.get("/api/v1/projects").json() == []  # nothing stored


def test_api_rejects_nan_inf_huge_and_bad_names(api) -> None:  # type: ignore[no-untyped-def]
    put = api.http.put
    for body in (
        '{"share": NaN}',
        '{"monthly_budget_usd": Infinity}',
        '{"gpu_quota": 99999999999999999999}',
        '{"share": 0}',
    ):
        r = put("/api/v1/projects/p8", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, (body, r.text)
        assert r.json()["code"] == "invalid"
    r = put("/api/v1/projects/bad name!", json={"gpu_quota": 1})
    assert r.status_code == 422 and "not a valid name" in r.json()["message"]
    assert api.http.get("/api/v1/projects").json() == []  # nothing stored by the refused calls


def test_projects_that_only_have_jobs_are_listed_with_the_defaults(api) -> None:  # type: ignore[no-untyped-def]
    api.http.post("/api/v1/jobs", json={"command": "x", "project": "alpha"})
    api.http.put("/api/v1/projects/beta", json={"gpu_quota": 2})
    rows = {p["name"]: p for p in api.http.get("/api/v1/projects").json()}
    assert list(rows) == ["alpha", "beta"]
    assert rows["alpha"] == {
        "name": "alpha",
        "gpu_quota": None,
        "monthly_budget_usd": None,
        "share": 1.0,
    }
    assert api.http.get("/api/v1/projects/alpha").json()["share"] == 1.0
    assert api.http.get("/api/v1/projects/nope").status_code == 404
