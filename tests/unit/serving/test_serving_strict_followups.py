"""Follow-ups to the strict service bodies (``test_serving_rest_strict.py``):

* a number sent as a string (``"max_wait_ms": "5"`` in a body, ``max_replicas: "3"`` in a
  spec) was read as the number (pydantic's lax mode); dstack and Kubernetes refuse it. No field
  of a service's spec takes a number as a string (no duration such as "30s": the times are
  numbers of seconds or milliseconds, the field names say which), so it is refused naming the
  field and what it got, with a hint to send the number without quotes. A spec.json already
  stored is read as before.
* NaN or infinity in a body got pydantic's "Input should be a finite number" and a pointer to
  the API docs: now the spec's own message and hint, as ``manager.deploy`` says them.
* min_replicas above max_replicas had no hint (REST, Python, the controller's scale, the CLI):
  it now says which values to set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydantic
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from aistack.cli import serve as serve_cli
from aistack.errors import ValidationError
from aistack.server.app import API_PREFIX
from aistack.serving import manager
from aistack.serving.controller import ServiceController, build_app
from aistack.serving.spec import (
    AutoscaleConfig,
    BatchingConfig,
    ServiceSpec,
    read_stored_spec,
)


@pytest.fixture
def no_controller(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    spawned: list[str] = []
    monkeypatch.setattr(manager, "_spawn_controller", lambda *a, **k: spawned.append("x"))
    return spawned


def _deploy(api: Any, raw: str) -> Any:
    """POST /services with ``raw`` (JSON text: NaN and Infinity as Python's json writes them)
    added to a body that deploys otherwise."""
    body = '{"model": "builtin:echo", "name": "p", "launcher": "process", ' + raw + "}"
    return api.http.post(
        f"{API_PREFIX}/services", content=body, headers={"Content-Type": "application/json"}
    )


def _manager_error(**kw: Any) -> ValidationError:
    with pytest.raises(ValidationError) as ei:
        manager.deploy("builtin:echo", name="q", launcher="process", wait_ready_s=None, **kw)
    return ei.value


def _spec_error(cls: type[pydantic.BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    if cls is ServiceSpec:
        data = {"name": "s", "model": "m", "model_uri": "u", **data}
    with pytest.raises(pydantic.ValidationError) as ei:
        cls.model_validate(data)
    return dict(ei.value.errors()[0])


# -- 1. a number sent as a string ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "raw", "message", "hint"),
    [
        (
            "max_wait_ms",
            '"5"',
            'max_wait_ms: must be a number of milliseconds from 0 to 10000, got the string "5"',
            "give `max_wait_ms` as a number, without quotes: 5",
        ),
        (
            "max_replicas",
            '"3"',
            'max_replicas: must be a whole number from 1 to 256, got the string "3"',
            "give `max_replicas` as a whole number, without quotes: 3",
        ),
        (
            "cooldown_s",
            '" 30 "',
            'cooldown_s: must be a number of seconds from 0 to 86400, got the string " 30 "',
            "give `cooldown_s` as a number, without quotes: 30",
        ),
        (
            "priority",
            '"-5"',
            'priority: must be a whole number from -2147483648 to 2147483647, got the string "-5"',
            "give `priority` as a whole number, without quotes: -5",
        ),
        (
            # out of range as well: the hint does not suggest the value
            "max_wait_ms",
            '"20000"',
            'max_wait_ms: must be a number of milliseconds from 0 to 10000, got the string "20000"',
            "give `max_wait_ms` as a number, without quotes, at most 10000 milliseconds; its "
            "default is 5",
        ),
    ],
)
def test_a_number_as_a_string_in_a_deploy_body_is_refused(
    api: Any, no_controller: list[str], field: str, raw: str, message: str, hint: str
) -> None:
    r = _deploy(api, f'"{field}": {raw}')
    assert r.status_code == 422, r.text
    err = r.json()
    assert (err["message"], err["hint"], err["details"]) == (message, hint, {"field": field})
    assert no_controller == [] and manager.list_services() == []


def test_a_number_as_a_string_in_a_scale_body_is_refused(api: Any) -> None:
    # refused by the body's schema, before the service is looked up
    r = api.http.post(f"{API_PREFIX}/services/nosuch/scale", json={"max_replicas": "3"})
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["message"] == (
        'max_replicas: must be a whole number from 1 to 256, got the string "3"'
    )
    assert err["hint"] == "give `max_replicas` as a whole number, without quotes: 3"
    assert err["details"] == {"field": "max_replicas"}


@pytest.mark.parametrize(
    ("cls", "data", "loc", "message", "hint"),
    [
        (
            BatchingConfig,
            {"max_wait_ms": "5"},
            ("max_wait_ms",),
            'must be a number of milliseconds from 0 to 10000, got the string "5"',
            "give `max_wait_ms` as a number, without quotes: 5",
        ),
        (
            AutoscaleConfig,
            {"max_replicas": "3"},
            ("max_replicas",),
            'must be a whole number from 1 to 256, got the string "3"',
            "give `max_replicas` as a whole number, without quotes: 3",
        ),
        (
            ServiceSpec,
            {"port": "8080"},
            ("port",),
            'must be a whole number from 0 to 65535, got the string "8080"',
            "give `port` as a whole number, without quotes: 8080",
        ),
        (
            ServiceSpec,
            {"request_timeout_s": "2.5"},
            ("request_timeout_s",),
            'must be a number of seconds > 0 and <= 86400, got the string "2.5"',
            "give `request_timeout_s` as a number, without quotes: 2.5",
        ),
    ],
)
def test_a_number_as_a_string_in_a_spec_is_refused(
    cls: type[pydantic.BaseModel], data: dict[str, Any], loc: tuple[str], message: str, hint: str
) -> None:
    err = _spec_error(cls, data)
    assert (err["loc"], err["msg"], err["ctx"]) == (loc, message, {"hint": hint})


def test_a_yaml_spec_with_a_quoted_number_is_refused_naming_the_field(
    aistack_home: Path, no_controller: list[str]
) -> None:
    """``autoscale: {max_replicas: "3"}`` as a YAML spec gives it (manager.deploy's extra)."""
    with pytest.raises(ValidationError) as ei:
        manager.deploy(
            "builtin:echo",
            name="y",
            launcher="process",
            wait_ready_s=None,
            extra={"autoscale": {"max_replicas": "3"}},
        )
    assert ei.value.message == (
        'autoscale.max_replicas: must be a whole number from 1 to 256, got the string "3"'
    )
    assert ei.value.hint == "give `max_replicas` as a whole number, without quotes: 3"
    assert ei.value.details == {"field": "max_replicas"}
    assert no_controller == [] and manager.list_services() == []


def test_what_is_not_a_number_string_is_answered_as_before() -> None:
    # not a number at all: pydantic says so, as before (no "without quotes" hint)
    err = _spec_error(BatchingConfig, {"max_wait_ms": "x"})
    assert err["type"] == "float_parsing"
    # "NaN" as a string (how JSON may carry it) still says it must be finite
    err = _spec_error(BatchingConfig, {"max_wait_ms": "NaN"})
    assert err["msg"] == "must be a finite number of milliseconds from 0 to 10000, got 'NaN'"
    # strings stay strings where a field is one (env values, the memory size)
    spec = ServiceSpec.model_validate(
        {
            "name": "s",
            "model": "m",
            "model_uri": "u",
            "env": {"A": "1"},
            "resources": {"memory": "2GB"},
        }
    )
    assert spec.env == {"A": "1"} and spec.resources.memory == "2GB"
    # numbers of either kind still go where they went (3.0 is a whole number)
    spec = ServiceSpec.model_validate(
        {"name": "s", "model": "m", "model_uri": "u", "max_retries": 3.0, "port": 8080}
    )
    assert (spec.max_retries, spec.port) == (3, 8080)


def test_a_stored_spec_with_a_quoted_number_is_still_read(tmp_path: Path) -> None:
    """A spec.json is read as before (a service keeps running): strict is for what is given."""
    data = json.loads(ServiceSpec(name="s", model="m", model_uri="u").model_dump_json())
    data["batching"]["max_wait_ms"] = "7"
    data["port"] = "8080"
    (tmp_path / "spec.json").write_text(json.dumps(data))
    spec = read_stored_spec(tmp_path / "spec.json")
    assert (spec.batching.max_wait_ms, spec.port) == (7.0, 8080)


# -- 2. NaN and infinity in a body: the spec's message and hint ----------------------------------


@pytest.mark.parametrize(
    ("field", "raw", "kw", "message", "hint"),
    [
        (
            "max_wait_ms",
            "NaN",
            {"max_wait_ms": float("nan")},
            "max_wait_ms: must be a finite number of milliseconds from 0 to 10000, got nan",
            "set `max_wait_ms` to a number of milliseconds, not nan; its default is 5",
        ),
        (
            "target_inflight",
            "Infinity",
            {"target_inflight": float("inf")},
            "target_inflight: must be a finite number > 0 and <= 1000000, got inf",
            "set `target_inflight` to a number, not inf; its default is 4",
        ),
        (
            "cooldown_s",
            "-Infinity",
            {"downscale_cooldown_s": float("-inf")},
            "cooldown_s: must be a finite number of seconds from 0 to 86400, got -inf",
            "set `cooldown_s` to a number of seconds, not -inf; its default is 30",
        ),
    ],
)
def test_nan_or_infinity_in_a_body_is_answered_as_the_spec_answers_it(
    api: Any,
    no_controller: list[str],
    field: str,
    raw: str,
    kw: dict[str, float],
    message: str,
    hint: str,
) -> None:
    r = _deploy(api, f'"{field}": {raw}')
    assert r.status_code == 422, r.text
    err = r.json()
    assert (err["message"], err["hint"], err["details"]) == (message, hint, {"field": field})
    assert "Input should be" not in err["message"] and "/docs" not in (err["hint"] or "")
    # the words of the Python/YAML path, naming this API's field
    said = _manager_error(**kw)
    assert err["message"] == f"{field}: " + said.message.split(": ", 1)[1]
    assert err["hint"] == (said.hint or "").replace("downscale_cooldown_s", field)
    assert no_controller == [] and manager.list_services() == []


# -- 3. min_replicas above max_replicas says what to set -----------------------------------------

MIN_ABOVE_MAX = (
    "min_replicas (5) is above max_replicas (2); lower `min_replicas` or raise `max_replicas`"
)
HINT_5_2 = "set `min_replicas` to at most 2, or `max_replicas` to at least 5"


def test_min_above_max_has_a_hint_in_the_spec() -> None:
    err = _spec_error(AutoscaleConfig, {"min_replicas": 5, "max_replicas": 2})
    assert err["msg"] == MIN_ABOVE_MAX
    assert err["ctx"] == {"field": "min_replicas", "hint": HINT_5_2}


def test_min_above_max_has_a_hint_over_rest_python_and_the_cli(
    api: Any, no_controller: list[str]
) -> None:
    r = _deploy(api, '"min_replicas": 5, "max_replicas": 2')
    assert r.status_code == 422, r.text
    err = r.json()
    assert (err["message"], err["hint"], err["details"]) == (
        MIN_ABOVE_MAX,
        HINT_5_2,
        {"field": "min_replicas"},
    )
    said = _manager_error(min_replicas=5, max_replicas=2)
    assert (said.message, said.hint) == (MIN_ABOVE_MAX, HINT_5_2)
    args = ["deploy", "builtin:echo", "--name", "w", "--launcher", "process", "--wait", "0"]
    res = CliRunner().invoke(serve_cli.app, [*args, "--min", "5", "--max", "2"])
    assert isinstance(res.exception, ValidationError), res.output
    assert res.exception.hint == "set --min to at most 2, or --max to at least 5"
    assert no_controller == [] and manager.list_services() == []


def test_min_above_max_has_a_hint_in_the_controllers_scale(tmp_path: Path) -> None:
    from aistack.serving.controller import TOKEN_HEADER

    class Launcher:
        name = "fake"

        def launch(self, **_kw: Any) -> str:
            raise AssertionError("no replica is started here")

    spec = ServiceSpec(name="svc", model="builtin:echo", model_uri="builtin:echo")
    ctl = ServiceController(spec, tmp_path, launcher=Launcher())  # type: ignore[arg-type]
    client = TestClient(build_app(ctl, "tok"))  # no lifespan: the control loop does not run
    r = client.post("/-/scale", json={"min_replicas": 9}, headers={TOKEN_HEADER: "tok"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["message"] == (
        "min_replicas (9) is above max_replicas (4); lower `min_replicas` or raise `max_replicas`"
    )
    assert err["hint"] == "set `min_replicas` to at most 4, or `max_replicas` to at least 9"
    assert err["details"] == {"field": "min_replicas"}
