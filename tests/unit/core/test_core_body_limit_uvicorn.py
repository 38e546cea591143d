"""A body over the limit, through a real uvicorn server on 127.0.0.1 (both of its HTTP parsers).

Clients such as ``requests``, ``httpx`` and MLflow's send the whole body without
``Expect: 100-continue``. Answering 413 before reading it and closing the connection left
unread data in the server's socket, so the kernel reset the connection and the client saw
"Connection reset by peer" / a broken pipe instead of the 413. The middleware now reads and
discards the body (up to ``DRAIN_MAX_BYTES``, for up to ``DRAIN_MAX_S``) before answering.
Whether ``requests`` then loses the answer is a race on the server side (its closing reset
can overtake the 413's last bytes), so those cases are sent many times;
``test_the_connection_ends_cleanly_not_reset_after_the_413`` checks the reset itself, which
does not depend on timing.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Live  # tests/unit/core/conftest.py
import requests

LIMIT = 1024  # the live app's API body limit (conftest.LIVE_LIMIT)
BODY = 8 * 2**20  # well past the socket buffers: the client is still sending when we answer
TRIES = 5
REQUESTS_TRIES = 20  # a reset as ``requests`` sees it is a race (see the module docstring)


# ``live``: the app under a real uvicorn (tests/unit/core/conftest.py)


def _assert_413(r: requests.Response, *, declared: int | None) -> None:
    assert r.status_code == 413, r.text
    d = r.json()
    assert d["code"] == "too_large"
    assert d["details"]["setting"] == "AISTACK_MAX_REQUEST_BYTES"
    assert d["details"]["limit_bytes"] == LIMIT
    assert d["details"]["content_length"] == declared
    assert "AISTACK_MAX_REQUEST_BYTES" in d["hint"]
    assert "at most 1,024 bytes (1 KiB)" in d["message"]


def _assert_healthy(live: Live) -> None:
    """The next request on a new connection is served as usual."""
    r = requests.post(
        live.url + "/api/v1/jobs", json={"command": "echo hi"}, headers=live.auth, timeout=30
    )
    assert r.status_code == 201, r.text


def test_a_declared_body_over_the_limit_sent_without_expect_reads_the_413(live: Live) -> None:
    body = b" " * BODY
    for _ in range(REQUESTS_TRIES):
        # requests sends the whole body at once, without Expect: 100-continue; a reset here
        # raises requests.ConnectionError (ConnectionResetError / BrokenPipeError)
        r = requests.post(
            live.url + "/api/v1/jobs",
            data=body,
            headers={**live.auth, "content-type": "application/json"},
            timeout=30,
        )
        _assert_413(r, declared=BODY)
        assert r.headers["connection"] == "close"
    _assert_healthy(live)


def test_a_chunked_body_over_the_limit_reads_the_413(live: Live) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: requests sends it chunked
        for _ in range(BODY // 2**16):
            yield b" " * 2**16

    for _ in range(REQUESTS_TRIES):
        r = requests.post(
            live.url + "/api/v1/jobs",
            data=chunks(),
            headers={**live.auth, "content-type": "application/json"},
            timeout=30,
        )
        _assert_413(r, declared=None)
    _assert_healthy(live)


def _recv_all(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def _raw_post(live: Live, headers: bytes, body: bytes) -> tuple[bytes, list[OSError]]:
    """Send the request and the whole body, then read to the end: (what came back, the socket
    errors met). A connection closed with unread data is reset by the kernel: the send or a
    read then fails with ECONNRESET / EPIPE, whatever the timing."""
    return live.send_raw(
        b"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {live.token}\r\n".encode()
        + b"Content-Type: application/json\r\n"
        + headers
        + b"\r\n"
        + body
    )


def _assert_raw_413(raw: bytes, *, declared: int | None) -> None:
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), raw[:200]
    d = json.loads(payload)
    assert d["code"] == "too_large"
    assert d["details"]["setting"] == "AISTACK_MAX_REQUEST_BYTES"
    assert d["details"]["content_length"] == declared


def test_the_connection_ends_cleanly_not_reset_after_the_413(live: Live) -> None:
    """The deterministic form of the two tests above: a client that sends its whole body
    (declared, then chunked) and reads to the end meets no reset, only the 413 and a clean
    close (FIN)."""
    body = b" " * (4 * 2**20)
    chunked = b"".join(
        b"10000\r\n" + body[i : i + 2**16] + b"\r\n" for i in range(0, len(body), 2**16)
    )
    for _ in range(TRIES):
        raw, errors = _raw_post(live, f"Content-Length: {len(body)}\r\n".encode(), body)
        assert errors == []
        _assert_raw_413(raw, declared=len(body))
        raw, errors = _raw_post(live, b"Transfer-Encoding: chunked\r\n", chunked + b"0\r\n\r\n")
        assert errors == []
        _assert_raw_413(raw, declared=None)
    _assert_healthy(live)


def test_expect_100_continue_gets_the_413_without_sending_the_body(live: Live) -> None:
    """The client waits for our answer before it sends the body: the 413 comes at once, with
    no ``100 Continue`` before it (that would ask for the body), and the connection closes."""
    for _ in range(TRIES):
        with socket.create_connection(("127.0.0.1", live.port), timeout=10) as s:
            s.sendall(
                b"POST /api/v1/jobs HTTP/1.1\r\n"
                b"Host: 127.0.0.1\r\n"
                + f"Authorization: Bearer {live.token}\r\n".encode()
                + b"Content-Type: application/json\r\n"
                + f"Content-Length: {BODY}\r\n".encode()
                + b"Expect: 100-continue\r\n\r\n"
            )
            raw = _recv_all(s)  # returns when the server closes; a hang fails by timeout
        head, _, payload = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413 "), raw[:200]
        assert b"100 Continue" not in raw
        assert b"connection: close" in head.lower()
        d = json.loads(payload)
        assert d["code"] == "too_large"
        assert d["details"]["setting"] == "AISTACK_MAX_REQUEST_BYTES"
        assert d["details"]["content_length"] == BODY
    _assert_healthy(live)


def test_a_body_past_the_drain_bound_is_answered_or_reset_and_the_server_stays_healthy(
    live: Live,
) -> None:
    """Past DRAIN_MAX_BYTES the server answers and closes without reading the rest, as before:
    the client gets the 413 or a reset, and the next request is served."""
    from aistack.server.body_limit import DRAIN_MAX_BYTES

    body = b" " * (DRAIN_MAX_BYTES + 2**20)
    try:
        r = requests.post(
            live.url + "/api/v1/jobs",
            data=body,
            headers={**live.auth, "content-type": "application/json"},
            timeout=30,
        )
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
        pass
    else:
        _assert_413(r, declared=len(body))
    del body

    def endless() -> Iterator[bytes]:  # chunked, never ends: the drain gives up at its bound
        chunk = b" " * 2**20
        for _ in range(DRAIN_MAX_BYTES // len(chunk) * 4):
            yield chunk

    try:
        r = requests.post(
            live.url + "/api/v1/jobs",
            data=endless(),
            headers={**live.auth, "content-type": "application/json"},
            timeout=30,
        )
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
        pass
    else:
        _assert_413(r, declared=None)
    _assert_healthy(live)
