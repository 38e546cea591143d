"""``GET /v1/models/{id}`` (OpenAI's retrieve-model, what ``client.models.retrieve(id)`` sends)
answered 404 "no such endpoint": now it is the object the ``/v1/models`` list has for that id,
404 ``model_not_found`` in OpenAI's error shape for an id not served, on a replica and through
the router. And a path that is not served said "this replica serves …" also where the client
had asked the service (the router relays the answer as its own): it now says "served here",
true on both."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from aistack.serving.generators import EchoGenerator
from aistack.serving.models import LoadedModel
from aistack.serving.replica import ReplicaServer
from aistack.serving.router import Endpoint, Router

URI = "models:/gpt/1"


@pytest.fixture
def replica() -> Iterator[TestClient]:
    server = ReplicaServer(
        LoadedModel(uri=URI, generator=EchoGenerator()), name="t", served_names=["chat"]
    )
    with TestClient(server.app(), raise_server_exceptions=False) as c:
        yield c


class _Replica:
    """An upstream that is a replica app (through its TestClient)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    async def request(self, base_url, method, target, headers, body):  # type: ignore[no-untyped-def]
        r = await asyncio.to_thread(
            self.client.request, method, target, content=body, headers=headers
        )
        return r.status_code, list(r.headers.items()), r.content


@pytest.fixture(params=["replica", "router"])
def client(request: pytest.FixtureRequest, replica: TestClient) -> Iterator[TestClient]:
    if request.param == "replica":
        yield replica
        return
    from starlette.applications import Starlette
    from starlette.routing import Route

    router = Router(service="chat", upstream=_Replica(replica), wait_for_replica_s=0.2)
    router.add(Endpoint(id="a", url="http://a"))
    app = Starlette(routes=[Route("/{path:path}", router.asgi_handler(), methods=["GET", "POST"])])
    with TestClient(app) as c:
        yield c


@pytest.mark.parametrize("name", ["chat", "gpt", URI, "models:%2Fgpt%2F1"])
def test_retrieve_is_the_lists_entry(client: TestClient, name: str) -> None:
    listed = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert set(listed) == {URI, "chat", "gpt"}
    r = client.get(f"/v1/models/{name}")
    assert r.status_code == 200, r.text
    assert r.json() == listed[name.replace("%2F", "/")]
    assert r.json()["object"] == "model"


def test_an_unknown_id_is_a_404_model_not_found(client: TestClient) -> None:
    r = client.get("/v1/models/gpt-9")
    assert r.status_code == 404, r.text
    assert r.json() == {
        "error": {
            "message": "model: 'gpt-9' is not served here; this endpoint serves "
            "'models:/gpt/1', 'chat', 'gpt'",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }


@pytest.mark.parametrize(
    ("method", "what"), [("GET", "no such endpoint"), ("POST", "method not allowed")]
)
def test_a_path_not_served_does_not_say_replica(client: TestClient, method: str, what: str) -> None:
    path = "/v1/nothing" if method == "GET" else "/v1/models"
    r = client.request(method, path)
    assert r.status_code == (404 if method == "GET" else 405), r.text
    assert r.json()["error"]["message"] == (
        f"{method} {path}: {what}; served here: GET /health, GET /metrics, GET /v1/models, "
        "GET /v1/models/{model}, POST /v1/completions, POST /v1/chat/completions, "
        "POST /invocations"
    )
