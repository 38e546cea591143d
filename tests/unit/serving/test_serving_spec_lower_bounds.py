"""Leftovers of the serving spec's bounds and of the inputs around it:

* a value below a spec field's lower bound (``ge`` or ``gt``, int or float) said pydantic's
  "Input should be greater than or equal to -2147483648" (neither the value nor the unit, and
  no hint): now, as above the bound, "FIELD: must be a whole number from A to B, got X" with
  the hint "set `FIELD` to at least A" (a ``gt`` float: "to more than A"), in the CLI in its
  options; a spec.json stored below a lower bound is still read, at the bound (a ``gt`` float,
  which has no value at its bound, at the field's default);
* the controller's ``/-/scale`` dropped an unknown key beside a valid limit
  (``{"min_replicas": 2, "mni_replicas": 3}`` set the minimum alone): now a 422 naming it and
  the fields a scale takes; its 400 for a limit out of range carries the hint;
* ``/v1/completions`` and ``/v1/chat/completions`` read ``"temperature": true`` as 1.0 (and
  ``max_tokens``/``n``/``seed`` true as 1), and a NaN ``temperature`` said "Input should be
  less than or equal to 2", a NaN penalty "penalties are not supported": now each is a 400
  naming the field, what it takes and what it got.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from aistack.cli import serve as serve_cli
from aistack.errors import ValidationError
from aistack.serving import manager
from aistack.serving.controller import TOKEN_HEADER, ServiceController, build_app
from aistack.serving.models import load_model
from aistack.serving.replica import ReplicaServer
from aistack.serving.spec import (
    AutoscaleConfig,
    BatchingConfig,
    ReplicaResources,
    ServiceSpec,
    read_stored_spec,
)

BASE = {"name": "s", "model": "m", "model_uri": "u"}
runner = CliRunner()


def _err(cls: type[pydantic.BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(pydantic.ValidationError) as ei:
        cls.model_validate({**BASE, **data} if cls is ServiceSpec else data)
    return dict(ei.value.errors()[0])


# -- 1. below a lower bound: the value, the range and what to set ---------------------------------

BELOW = [
    # (model, field, value, message, hint)
    (
        ServiceSpec,
        "priority",
        -(2**40),
        "must be a whole number from -2147483648 to 2147483647, got -1099511627776",
        "set `priority` to at least -2147483648; its default is 100",
    ),
    (
        ServiceSpec,
        "port",
        -1,
        "must be a whole number from 0 to 65535, got -1",
        "set `port` to at least 0; its default is 0",
    ),
    (
        ServiceSpec,
        "max_body_bytes",
        10,
        "must be a whole number of bytes from 1024 to 1073741824, got 10",
        "set `max_body_bytes` to at least 1024 bytes; its default is 1048576",
    ),
    (
        ServiceSpec,
        "max_start_failures",
        0,  # "0" is refused as a string (test_serving_strict_followups.py)
        "must be a whole number from 1 to 1000, got 0",
        "set `max_start_failures` to at least 1; its default is 5",
    ),
    (
        ServiceSpec,
        "request_timeout_s",
        0,
        "must be a number of seconds > 0 and <= 86400, got 0",
        "set `request_timeout_s` to more than 0 seconds; its default is 60",
    ),
    (
        ServiceSpec,
        "health_interval_s",
        -0.5,
        "must be a number of seconds > 0 and <= 60, got -0.5",
        "set `health_interval_s` to more than 0 seconds; its default is 0.5",
    ),
    (
        AutoscaleConfig,
        "min_replicas",
        -1,
        "must be a whole number from 0 to 256, got -1",
        "set `min_replicas` to at least 0; its default is 1",
    ),
    (
        AutoscaleConfig,
        "target_inflight",
        0,
        "must be a number > 0 and <= 1000000, got 0",
        "set `target_inflight` to more than 0; its default is 4",
    ),
    (
        AutoscaleConfig,
        "downscale_cooldown_s",
        -1e308,
        "must be a number of seconds from 0 to 86400, got -1e+308",
        "set `downscale_cooldown_s` to at least 0 seconds; its default is 30",
    ),
    (
        BatchingConfig,
        "max_wait_ms",
        -2.5,
        "must be a number of milliseconds from 0 to 10000, got -2.5",
        "set `max_wait_ms` to at least 0 milliseconds; its default is 5",
    ),
    (
        ReplicaResources,
        "cpus",
        0,
        "must be a whole number from 1 to 1000000, got 0",
        "set `cpus` to at least 1; its default is 1",
    ),
]


@pytest.mark.parametrize(("cls", "field", "value", "message", "hint"), BELOW)
def test_a_value_below_its_bound_names_value_range_and_fix(
    cls: type[pydantic.BaseModel], field: str, value: Any, message: str, hint: str
) -> None:
    err = _err(cls, {field: value})
    assert (err["loc"], err["type"], err["msg"]) == ((field,), "too_small", message)
    assert err["ctx"] == {"hint": hint}


def test_every_lower_bound_is_told_so() -> None:
    """No field with a lower bound says pydantic's "Input should be greater than"."""
    from aistack.serving.spec import _bounds

    seen = 0
    for cls in (ServiceSpec, AutoscaleConfig, BatchingConfig, ReplicaResources):
        for name, f in cls.model_fields.items():
            _, lo, strict = _bounds(f)
            if lo is None:
                continue
            below = lo - (0 if strict else 1)
            err = _err(cls, {name: below})
            assert err["type"] == "too_small", (cls, name, err)
            assert err["ctx"]["hint"].startswith(f"set `{name}` to "), err
            seen += 1
    assert seen >= 18


def test_the_lower_bounds_themselves_are_taken() -> None:
    spec = ServiceSpec.model_validate(
        {
            **BASE,
            "priority": -(2**31),
            "port": 0,
            "max_body_bytes": 1024,
            "resources": {"cpus": 1, "gpus": 0},
            "autoscale": {"min_replicas": 0, "downscale_cooldown_s": 0},
            "batching": {"max_wait_ms": 0},
            "request_timeout_s": 1e-9,
        }
    )
    assert (spec.priority, spec.port, spec.max_body_bytes) == (-(2**31), 0, 1024)
    assert (spec.autoscale.min_replicas, spec.batching.max_wait_ms) == (0, 0.0)
    assert spec.request_timeout_s == 1e-9


@pytest.fixture
def no_spawn(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    spawned: list[str] = []
    monkeypatch.setattr(manager, "_spawn_controller", lambda *a, **k: spawned.append("x"))
    return spawned


@pytest.mark.parametrize(
    ("kwargs", "message", "hint", "field"),
    [
        (
            {"priority": -(2**40)},
            "priority: " + BELOW[0][3],
            BELOW[0][4],
            "priority",
        ),
        (
            {"cpus": 0},
            "resources.cpus: must be a whole number from 1 to 1000000, got 0",
            "set `cpus` to at least 1; its default is 1",
            "cpus",
        ),
        (
            {"target_inflight": 0.0},
            "target_inflight: " + BELOW[7][3],  # (AutoscaleConfig is built by deploy)
            BELOW[7][4],
            "target_inflight",
        ),
    ],
)
def test_python_deploy_below_a_bound_says_field_value_range_and_fix(
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


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (
            ["--cooldown", "-1"],
            "--cooldown -1: must be a number of seconds from 0 to 86400, got -1",
            "set --cooldown to at least 0 seconds; its default is 30",
        ),
        (
            ["--target-inflight", "0"],
            "--target-inflight 0: must be a number > 0 and <= 1000000, got 0",
            "set --target-inflight to more than 0; its default is 4",
        ),
        (
            ["--priority", "-3000000000"],
            "--priority -3000000000: must be a whole number from -2147483648 to 2147483647, "
            "got -3000000000",
            "set --priority to at least -2147483648; its default is 100",
        ),
    ],
)
def test_the_cli_says_it_in_its_options(
    aistack_home: Path, no_spawn: list[str], args: list[str], message: str, hint: str
) -> None:
    res = runner.invoke(
        serve_cli.app,
        ["deploy", "builtin:echo", "--name", "w", "--launcher", "process", "--wait", "0", *args],
    )
    exc = res.exception
    assert isinstance(exc, ValidationError), (exc, res.output)
    assert (exc.message, exc.hint) == (message, hint)
    assert no_spawn == []


def test_a_spec_stored_below_a_lower_bound_is_still_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As above a bound: the service keeps running (its controller and ``restart`` read its
    spec.json). At the bound; a float bounded by ``> 0`` has no value there: at its default."""
    stored = ServiceSpec.model_validate(BASE).model_dump(mode="json")
    stored.update(port=-1, max_body_bytes=10, request_timeout_s=0, health_interval_s=-1.5)
    stored["resources"].update(cpus=0, gpus=-2)
    stored["autoscale"].update(min_replicas=-1, target_inflight=-3.0, downscale_cooldown_s=-5)
    stored["batching"].update(max_wait_ms=-2.5, max_batch_size=0)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(stored))
    with pytest.raises(pydantic.ValidationError):  # as new input it is refused
        ServiceSpec.model_validate_json(path.read_text())
    with caplog.at_level(logging.WARNING, logger="aistack.serving.spec"):
        spec = read_stored_spec(path)
    assert (spec.port, spec.max_body_bytes) == (0, 1024)
    assert (spec.request_timeout_s, spec.health_interval_s) == (60.0, 0.5)
    assert (spec.resources.cpus, spec.resources.gpus) == (1, 0)
    auto = spec.autoscale
    assert (auto.min_replicas, auto.target_inflight, auto.downscale_cooldown_s) == (0, 4.0, 0.0)
    assert (spec.batching.max_wait_ms, spec.batching.max_batch_size) == (0.0, 1)
    messages = [r.getMessage() for r in caplog.records]
    assert "ServiceSpec: the stored port is below its bound (-1); 0 is used" in messages
    assert (
        "ServiceSpec: the stored request_timeout_s is below its bound (0); its default 60 is used"
        in messages
    )
    assert "BatchingConfig: the stored max_wait_ms is below its bound (-2.5); 0 is used" in messages


# -- 2. the controller's /-/scale refuses unknown keys ---------------------------------------------


class _Launcher:
    name = "fake"

    def launch(self, **_kw: Any) -> str:
        raise AssertionError("no replica is started here")


@pytest.fixture
def scale_client(tmp_path: Path) -> Iterator[tuple[TestClient, ServiceController]]:
    spec = ServiceSpec(name="svc", model="builtin:echo", model_uri="builtin:echo")
    ctl = ServiceController(spec, tmp_path, launcher=_Launcher())  # type: ignore[arg-type]
    yield TestClient(build_app(ctl, "tok")), ctl  # no lifespan: the control loop does not run


@pytest.mark.parametrize(
    ("body", "message", "hint", "field"),
    [
        (
            {"min_replicas": 2, "mni_replicas": 3},
            "scale: 'mni_replicas' is not a field of a scale; it takes min_replicas and "
            "max_replicas",
            "leave it out or correct it (nothing was changed); e.g. `min_replicas` 1 and "
            "`max_replicas` 4",
            "mni_replicas",
        ),
        (
            {"max_replicas": 3, "min": 2, "wait": True},
            "scale: 'min', 'wait' are not fields of a scale; it takes min_replicas and "
            "max_replicas",
            "leave them out or correct them (nothing was changed); e.g. `min_replicas` 1 and "
            "`max_replicas` 4",
            "min",
        ),
    ],
)
def test_the_controllers_scale_refuses_an_unknown_key_beside_a_limit(
    scale_client: tuple[TestClient, ServiceController],
    body: dict[str, Any],
    message: str,
    hint: str,
    field: str,
) -> None:
    client, ctl = scale_client
    r = client.post("/-/scale", json=body, headers={TOKEN_HEADER: "tok"})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert (err["code"], err["message"], err["hint"], err["details"]) == (
        "invalid",
        message,
        hint,
        {"field": field},
    )
    assert (ctl.spec.autoscale.min_replicas, ctl.spec.autoscale.max_replicas) == (1, 4)


def test_the_controllers_scale_as_before(
    scale_client: tuple[TestClient, ServiceController],
) -> None:
    client, ctl = scale_client
    h = {TOKEN_HEADER: "tok"}
    r = client.post("/-/scale", json={"min": 2}, headers=h)  # no limit: nothing to change
    assert r.status_code == 422
    assert r.json()["error"]["message"] == (
        "scale: nothing to change: give min_replicas, max_replicas or both ('min' is not one)"
    )
    r = client.post("/-/scale", json={"max_replicas": 0}, headers=h)  # below: with the hint
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["message"], err["hint"], err["details"]) == (
        "max_replicas: must be a whole number from 1 to 256, got 0",
        "set `max_replicas` to at least 1; its default is 4",
        {"field": "max_replicas"},
    )
    r = client.post("/-/scale", json={"min_replicas": 2, "max_replicas": 3}, headers=h)
    assert r.status_code == 200, r.text
    assert (ctl.spec.autoscale.min_replicas, ctl.spec.autoscale.max_replicas) == (2, 3)


# -- 3. the OpenAI-compatible endpoints refuse a bool, NaN and infinity as a number ---------------


@pytest.fixture
def replica() -> Iterator[TestClient]:
    server = ReplicaServer(
        load_model("builtin:echo"), name="t", max_batch_size=8, max_wait_ms=2, served_names=["svc"]
    )
    with TestClient(server.app()) as c:
        yield c


MESSAGES = [{"role": "user", "content": "hi"}]
CHAT = ("/v1/chat/completions", '"messages": [{"role": "user", "content": "hi"}]')
TEXT = ("/v1/completions", '"prompt": "hi"')


@pytest.mark.parametrize(("path", "base"), [CHAT, TEXT], ids=["chat", "completions"])
@pytest.mark.parametrize(
    ("field", "raw", "message"),
    [
        ("temperature", "true", "temperature: must be a number from 0 to 2, got true"),
        ("temperature", "false", "temperature: must be a number from 0 to 2, got false"),
        ("temperature", "NaN", "temperature: must be a finite number from 0 to 2, got nan"),
        ("temperature", "Infinity", "temperature: must be a finite number from 0 to 2, got inf"),
        ("temperature", '"nan"', "temperature: must be a finite number from 0 to 2, got nan"),
        ("top_p", "true", "top_p: must be a number > 0 and <= 1, got true"),
        ("top_p", "NaN", "top_p: must be a finite number > 0 and <= 1, got nan"),
        ("max_tokens", "true", "max_tokens: must be a whole number >= 1, got true"),
        ("max_tokens", "NaN", "max_tokens: must be a whole number >= 1, got nan"),
        ("n", "true", "n: must be a whole number >= 1, got true"),
        ("seed", "true", "seed: must be a whole number, got true"),
        ("presence_penalty", "NaN", "presence_penalty: must be a finite number, got nan"),
        ("frequency_penalty", "-Infinity", "frequency_penalty: must be a finite number, got -inf"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_a_sampling_number_that_is_a_bool_or_not_finite_is_a_400_naming_it(
    replica: TestClient,
    path: str,
    base: str,
    field: str,
    raw: str,
    message: str,
    stream: bool,
) -> None:
    body = f'{{{base}, "{field}": {raw}, "stream": {json.dumps(stream)}}}'
    r = replica.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json() == {
        "error": {"message": message, "type": "invalid_request_error", "param": field, "code": None}
    }


@pytest.mark.parametrize(("path", "base"), [CHAT, TEXT], ids=["chat", "completions"])
def test_sampling_numbers_still_take_numbers(replica: TestClient, path: str, base: str) -> None:
    for extra in (
        '"temperature": 0, "top_p": 1, "max_tokens": 3, "n": 1, "seed": 7',
        '"temperature": 0.5, "presence_penalty": 0.0, "max_tokens": 2',
    ):
        r = replica.post(
            path, content=f"{{{base}, {extra}}}", headers={"content-type": "application/json"}
        )
        assert r.status_code == 200, (extra, r.text)
