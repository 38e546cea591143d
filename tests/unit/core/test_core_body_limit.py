"""Request body size limit (AISTACK_MAX_REQUEST_BYTES; AISTACK_MAX_MLFLOW_REQUEST_BYTES under
/mlflow): a body over the limit is 413 in the API's error shape, and the app reads no more of it
than the limit, whether it declares its size (Content-Length) or not (chunked). The rest is read
and discarded, within bounds, before the 413 (so the client is not reset: see
test_core_body_limit_uvicorn.py), except with ``Expect: 100-continue``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

LIMIT = 1024


@pytest.fixture
def small(tmp_path: Path) -> Iterator[TestClient]:
    """The app with a 1 KiB API limit and a 4 KiB /mlflow limit (MLflow itself not mounted)."""
    from aistack.server.app import create_app
    from aistack.settings import Settings

    settings = Settings(
        home=tmp_path / "home",
        executor="memory",
        mlflow_enabled=False,
        max_request_bytes=LIMIT,
        max_mlflow_request_bytes=4 * LIMIT,
    )
    app = create_app(settings, start_loop=False)
    http = TestClient(app, raise_server_exceptions=False)
    http.headers["Authorization"] = f"Bearer {app.state.ctx.token}"
    yield http
    http.close()
    app.state.ctx.executor.close()
    app.state.ctx.engine.dispose()


def _job_body(size: int) -> bytes:
    """A valid job spec padded with spaces to ``size`` bytes."""
    body = b'{"command": "echo hi"}'
    return body + b" " * (size - len(body))


def test_a_declared_body_over_the_limit_is_413_with_the_setting(small: TestClient) -> None:
    r = small.post(
        "/api/v1/jobs", content=_job_body(LIMIT + 1), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413, r.text
    d = r.json()
    assert d["code"] == "too_large"
    assert d["message"] == (
        "request body is 1,025 bytes; the server accepts at most 1,024 bytes (1 KiB)"
    )
    assert "AISTACK_MAX_REQUEST_BYTES" in d["hint"]
    assert d["details"] == {
        "limit_bytes": LIMIT,
        "setting": "AISTACK_MAX_REQUEST_BYTES",
        "content_length": LIMIT + 1,
    }
    assert r.headers["connection"] == "close"
    # at the limit it is an ordinary request
    r = small.post(
        "/api/v1/jobs", content=_job_body(LIMIT), headers={"content-type": "application/json"}
    )
    assert r.status_code == 201, r.text


def test_a_chunked_body_over_the_limit_is_413(small: TestClient) -> None:
    r = small.post(
        "/api/v1/jobs",
        content=iter([_job_body(512)] * 4),  # no Content-Length: sent chunked
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413, r.text
    d = r.json()
    assert d["code"] == "too_large"
    assert d["message"] == (
        "request body is over the limit; the server accepts at most 1,024 bytes (1 KiB)"
    )
    assert d["details"]["setting"] == "AISTACK_MAX_REQUEST_BYTES"
    assert d["details"]["content_length"] is None
    # a chunked body under the limit still works
    r = small.post(
        "/api/v1/jobs",
        content=iter([b'{"command": ', b'"echo hi"}']),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 201, r.text


def test_the_app_stops_reading_a_chunked_body_once_over_the_limit(small: TestClient) -> None:
    """Through the whole app (auth, FastAPI's body parsing, which answers a failed read with a
    400 that is replaced): 512 + 512 bytes is at the limit, the third chunk passes it, and the
    app reads nothing after it; the middleware then discards the rest before the 413."""
    from aistack.server import body_limit

    app = small.app
    token = app.state.ctx.token  # type: ignore[attr-defined]
    body = _job_body(100 * 512)
    chunks = [
        {"type": "http.request", "body": body[i : i + 512], "more_body": i + 512 < len(body)}
        for i in range(0, len(body), 512)
    ]
    headers = [
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-type", b"application/json"),
        (b"transfer-encoding", b"chunked"),
    ]
    passed_to_app: list[int] = []
    original = body_limit.BodyLimitMiddleware._drain

    async def drain(self, scope, receive):  # type: ignore[no-untyped-def]
        passed_to_app.append(len(read))
        return await original(self, scope, receive)

    read: list[dict[str, Any]] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(body_limit.BodyLimitMiddleware, "_drain", drain)
        read, sent = _run_asgi(app, headers, chunks, path="/api/v1/jobs", read=read)
    assert passed_to_app == [3]  # the app read up to the chunk that passed the limit
    assert len(read) == 100  # the rest discarded, up to the end of the body
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] == [413]
    payload = json.loads(b"".join(m.get("body", b"") for m in sent if "body" in m))
    assert payload["code"] == "too_large"
    assert payload["details"]["limit_bytes"] == LIMIT


def test_mlflow_paths_have_their_own_limit(small: TestClient) -> None:
    # over the API's limit but under /mlflow's: passed on (MLflow is not mounted here: 404)
    r = small.put("/mlflow/api/2.0/mlflow-artifacts/artifacts/a.bin", content=b"x" * (2 * LIMIT))
    assert r.status_code == 404, r.text
    r = small.put(
        "/mlflow/api/2.0/mlflow-artifacts/artifacts/a.bin", content=b"x" * (4 * LIMIT + 1)
    )
    assert r.status_code == 413, r.text
    d = r.json()
    assert d["details"]["setting"] == "AISTACK_MAX_MLFLOW_REQUEST_BYTES"
    assert d["details"]["limit_bytes"] == 4 * LIMIT
    assert "AISTACK_MAX_MLFLOW_REQUEST_BYTES" in d["hint"]


def test_a_caller_without_the_token_gets_401_not_413(small: TestClient) -> None:
    saved = small.headers.pop("Authorization")
    try:
        r = small.post("/api/v1/jobs", content=_job_body(LIMIT + 1))
    finally:
        small.headers["Authorization"] = saved
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"


def test_the_error_maps_back_to_payload_too_large(small: TestClient) -> None:
    from aistack.errors import PayloadTooLargeError, from_dict

    r = small.post("/api/v1/jobs", json={"command": "x" * 2 * LIMIT})
    err = from_dict(r.json())
    assert isinstance(err, PayloadTooLargeError) and err.status == 413


def _run_asgi(  # type: ignore[no-untyped-def]
    app: Any,
    headers: list[tuple[bytes, bytes]],
    messages: list[dict[str, Any]],
    path: str = "/x",
    read: list[dict[str, Any]] | None = None,
):
    """Drive an ASGI app with ``messages`` as the body; returns (messages read, sent)."""
    read = [] if read is None else read
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        msg = messages[len(read)] if len(read) < len(messages) else {"type": "http.disconnect"}
        read.append(msg)
        return msg

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))
    return read, sent


def test_the_middleware_discards_a_declared_oversize_body_before_the_413() -> None:
    """Refused before the app runs; the body is read to its end and dropped, then the 413."""
    from aistack.server.body_limit import BodyLimitMiddleware

    calls = []

    async def inner(scope, receive, send):  # type: ignore[no-untyped-def]
        calls.append(scope["path"])

    mw = BodyLimitMiddleware(inner, max_bytes=10, max_mlflow_bytes=100)
    body = [
        {"type": "http.request", "body": b"y" * 6, "more_body": True},
        {"type": "http.request", "body": b"y" * 6, "more_body": False},
    ]
    read, sent = _run_asgi(mw, [(b"content-length", b"12")], body)
    assert calls == []
    assert read == body  # both chunks drained, nothing read past the end of the body
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert (b"connection", b"close") in sent[0]["headers"]


def test_expect_100_continue_or_a_body_past_the_drain_bound_is_not_read() -> None:
    """With ``Expect: 100-continue`` the client sends nothing until answered (and a read would
    make uvicorn send ``100 Continue``); a declared body over ``drain_max_bytes`` is not worth
    reading. Both get the 413 without a read."""
    from aistack.server.body_limit import BodyLimitMiddleware

    async def inner(scope, receive, send):  # type: ignore[no-untyped-def]
        raise AssertionError("the app must not run")

    mw = BodyLimitMiddleware(inner, max_bytes=10, max_mlflow_bytes=100, drain_max_bytes=1000)
    body = [{"type": "http.request", "body": b"y" * 11, "more_body": False}]
    headers = [(b"content-length", b"11"), (b"expect", b"100-continue")]
    read, sent = _run_asgi(mw, headers, body)
    assert read == []
    assert sent[0]["status"] == 413
    read, sent = _run_asgi(mw, [(b"content-length", b"1001")], body)
    assert read == []
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["details"]["content_length"] == 1001


def test_the_drain_stops_at_its_byte_and_time_bounds() -> None:
    """A chunked body that does not end: the middleware stops discarding once past
    ``drain_max_bytes``; a client that stops sending is answered after ``drain_max_s``."""
    from aistack.server.body_limit import BodyLimitMiddleware

    async def inner(scope, receive, send):  # type: ignore[no-untyped-def]
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    mw = BodyLimitMiddleware(inner, max_bytes=10, max_mlflow_bytes=100, drain_max_bytes=60)
    chunk = {"type": "http.request", "body": b"y" * 6, "more_body": True}
    read, sent = _run_asgi(mw, [], [chunk] * 1000)
    # 2 reads by the app (12 > 10), then 11 more discarded (66 > 60)
    assert len(read) == 2 + 11
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [413]

    stalled = {"n": 0}

    async def receive_then_stall() -> dict[str, Any]:
        stalled["n"] += 1
        if stalled["n"] > 3:
            await asyncio.sleep(3600)  # the client stops sending
        return {"type": "http.request", "body": b"y" * 6, "more_body": True}

    sent = []

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    mw = BodyLimitMiddleware(inner, max_bytes=10, max_mlflow_bytes=100, drain_max_s=0.2)
    scope = {"type": "http", "method": "POST", "path": "/x", "headers": []}
    asyncio.run(asyncio.wait_for(mw(scope, receive_then_stall, send), 60))
    assert stalled["n"] == 4  # 2 by the app, 1 discarded, then the stalled one
    assert sent[0]["status"] == 413


def test_the_middleware_drops_the_apps_answer_to_the_failed_read() -> None:
    """FastAPI answers a failing body read with 400 'error parsing the body'; MLflow's server
    with a 500. Either is replaced by the 413."""
    from aistack.server.body_limit import BodyLimitMiddleware

    async def inner(scope, receive, send):  # type: ignore[no-untyped-def]
        try:
            while (await receive()).get("more_body"):
                pass
        except Exception:
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"bad"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    mw = BodyLimitMiddleware(inner, max_bytes=10, max_mlflow_bytes=100)
    chunk = {"type": "http.request", "body": b"y" * 6, "more_body": True}
    read, sent = _run_asgi(mw, [], [chunk] * 50)
    # 6 + 6 > 10: the second read trips it; the 48 more chunks are discarded, then the end
    # (``http.disconnect`` here, as the last chunk says more_body) stops the drain
    assert len(read) == 51 and read[-1] == {"type": "http.disconnect"}
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [413]
    read, sent = _run_asgi(mw, [], [{"type": "http.request", "body": b"y" * 10}])
    assert sent[0]["status"] == 200
