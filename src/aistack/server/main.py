"""Run the server in the foreground (``aistack up``)."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
from collections.abc import Callable

from aistack.settings import Settings


def port_free(host: str, port: int) -> bool:
    """Whether ``aistack up`` could bind ``host:port`` (as uvicorn will: IPv6 when the host has
    a ':'). False only when the port is in use; a host that does not resolve or is no address
    of this machine, a privileged port, or a port out of range is a ValidationError."""
    from aistack.errors import ValidationError

    if isinstance(port, bool) or not 1 <= port <= 65535:
        raise ValidationError(
            f"port {port!r} is not a TCP port", hint="pass --port a number from 1 to 65535"
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except socket.gaierror as exc:
            raise ValidationError(
                f"cannot bind {host}:{port}: the host {host!r} does not resolve to an "
                f"{'IPv6' if family == socket.AF_INET6 else 'IPv4'} address ({exc.strerror})",
                hint="pass --host an address of this machine, e.g. 127.0.0.1 (this machine "
                "only) or 0.0.0.0 (every interface)",
            ) from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ValidationError(
                    f"cannot bind {host}:{port}: {host} is not an address of this machine",
                    hint="pass --host an address of this machine, e.g. 127.0.0.1 (this "
                    "machine only) or 0.0.0.0 (every interface)",
                ) from None
            if exc.errno == errno.EACCES:
                raise ValidationError(
                    f"cannot bind {host}:{port}: permission denied (ports below 1024 need "
                    "privileges)",
                    hint="pass --port 1024 or higher (the default is 8765)",
                ) from None
            raise ValidationError(
                f"cannot bind {host}:{port}: {exc.strerror or exc}",
                hint="check --host and --port",
            ) from None


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
