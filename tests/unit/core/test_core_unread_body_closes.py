"""An answer sent before the app read the request body, for a caller WITH the token, through a
real uvicorn server on 127.0.0.1 (both of its HTTP parsers).

A 404 (no such route) or 405 (wrong method) is made without reading the body. It used to go
out on a kept-alive connection without ``Connection: close``; uvicorn then read and dropped the
rest of the body itself, without a bound (a chunked body has no end; a declared one only the
limit, 16 GiB under /mlflow by default), so a caller could make the server read as much as it
liked. Now ``CloseUnreadBodyMiddleware`` adds ``Connection: close`` and uvicorn closes after
the answer; a request whose body the handler read keeps its connection, and so does one with a
``Content-Length`` of which at most ``KEEPALIVE_UNREAD_MAX_BYTES`` are left unread (uvicorn
drops that much itself: test_core_unread_body_keepalive.py).

What the client manages to send is an upper bound on what the server read: what the two
kernels' socket buffers hold (from the TCP buffer settings), plus a few chunks (the approach of
test_core_auth_unread_body_closes.py).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Live

CHUNK = 2**20
DECLARED = 2**30  # the Content-Length sent
# (path, status): no such route, and a GET-only route; neither reads the body
UNREAD = [("/api/v1/no-such-route", 404), ("/api/v1/cluster", 405)]


def _head(live: Live, path: str, extra: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {live.token}\r\n"
        "Content-Type: application/json\r\n".encode()
        + extra
        + b"\r\n"
    )


def _stream(live: Live, head: bytes, chunk: bytes) -> tuple[int, OSError | None, bytes, bool]:
    # the client stops here whatever happens: well past what the server may read
    return live.stream(head, chunk, live.socket_slack(CHUNK) + 128 * CHUNK)


def _assert_answer_or_cut(raw: bytes, status: int) -> None:
    """What came back while the client was still sending: the answer, saying ``Connection:
    close``, or the start of it (the server closes with unread bytes in its socket, so the
    reset may overtake the end of the answer)."""
    status_line = f"HTTP/1.1 {status} ".encode()
    if b"\r\n\r\n" not in raw:
        assert status_line.startswith(raw[:13]), raw[:200]
        return
    head = raw.partition(b"\r\n\r\n")[0]
    assert head.startswith(status_line), raw[:200]
    assert b"connection: close" in head.lower(), head


def _read_response(s: socket.socket) -> tuple[bytes, dict[str, Any]]:
    """One JSON response (head, parsed body) with a Content-Length, off a kept-alive
    connection."""
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
    return head, json.loads(body)


@pytest.mark.parametrize(("path", "status"), UNREAD)
def test_a_declared_body_the_app_does_not_read_cannot_be_pushed_into_the_server(
    roomy: Live, path: str, status: int
) -> None:
    """Content-Length 1 GiB (under the body limit), streamed: the 404/405 says ``Connection:
    close`` and the server closes, so the client cannot push more than the socket buffers hold
    (uvicorn used to read all of it on the kept-alive connection)."""
    head = _head(roomy, path, f"Content-Length: {DECLARED}\r\n".encode())
    sent, error, raw, server_closed = _stream(roomy, head, b" " * CHUNK)
    assert sent < roomy.socket_slack(CHUNK), (
        f"the server read {sent:,} bytes of a body nobody wanted"
    )
    assert error is not None
    assert server_closed
    _assert_answer_or_cut(raw, status)


@pytest.mark.parametrize(("path", "status"), UNREAD)
def test_an_endless_chunked_body_the_app_does_not_read_cannot_be_pushed_into_the_server(
    live: Live, path: str, status: int
) -> None:
    """Chunked and never ending (the body limit counts only what the app reads): the same."""
    chunk = b"%x\r\n" % CHUNK + b" " * CHUNK + b"\r\n"
    sent, error, raw, server_closed = _stream(
        live, _head(live, path, b"Transfer-Encoding: chunked\r\n"), chunk
    )
    assert sent < live.socket_slack(CHUNK), (
        f"the server read {sent:,} bytes of a body nobody wanted"
    )
    assert error is not None
    assert server_closed
    _assert_answer_or_cut(raw, status)


@pytest.mark.parametrize(("path", "status"), UNREAD)
def test_a_small_chunked_unread_body_gets_the_whole_answer_then_the_close(
    live: Live, path: str, status: int
) -> None:
    """Chunked (its end is not known in advance, however small it turns out), sent in one piece
    (uvicorn has it all, so nothing is reset): the whole answer, in the API's error shape, with
    ``Connection: close``, then the end of the connection (it used to stay open). A small body
    with a ``Content-Length`` keeps the connection instead (test_core_unread_body_keepalive.py).
    """
    body = b'{"command": "echo hi"}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    with socket.create_connection(("127.0.0.1", live.port), timeout=20) as s:
        s.sendall(_head(live, path, b"Transfer-Encoding: chunked\r\n") + chunked)
        head, d = _read_response(s)
        assert head.startswith(f"HTTP/1.1 {status} ".encode()), head
        assert b"connection: close" in head.lower(), head
        assert d["code"] == ("not_found" if status == 404 else "method_not_allowed")
        assert path in d["message"]
        s.settimeout(5)
        assert s.recv(65536) == b""  # FIN: a hang fails by the timeout


def test_a_post_whose_body_was_read_keeps_the_connection(live: Live) -> None:
    """The normal case: a small JSON body the handler read, then a second request on the same
    connection."""
    body = b'{"command": "echo hi"}'
    with socket.create_connection(("127.0.0.1", live.port), timeout=20) as s:
        s.sendall(_head(live, "/api/v1/jobs", b"Content-Length: %d\r\n" % len(body)) + body)
        head, job = _read_response(s)
        assert head.startswith(b"HTTP/1.1 201 "), head
        assert b"connection: close" not in head.lower(), head
        assert job["command"] == "echo hi"
        s.sendall(
            f"GET /api/v1/jobs/{job['id']} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {live.token}\r\n\r\n".encode()
        )
        head, again = _read_response(s)
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert b"connection: close" not in head.lower(), head
        assert again["id"] == job["id"]
        assert again["command"] == "echo hi"


# the middleware alone, on plain ASGI messages


def _run(
    headers: list[tuple[bytes, bytes]],
    bodies: list[tuple[bytes, bool]],
    reads: int,
    response_headers: list[tuple[bytes, bytes]] | None = None,
    bound: int | None = None,
) -> list[tuple[bytes, bytes]]:
    """Serve one request (``headers``; ``bodies``: its http.request messages, (body,
    more_body)) to an app that reads ``reads`` messages, then answers: the answer's headers.
    ``bound``: the middleware's ``keepalive_unread_max_bytes`` (its default if None)."""
    from aistack.server.body_limit import CloseUnreadBodyMiddleware

    sent: list[dict[str, Any]] = []
    messages: Iterator[tuple[bytes, bool]] = iter(bodies)

    async def receive() -> dict[str, Any]:
        body, more = next(messages)
        return {"type": "http.request", "body": body, "more_body": more}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        for _ in range(reads):
            await receive()
        await send(
            {"type": "http.response.start", "status": 200, "headers": response_headers or []}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": headers}
    kwargs = {} if bound is None else {"keepalive_unread_max_bytes": bound}
    asyncio.run(CloseUnreadBodyMiddleware(app, **kwargs)(scope, receive, send))
    assert sent[1] == {"type": "http.response.body", "body": b"ok"}
    return list(sent[0]["headers"])


CLOSE = (b"connection", b"close")
TYPE = (b"content-type", b"text/plain")
CL4 = (b"content-length", b"4")
CHUNKED = (b"transfer-encoding", b"chunked")
EXPECT = (b"expect", b"100-continue")


@pytest.mark.parametrize(
    ("headers", "bodies", "reads", "bound", "closes"),
    [
        # no body declared: nothing to read
        ([], [(b"", False)], 0, None, False),
        ([(b"content-length", b"0")], [(b"", False)], 0, None, False),
        # read to its end (the last message, or all the declared bytes)
        ([CL4], [(b"ab", True), (b"cd", False)], 2, None, False),
        ([CL4], [(b"abcd", True)], 1, None, False),
        ([CHUNKED], [(b"ab", True), (b"", False)], 2, None, False),
        # a declared body with no more than the bound unread: kept (uvicorn drops the rest)
        ([CL4], [(b"abcd", False)], 0, None, False),
        ([CL4], [(b"ab", True), (b"cd", False)], 1, None, False),
        ([CL4], [(b"abcd", False)], 0, 4, False),
        ([CL4], [(b"ab", True), (b"cd", False)], 1, 2, False),
        ([(b"content-length", b"65536")], [(b"", True)], 0, None, False),
        # ... more than the bound unread: closed
        ([CL4], [(b"abcd", False)], 0, 3, True),
        ([CL4], [(b"ab", True), (b"cd", False)], 1, 1, True),
        ([(b"content-length", b"65537")], [(b"", True)], 0, None, True),
        # chunked (a Content-Length beside it does not count), or a malformed length: closed
        ([CHUNKED], [(b"ab", True), (b"", False)], 1, None, True),
        ([CHUNKED], [(b"ab", True), (b"", False)], 0, None, True),
        ([CL4, CHUNKED], [(b"abcd", False)], 0, None, True),
        ([(b"content-length", b"nope")], [(b"", False)], 0, None, True),
        # Expect: 100-continue: closed while nobody asked for the body (the client sends
        # nothing), kept once it was asked for (the client sends it, uvicorn drops the rest)
        ([CL4, EXPECT], [(b"abcd", False)], 0, None, True),
        ([CL4, EXPECT], [(b"ab", True), (b"cd", False)], 1, None, False),
    ],
)
def test_close_unread_body_middleware(
    headers: list[tuple[bytes, bytes]],
    bodies: list[tuple[bytes, bool]],
    reads: int,
    bound: int | None,
    closes: bool,
) -> None:
    got = _run(headers, bodies, reads, [TYPE], bound)
    assert got == ([TYPE, CLOSE] if closes else [TYPE])


def test_close_unread_body_middleware_default_bound() -> None:
    from aistack.server.body_limit import KEEPALIVE_UNREAD_MAX_BYTES

    assert KEEPALIVE_UNREAD_MAX_BYTES == 64 * 2**10


def test_close_unread_body_middleware_replaces_a_connection_header() -> None:
    got = _run([CHUNKED], [(b"ab", True), (b"", False)], 0, [(b"Connection", b"keep-alive")])
    assert got == [CLOSE]
    # and leaves it alone when the connection is kept
    got = _run([CL4], [(b"abcd", False)], 0, [(b"Connection", b"keep-alive")])
    assert got == [(b"Connection", b"keep-alive")]
