"""The bodies of /api/v1/services answer a bad number as the service spec does (``aistack
serve deploy``, ``manager.deploy``): the field, the value, the range, a hint saying what to
set and ``details.field``. They answered pydantic's "invalid request: max_wait_ms: Input
should be less than or equal to 10000" with a pointer to the API docs, and took ``true`` as 1."""

from __future__ import annotations

from typing import Any

import pytest

from aistack.errors import ValidationError
from aistack.server.app import API_PREFIX
from aistack.serving import manager
from aistack.serving.spec import _bounds


@pytest.fixture
def no_controller(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    spawned: list[str] = []
    monkeypatch.setattr(manager, "_spawn_controller", lambda *a, **k: spawned.append("x"))
    return spawned


def _deploy(api: Any, **fields: Any) -> Any:
    body = {"model": "builtin:echo", "name": "p", "launcher": "process", **fields}
    return api.http.post(f"{API_PREFIX}/services", json=body)


def _manager_error(field: str, value: Any) -> ValidationError:
    kw = {"downscale_cooldown_s" if field == "cooldown_s" else field: value}
    with pytest.raises(ValidationError) as ei:
        manager.deploy("builtin:echo", name="q", launcher="process", wait_ready_s=None, **kw)
    return ei.value


BAD = [
    ("max_wait_ms", 20_000),
    ("max_wait_ms", -1),
    ("min_replicas", 300),
    ("max_replicas", 0),
    ("cpus", 0),
    ("gpus", -1),
    ("priority", 2**40),
    ("target_inflight", 0),
    ("cooldown_s", 1e9),
    ("max_queued_requests", -1),
    ("max_batch_size", 2000),
    ("max_batch_size", True),
    ("min_replicas", False),
]


@pytest.mark.parametrize(("field", "value"), BAD)
def test_a_bad_number_is_answered_as_the_spec_answers_it(
    api: Any, no_controller: list[str], field: str, value: Any
) -> None:
    r = _deploy(api, **{field: value})
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["code"] == "invalid" and err["details"] == {"field": field}, err
    assert "Input should be" not in err["message"] and "/docs" not in (err["hint"] or "")
    # the same words as the Python/CLI path, naming this API's field (the manager says
    # resources.cpus and downscale_cooldown_s, which this body has not)
    said = _manager_error(field, value)
    assert err["message"] == f"{field}: " + said.message.split(": ", 1)[1]
    assert err["hint"] == (said.hint or "").replace("downscale_cooldown_s", field)
    assert err["hint"].startswith(f"set `{field}` to ")
    assert no_controller == [] and manager.list_services() == []


def test_one_example_word_for_word(api: Any, no_controller: list[str]) -> None:
    err = _deploy(api, max_wait_ms=20_000).json()
    assert (
        err["message"] == "max_wait_ms: must be a number of milliseconds from 0 to 10000, got 20000"
    )
    assert err["hint"] == "set `max_wait_ms` to at most 10000 milliseconds; its default is 5"


def test_values_in_bounds_still_deploy(api: Any, no_controller: list[str]) -> None:
    r = _deploy(
        api,
        min_replicas=0,
        max_replicas=256,
        max_wait_ms=10_000,
        cooldown_s=86_400,
        target_inflight=0.5,
        priority=None,
        max_queued_requests=None,
    )
    assert r.status_code == 201, r.text
    assert no_controller == ["x"]


def test_an_empty_model_is_answered_as_the_spec_parser_answers_it(
    api: Any, no_controller: list[str]
) -> None:
    r = _deploy(api, model="")
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["message"] == "model: empty model reference"
    assert err["hint"] == "e.g. iris@production or iris:3" and err["details"] == {"field": "model"}


def test_an_empty_update_target_names_to(api: Any) -> None:
    r = api.http.post(f"{API_PREFIX}/services/s/update", json={"to": " "})
    assert r.status_code == 422, r.text
    assert r.json()["message"] == "to: empty model reference"
    assert r.json()["details"] == {"field": "to"}


@pytest.mark.parametrize(
    ("body", "message", "hint"),
    [
        (
            {"min_replicas": 300},
            "min_replicas: must be a whole number from 0 to 256, got 300",
            "set `min_replicas` to at most 256; its default is 1",
        ),
        (
            {"max_replicas": 0},
            "max_replicas: must be a whole number from 1 to 256, got 0",
            "set `max_replicas` to at least 1; its default is 4",
        ),
        (
            {"max_replicas": True},
            "max_replicas: must be a whole number from 1 to 256, got true",
            "set `max_replicas` to a whole number, not true; its default is 4",
        ),
    ],
)
def test_a_scale_body_says_the_same(
    api: Any, body: dict[str, Any], message: str, hint: str
) -> None:
    """``{"max_replicas": true}`` was read as 1 (then: no such service)."""
    r = api.http.post(f"{API_PREFIX}/services/s/scale", json=body)
    assert r.status_code == 422, r.text
    err = r.json()
    assert (err["message"], err["hint"]) == (message, hint)
    assert err["details"] == {"field": next(iter(body))}


def test_the_api_declares_the_spec_bounds() -> None:
    """The OpenAPI schema's bounds are the spec's (target_inflight and cooldown_s had no upper
    bound declared)."""
    from aistack.server.schemas.services import SPEC_FIELDS, ServiceCreate, ServiceScale

    for model in (ServiceCreate, ServiceScale):
        for name, f in model.model_fields.items():
            if name in SPEC_FIELDS:
                assert _bounds(f) == _bounds(SPEC_FIELDS[name]), (model.__name__, name)
