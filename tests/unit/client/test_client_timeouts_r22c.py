"""A server that takes the connection but does not answer (stopped with SIGSTOP, overloaded):
the SDK said "cannot reach the aistack server ... start it with `aistack up --detach`", also for
a cancel or submit the server went on to carry out; and ``wait(timeout=1)`` was held for the
client's whole HTTP timeout (30 s by default) by one poll. A closed Client raised httpx's bare
RuntimeError; ``repr(Client)`` said nothing (and must never show the token)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aistack.client import Client
from aistack.errors import AistackError, ConnectionFailed
from aistack.settings import Settings

JOB = {"id": "abc", "state": "RUNNING", "attempt": 0}


@pytest.fixture
def silent_server() -> Iterator[tuple[str, list[int]]]:
    """(url, answered): a server that answers the first ``answered[0]`` requests with a RUNNING
    job and then reads requests without ever answering."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(50)
    answered = [0]
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        while not stop.is_set():
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            if answered[0] <= 0:
                continue  # read, never answer
            answered[0] -= 1
            body = json.dumps(JOB).encode()
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            held.append(conn)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}", answered
    stop.set()
    srv.close()
    for c in held:
        c.close()


def _client(tmp_path: Path, url: str, timeout: float) -> Client:
    return Client(url, "tok", timeout=timeout, settings=Settings(home=tmp_path))


def test_a_read_timeout_says_the_server_did_not_answer_not_that_it_is_down(
    tmp_path: Path, silent_server: tuple[str, list[int]]
) -> None:
    url, _ = silent_server
    with _client(tmp_path, url, 0.5) as c, pytest.raises(ConnectionFailed) as exc:
        c.get_job("abc")
    assert exc.value.message == (
        f"the aistack server at {url} did not answer GET /api/v1/jobs/abc within 0.5 s"
    )
    assert "aistack up" not in (exc.value.hint or "")
    assert "timeout=" in (exc.value.hint or "")


@pytest.mark.parametrize(
    ("call", "where"),
    [
        (lambda c: c.cancel("abc"), "POST /api/v1/jobs/abc/cancel"),
        (lambda c: c.submit({"command": "true"}), "POST /api/v1/jobs"),
    ],
)
def test_a_timed_out_change_may_have_been_carried_out(
    tmp_path: Path, silent_server: tuple[str, list[int]], call, where: str
) -> None:
    url, _ = silent_server
    with _client(tmp_path, url, 0.5) as c, pytest.raises(ConnectionFailed) as exc:
        call(c)
    assert exc.value.message == (
        f"the aistack server at {url} did not answer {where} within 0.5 s; it may have carried "
        "it out all the same"
    )
    assert (exc.value.hint or "").startswith("check the outcome")


def test_wait_keeps_its_timeout_when_the_server_stops_answering(
    tmp_path: Path, silent_server: tuple[str, list[int]]
) -> None:
    url, answered = silent_server
    answered[0] = 1  # the first poll sees RUNNING, then the server hangs
    with _client(tmp_path, url, 30.0) as c:
        t0 = time.monotonic()
        with pytest.raises(ConnectionFailed, match="did not answer GET /api/v1/jobs/abc"):
            c.wait("abc", timeout=1.0, poll_s=0.1)
        took = time.monotonic() - t0
    assert took < 5.0, f"wait(timeout=1) took {took:.1f} s (the client's timeout is 30 s)"


def test_a_closed_client_says_so(tmp_path: Path) -> None:
    c = _client(tmp_path, "http://127.0.0.1:9", 1.0)
    c.close()
    with pytest.raises(AistackError) as exc:
        c.health()
    assert exc.value.message == (
        "this Client (http://127.0.0.1:9) is closed: GET /healthz was not sent"
    )


def test_repr_shows_the_url_never_the_token(tmp_path: Path) -> None:
    c = _client(tmp_path, "http://127.0.0.1:9", 1.0)
    c.token = "s3cret-token"
    assert repr(c) == "Client(url='http://127.0.0.1:9', token=set)"
    c.close()
    assert repr(c) == "Client(url='http://127.0.0.1:9', token=set, closed)"
    assert "s3cret" not in repr(c)
