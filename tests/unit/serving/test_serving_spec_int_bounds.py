"""Leftovers of the serving spec's bounds (Python path: ``manager.deploy``, ``ServiceSpec``):

* ``priority``, ``max_body_bytes`` and ``resources.gpus``/``cpus`` were unbounded above (REST
  bounds them: priority a 32-bit integer, gpus and cpus 1,000,000): ``ServiceSpec(priority=
  2**40)`` was taken; now each is refused naming the field, the value, the range and what to
  set, and a spec.json stored with such a value is still read, at the bound;
* an int field above its bound (``port: 70000``, ``max_queued_requests``, ...) said pydantic's
  "Input should be less than or equal to 65535" (neither the value nor what to set);
* a bool was read as a number (``max_retries: true`` was 1, ``request_timeout_s: true`` 1 s);
* the controller's own ``/-/scale`` answered ``{}`` with the limits unchanged (a silent no-op);
* log lines and answers that named a CLI command alone (``aistack models lineage``, ``aistack
  serve status``) now name the REST call too;
* ``python -m aistack.serving.loadgen --steps 4:nan`` ran nothing, ``4:inf`` never ended.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from pathlib import Path
from typing import Any

import pydantic
import pytest

from aistack.errors import ValidationError
from aistack.serving import manager
from aistack.serving.spec import (
    AutoscaleConfig,
    BatchingConfig,
    ReplicaResources,
    ServiceSpec,
    read_stored_spec,
)

BASE = {"name": "s", "model": "m", "model_uri": "u"}


def _err(cls: type[pydantic.BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(pydantic.ValidationError) as ei:
        cls.model_validate({**BASE, **data} if cls is ServiceSpec else data)
    return dict(ei.value.errors()[0])


@pytest.fixture
def no_spawn(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    spawned: list[str] = []
    monkeypatch.setattr(manager, "_spawn_controller", lambda *a, **k: spawned.append("x"))
    return spawned


# -- 1. priority, max_body_bytes, gpus and cpus are bounded as REST bounds them ------------------

NEW_BOUNDS = [
    # (where, value, message, hint)
    (
        "priority",
        2**40,
        "must be a whole number from -2147483648 to 2147483647, got 1099511627776",
        "set `priority` to at most 2147483647; its default is 100",
    ),
    (
        "max_body_bytes",
        10**30,
        "must be a whole number of bytes from 1024 to 1073741824, got 1e+30",
        "set `max_body_bytes` to at most 1073741824 bytes; its default is 1048576",
    ),
    (
        "resources.gpus",
        10**9,
        "must be a whole number from 0 to 1000000, got 1000000000",
        "set `gpus` to at most 1000000; its default is 0",
    ),
    (
        "resources.cpus",
        2_000_000,
        "must be a whole number from 1 to 1000000, got 2000000",
        "set `cpus` to at most 1000000; its default is 1",
    ),
]


def _nest(where: str, value: Any) -> dict[str, Any]:
    section, _, field = where.rpartition(".")
    return {section: {field: value}} if section else {field: value}


@pytest.mark.parametrize(("where", "value", "message", "hint"), NEW_BOUNDS)
def test_the_spec_refuses_a_value_above_the_rest_bound(
    where: str, value: int, message: str, hint: str
) -> None:
    err = _err(ServiceSpec, _nest(where, value))
    assert (err["loc"], err["type"], err["msg"]) == (tuple(where.split(".")), "too_large", message)
    assert err["ctx"] == {"hint": hint}


@pytest.mark.parametrize(
    ("kwargs", "message", "hint", "field"),
    [
        (
            {"priority": 2**40},
            "priority: " + NEW_BOUNDS[0][2],
            NEW_BOUNDS[0][3],
            "priority",
        ),
        (
            {"cpus": 2_000_000},
            "resources.cpus: " + NEW_BOUNDS[3][2],
            NEW_BOUNDS[3][3],
            "cpus",
        ),
        (
            {"extra": {"max_body_bytes": 10**30}},
            "max_body_bytes: " + NEW_BOUNDS[1][2],
            NEW_BOUNDS[1][3],
            "max_body_bytes",
        ),
    ],
)
def test_python_deploy_says_field_value_range_and_fix(
    aistack_home: Path,
    no_spawn: list[str],
    kwargs: dict[str, Any],
    message: str,
    hint: str,
    field: str,
) -> None:
    with pytest.raises(ValidationError) as ei:
        manager.deploy("builtin:echo", name="w", launcher="process", wait_ready_s=None, **kwargs)
    assert (ei.value.message, ei.value.hint, ei.value.details) == (message, hint, {"field": field})
    assert no_spawn == [] and manager.list_services() == []


def test_the_bounds_themselves_are_taken() -> None:
    top = ServiceSpec.model_validate(
        {
            **BASE,
            "priority": 2**31 - 1,
            "max_body_bytes": 2**30,
            "resources": {"gpus": 1_000_000, "cpus": 1_000_000},
        }
    )
    assert (top.priority, top.max_body_bytes) == (2**31 - 1, 2**30)
    assert (top.resources.gpus, top.resources.cpus) == (1_000_000, 1_000_000)
    assert ServiceSpec.model_validate({**BASE, "priority": -(2**31)}).priority == -(2**31)
    assert ServiceSpec.model_validate(BASE).priority == 100  # the default is unchanged
    err = _err(ServiceSpec, {"priority": -(2**31) - 1})
    # below the bound as above it: the value, the range and what to set (see
    # test_serving_spec_lower_bounds.py; it was pydantic's "greater_than_equal")
    assert (err["loc"], err["type"]) == (("priority",), "too_small")
    assert err["msg"] == ("must be a whole number from -2147483648 to 2147483647, got -2147483649")


def test_a_spec_stored_with_a_value_above_a_new_bound_is_still_read_at_the_bound(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """priority 2**40 (and the others) were taken before their bound: a service stored so keeps
    running (its controller and ``restart`` read its spec.json), the value read at the bound."""
    stored = ServiceSpec.model_validate(BASE).model_dump(mode="json")
    stored.update(priority=2**40, max_body_bytes=10**12)
    stored["resources"].update(gpus=10**9, cpus=10**9)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(stored))
    with pytest.raises(pydantic.ValidationError):  # as new input it is refused
        ServiceSpec.model_validate_json(path.read_text())
    with caplog.at_level(logging.WARNING, logger="aistack.serving.spec"):
        spec = read_stored_spec(path)
    assert (spec.priority, spec.max_body_bytes) == (2**31 - 1, 2**30)
    assert (spec.resources.gpus, spec.resources.cpus) == (1_000_000, 1_000_000)
    messages = [r.getMessage() for r in caplog.records]
    assert (
        "ServiceSpec: the stored priority is above its bound (1099511627776); 2147483647 is used"
        in messages
    )
    assert (
        "ReplicaResources: the stored gpus is above its bound (1000000000); 1000000 is used"
        in messages
    )

    stored["priority"] = -(2**40)  # below the new lower bound: read at it
    path.write_text(json.dumps(stored))
    assert read_stored_spec(path).priority == -(2**31)
    assert any("the stored priority is below its bound" in r.getMessage() for r in caplog.records)


# -- 2. an int field above its bound says the value and what to set ------------------------------


@pytest.mark.parametrize(
    ("cls", "where", "value", "message", "hint"),
    [
        (
            ServiceSpec,
            "port",
            70_000,
            "must be a whole number from 0 to 65535, got 70000",
            "set `port` to at most 65535; its default is 0",
        ),
        (
            ServiceSpec,
            "max_queued_requests",
            10**7,
            "must be a whole number from 0 to 1000000, got 10000000",
            "set `max_queued_requests` to at most 1000000; its default is 100",
        ),
        (
            ServiceSpec,
            "max_retries",
            11,  # "11" is refused as a string (test_serving_strict_followups.py)
            "must be a whole number from 0 to 10, got 11",
            "set `max_retries` to at most 10; its default is 2",
        ),
        (
            BatchingConfig,
            "max_batch_size",
            1e308,
            "must be a whole number from 1 to 1024, got 1e+308",
            "set `max_batch_size` to at most 1024; its default is 16",
        ),
        (
            AutoscaleConfig,
            "max_replicas",
            10**400,
            "must be a whole number from 1 to 256, got 1e+400",
            "set `max_replicas` to at most 256; its default is 4",
        ),
    ],
)
def test_an_int_above_its_bound_names_value_range_and_fix(
    cls: type[pydantic.BaseModel], where: str, value: Any, message: str, hint: str
) -> None:
    err = _err(cls, {where: value})
    assert (err["loc"], err["type"], err["msg"], err["ctx"]) == (
        (where,),
        "too_large",
        message,
        {"hint": hint},
    )


def test_a_nan_priority_says_it_must_be_finite() -> None:
    err = _err(ServiceSpec, {"priority": float("nan")})
    assert err["msg"] == "must be a finite number from -2147483648 to 2147483647, got nan"
    assert err["ctx"] == {"hint": "set `priority` to a whole number, not nan; its default is 100"}


def test_int_fields_still_take_what_they_took() -> None:
    spec = ServiceSpec.model_validate({**BASE, "port": 8080, "max_retries": 3.0})
    assert (spec.port, spec.max_retries) == (8080, 3)
    # a number in quotes is refused (it was read as the number; see
    # test_serving_strict_followups.py)
    err = _err(ServiceSpec, {"port": "8080"})
    assert err["type"] == "string_not_number"
    err = _err(ServiceSpec, {"max_retries": "many"})
    assert err["type"] == "int_parsing"  # not a number at all: pydantic says so, as before


# -- 3. a bool is not a number --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "where", "value", "message", "hint"),
    [
        (
            ServiceSpec,
            "max_retries",
            True,
            "must be a whole number from 0 to 10, got true",
            "set `max_retries` to a whole number, not true; its default is 2",
        ),
        (
            ServiceSpec,
            "request_timeout_s",
            True,
            "must be a number of seconds > 0 and <= 86400, got true",
            "set `request_timeout_s` to a number of seconds, not true; its default is 60",
        ),
        (
            AutoscaleConfig,
            "min_replicas",
            False,
            "must be a whole number from 0 to 256, got false",
            "set `min_replicas` to a whole number, not false; its default is 1",
        ),
        (
            BatchingConfig,
            "max_wait_ms",
            True,
            "must be a number of milliseconds from 0 to 10000, got true",
            "set `max_wait_ms` to a number of milliseconds, not true; its default is 5",
        ),
        (
            ReplicaResources,
            "cpus",
            True,
            "must be a whole number from 1 to 1000000, got true",
            "set `cpus` to a whole number, not true; its default is 1",
        ),
    ],
)
def test_a_bool_is_refused(
    cls: type[pydantic.BaseModel], where: str, value: bool, message: str, hint: str
) -> None:
    err = _err(cls, {where: value})
    assert (err["loc"], err["type"], err["msg"], err["ctx"]) == (
        (where,),
        "bool_not_number",
        message,
        {"hint": hint},
    )


def test_a_stored_bool_is_still_read(tmp_path: Path) -> None:
    stored = ServiceSpec.model_validate(BASE).model_dump(mode="json")
    stored["max_retries"] = True
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(stored))
    assert read_stored_spec(path).max_retries == 1


# -- 4. the controller's /-/scale refuses a scale with nothing to change ---------------------------


class _Launcher:
    name = "fake"

    def launch(self, **_kw: Any) -> str:
        raise AssertionError("no replica is started here")


SCALE_HINT = (
    "e.g. `min_replicas` 1 and `max_replicas` 4 (0 to 256 replicas, the maximum at least 1); "
    "the service's present limits are in its status"
)


def test_the_controllers_scale_refuses_an_empty_body(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from aistack.serving.controller import TOKEN_HEADER, ServiceController, build_app

    spec = ServiceSpec(name="svc", model="builtin:echo", model_uri="builtin:echo")
    ctl = ServiceController(spec, tmp_path, launcher=_Launcher())  # type: ignore[arg-type]
    client = TestClient(build_app(ctl, "tok"))
    h = {TOKEN_HEADER: "tok"}
    for body, extra in [
        ({}, ""),
        ({"min_replicas": None, "max_replicas": None}, ""),
        ({"min": 2}, " ('min' is not one)"),
    ]:
        r = client.post("/-/scale", json=body, headers=h)
        assert r.status_code == 422, (body, r.text)
        err = r.json()["error"]
        assert err["code"] == "invalid"
        assert err["message"] == (
            f"scale: nothing to change: give min_replicas, max_replicas or both{extra}"
        )
        assert err["hint"] == SCALE_HINT
    assert (ctl.spec.autoscale.min_replicas, ctl.spec.autoscale.max_replicas) == (1, 4)
    r = client.post("/-/scale", json={"min_replicas": None, "max_replicas": 3}, headers=h)
    assert r.status_code == 200, r.text
    assert (r.json()["min_replicas"], r.json()["max_replicas"]) == (1, 3)
    r = client.post("/-/scale", json={"max_replicas": True}, headers=h)
    assert r.status_code == 400  # a bool is no replica count (it was read as 1)
    assert r.json()["error"]["message"] == (
        "max_replicas: must be a whole number from 1 to 256, got true"
    )


# -- 5. log lines and answers name the REST call with the CLI command ------------------------------


@pytest.mark.parametrize(
    ("uri", "calls"),
    [
        (
            "models:/gpt/3",
            "`aistack models lineage gpt --version 3` or GET /api/v1/models/gpt/versions/3/lineage",
        ),
        (
            "runs:/abc/model",
            "`aistack models lineage NAME --version N` or GET "
            "/api/v1/models/NAME/versions/N/lineage",
        ),
    ],
)
def test_lineage_warnings_name_the_rest_call(
    aistack_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    uri: str,
    calls: str,
) -> None:
    from aistack.serving.lineage import record_rollout
    from aistack.storage import Datasets

    def fail(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("catalog down")

    monkeypatch.setattr(Datasets, "from_settings", fail)
    with caplog.at_level(logging.WARNING, logger="aistack.serving.lineage"):
        assert record_rollout("chat", uri) is None
    [warning] = [r.getMessage() for r in caplog.records if r.name == "aistack.serving.lineage"]
    assert warning.endswith(f"(the service is deployed; {calls} will not list it)")


def test_no_serving_message_names_a_cli_command_alone() -> None:
    """A guard wider than the errors' (test_serving_input_leftovers.py): any call of the serving
    package (a log line, an HTTP answer, an error) whose text names an ``aistack`` command names
    its REST call too."""
    import aistack.serving as pkg

    command = re.compile(r"`aistack [a-z]+ [a-z]+")
    found = []
    for path in sorted(Path(pkg.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                text = ast.unparse(arg)
                if command.search(text) and "/api/v1" not in text and "{API}" not in text:
                    found.append(f"{path.name}:{node.lineno}: {text}")
    assert found == []


def test_no_ready_replica_says_the_rest_call() -> None:
    import asyncio

    from aistack.serving.http import HTTPProblem
    from aistack.serving.router import Router

    router = Router(service="chat", wait_for_replica_s=0.0)
    for call in (router.forward, router.forward_stream):
        with pytest.raises(HTTPProblem) as ei:
            asyncio.run(call("POST", "/v1/completions", "", {}, b"{}"))
        assert ei.value.status == 503
        assert ei.value.message == (
            "service 'chat' has no ready replica (waited 0 s); check its status (`aistack serve "
            "status chat` or GET /api/v1/services/chat)"
        )


# -- 6. loadgen's steps ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (
            "4:nan",
            "--steps: a step of nan seconds is out of range; use a number of seconds > 0 "
            "and <= 86400",
        ),
        (
            "4:inf",
            "--steps: a step of inf seconds is out of range; use a number of seconds > 0 "
            "and <= 86400",
        ),
        (
            "4:1e9",
            "--steps: a step of 1e+09 seconds is out of range; use a number of seconds > 0 "
            "and <= 86400",
        ),
        (
            "1000000000:1",
            "--steps: concurrency 1000000000 is out of range; use 0 to 1,000,000 workers",
        ),
        ("-1:5", "--steps: concurrency -1 is out of range; use 0 to 1,000,000 workers"),
    ],
)
def test_loadgen_refuses_a_step_that_runs_nothing_or_forever(steps: str, message: str) -> None:
    from aistack.serving.loadgen import parse_steps

    with pytest.raises(SystemExit) as ei:
        parse_steps(steps)
    assert str(ei.value) == message


def test_loadgen_steps_as_before() -> None:
    from aistack.serving.loadgen import parse_steps

    assert parse_steps("4:10,0:1.5,16:86400") == [(4, 10.0), (0, 1.5), (16, 86_400.0)]
