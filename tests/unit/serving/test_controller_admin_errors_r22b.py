"""The service's own routes under ``/-/`` answer a wrong method or path in JSON (OpenAI's error
shape, as the admin calls' other errors): ``GET /-/update`` was relayed to a replica and came
back 404 "no such endpoint" listing the replica's paths, and a method the router does not relay
(OPTIONS, TRACE) got Starlette's plain-text "Method Not Allowed"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from serving_fakes import RunningLauncher

from aistack.serving.controller import ServiceController
from aistack.serving.spec import ServiceSpec


@pytest.fixture
def client(tmp_path: Path) -> Any:
    from starlette.testclient import TestClient

    from aistack.serving.controller_app import build_app

    spec = ServiceSpec.model_validate(
        {"name": "svc", "model": "builtin:echo", "model_uri": "builtin:echo"}
    )
    ctl = ServiceController(spec, tmp_path, launcher=RunningLauncher())  # type: ignore[arg-type]
    return TestClient(build_app(ctl, "tok"), raise_server_exceptions=False)


def _openai_error(r: Any) -> dict[str, Any]:
    assert r.headers["content-type"] == "application/json"
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error" and err["code"] is None
    return err


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/-/update", "POST"),
        ("PUT", "/-/scale", "POST"),
        ("GET", "/-/shutdown", "POST"),
        ("OPTIONS", "/-/update", "POST"),
        ("TRACE", "/-/scale", "POST"),
        ("POST", "/-/status", "GET, HEAD"),
        ("DELETE", "/-/status", "GET, HEAD"),
    ],
)
def test_wrong_method_on_an_admin_route_is_a_json_405(
    client: Any, method: str, path: str, allow: str
) -> None:
    r = client.request(method, path)
    assert r.status_code == 405
    assert r.headers["allow"] == allow
    err = _openai_error(r)
    assert err["message"] == (
        f"{method} {path}: method not allowed; use {allow.split(',')[0]} {path}"
    )


def test_unknown_admin_path_is_a_json_404_naming_the_admin_routes(client: Any) -> None:
    r = client.get("/-/stauts")
    assert r.status_code == 404
    err = _openai_error(r)
    assert err["message"] == (
        "GET /-/stauts: no such endpoint; the service's own: GET /-/status, POST /-/update, "
        "POST /-/scale, POST /-/shutdown"
    )


def test_method_the_router_does_not_relay_is_a_json_405(client: Any) -> None:
    r = client.options("/metrics")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"
    err = _openai_error(r)
    assert err["message"] == "OPTIONS /metrics: method not allowed; allowed: GET, HEAD"
    r = client.request("TRACE", "/v1/completions")
    assert r.status_code == 405
    assert _openai_error(r)["message"].startswith("TRACE /v1/completions: method not allowed")
