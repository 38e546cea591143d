"""A raw HTTP server on 127.0.0.1 for the crawler's tests: it runs in a thread, reads one request
head per connection and hands the socket to the route for the path, so a test controls every
byte and every stall (the ``serve`` fixture, in conftest.py, starts and stops them)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aistack.webdata.crawler import CrawlConfig, crawl

Route = Callable[["RawServer", socket.socket], None]
UA = "aistack-crawler/0.1 (test)"


def crawl_raw(srv: RawServer, tmp_path: Path, **kw: Any) -> dict[str, Any]:
    """One crawl from ``srv``'s root into ``tmp_path/out``: no delay, robots.txt not asked,
    a 5 s timeout and the test's User-Agent (``kw`` overrides any of them and sets the rest,
    e.g. ``max_response_bytes``)."""
    opts: dict[str, Any] = {
        "seeds": [srv.url],
        "out_dir": tmp_path / "out",
        "delay_s": 0.0,
        "timeout_s": 5.0,
        "user_agent": UA,
        "obey_robots": False,
        **kw,
    }
    return crawl(CrawlConfig(**opts))


class RawServer:
    """Accepts connections on 127.0.0.1, reads one request head and hands the socket to the
    route for the path (404 when none). Routes that stall wait on ``stop``, set at teardown."""

    def __init__(self, routes: dict[str, Callable[[RawServer, socket.socket], None]]) -> None:
        self.routes = routes
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 1 << 20:
                got = conn.recv(65536)
                if not got:
                    return
                data += got
            lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {
                k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])
            }
            self.requests.append((path, headers))
            self.routes.get(path, not_found)(self, conn)
        except OSError:
            pass
        finally:
            conn.close()

    def paths(self) -> list[str]:
        return [p for p, _ in self.requests]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def answer(
    status: int = 200,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    length: bool = True,
) -> Callable[[RawServer, socket.socket], None]:
    def route(srv: RawServer, conn: socket.socket) -> None:
        head = f"HTTP/1.1 {status} X\r\n"
        hs = {"Content-Type": "text/html"} if headers is None else headers
        if length and "Content-Length" not in hs:
            hs = {**hs, "Content-Length": str(len(body))}
        head += "".join(f"{k}: {v}\r\n" for k, v in hs.items())
        conn.sendall(head.encode("latin-1") + b"\r\n" + body)

    return route


not_found = answer(404, b"nope")
