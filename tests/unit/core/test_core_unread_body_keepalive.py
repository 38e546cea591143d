"""A small declared body the app does not read keeps the connection, through a real uvicorn
server on 127.0.0.1 (both of its HTTP parsers); larger, chunked or ``Expect: 100-continue``
ones still close it.

A 404 (no such route) or 405 (wrong method) is made without reading the body. With a
``Content-Length`` and at most ``KEEPALIVE_UNREAD_MAX_BYTES`` unread, the answer no longer says
``Connection: close``: uvicorn reads and drops the rest itself (bounded) and the next request
comes on the same connection (it used to be closed, so the client paid a new connection). The
unbounded cases keep their ``Connection: close`` (a chunked body:
test_core_unread_body_closes.py).

Every socket has a timeout: a server that neither answers nor closes fails the test.
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from aistack.server.body_limit import KEEPALIVE_UNREAD_MAX_BYTES

if TYPE_CHECKING:
    from conftest import Live

TIMEOUT = 10
# (path, status): no such route, and a GET-only route; neither reads the body
UNREAD = [("/api/v1/no-such-route", 404), ("/api/v1/cluster", 405)]
BODY = b'{"command": "echo hi", "note": "a small JSON body"}'


def _head(live: Live, path: str, extra: bytes, method: str = "POST") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {live.token}\r\n"
        "Content-Type: application/json\r\n".encode()
        + extra
        + b"\r\n"
    )


class _Reader:
    """Responses with a Content-Length, one after another, off one socket."""

    def __init__(self, s: socket.socket) -> None:
        self.s = s
        self.buf = b""

    def _more(self, what: str) -> None:
        chunk = self.s.recv(65536)
        assert chunk, f"the server closed the connection {what}: {self.buf[:200]!r}"
        self.buf += chunk

    def response(self) -> tuple[bytes, Any]:
        """(head, parsed JSON body) of the next response."""
        while b"\r\n\r\n" not in self.buf:
            self._more("before the answer")
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        self.buf = rest
        while len(self.buf) < length:
            self._more("mid-body")
        body, self.buf = self.buf[:length], self.buf[length:]
        return head, json.loads(body)

    def closed(self) -> bool:
        """Nothing more came, then the server closed (FIN): a hang fails by the timeout."""
        assert self.buf == b"", self.buf[:200]
        return self.s.recv(65536) == b""


def _jobs(live: Live) -> bytes:
    return _head(live, "/api/v1/jobs", b"", method="GET")


def _assert_unread_answer(head: bytes, d: Any, path: str, status: int) -> None:
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), head
    assert d["code"] == ("not_found" if status == 404 else "method_not_allowed"), d
    assert path in d["message"], d


@pytest.mark.parametrize(("path", "status"), UNREAD)
def test_a_small_unread_body_keeps_the_connection_for_the_next_request(
    roomy: Live, path: str, status: int
) -> None:
    """A small JSON POST, sent whole, answered without reading it: no ``Connection: close``,
    and a second request on the same socket is answered."""
    with socket.create_connection(("127.0.0.1", roomy.port), timeout=TIMEOUT) as s:
        r = _Reader(s)
        s.sendall(_head(roomy, path, b"Content-Length: %d\r\n" % len(BODY)) + BODY)
        head, d = r.response()
        _assert_unread_answer(head, d, path, status)
        assert b"connection:" not in head.lower(), head
        s.sendall(_jobs(roomy))
        head, jobs = r.response()
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert b"connection:" not in head.lower(), head
        assert jobs == []
        assert r.buf == b""


@pytest.mark.parametrize("size", [len(BODY), KEEPALIVE_UNREAD_MAX_BYTES])
def test_a_body_sent_after_the_answer_is_dropped_by_uvicorn_and_the_next_request_served(
    roomy: Live, size: int
) -> None:
    """The head alone, then the answer (404, no ``Connection: close``), then the whole body (up
    to the bound) and the next request in one piece: uvicorn drops exactly the body and serves
    the request after it (a parser that took the body for a request would answer 400, one that
    waited for more would hang)."""
    path = "/api/v1/no-such-route"
    with socket.create_connection(("127.0.0.1", roomy.port), timeout=TIMEOUT) as s:
        r = _Reader(s)
        s.sendall(_head(roomy, path, b"Content-Length: %d\r\n" % size))
        head, d = r.response()
        _assert_unread_answer(head, d, path, 404)
        assert b"connection:" not in head.lower(), head
        s.sendall(b"G" * size + _jobs(roomy))  # "GGGG...": a request line if not dropped
        head, jobs = r.response()
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert jobs == []
        # and once more: the connection is still in step
        s.sendall(_jobs(roomy))
        head, jobs = r.response()
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert r.buf == b""


def test_a_declared_body_over_the_bound_still_closes(roomy: Live) -> None:
    """One byte over ``KEEPALIVE_UNREAD_MAX_BYTES`` declared (none of it sent, so nothing is
    left unread in the server's socket to reset it): ``Connection: close``, then the FIN."""
    path = "/api/v1/no-such-route"
    with socket.create_connection(("127.0.0.1", roomy.port), timeout=TIMEOUT) as s:
        r = _Reader(s)
        s.sendall(_head(roomy, path, b"Content-Length: %d\r\n" % (KEEPALIVE_UNREAD_MAX_BYTES + 1)))
        head, d = r.response()
        _assert_unread_answer(head, d, path, 404)
        assert b"connection: close" in head.lower(), head
        assert r.closed()


def test_a_small_body_behind_expect_100_continue_still_closes(roomy: Live) -> None:
    """``Expect: 100-continue``, not asked for: the client sends nothing (its next request would
    be read as the body on a kept connection), so the answer closes, with no ``100 Continue``."""
    path = "/api/v1/no-such-route"
    with socket.create_connection(("127.0.0.1", roomy.port), timeout=TIMEOUT) as s:
        r = _Reader(s)
        extra = b"Content-Length: %d\r\nExpect: 100-continue\r\n" % len(BODY)
        s.sendall(_head(roomy, path, extra))
        head, d = r.response()
        assert b"100 Continue" not in head
        _assert_unread_answer(head, d, path, 404)
        assert b"connection: close" in head.lower(), head
        assert r.closed()


def test_httpx_reuses_its_connection_after_a_small_post_answered_404(roomy: Live) -> None:
    """A real client with one pooled connection: the 404 to a JSON POST, then a GET, go over the
    same connection (the same local port)."""
    ports: list[int] = []

    def local_port(response: httpx.Response) -> None:
        ports.append(response.extensions["network_stream"].get_extra_info("client_addr")[1])

    with httpx.Client(
        base_url=roomy.url,
        headers=roomy.auth,
        timeout=TIMEOUT,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        event_hooks={"response": [local_port]},
    ) as client:
        missing = client.post("/api/v1/no-such-route", json={"command": "echo hi"})
        assert missing.status_code == 404
        assert missing.json()["code"] == "not_found"
        assert "connection" not in missing.headers
        jobs = client.get("/api/v1/jobs")
        assert jobs.status_code == 200
        assert jobs.json() == []
    assert len(ports) == 2
    assert ports[0] == ports[1], f"a new connection for the second request: {ports}"
