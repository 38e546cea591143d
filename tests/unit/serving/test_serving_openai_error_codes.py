"""The ``code`` of an OpenAI-style error body is OpenAI's string code or null, never the HTTP
status: OpenAI's API answers ``{"error": {"message", "type", "param", "code"}}`` with ``code``
a string ("model_not_found", "rate_limit_exceeded", ...) or null (openai-python reads it as
``Optional[str]``). The replica and the router sent the status again (``"code": 400``,
``"code": 429``, ``"code": 502``) and typed the 429 "rate_limit_exceeded", where OpenAI's
requests-per-minute limit is type "requests", code "rate_limit_exceeded"."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from aistack.serving.models import LoadedModel, load_model
from aistack.serving.replica import ReplicaServer
from aistack.serving.router import Endpoint, Router

MESSAGES = [{"role": "user", "content": "hi"}]
CHAT = ("/v1/chat/completions", {"messages": MESSAGES})
TEXT = ("/v1/completions", {"prompt": "hi"})
BOTH = pytest.mark.parametrize(("path", "base"), [CHAT, TEXT], ids=["chat", "completions"])


@BOTH
@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": "many"}, "temperature"),  # a wrong type
        ({"max_tokens": 4097}, "max_tokens"),  # out of range (a model without a context)
        ({"colour": "red"}, "colour"),  # unknown
        ({"n": 2}, "n"),  # unsupported here
        ({"seed": 1, "temperature": 1, "stop": 5}, "stop"),
    ],
)
def test_a_bad_parameter_is_a_400_with_a_null_code(
    replica: TestClient, path: str, base: dict[str, Any], extra: dict[str, Any], param: str
) -> None:
    r = replica.post(path, json={**base, **extra})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["type"], err["param"], err["code"]) == ("invalid_request_error", param, None)


@BOTH
def test_a_body_that_is_not_json_has_a_null_code(
    replica: TestClient, path: str, base: dict[str, Any]
) -> None:
    r = replica.post(path, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["type"], err["param"], err["code"]) == ("invalid_request_error", None, None)


@BOTH
def test_an_unknown_model_is_a_404_model_not_found(
    replica: TestClient, path: str, base: dict[str, Any]
) -> None:
    r = replica.post(path, json={**base, "model": "gpt-9"})
    assert r.status_code == 404, r.text
    assert r.json() == {
        "error": {
            "message": "model: 'gpt-9' is not served here; this endpoint serves 'builtin:echo' "
            "(or leave model out)",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }


def test_the_model_that_is_served_is_no_error(replica: TestClient) -> None:
    r = replica.post(
        "/v1/completions", json={"prompt": "ab", "model": "builtin:echo", "max_tokens": 2}
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("POST", "/v1/embeddings", 404), ("GET", "/v1/completions", 405)],
)
def test_no_such_endpoint_has_a_null_code(
    replica: TestClient, method: str, path: str, status: int
) -> None:
    r = replica.request(method, path)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert (err["type"], err["code"]) == ("invalid_request_error", None)


def test_a_body_over_the_limit_is_a_413_with_a_null_code() -> None:
    server = ReplicaServer(load_model("builtin:echo"), name="t", max_body_bytes=64)
    with TestClient(server.app()) as c:
        r = c.post("/v1/completions", json={"prompt": "x" * 100})
    assert r.status_code == 413, r.text
    err = r.json()["error"]
    assert (err["type"], err["code"]) == ("invalid_request_error", None)


class _Broken:
    def generate(self, prompts: list[str], max_tokens: int, temperature: float) -> list[str]:
        raise RuntimeError("out of memory")


def test_a_model_failure_is_a_500_server_error_with_a_null_code() -> None:
    server = ReplicaServer(LoadedModel(uri="m", generator=_Broken()), name="b")
    with TestClient(server.app()) as c:
        r = c.post("/v1/completions", json={"prompt": "x"})
        streamed = c.post("/v1/completions", json={"prompt": "x", "stream": True})
    assert r.status_code == 500, r.text
    err = r.json()["error"]
    assert (err["type"], err["param"], err["code"]) == ("server_error", None, None)
    assert "out of memory" in err["message"]
    # in a stream (its 200 is sent): an error event of the same shape
    events = [json.loads(x[6:]) for x in streamed.text.splitlines() if x.startswith("data: {")]
    last = events[-1]["error"]
    assert (last["type"], last["param"], last["code"]) == ("server_error", None, None)
    assert "out of memory" in last["message"]


def _router_app(router: Router) -> Any:
    from starlette.applications import Starlette
    from starlette.routing import Route

    return Starlette(routes=[Route("/{path:path}", router.asgi_handler(), methods=["GET", "POST"])])


def test_the_router_with_no_ready_replica_is_a_503_server_error_with_a_null_code() -> None:
    router = Router(service="s", wait_for_replica_s=0)
    with TestClient(_router_app(router)) as c:
        r = c.post("/v1/completions", json={"prompt": "x"})
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert (err["type"], err["param"], err["code"]) == ("server_error", None, None)
    assert "has no ready replica" in err["message"]


class _Dropping:
    async def request(self, base_url, method, target, headers, body):  # type: ignore[no-untyped-def]
        from aistack.serving.upstream import UpstreamDropped

        raise UpstreamDropped("connection reset by peer")


def test_a_replica_that_drops_the_request_is_a_502_server_error_with_a_null_code() -> None:
    router = Router(service="s", upstream=_Dropping(), wait_for_replica_s=0.2)
    router.add(Endpoint(id="a", url="http://a"))
    with TestClient(_router_app(router)) as c:
        r = c.post("/v1/completions", json={"prompt": "x"})
    assert r.status_code == 502, r.text
    err = r.json()["error"]
    assert (err["type"], err["code"]) == ("server_error", None)


class _Replica:
    """An upstream that is a replica app (through its TestClient)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    async def request(self, base_url, method, target, headers, body):  # type: ignore[no-untyped-def]
        r = await asyncio.to_thread(
            self.client.request, method, target, content=body, headers=headers
        )
        return r.status_code, list(r.headers.items()), r.content


def test_the_router_passes_a_replicas_model_not_found_on(replica: TestClient) -> None:
    router = Router(service="s", upstream=_Replica(replica), wait_for_replica_s=0.2)
    router.add(Endpoint(id="a", url="http://a"))
    with TestClient(_router_app(router)) as c:
        r = c.post("/v1/chat/completions", json={"messages": MESSAGES, "model": "gpt-9"})
    assert r.status_code == 404, r.text
    err = r.json()["error"]
    assert (err["type"], err["param"], err["code"]) == (
        "invalid_request_error",
        "model",
        "model_not_found",
    )


def test_the_router_over_capacity_is_a_429_of_type_requests_rate_limit_exceeded() -> None:
    class _Gated:
        def __init__(self) -> None:
            self.gate = asyncio.Event()

        async def request(self, base_url, method, target, headers, body):  # type: ignore[no-untyped-def]
            await self.gate.wait()
            return 200, [("content-type", "application/json")], b"{}"

    up = _Gated()
    router = Router(service="s", upstream=up, replica_capacity=1, max_queued=0)
    router.add(Endpoint(id="a", url="http://a"))
    app = _router_app(router)

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            held = asyncio.create_task(c.post("/v1/completions", json={}))
            for _ in range(200):
                if router.inflight == 1:
                    break
                await asyncio.sleep(0.01)
            over = await asyncio.wait_for(c.post("/v1/completions", json={}), 2.0)
            up.gate.set()
            await held
            return over

    over = asyncio.run(main())
    assert over.status_code == 429, over.text
    err = over.json()["error"]
    assert (err["type"], err["param"], err["code"]) == ("requests", None, "rate_limit_exceeded")
    assert over.headers["retry-after"]
