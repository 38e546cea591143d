"""Follow-ups to the strict service bodies (``test_serving_rest_strict.py``):

* NaN or infinity in a body got pydantic's "Input should be a finite number" and a pointer to
  the API docs: now the spec's own message and hint, as ``manager.deploy`` says them.
* min_replicas above max_replicas had no hint (REST, Python, the controller's scale, the CLI):
  it now says which values to set.
"""

from __future__ import annotations

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
from aistack.serving.spec import AutoscaleConfig, ServiceSpec


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
