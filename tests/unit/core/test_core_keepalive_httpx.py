"""An ``httpx.Client`` (the SDK's transport) keeps one connection across the answers the server
makes with a small request body unread or drained, through a real uvicorn server on 127.0.0.1
(both of its HTTP parsers): a 404 or 405 to a JSON POST, a 401 to one without the token, a 422,
and a POST whose handler reads the body. A declared body with more than
``KEEPALIVE_UNREAD_MAX_BYTES`` left unread still closes it.

Connections are counted by the client's local port, read while each response is open.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import httpx

from aistack.server.body_limit import KEEPALIVE_UNREAD_MAX_BYTES

if TYPE_CHECKING:
    from conftest import Live

TIMEOUT = 10
# exactly 100 bytes of JSON, as a small SDK request would send
COMMAND = "echo " + "x" * 80
BODY = json.dumps({"command": COMMAND}).encode()


def _client(live: Live, ports: list[int]) -> httpx.Client:
    """A client with at most one connection; ``ports`` gets the local port of each response."""

    def local_port(response: httpx.Response) -> None:
        ports.append(response.extensions["network_stream"].get_extra_info("client_addr")[1])

    return httpx.Client(
        base_url=live.url,
        timeout=TIMEOUT,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        event_hooks={"response": [local_port]},
    )


def test_small_bodies_answered_without_the_app_reading_them_keep_one_connection(
    roomy: Live,
) -> None:
    assert len(BODY) == 100
    json_auth = {**roomy.auth, "Content-Type": "application/json"}
    ports: list[int] = []
    answers: list[tuple[int, str | None]] = []
    with _client(roomy, ports) as client:

        def post(path: str, headers: dict[str, str], body: bytes = BODY) -> httpx.Response:
            r = client.post(path, content=body, headers=headers)
            answers.append((r.status_code, r.headers.get("connection")))
            return r

        missing = post("/api/v1/no-such-route", json_auth)  # no route: the body is never read
        assert missing.json()["code"] == "not_found"
        assert "/api/v1/no-such-route" in missing.json()["message"]
        wrong_method = post("/api/v1/cluster", json_auth)  # a GET-only route
        assert wrong_method.json()["code"] == "method_not_allowed"
        no_token = post("/api/v1/jobs", {"Content-Type": "application/json"})
        assert no_token.json()["code"] == "unauthorized"
        invalid = post("/api/v1/jobs", json_auth, b"{}")
        assert invalid.json()["code"] == "invalid"
        created = post("/api/v1/jobs", json_auth)  # the handler reads the body
        job = created.json()
        assert job["command"] == COMMAND
        listed = client.get("/api/v1/jobs", headers=roomy.auth)
        answers.append((listed.status_code, listed.headers.get("connection")))
        assert [j["id"] for j in listed.json()] == [job["id"]]
    assert answers == [(404, None), (405, None), (401, None), (422, None), (201, None), (200, None)]
    assert len(ports) == 6
    assert set(ports) == {ports[0]}, f"the client opened a new connection: {ports}"


def test_more_than_the_bound_left_unread_closes_and_the_client_reconnects(roomy: Live) -> None:
    """All of it sent (it fits the sockets' buffers), none of it read by the app: the 404 says
    ``Connection: close`` and the next request goes over a new connection."""
    big = b"x" * (KEEPALIVE_UNREAD_MAX_BYTES + 1)
    ports: list[int] = []
    with _client(roomy, ports) as client:
        missing = client.post("/api/v1/no-such-route", content=big, headers=roomy.auth)
        assert missing.status_code == 404
        assert missing.headers.get("connection") == "close"
        listed = client.get("/api/v1/jobs", headers=roomy.auth)
        assert listed.status_code == 200
        assert listed.json() == []
        again = client.get("/api/v1/jobs", headers=roomy.auth)
        assert again.status_code == 200
    assert len(ports) == 3
    assert ports[0] != ports[1], f"the closed connection was used again: {ports}"
    assert ports[1] == ports[2], f"a plain GET did not keep its connection: {ports}"
