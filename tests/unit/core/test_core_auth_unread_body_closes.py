"""A request without a valid token whose body the server does not read to its end, on a
kept-alive connection, through a real uvicorn server on 127.0.0.1 (both of its HTTP parsers).

The auth check drains at most ``DRAIN_MAX_BYTES`` before its 401 (none at all of a declared
body larger than that). It used to answer on a kept-alive connection without
``Connection: close``; uvicorn then read and dropped the rest of the body itself, without a
bound, so a caller without the token could make the server read as much as it liked. Now the
401 says ``Connection: close`` and uvicorn closes the connection after it.

What the client manages to send is an upper bound on what the server read: the drain's bound,
plus what the two kernels' socket buffers hold (from the TCP buffer settings), plus a chunk.
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING

import pytest

from aistack.server.body_limit import DRAIN_MAX_BYTES

if TYPE_CHECKING:
    from conftest import Live

CHUNK = 2**20
DECLARED = 2**30  # the Content-Length sent: far past the drain bound


def _head(extra: bytes) -> bytes:
    return (
        b"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n" + extra + b"\r\n"
    )


def _stream(live: Live, head: bytes, chunk: bytes) -> tuple[int, OSError | None, bytes, bool]:
    # the client stops here whatever happens: well past what the server may read
    return live.stream(head, chunk, DRAIN_MAX_BYTES + live.socket_slack(CHUNK) + 128 * CHUNK)


def _assert_401_closing(raw: bytes) -> None:
    """The whole 401, saying ``Connection: close``, and nothing after it."""
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 "), raw[:200]
    assert b"connection: close" in head.lower(), head
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    assert len(payload) == length, "a second response, or a cut one"
    d = json.loads(payload)
    assert d["code"] == "unauthorized"
    assert "Authorization: Bearer" in d["hint"]


def _assert_401_or_cut(raw: bytes) -> None:
    """What came back while the client was still sending: the 401 (``_assert_401_closing``),
    or the start of it. The server closes with unsent bytes in its socket, so the reset may
    overtake the end of the answer (the client cannot read it all then, whatever the server
    does, short of reading the body without a bound)."""
    if b"\r\n\r\n" not in raw:
        assert b"HTTP/1.1 401 ".startswith(raw[:13]), raw[:200]
        return
    head = raw.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 401 "), raw[:200]
    assert b"connection: close" in head.lower(), head


@pytest.mark.parametrize(
    ("auth", "request_bytes"),
    [
        # a declared body past the drain bound, not read at all: 1 KiB of it sent with the head
        (b"", f"Content-Length: {DECLARED}\r\n".encode()),
        (b"Authorization: Bearer wrong-token\r\n", f"Content-Length: {DECLARED}\r\n".encode()),
        # the client waits for our answer before it sends the body: it is not read either
        (b"", b"Content-Length: 2048\r\nExpect: 100-continue\r\n"),
    ],
)
def test_a_401_with_the_body_unread_says_connection_close_and_the_server_closes(
    live: Live, auth: bytes, request_bytes: bytes
) -> None:
    """Sent in one piece, which uvicorn takes whole (under its read-ahead), so the server's
    socket holds nothing unread when it closes: the client reads the whole 401, with
    ``Connection: close``, then the end of the connection (it used to stay open)."""
    prefix = b"" if b"Expect" in request_bytes else b" " * 1024
    with socket.create_connection(("127.0.0.1", live.port), timeout=20) as s:
        s.sendall(_head(auth + request_bytes) + prefix)
        raw = b""
        while data := s.recv(65536):  # until the server closes; a hang fails by timeout
            raw += data
    _assert_401_closing(raw)
    assert b"100 Continue" not in raw


@pytest.mark.parametrize("auth", [b"", b"Authorization: Bearer wrong-token\r\n"])
def test_a_declared_body_past_the_drain_bound_cannot_be_pushed_into_the_server(
    live: Live, auth: bytes
) -> None:
    """Content-Length 1 GiB, streamed: the server answers 401 at once and closes, so the client
    cannot push more than the socket buffers hold (it used to push all of it)."""
    sent, error, raw, server_closed = _stream(
        live, _head(auth + f"Content-Length: {DECLARED}\r\n".encode()), b" " * CHUNK
    )
    assert sent < live.socket_slack(CHUNK), (
        f"the server read {sent:,} bytes of an unauthenticated body"
    )
    assert error is not None
    assert server_closed
    _assert_401_or_cut(raw)


def test_an_endless_chunked_body_is_read_to_the_drain_bound_then_the_connection_closes(
    live: Live,
) -> None:
    """Chunked and never ending: the drain reads up to its bound, the 401 goes out and the
    connection closes; the server reads no more than the bound (it used to read on forever)."""
    chunk = b"%x\r\n" % CHUNK + b" " * CHUNK + b"\r\n"
    sent, error, raw, server_closed = _stream(live, _head(b"Transfer-Encoding: chunked\r\n"), chunk)
    assert sent < DRAIN_MAX_BYTES + live.socket_slack(CHUNK), f"the server read {sent:,} bytes"
    assert error is not None
    assert server_closed
    _assert_401_or_cut(raw)


def test_a_body_sent_after_expect_100_continue_cannot_be_pushed_into_the_server(
    live: Live,
) -> None:
    """With ``Expect: 100-continue`` the body is not read; a client that sends it anyway
    (1 GiB declared) is cut off rather than read."""
    sent, error, raw, server_closed = _stream(
        live,
        _head(f"Content-Length: {DECLARED}\r\nExpect: 100-continue\r\n".encode()),
        b" " * CHUNK,
    )
    assert sent < live.socket_slack(CHUNK)
    assert error is not None
    assert server_closed
    _assert_401_or_cut(raw)
    assert b"100 Continue" not in raw
