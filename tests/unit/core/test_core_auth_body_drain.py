"""A request without a (valid) token, through a real uvicorn server on 127.0.0.1 (both of its
HTTP parsers): the auth check reads and discards the body before its 401, within the bounds of
the 413's drain (``body_limit.drain_body``), so a client that sends a large upload without the
token reads the 401 instead of a connection reset (the server used to answer with the body
unread, and closing a socket with unread data makes the kernel reset it).

The raw-socket checks do not depend on timing: a reset shows as ECONNRESET / EPIPE on the send
or a read, whichever comes first.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Live  # tests/unit/core/conftest.py

LIMIT = 1024  # the live app's API body limit (conftest.LIVE_LIMIT)
BODY = 4 * 2**20  # well past the socket buffers: the client is still sending when we answer
TRIES = 3


# ``live``: the app under a real uvicorn (tests/unit/core/conftest.py)


def _request(path: str, headers: bytes, auth: bytes = b"") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
        + auth
        + b"Content-Type: application/json\r\n"
        + headers
        + b"\r\n"
    )


def _send_and_read_to_end(live: Live, request: bytes) -> tuple[bytes, list[OSError]]:
    """Send the request with its whole body, then read until the server closes: (what came
    back, the socket errors met)."""
    return live.send_raw(request)


def _read_response(s: socket.socket) -> tuple[bytes, bytes]:
    """One response (head, body) with a Content-Length, read off a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"the server closed the connection: {data[:200]!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk, "the server closed the connection mid-body"
        body += chunk
    assert len(body) == length, "more than one response came back"
    return head, body


def _assert_401(head: bytes, payload: bytes) -> None:
    assert head.startswith(b"HTTP/1.1 401 "), head[:200]
    d = json.loads(payload)
    assert d["code"] == "unauthorized"
    assert d["message"].startswith("missing or wrong API token")
    assert "Authorization: Bearer" in d["hint"]


@pytest.mark.parametrize("auth", [b"", b"Authorization: Bearer wrong-token\r\n"])
def test_a_large_body_without_a_valid_token_reads_the_401_not_a_reset(
    live: Live, auth: bytes
) -> None:
    """The whole body (declared, then chunked) is sent, the 401 read, and the connection ends
    with a clean close (FIN), not a reset."""
    body = b" " * BODY
    chunked = b"".join(
        b"10000\r\n" + body[i : i + 2**16] + b"\r\n" for i in range(0, len(body), 2**16)
    )
    for _ in range(TRIES):
        for headers, sent in [
            (f"Content-Length: {BODY}\r\n".encode(), body),
            (b"Transfer-Encoding: chunked\r\n", chunked + b"0\r\n\r\n"),
        ]:
            raw, errors = _send_and_read_to_end(
                live, _request("/api/v1/jobs", headers + b"Connection: close\r\n", auth) + sent
            )
            assert errors == []
            head, _, payload = raw.partition(b"\r\n\r\n")
            _assert_401(head, payload)


def test_a_large_upload_to_mlflow_without_the_token_reads_the_401(live: Live) -> None:
    """The same under /mlflow (artifact uploads are large ``PUT``s), MLflow not even mounted."""
    body = b" " * BODY
    raw, errors = _send_and_read_to_end(
        live,
        _request(
            "/mlflow/api/2.0/mlflow-artifacts/artifacts/x.bin",
            f"Content-Length: {BODY}\r\nConnection: close\r\n".encode(),
        ).replace(b"POST ", b"PUT ", 1)
        + body,
    )
    assert errors == []
    head, _, payload = raw.partition(b"\r\n\r\n")
    _assert_401(head, payload)


def test_after_a_drained_401_the_connection_serves_the_next_request(live: Live) -> None:
    """Without ``Connection: close`` the connection is kept alive after the 401, as before the
    drain, and the next request on it, with the token, is served."""
    body = b" " * BODY
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as s:
        s.sendall(_request("/api/v1/jobs", f"Content-Length: {BODY}\r\n".encode()) + body)
        head, payload = _read_response(s)
        _assert_401(head, payload)
        assert b"connection: close" not in head.lower()
        job = json.dumps({"command": "echo hi"}).encode()
        s.sendall(
            _request(
                "/api/v1/jobs",
                f"Content-Length: {len(job)}\r\n".encode(),
                f"Authorization: Bearer {live.token}\r\n".encode(),
            )
            + job
        )
        head, payload = _read_response(s)
        assert head.startswith(b"HTTP/1.1 201 "), (head, payload)
        assert json.loads(payload)["command"] == "echo hi"


@pytest.fixture
def drains(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the auth check drained a body for."""
    import aistack.server.app as app_module

    real = app_module.drain_body
    seen: list[str] = []

    async def spy(scope: dict[str, Any], receive: Any, **kw: Any) -> bool:
        seen.append(scope["path"])
        return await real(scope, receive, **kw)

    monkeypatch.setattr(app_module, "drain_body", spy)
    return seen


def test_expect_100_continue_without_the_token_gets_the_401_unread(
    live: Live, drains: list[str]
) -> None:
    """The client waits for our answer before it sends the body: the 401 comes without a
    ``100 Continue`` before it (reading would make the server send one and ask for the body)."""
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as s:
        s.sendall(
            _request("/api/v1/jobs", f"Content-Length: {BODY}\r\nExpect: 100-continue\r\n".encode())
        )
        head, payload = _read_response(s)
    _assert_401(head, payload)
    assert drains == []
    # a request without Expect is drained (the spy sees it)
    _send_and_read_to_end(
        live, _request("/api/v1/x", b"Content-Length: 3\r\nConnection: close\r\n") + b"abc"
    )
    assert drains == ["/api/v1/x"]


def test_a_declared_body_past_the_drain_bound_gets_the_401_unread(
    live: Live, drains: list[str]
) -> None:
    """A Content-Length over DRAIN_MAX_BYTES is not read: the 401 comes at once (only the
    headers are sent here)."""
    from aistack.server.body_limit import DRAIN_MAX_BYTES

    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as s:
        s.sendall(_request("/api/v1/jobs", f"Content-Length: {DRAIN_MAX_BYTES + 1}\r\n".encode()))
        head, payload = _read_response(s)
    _assert_401(head, payload)
    assert drains == []


def test_urllib_without_the_token_reads_the_401(live: Live) -> None:
    """urllib sends ``Connection: close``: the server closes after the answer, and a body left
    unread made it a reset (URLError) instead of the 401."""
    for _ in range(TRIES):
        req = urllib.request.Request(
            f"http://127.0.0.1:{live.port}/api/v1/jobs",
            data=b" " * BODY,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(req, timeout=30)
        assert exc.value.code == 401
        assert json.loads(exc.value.read())["code"] == "unauthorized"


def _drive(receive: Any, **kw: Any) -> bool:
    from aistack.server.body_limit import drain_body

    return asyncio.run(drain_body({"path": "/x"}, receive, **kw))


def test_drain_body_stops_at_its_byte_and_time_bounds() -> None:
    reads: list[int] = []

    async def endless() -> dict[str, Any]:
        reads.append(1)
        return {"type": "http.request", "body": b" " * 100, "more_body": True}

    assert _drive(endless, max_bytes=1000, max_s=30) is False
    assert len(reads) == 11  # stops on the read that passes 1000 bytes

    async def stalled() -> dict[str, Any]:
        await asyncio.sleep(60)
        raise AssertionError("not reached")

    t0 = time.monotonic()
    assert _drive(stalled, max_bytes=1000, max_s=0.2) is False
    assert time.monotonic() - t0 < 10

    msgs = iter(
        [
            {"type": "http.request", "body": b"ab", "more_body": True},
            {"type": "http.request", "body": b"c", "more_body": False},
        ]
    )

    async def complete() -> dict[str, Any]:
        return next(msgs)

    assert _drive(complete) is True

    async def gone() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    assert _drive(gone) is False


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], True),
        ([(b"content-length", b"10")], True),
        ([(b"content-length", b"1001")], False),
        ([(b"transfer-encoding", b"chunked")], True),
        ([(b"expect", b"100-continue")], False),
        ([(b"content-length", b"10"), (b"expect", b"100-Continue ")], False),
    ],
)
def test_may_drain(headers: list[tuple[bytes, bytes]], expected: bool) -> None:
    from aistack.server.body_limit import may_drain

    assert may_drain({"headers": headers}, 1000) is expected
