"""Fixtures of the core tests: ``live``, the app served by a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

LIVE_LIMIT = 1024  # the live app's API body limit (bytes); /mlflow gets 4 times as much


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
