"""Bad input to ``aistack serve`` (and /api/v1/services) is refused before anything runs, with
the flag or field to fix; a name that is not a service is "no service", whatever the call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import NotFoundError, ValidationError
from aistack.serving import manager


def test_negative_wait_is_refused_before_deploying(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned: list[str] = []
    monkeypatch.setattr(manager, "_spawn_controller", lambda *a, **k: spawned.append("x"))
    with pytest.raises(ValidationError, match="wait_ready_s: the wait is in seconds") as ei:
        manager.deploy("builtin:echo", name="w", launcher="process", wait_ready_s=-1)
    assert ei.value.details == {"field": "wait_ready_s"}
    assert spawned == [] and manager.list_services() == []  # nothing was deployed
    with pytest.raises(ValidationError, match="wait_s: the wait is in seconds") as ei:
        manager.update("w", "builtin:echo", wait_s=-5)
    assert ei.value.details == {"field": "wait_s"}


def test_scale_and_logs_of_an_unknown_service_are_not_found(aistack_home: Path) -> None:
    with pytest.raises(NotFoundError, match="no service named 'nope'"):
        manager.scale("nope", min_replicas=1)  # was a 409 "has no running controller"
    with pytest.raises(ValidationError, match="tail: give a number of lines") as ei:
        manager.logs("nope", tail=-3)
    assert ei.value.details == {"field": "tail"} and ei.value.hint == "e.g. `tail` 100"


@pytest.mark.parametrize("name", ["..", ".deleted", "../other-home", "a/b", "UPPER"])
def test_names_that_are_not_services_never_reach_outside_services_dir(
    aistack_home: Path, name: str
) -> None:
    graveyard = manager.services_dir() / ".deleted"
    graveyard.mkdir()
    (graveyard / "spec.json").write_text("{}")  # a stray file must not make it a service
    for call in (manager.status, manager.delete, manager.logs):
        with pytest.raises(NotFoundError, match="no service named"):
            call(name)


def test_scale_errors_name_the_field(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from aistack.serving.controller import TOKEN_HEADER, ServiceController, build_app
    from aistack.serving.spec import ServiceSpec

    class Launcher:
        name = "fake"

        def launch(self, **_kw: Any) -> str:
            raise AssertionError("no replica is started here")

    spec = ServiceSpec(name="svc", model="builtin:echo", model_uri="builtin:echo")
    ctl = ServiceController(spec, tmp_path, launcher=Launcher())  # type: ignore[arg-type]
    client = TestClient(build_app(ctl, "tok"))  # no lifespan: the control loop does not run
    h = {TOKEN_HEADER: "tok"}
    r = client.post("/-/scale", json={"min_replicas": -1}, headers=h)
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["message"], err["hint"], err["details"]) == (
        "min_replicas: must be a whole number from 0 to 256, got -1",
        "set `min_replicas` to at least 0; its default is 1",
        {"field": "min_replicas"},
    )
    r = client.post("/-/scale", json={"min_replicas": 9}, headers=h)
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        "min_replicas (9) is above max_replicas (4); lower `min_replicas` or raise `max_replicas`"
    )
    r = client.post("/-/scale", json={"min_replicas": 2, "max_replicas": 3}, headers=h)
    assert r.status_code == 200 and (r.json()["min_replicas"], r.json()["max_replicas"]) == (2, 3)
    assert json.loads((tmp_path / "spec.json").read_text())["autoscale"]["min_replicas"] == 2


def test_delete_refuses_while_the_server_that_runs_its_replica_jobs_is_down(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleting a service whose replicas are jobs while `aistack down`: the jobs could not be
    cancelled and ran on after the service was gone ('deleted' was printed all the same)."""
    from aistack.errors import ConnectionFailed

    d = manager.service_dir("js")
    d.mkdir(parents=True)
    (d / "spec.json").write_text(json.dumps({"name": "js", "model": "builtin:echo"}))
    replica = {"id": "r1", "state": "ready", "handle": "6be282adbbda", "log": "x"}
    (d / "state.json").write_text(json.dumps({"launcher": "jobs", "replicas": [replica]}))

    class Down:
        def __init__(self, **_kw: Any) -> None:
            pass

        def health(self) -> dict[str, Any]:
            raise ConnectionFailed("cannot reach the aistack server at http://127.0.0.1:1")

        def cancel(self, job_id: str) -> None:
            raise ConnectionFailed("cannot reach the aistack server at http://127.0.0.1:1")

    monkeypatch.setattr("aistack.client.Client", Down)
    with pytest.raises(ConnectionFailed, match="6be282adbbda.*does not answer") as ei:
        manager.delete("js")
    assert "aistack up" in (ei.value.hint or "")
    assert (d / "spec.json").exists()  # nothing was deleted: delete again once the server is up


def test_a_tick_that_keeps_failing_is_not_a_log_flood(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio
    import logging

    from aistack.serving.controller import ServiceController
    from aistack.serving.spec import ServiceSpec

    spec = ServiceSpec(
        name="svc", model="builtin:echo", model_uri="builtin:echo", health_interval_s=0.01
    )
    ctl = ServiceController(spec, tmp_path, launcher=object())  # type: ignore[arg-type]

    async def tick() -> None:
        raise ConnectionError("cannot reach the aistack server")

    ctl.tick = tick  # type: ignore[method-assign]

    async def go() -> None:
        task = asyncio.create_task(ctl.run())
        await asyncio.sleep(0.5)  # ~50 failed ticks
        ctl._stopping = True
        await task

    with caplog.at_level(logging.WARNING, logger="aistack.serving.controller"):
        asyncio.run(go())
    lines = [r for r in caplog.records if "tick failed" in r.getMessage()]
    assert len(lines) == 1  # the first, with its traceback; repeats at most once a minute


def test_the_deploy_hint_names_the_endpoint_the_model_has() -> None:
    from aistack.cli.serve import try_it

    st = {"url": "http://127.0.0.1:1", "replicas": []}
    assert "/v1/completions" in try_it(st)  # not known yet: a text model is the usual case
    st["replicas"] = [{"batches": {"invocations": {}}}]
    assert "/invocations" in try_it(st) and "not a text model" in try_it(st)
    st["replicas"] = [{"batches": {"completions": {}, "invocations": {}}}]
    assert "/v1/completions" in try_it(st)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"project": "bad name"}, "project: 'bad name' is not a valid name: use letters"),
        ({"project": "x" * 64}, "is not a valid name"),
        # a priority or cpus out of range is refused by the spec itself now (with what to set):
        # see test_serving_spec_int_bounds.py
    ],
)
def test_a_replica_job_the_scheduler_would_refuse_is_refused_before_deploying(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any], message: str
) -> None:
    """`serve deploy ... --project 'bad name'` exited 0; the service then failed with "invalid
    job spec: project: 'bad name'" and a hint to `serve scale`, which cannot change it."""
    spawned: list[str] = []
    monkeypatch.setattr(manager, "_spawn_controller", lambda *a, **k: spawned.append("x"))
    with pytest.raises(ValidationError) as ei:
        manager.deploy("builtin:echo", name="s2", launcher="process", wait_ready_s=None, **kwargs)
    assert message in ei.value.message
    assert "nothing was deployed" in (ei.value.hint or "")
    assert spawned == [] and manager.list_services() == []
    assert not manager.service_dir("s2").exists()


def test_cli_deploy_names_the_project_flag(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from aistack.cli import serve as serve_cli

    monkeypatch.setattr(manager, "_spawn_controller", lambda *a, **k: None)
    args = ["deploy", "builtin:tiny-gpt", "--name", "s2", "--project", "bad name", "--wait", "0"]
    res = CliRunner().invoke(serve_cli.app, args)
    assert isinstance(res.exception, ValidationError), res.output
    assert res.exception.message.startswith("--project: 'bad name' is not a valid name")
    assert manager.list_services() == []


@pytest.mark.parametrize("wait", [float("nan"), float("inf"), float("-inf")])
def test_nan_or_infinite_wait_is_refused_before_deploying(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch, wait: float
) -> None:
    """`--wait nan` deployed the service, then said it was not ready "after nan s"."""
    spawned: list[str] = []
    monkeypatch.setattr(manager, "_spawn_controller", lambda *a, **k: spawned.append("x"))
    monkeypatch.setattr(manager, "wait_ready", lambda *a: pytest.fail(f"waited {a[2]} s"))
    with pytest.raises(ValidationError, match="wait_ready_s: the wait is a finite number"):
        manager.deploy("builtin:echo", name="w", launcher="process", wait_ready_s=wait)
    assert spawned == [] and manager.list_services() == []
    with pytest.raises(ValidationError, match="wait_s: the wait is a finite number") as ei:
        manager.update("w", "builtin:echo", wait_s=wait)
    assert ei.value.hint == "pass e.g. `wait_s` 300, or 0 to return at once without waiting"


def test_a_wait_that_runs_out_says_the_service_is_deployed_and_keeps_starting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It said "0 of 1 replicas ready after 0.5 s" as if nothing was deployed; a second deploy
    then answered "already running"."""
    from aistack.errors import ConflictError

    monkeypatch.setattr(manager, "status", lambda name: {"ready_replicas": 0, "replicas": []})
    with pytest.raises(ConflictError) as ei:
        manager.wait_ready("s1", 1, 0.05)
    assert ei.value.message == (
        "service 's1' is deployed and still starting: 0 of 1 replicas ready after 0.05 s"
    )
    hint = ei.value.hint or ""
    assert "keeps starting" in hint and "`aistack serve status s1`" in hint
    assert "`aistack serve delete s1`" in hint


@pytest.mark.parametrize("uri", ["builtin:tiny-gpt", "runs:/abc/model"])
def test_update_to_a_bare_version_of_a_service_without_a_registered_model(
    monkeypatch: pytest.MonkeyPatch, uri: str
) -> None:
    """`serve update s1 --to :99` of a built-in service said "'' is not a valid registered model
    name"."""
    from typer.testing import CliRunner

    from aistack.cli import serve as serve_cli

    with pytest.raises(ValidationError) as ei:
        manager.target_ref({"name": "s1", "model_uri": uri}, ":99")
    assert "''" not in ei.value.message
    assert ei.value.message.startswith("to: service 's1' serves ")  # the field: API and SDK
    assert "so a version alone (:99) does not apply" in ei.value.message
    assert "not a registered model" in ei.value.message
    assert "`to` NAME:VERSION" in (ei.value.hint or "") and "--" not in (ei.value.hint or "")
    assert ei.value.details == {"field": "to"}
    if uri.startswith("builtin:"):
        assert "a built-in model (builtin:tiny-gpt)" in ei.value.message

    monkeypatch.setattr(manager, "status", lambda name: {"name": name, "model_uri": uri})
    monkeypatch.setattr(manager, "update", lambda *a, **k: pytest.fail("nothing to roll to"))
    res = CliRunner().invoke(serve_cli.app, ["update", "s1", "--to", ":99"])
    assert isinstance(res.exception, ValidationError)
    assert res.exception.message.startswith("--to :99: service 's1' serves ")  # the option
    assert "--to NAME:VERSION" in (res.exception.hint or "")
    assert res.exception.details == {"field": "--to"}
    # a registered model's service still takes a bare version
    assert manager.target_ref({"model_uri": "models:/gpt/3"}, ":4") == "gpt:4"


def test_update_of_a_builtin_service_to_an_alias_says_it_serves_a_builtin_model(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve update s1 --to production` of a built-in service looked up a registered model
    named 'production' ("no registered model named 'production'", or a registry that does not
    answer): now it says the service has no registered model to take an alias of, and what
    to do; the API (POST /services/s1/update) answers the same."""
    from typer.testing import CliRunner

    from aistack.cli import serve as serve_cli

    monkeypatch.setattr(manager, "status", lambda name: {"name": name, "model_uri": "builtin:echo"})
    monkeypatch.setattr(manager, "update", lambda *a, **k: pytest.fail("nothing to roll to"))
    res = CliRunner().invoke(serve_cli.app, ["update", "s1", "--to", "production"])
    err = res.exception
    assert isinstance(err, ValidationError), (err, res.output)
    assert err.message == (
        "--to production: service 's1' serves a built-in model (builtin:echo), not a "
        "registered model, so an alias alone (production) does not apply (there is no "
        "registered model to pick it from)"
    )
    hint = err.hint or ""
    assert (
        "to change the built-in model: --to builtin:NAME (builtin:echo, builtin:tiny-gpt)" in hint
    )
    assert "--to NAME:VERSION or --to NAME@alias" in hint
    assert "`aistack serve deploy NAME@alias`" in hint
    # the API names its field `to` where the CLI names --to, and says the rest the same
    r = api.http.post("/api/v1/services/s1/update", json={"to": "production"})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["message"] == "to" + err.message.removeprefix("--to production")
    assert body["hint"] == hint.replace("--to", "`to`")
    assert body["details"] == {"field": "to"} and "--" not in body["message"] + body["hint"]
    # what still goes through: another built-in, a named registered model, a model directory
    st = {"name": "s1", "model_uri": "builtin:echo"}
    assert manager.target_ref(st, "builtin:tiny-gpt") == "builtin:tiny-gpt"
    assert manager.target_ref(st, "iris@production") == "iris@production"
    assert manager.target_ref(st, "iris:3") == "iris:3"
    assert manager.target_ref(st, "./model") == "./model"


def test_the_api_refuses_a_bad_project_before_deploying(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POST /services goes through the same check (422, nothing stored)."""
    from aistack.server.app import API_PREFIX

    spawned: list[str] = []
    monkeypatch.setattr(manager, "_spawn_controller", lambda *a, **k: spawned.append("x"))
    body = {"model": "builtin:echo", "name": "s2", "project": "bad name", "launcher": "process"}
    r = api.http.post(f"{API_PREFIX}/services", json=body)
    assert r.status_code == 422, r.text
    assert "project: 'bad name' is not a valid name" in r.json()["message"]
    assert spawned == [] and manager.list_services() == []


# -- the tracking URI: checked before a deploy or an update stores anything ----------------------


def _stored_service(name: str) -> tuple[Path, dict[str, bytes]]:
    """A service as a deploy leaves it (spec, state) whose controller is down: what a failed
    deploy over it, or a failed update of it, must leave as it was."""
    d = manager.service_dir(name)
    (d / "logs").mkdir(parents=True)
    spec = {"name": name, "model": f"{name}@production", "model_uri": f"models:/{name}/1"}
    (d / "spec.json").write_text(json.dumps(spec))
    (d / "state.json").write_text(json.dumps({"name": name, "replicas": []}))
    return d, _files(d)


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("notascheme://x", "'notascheme' is not a scheme MLflow opens as a model registry"),
        ("{file}", "{file} is not a directory (a local MLflow store is one)"),
        ("{tmp}/no-such-dir", "no such directory ({tmp}/no-such-dir)"),
        ("sqlite:///{tmp}/none.db", "no database file at {tmp}/none.db"),
    ],
)
def test_a_tracking_uri_mlflow_cannot_open_is_refused_before_anything_is_stored(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uri: str, why: str
) -> None:
    """`notascheme://x` was MLflow's traceback (UnsupportedModelRegistryStoreURIException), a
    file or a missing directory MLflow's file-store error, a missing SQLite file an empty
    registry MLflow created ("no registered model"): each is now a ValidationError naming
    MLFLOW_TRACKING_URI with the forms it takes, for a deploy, an update and a run's model."""
    from aistack.serving.models import resolve_model

    (tmp_path / "a-file").write_text("x")
    fill = {"file": str(tmp_path / "a-file"), "tmp": str(tmp_path)}
    uri, why = uri.format(**fill), why.format(**fill)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(manager, "_spawn_controller", lambda *a, **k: pytest.fail("spawned"))
    d, before = _stored_service("iris")
    calls = [
        lambda: manager.deploy("iris@production", launcher="process", wait_ready_s=None),
        lambda: manager.update("iris", "iris:2", wait_s=None),
        lambda: resolve_model("runs:/abc/model"),
    ]
    for call in calls:
        with pytest.raises(ValidationError) as ei:
            call()
        assert ei.value.message == f"MLFLOW_TRACKING_URI={uri!r}: {why}"
        assert ei.value.details == {"field": "MLFLOW_TRACKING_URI"}
        assert "sqlite:///PATH/mlflow.db" in (ei.value.hint or "")
    assert _files(d) == before and not (d / "controller.json").exists()
    assert [p.name for p in manager.services_dir().iterdir()] == ["iris"]
    assert not (tmp_path / "none.db").exists()  # (no empty registry made either)


def test_a_tracking_server_that_does_not_answer_is_refused_before_mlflow_is_asked(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A closed port on 127.0.0.1: a ConnectionFailed naming the URI and saying what to start or
    fix, from a TCP connect, without MLflow's client (and its retries) and before anything is
    stored."""
    import socket
    import time

    from aistack.errors import ConnectionFailed
    from aistack.serving import models

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    uri = f"http://127.0.0.1:{port}/mlflow"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(models, "_registry_client", lambda: pytest.fail("MLflow was asked"))
    monkeypatch.setattr(manager, "_spawn_controller", lambda *a, **k: pytest.fail("spawned"))
    d, before = _stored_service("iris")
    t0 = time.monotonic()
    with pytest.raises(ConnectionFailed) as ei:
        manager.deploy("iris@production", name="iris", launcher="process", wait_ready_s=None)
    assert time.monotonic() - t0 < models.REACH_TIMEOUT_S
    assert ei.value.message == (
        f"the model registry at {uri} does not answer (connection refused at 127.0.0.1:{port}; "
        "from MLFLOW_TRACKING_URI)"
    )
    assert ei.value.hint == (
        "start the server it names (`aistack up --detach` serves one at "
        "http://127.0.0.1:8765/mlflow), or fix MLFLOW_TRACKING_URI"
    )
    assert _files(d) == before and not (d / "controller.json").exists()


def test_the_api_refuses_a_tracking_uri_mlflow_cannot_open(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POST /services goes through the same check: a 422 naming the variable, not a 500."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "notascheme://x")
    r = api.http.post("/api/v1/services", json={"model": "iris@production"})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["message"] == (
        "MLFLOW_TRACKING_URI='notascheme://x': 'notascheme' is not a scheme MLflow opens as a "
        "model registry"
    )
    assert body["details"] == {"field": "MLFLOW_TRACKING_URI"}
    assert manager.list_services() == []


@pytest.mark.parametrize(
    "uri",
    [
        "databricks://profile",
        "databricks://my-scope:my-prefix",  # MLflow's secret scope and key prefix form
        "databricks-uc://profile",
        "postgresql+psycopg2://mlflow:secret@db.example:5432/mlflow",
        "mysql://mlflow:pa/ss@127.0.0.1/mlflow",  # SQLAlchemy reads the password up to '@'
        "postgresql://mlflow:p?ss@[::1]:5432/mlflow",
    ],
)
def test_tracking_uris_mlflow_opens_are_not_refused(
    monkeypatch: pytest.MonkeyPatch, uri: str
) -> None:
    """A URI that is not a URL has no port for urllib to read: 'databricks://SCOPE:PREFIX'
    was refused as "cannot read it as a URI (Port could not be cast to integer value as
    'my-prefix')", and so was a database URI whose password has a '/' or '?' in it."""
    from aistack.serving.models import check_tracking_uri

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert check_tracking_uri() == uri


def test_a_tracking_server_reached_through_all_proxy_is_not_connected_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """requests (so MLflow) sends through ALL_PROXY as through HTTP_PROXY: the server is not
    reachable from here directly, and the check must not say it does not answer."""
    import socket

    from aistack.serving.models import check_tracking_uri

    for var in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    uri = f"http://127.0.0.1:{port}/mlflow"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("ALL_PROXY", "http://proxy.example:3128")
    assert check_tracking_uri() == uri
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # not through the proxy: connected to, refused
    from aistack.errors import ConnectionFailed

    with pytest.raises(ConnectionFailed, match="connection refused"):
        check_tracking_uri()


@pytest.mark.parametrize("raw", ["NaN", "Infinity", '"nan"'])
def test_the_api_refuses_a_max_wait_that_is_not_finite(
    api: Any, monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    """A NaN max_wait_ms got "less than or equal to 10000" from the request schema."""
    from aistack.server.app import API_PREFIX

    spawned: list[str] = []
    monkeypatch.setattr(manager, "_spawn_controller", lambda *a, **k: spawned.append("x"))
    body = '{"model": "builtin:echo", "name": "s3", "launcher": "process", "max_wait_ms": %s}'
    r = api.http.post(
        f"{API_PREFIX}/services",
        content=body % raw,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    err = r.json()
    # the spec's own words (as `aistack serve deploy` and manager.deploy say them): the range
    # it names is the field's, not "less than or equal to 10000" as if NaN were above it
    shown = "'nan'" if raw.startswith('"') else "nan" if raw == "NaN" else "inf"
    assert err["message"] == (
        f"max_wait_ms: must be a finite number of milliseconds from 0 to 10000, got {shown}"
    )
    assert "less than or equal" not in err["message"] and "Input should" not in err["message"]
    assert err["hint"] == (
        f"set `max_wait_ms` to a number of milliseconds, not {shown}; its default is 5"
    )
    assert spawned == []
    assert spawned == [] and manager.list_services() == []
