"""Fixtures of the core tests: ``live``, the app served by a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

LIVE_LIMIT = 1024  # the live app's API body limit (bytes); /mlflow gets 4 times as much
ROOMY_LIMIT = 4 * 2**30  # the body limits of ``roomy``: the large declared bodies pass them


@dataclass
class Live:
    url: str
    port: int
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def send_raw(self, request: bytes) -> tuple[bytes, list[OSError]]:
        """Send ``request`` (head and whole body) on a new connection, then read until the
        server closes: (what came back, the socket errors met — a reset shows here as
        ECONNRESET / EPIPE, whatever the timing)."""
        errors: list[OSError] = []
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as s:
            try:
                s.sendall(request)
            except OSError as e:
                errors.append(e)
            data = b""
            try:
                while chunk := s.recv(65536):
                    data += chunk
            except OSError as e:
                errors.append(e)
        return data, errors

    @staticmethod
    def socket_slack(chunk: int) -> int:
        """What the server's receive buffer and the client's send buffer may hold, unread, when the
        server closes (from the TCP buffer settings), plus 8 chunks: the client may get that much
        out beyond what the server read."""

        def buffer_max(name: str) -> int:
            try:
                return int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[2])
            except (OSError, IndexError, ValueError):
                return 32 * 2**20

        return buffer_max("tcp_rmem") + buffer_max("tcp_wmem") + 8 * chunk

    def stream(
        self, head: bytes, chunk: bytes, cap: int
    ) -> tuple[int, OSError | None, bytes, bool]:
        """Send ``head``, then ``chunk`` again and again until the server stops taking it or
        ``cap`` bytes of body went out, reading what comes back meanwhile: (bytes of body sent,
        the error that stopped the sending, what came back, whether the server closed the
        connection (FIN or reset) before the client did)."""
        got: list[bytes] = []
        closed = threading.Event()
        with socket.create_connection(("127.0.0.1", self.port), timeout=20) as s:

            def read() -> None:
                try:
                    while data := s.recv(65536):
                        got.append(data)
                    closed.set()  # FIN
                except ConnectionResetError:
                    closed.set()
                except OSError:
                    pass  # our own close, or a timeout

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            sent = 0
            error: OSError | None = None
            try:
                s.sendall(head)
                while sent < cap:
                    s.sendall(chunk)
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError) as e:
                error = e
            # a server that closed is seen at once; one that keeps the connection open would
            # only be seen by the reader's timeout
            closed.wait(10)
            server_closed = closed.is_set()
            try:
                s.shutdown(socket.SHUT_RDWR)  # ends the reader if it still waits
            except OSError:
                pass  # already closed
            reader.join(10)
        return sent, error, b"".join(got), server_closed


@pytest.fixture(params=["h11", "httptools"])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Live]:
    """The app (``LIVE_LIMIT`` API body limit, 4 × that under /mlflow; memory executor, no
    MLflow) served by uvicorn in a thread, once with each of its HTTP parsers."""
    import uvicorn

    if request.param == "httptools":
        pytest.importorskip("httptools")
    from aistack.server.app import create_app
    from aistack.settings import Settings

    settings = Settings(
        home=tmp_path / "home",
        executor="memory",
        mlflow_enabled=False,
        max_request_bytes=LIVE_LIMIT,
        max_mlflow_request_bytes=4 * LIVE_LIMIT,
    )
    app = create_app(settings, start_loop=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        http=request.param,
        loop="asyncio",
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield Live(f"http://127.0.0.1:{port}", port, app.state.ctx.token)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
        app.state.ctx.executor.close()
        app.state.ctx.engine.dispose()


@pytest.fixture
def _roomy_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Body limits of ``ROOMY_LIMIT`` for the app ``live`` builds after this took effect."""
    import aistack.settings

    settings_cls = aistack.settings.Settings

    def settings(**kwargs: Any) -> aistack.settings.Settings:
        kwargs.update(max_request_bytes=ROOMY_LIMIT, max_mlflow_request_bytes=ROOMY_LIMIT)
        return settings_cls(**kwargs)

    monkeypatch.setattr(aistack.settings, "Settings", settings)


@pytest.fixture
def roomy(_roomy_limits: None, live: Live) -> Live:
    """``live`` with body limits of ``ROOMY_LIMIT`` (``live`` alone refuses more than
    ``LIVE_LIMIT`` with a 413 before the app runs)."""
    return live
