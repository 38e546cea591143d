"""Bad input to serving that was still taken or said badly (REST, SDK, Python and CLI alike):

* min_replicas above max_replicas said ``spec: min_replicas (5) is above ...`` and named no
  field (every other error of a service's spec names its field);
* a time or target of 1e308 was stored (bounded below only): now each has a bound, and the
  error names the field, the value, the range and what to set;
* a scale request with nothing in it (``{}``) answered the limits unchanged: a silent no-op;
* hints of the serving domain named only CLI commands (``see aistack serve logs s``, ``run
  serve scale again``) where the error reaches REST and SDK users too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pydantic
import pytest
from typer.testing import CliRunner

from aistack.cli import serve as serve_cli
from aistack.errors import ConflictError, NotFoundError, ValidationError
from aistack.serving import manager
from aistack.serving.controller import ServiceController, build_app
from aistack.serving.spec import AutoscaleConfig, ServiceSpec

API = "/api/v1"
runner = CliRunner()


@pytest.fixture
def no_spawn(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    spawned: list[str] = []
    monkeypatch.setattr(manager, "_spawn_controller", lambda *a, **k: spawned.append("x"))
    return spawned


class _Launcher:
    name = "fake"

    def launch(self, **_kw: Any) -> str:
        raise AssertionError("no replica is started here")


def _controller(tmp_path: Path, **autoscale: int) -> ServiceController:
    spec = ServiceSpec(
        name="svc",
        model="builtin:echo",
        model_uri="builtin:echo",
        autoscale=AutoscaleConfig.model_validate(autoscale),
    )
    (tmp_path / "logs").mkdir(exist_ok=True)
    return ServiceController(spec, tmp_path, launcher=_Launcher())  # type: ignore[arg-type]


@pytest.fixture
def running(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ServiceController:
    """Service ``svc`` (min 3, max 4) with its controller app in process, reached through
    manager._post (so by the REST API, the SDK, Python and the CLI)."""
    import httpx
    from starlette.testclient import TestClient

    (tmp_path / "ctl").mkdir()
    ctl = _controller(tmp_path / "ctl", min_replicas=3, max_replicas=4)
    client = TestClient(build_app(ctl, "tok"))
    d = manager.service_dir("svc")
    d.mkdir(parents=True)
    (d / "token").write_text("tok")
    (d / "spec.json").write_text(ctl.spec.model_dump_json())
    monkeypatch.setattr(manager, "_controller", lambda name: {"url": "http://testserver"})
    limits = {"min_replicas": 3, "max_replicas": 4}  # (in the status; `serve scale` says them)
    monkeypatch.setattr(manager, "status", lambda name: {"name": name, **limits})
    posted: list[Any] = []

    def post(url: str, *, json: Any, headers: dict[str, str], timeout: float) -> Any:
        posted.append(json)
        return client.post(url, json=json, headers=headers)

    monkeypatch.setattr(httpx, "post", post)
    ctl.posted = posted  # type: ignore[attr-defined]
    return ctl


# -- 1. min_replicas above max_replicas names its field -------------------------------------------

MIN_ABOVE_MAX = (
    "min_replicas (5) is above max_replicas (2); lower `min_replicas` or raise `max_replicas`"
)


def test_deploy_min_above_max_over_rest_names_the_field(api: Any, no_spawn: list[str]) -> None:
    r = api.http.post(
        f"{API}/services", json={"model": "builtin:echo", "min_replicas": 5, "max_replicas": 2}
    )
    assert r.status_code == 422, r.text
    body = r.json()
    # was "spec: min_replicas (5) ..." with details {}
    assert body["message"] == MIN_ABOVE_MAX
    assert body["details"] == {"field": "min_replicas"}
    assert body["hint"] == "set `min_replicas` to at most 2, or `max_replicas` to at least 5"
    assert no_spawn == [] and manager.list_services() == []


def test_deploy_min_above_max_in_python_and_in_a_section(
    aistack_home: Path, no_spawn: list[str]
) -> None:
    with pytest.raises(ValidationError) as ei:
        manager.deploy("builtin:echo", name="w", launcher="process", min_replicas=5, max_replicas=2)
    assert (ei.value.message, ei.value.details) == (MIN_ABOVE_MAX, {"field": "min_replicas"})
    with pytest.raises(ValidationError) as ei:
        manager.deploy(
            "builtin:echo",
            name="w",
            launcher="process",
            extra={"autoscale": {"min_replicas": 5, "max_replicas": 2}},
        )
    assert ei.value.message == f"autoscale: {MIN_ABOVE_MAX}"
    assert ei.value.details == {"field": "min_replicas"}
    assert no_spawn == []


def test_deploy_min_above_max_the_cli_says_its_options_as_before(
    aistack_home: Path, no_spawn: list[str]
) -> None:
    base = ["deploy", "builtin:echo", "--name", "w", "--launcher", "process", "--wait", "0"]
    res = runner.invoke(serve_cli.app, [*base, "--min", "5", "--max", "2"])
    err = res.exception
    assert isinstance(err, ValidationError), res.output
    assert err.message == "--min 5 is above --max 2; lower --min or raise --max"
    assert err.details == {"field": "--min"}


def test_scale_min_above_max_names_the_limit_given(api: Any, running: ServiceController) -> None:
    r = api.http.post(f"{API}/services/svc/scale", json={"max_replicas": 2})
    assert r.status_code == 422, r.text
    assert r.json()["message"] == (
        "min_replicas (3) is above max_replicas (2); lower `min_replicas` or raise `max_replicas`"
    )
    assert r.json()["details"] == {"field": "max_replicas"}  # was {}
    r = api.http.post(f"{API}/services/svc/scale", json={"min_replicas": 9})
    assert r.status_code == 422, r.text
    assert r.json()["details"] == {"field": "min_replicas"}
    limits = running.spec.autoscale
    assert (limits.min_replicas, limits.max_replicas) == (3, 4)


def test_the_spec_error_carries_its_field() -> None:
    with pytest.raises(pydantic.ValidationError) as ei:
        AutoscaleConfig(min_replicas=5, max_replicas=2)
    err = ei.value.errors()[0]
    assert (err["loc"], err["msg"]) == ((), MIN_ABOVE_MAX)
    assert err["ctx"] == {
        "field": "min_replicas",
        "hint": "set `min_replicas` to at most 2, or `max_replicas` to at least 5",
    }


# -- 2. times and targets are bounded above -------------------------------------------------------

BOUNDS = [
    ("request_timeout_s", "of seconds > 0 and <= 86400", "86400 seconds", "60"),
    ("ready_timeout_s", "of seconds > 0 and <= 86400", "86400 seconds", "120"),
    ("health_interval_s", "of seconds > 0 and <= 60", "60 seconds", "0.5"),
    ("autoscale.drain_timeout_s", "of seconds from 0 to 86400", "86400 seconds", "30"),
    ("autoscale.upscale_delay_s", "of seconds from 0 to 86400", "86400 seconds", "1"),
    ("autoscale.downscale_cooldown_s", "of seconds from 0 to 86400", "86400 seconds", "30"),
    ("autoscale.metric_window_s", "of seconds > 0 and <= 3600", "3600 seconds", "2"),
    (
        "autoscale.target_queue_delay_ms",
        "of milliseconds > 0 and <= 3600000",
        "3600000 milliseconds",
        "50",
    ),
    ("autoscale.target_inflight", "> 0 and <= 1000000", "1000000", "4"),
]


@pytest.mark.parametrize(("where", "takes", "most", "default"), BOUNDS)
@pytest.mark.parametrize(("value", "shown"), [(1e308, "1e+308"), (10**400, "1e+400")])
def test_an_absurd_time_or_target_is_refused_naming_field_value_range_and_fix(
    aistack_home: Path,
    no_spawn: list[str],
    where: str,
    takes: str,
    most: str,
    default: str,
    value: float,
    shown: str,
) -> None:
    section, _, field = where.rpartition(".")
    extra = {section: {field: value}} if section else {field: value}
    with pytest.raises(ValidationError) as ei:
        manager.deploy("builtin:echo", name="w", launcher="process", extra=extra, wait_ready_s=None)
    assert ei.value.message == f"{where}: must be a number {takes}, got {shown}"
    assert ei.value.hint == f"set `{field}` to at most {most}; its default is {default}"
    assert ei.value.details == {"field": field}
    assert no_spawn == [] and manager.list_services() == []


@pytest.mark.parametrize(("where", "takes", "most", "default"), BOUNDS)
def test_the_bound_itself_is_taken(where: str, takes: str, most: str, default: str) -> None:
    section, _, field = where.rpartition(".")
    top = float(most.split()[0])
    if section:
        assert getattr(AutoscaleConfig.model_validate({field: top}), field) == top
    else:
        spec = ServiceSpec.model_validate({"name": "s", "model": "m", "model_uri": "u", field: top})
        assert getattr(spec, field) == top


def test_a_spec_json_with_a_timeout_of_1e308_is_refused() -> None:
    """JSON input (a request body, a stored spec) reads 1e308 as a float; "1e308" (which was
    read as the number) is refused as a string, its hint giving the bound."""

    def error(raw: str) -> Any:
        with pytest.raises(pydantic.ValidationError) as ei:
            ServiceSpec.model_validate_json(
                f'{{"name": "s", "model": "m", "model_uri": "u", "request_timeout_s": {raw}}}'
            )
        return ei.value.errors()[0]

    err = error("1e308")
    assert (err["loc"], err["type"], err["msg"]) == (
        ("request_timeout_s",),
        "too_large",
        "must be a number of seconds > 0 and <= 86400, got 1e+308",
    )
    err = error('"1e308"')
    assert (err["loc"], err["type"], err["msg"], err["ctx"]) == (
        ("request_timeout_s",),
        "string_not_number",
        'must be a number of seconds > 0 and <= 86400, got the string "1e308"',
        {
            "hint": "give `request_timeout_s` as a number, without quotes, at most 86400 "
            "seconds; its default is 60"
        },
    )


def test_rest_deploy_with_a_cooldown_of_1e308_names_the_apis_field(
    api: Any, no_spawn: list[str]
) -> None:
    r = api.http.post(f"{API}/services", json={"model": "builtin:echo", "cooldown_s": 1e308})
    assert r.status_code == 422, r.text
    body = r.json()
    # the body's field is cooldown_s; the manager's downscale_cooldown_s is no field of it
    assert body["message"] == "cooldown_s: must be a number of seconds from 0 to 86400, got 1e+308"
    assert body["hint"] == "set `cooldown_s` to at most 86400 seconds; its default is 30"
    assert body["details"] == {"field": "cooldown_s"}
    r = api.http.post(f"{API}/services", json={"model": "builtin:echo", "target_inflight": 1e308})
    assert r.status_code == 422, r.text
    assert r.json()["message"] == "target_inflight: must be a number > 0 and <= 1000000, got 1e+308"
    assert r.json()["details"] == {"field": "target_inflight"}
    assert no_spawn == [] and manager.list_services() == []


def test_cli_deploy_with_a_cooldown_of_1e308_names_the_flag(
    aistack_home: Path, no_spawn: list[str]
) -> None:
    base = ["deploy", "builtin:echo", "--name", "w", "--launcher", "process", "--wait", "0"]
    res = runner.invoke(serve_cli.app, [*base, "--cooldown", "1e308"])
    err = res.exception
    assert isinstance(err, ValidationError), res.output
    assert (
        err.message == "--cooldown 1e+308: must be a number of seconds from 0 to 86400, got 1e+308"
    )
    assert err.hint == "set --cooldown to at most 86400 seconds; its default is 30"
    assert no_spawn == []


def test_a_wait_of_1e308_is_refused(
    aistack_home: Path, no_spawn: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def wait_ready(*_a: Any) -> None:
        raise AssertionError("deployed and waiting (for 1e308 s)")

    monkeypatch.setattr(manager, "wait_ready", wait_ready)
    with pytest.raises(ValidationError) as ei:
        manager.deploy("builtin:echo", name="w", launcher="process", wait_ready_s=1e308)
    assert ei.value.message == (
        "wait_ready_s: the wait is at most 86400 seconds (a day), got 1e+308"
    )
    assert ei.value.hint == (
        "pass e.g. `wait_ready_s` 300, or 0 to return at once without waiting (the service "
        "keeps starting or rolling out in the background)"
    )
    assert ei.value.details == {"field": "wait_ready_s"}
    with pytest.raises(ValidationError) as ei:
        manager.update("nope", "builtin:echo", wait_s=1e308)  # checked before the lookup
    assert ei.value.details == {"field": "wait_s"}
    assert no_spawn == [] and manager.list_services() == []
    manager._check_wait(86_400.0, "wait_s")  # a day is taken


# -- 3. a scale with nothing to change ------------------------------------------------------------

# the present limits are said (r23p: it said "the service's present limits are in its status")
SCALE_EMPTY = (
    "scale: nothing to change: give min_replicas, max_replicas or both; svc now has min 3 "
    "replicas, max 4 replicas"
)
SCALE_HINT = (
    "e.g. `min_replicas` 1 and `max_replicas` 4 (0 to 256 replicas, the maximum at least 1)"
)


def test_rest_scale_with_an_empty_body_is_a_422_saying_what_to_send(
    api: Any, running: ServiceController
) -> None:
    r = api.http.post(f"{API}/services/svc/scale", json={})
    assert r.status_code == 422, r.text
    assert (r.json()["message"], r.json()["hint"]) == (SCALE_EMPTY, SCALE_HINT)
    r = api.http.post(f"{API}/services/svc/scale", json={"min_replicas": None})
    assert r.status_code == 422 and r.json()["message"] == SCALE_EMPTY
    assert running.posted == []  # type: ignore[attr-defined]  # the controller was not asked
    r = api.http.post(f"{API}/services/svc/scale", json={"min_replicas": 2})
    assert r.status_code == 200, r.text
    assert (r.json()["min_replicas"], r.json()["max_replicas"]) == (2, 4)


def test_python_and_cli_scale_with_nothing_to_change(running: ServiceController) -> None:
    with pytest.raises(ValidationError) as ei:
        manager.scale("svc")
    assert (ei.value.message, ei.value.hint) == (SCALE_EMPTY, SCALE_HINT)
    res = runner.invoke(serve_cli.app, ["scale", "svc"])
    err = res.exception
    assert isinstance(err, ValidationError), res.output
    assert err.message == (
        "scale: nothing to change: give --min, --max or both (svc now has min 3 replicas, max 4 "
        "replicas)"
    )
    assert err.hint == (
        "e.g. `aistack serve scale svc --min 1 --max 4` (0 to 256 replicas, --max at least 1)"
    )
    assert running.posted == []  # type: ignore[attr-defined]


# -- 4. hints say the CLI's command and the REST call both, or neither -----------------------------


def test_no_controller_hint_says_the_rest_call_too(api: Any) -> None:
    d = manager.service_dir("s")
    d.mkdir(parents=True)
    spec = ServiceSpec(name="s", model="builtin:echo", model_uri="builtin:echo")
    (d / "spec.json").write_text(spec.model_dump_json())
    r = api.http.post(f"{API}/services/s/scale", json={"min_replicas": 2})
    assert r.status_code == 409, r.text
    assert r.json()["message"] == "service 's' has no running controller"
    # was "redeploy it: aistack serve delete s, then serve deploy"
    assert r.json()["hint"] == (
        "redeploy it: delete it (`aistack serve delete s` or DELETE /api/v1/services/s), then "
        "deploy it again"
    )


def test_update_to_an_alias_of_a_builtin_hint_says_the_rest_calls(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manager, "status", lambda name: {"name": name, "model_uri": "builtin:echo"})
    r = api.http.post(f"{API}/services/s1/update", json={"to": "production"})
    assert r.status_code == 422, r.text
    hint = r.json()["hint"]
    assert "(`aistack models ls` or GET /api/v1/models lists them)" in hint
    assert hint.endswith(
        "or deploy it as a service of its own (`aistack serve deploy NAME@alias` or POST "
        "/api/v1/services)"
    )


def test_wait_ready_hints_say_the_rest_calls(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = {"ready_replicas": 0, "failed": "5 replica starts failed in a row", "replicas": []}
    monkeypatch.setattr(manager, "status", lambda name: failed)
    with pytest.raises(ConflictError) as ei:
        manager.wait_ready("svc", 1, 60.0)
    assert ei.value.hint == (
        "see its logs (`aistack serve logs svc` or GET /api/v1/services/svc/logs); fix the model "
        "or resources, then delete it (`aistack serve delete svc` or DELETE "
        "/api/v1/services/svc) and deploy again"
    )
    starting = {
        "ready_replicas": 0,
        "launcher": "jobs",
        "replicas": [{"id": "r2", "state": "failed", "reason": "exit code 1", "log": None}],
    }
    monkeypatch.setattr(manager, "status", lambda name: starting)
    with pytest.raises(ConflictError) as ei:
        manager.wait_ready("svc", 1, 0.05)
    assert ei.value.message.endswith(
        "; last failure: exit code 1 (`aistack serve logs svc --replica r2` or GET "
        "/api/v1/services/svc/logs?replica=r2)"
    )
    assert ei.value.hint == (
        "it keeps starting in the background: watch it with `aistack serve status svc` or "
        "`aistack serve logs svc` (GET /api/v1/services/svc, and .../logs); remove it with "
        "`aistack serve delete svc` (DELETE /api/v1/services/svc)"
    )


def test_a_service_deleted_meanwhile_hint_says_the_rest_call(aistack_home: Path) -> None:
    with pytest.raises(NotFoundError) as ei:
        manager._bury(manager.service_dir("gone"))
    assert ei.value.hint == (
        "nothing to do; `aistack serve ls` or GET /api/v1/services lists the services"
    )


def test_an_unknown_replica_hint_says_where_the_ids_are(aistack_home: Path) -> None:
    d = manager.service_dir("svc")
    (d / "logs").mkdir(parents=True)
    spec = ServiceSpec(name="svc", model="builtin:echo", model_uri="builtin:echo")
    (d / "spec.json").write_text(spec.model_dump_json())
    with pytest.raises(NotFoundError) as ei:
        manager.logs("svc", replica="r9")
    # was "see serve status for replica ids", then "its replicas and their ids are in its
    # status" (r23p: the ids are said, or that there are none)
    assert ei.value.message == "service 'svc' has no replica 'r9': it has had no replica yet"
    assert ei.value.hint == (
        "leave `replica` out for the controller's log (`aistack serve logs svc` or GET "
        "/api/v1/services/svc/logs)"
    )


def test_a_second_rollout_hint_says_where_to_watch(tmp_path: Path) -> None:
    ctl = _controller(tmp_path)
    ctl.rollout = {"state": "running", "to": "builtin:tiny-gpt"}
    with pytest.raises(ConflictError) as ei:
        ctl.start_rollout("builtin:tiny-gpt", "builtin:tiny-gpt")
    # was "wait for it to finish (serve status)"
    assert ei.value.hint == (
        "wait for it to finish: the rollout in the service's status (`aistack serve status svc` "
        "or GET /api/v1/services/svc) says when"
    )


def test_no_serving_hint_names_a_cli_command_alone() -> None:
    """A guard for new hints: an error of the serving domain (which reaches `aistack serve`,
    the REST API and the SDK alike) that names a `serve` command names its REST call too."""
    import aistack.serving as pkg

    command = re.compile(r"\bserve (deploy|delete|status|scale|logs|ls|update|restart)\b")
    found = []
    for path in sorted(Path(pkg.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if not name.endswith(("Error", "Failed")):
                continue
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                text = ast.unparse(arg)
                if command.search(text) and "/api/v1" not in text and "{API}" not in text:
                    found.append(f"{path.name}:{node.lineno}: {text}")
    assert found == []


def test_a_spec_stored_before_the_bounds_is_still_read_at_the_bound(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A service stored with request_timeout_s 1e308 (taken before the bound) keeps running:
    its controller and ``restart`` read the value at the bound, nothing is refused or lost."""
    from aistack.serving.spec import MAX_TIME_S, read_stored_spec

    stored = ServiceSpec(name="svc", model="builtin:echo", model_uri="builtin:echo").model_dump(
        mode="json"
    )
    stored["request_timeout_s"] = 1e308
    stored["autoscale"]["downscale_cooldown_s"] = 200_000.0
    path = tmp_path / "spec.json"
    path.write_text(__import__("json").dumps(stored))
    with pytest.raises(pydantic.ValidationError):  # as new input it is refused
        ServiceSpec.model_validate_json(path.read_text())
    spec = read_stored_spec(path)
    assert spec.request_timeout_s == MAX_TIME_S == 86_400.0
    assert spec.autoscale.downscale_cooldown_s == MAX_TIME_S
    assert spec.name == "svc" and spec.model == "builtin:echo"
    assert any(
        "request_timeout_s is above its bound (1e+308); 86400" in r.getMessage()
        for r in caplog.records
    )
