"""Run the server in the foreground (``aistack up``)."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable

from aistack.settings import Settings


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def run(
    settings: Settings,
    host: str,
    port: int,
    *,
    log_level: str = "warning",
    announce: Callable[[], None] | None = None,
) -> None:
    """Serve until stopped. ``announce`` is called once the checks passed (port free, this
    server holds the DB's lease), just before the socket is bound."""
    import uvicorn

    from aistack.errors import ConflictError
    from aistack.server.app import create_app

    if not port_free(host, port):
        raise ConflictError(
            f"port {port} on {host} is in use",
            hint="stop the other server (`aistack down`) or pass --port",
        )
    logging.basicConfig(
        level=logging.INFO if settings.debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = settings.model_copy(update={"host": host, "port": port})
    app = create_app(settings)
    ctx = app.state.ctx
    try:
        ctx.lease.acquire()  # refuse here, before binding, if another server uses this DB
    except ConflictError:
        ctx.executor.close()
        raise
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    if announce is not None:
        announce()
    settings.server_file.write_text(
        json.dumps({"url": url, "pid": os.getpid(), "host": host, "port": port})
    )
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    finally:
        ctx.lease.stop(release=True)  # also when uvicorn could not start
        try:
            info = json.loads(settings.server_file.read_text())
            if info.get("pid") == os.getpid():
                settings.server_file.unlink()
        except (OSError, ValueError):
            pass
