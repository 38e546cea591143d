from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from raw_http import RawServer, Route
    from timed_http import Routes, Server

WARC_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "warc"


@pytest.fixture
def warc_data() -> Path:
    if not (WARC_DATA / "samples").is_dir():
        pytest.skip(f"shared test data not found at {WARC_DATA} (see shared/data/README.md)")
    return WARC_DATA


# (path, request headers) -> (HTTP status, HTML body)
Responder = Callable[[str, Any], tuple[int, bytes]]


@pytest.fixture
def page_server() -> Iterator[Callable[[Responder], str]]:
    """Start local HTTP servers on 127.0.0.1 whose GET answers come from a function of the path
    and the request headers; each start returns the server's root URL. Stopped after the test."""
    servers: list[ThreadingHTTPServer] = []

    def start(respond: Responder) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                status, body = respond(self.path, self.headers)
                self.send_response(status)
                if status == 200:
                    self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: object) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[..., RawServer]]:
    """Start raw HTTP servers on 127.0.0.1 (``serve(routes)``); all are stopped at teardown."""
    from raw_http import RawServer

    servers: list[RawServer] = []

    def start(routes: dict[str, Route]) -> RawServer:
        srv = RawServer(routes)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.close()


@pytest.fixture
def server() -> Iterator[Callable[[Routes], Server]]:
    """Start timed HTTP servers on 127.0.0.1 (``server(routes)``); all stopped at teardown."""
    from timed_http import Server

    started: list[Server] = []

    def start(routes: Routes) -> Server:
        started.append(Server(routes))
        return started[-1]

    yield start
    for s in started:
        s.httpd.shutdown()
        s.httpd.server_close()
