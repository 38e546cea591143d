"""A local HTTP server on 127.0.0.1 that records when each request came and when its answer
was sent, for the crawler's politeness tests (the ``server`` fixture, in conftest.py, starts
and stops them)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# path → (status, Location or None, body[, seconds to wait before answering])
Routes = dict[str, tuple[int, str | None, bytes] | tuple[int, str | None, bytes, float]]


class Server:
    def __init__(self, routes: Routes) -> None:
        self.routes = routes
        self.hits: list[tuple[str, float, float]] = []  # (path, came, answered), in order
        hits, lock = self.hits, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                came = time.monotonic()
                status, location, body, *rest = routes.get(self.path, (404, None, b""))
                wait = rest[0] if rest else 0.0
                time.sleep(wait)
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Type", "text/html" if status == 200 else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                with lock:
                    hits.append((self.path, came, time.monotonic()))

            def log_message(self, *a: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def paths(self) -> list[str]:
        return [p for p, _, _ in sorted(self.hits, key=lambda h: h[1])]

    def gaps(self) -> list[float]:
        """From the start of each request to the start of the next."""
        came = sorted(c for _, c, _ in self.hits)
        return [b - a for a, b in zip(came, came[1:], strict=False)]

    def pauses(self) -> list[float]:
        """From the end of each request to the start of the next (negative: they overlapped)."""
        hits = sorted(self.hits, key=lambda h: h[1])
        return [b[1] - a[2] for a, b in zip(hits, hits[1:], strict=False)]
