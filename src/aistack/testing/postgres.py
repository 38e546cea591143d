"""A private PostgreSQL server for tests and local experiments.

``start_postgres()`` creates a throw-away cluster in a temporary directory (``initdb`` as
the ``postgres`` user when running as root), starts it with ``pg_ctl`` on 127.0.0.1 and a
free port (its Unix socket in the same temporary directory, never /var/run), and returns a
:class:`PostgresServer` whose :meth:`~PostgresServer.create_database` hands out fresh
databases as SQLAlchemy URLs (``postgresql+psycopg://…``). ``stop()`` shuts the server
down by its own ``pg_ctl`` and removes the directory.

For pytest, :func:`database_url_for` is the body of a plugin-free fixture that gives a
test either a SQLite file or a fresh PostgreSQL database::

    @pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
    def database_url(request, tmp_path):
        return database_url_for(request, tmp_path)

The PostgreSQL server is started once per pytest session (on first use) and stopped when
the session ends; each test gets its own database. When PostgreSQL is not installed, the
PostgreSQL variant is skipped with the command that installs it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aistack.errors import BackendError, NotSupportedError

log = logging.getLogger(__name__)

INSTALL_HINT = "install it with scripts/ci/install-servers.sh (apt-get install -y postgresql)"


def find_pg_bin() -> Path | None:
    """The directory holding initdb/pg_ctl, or None when PostgreSQL is not installed."""
    env = os.environ.get("AISTACK_PG_BIN")
    if env and (Path(env) / "pg_ctl").exists():
        return Path(env)
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.parent.name.split(".")],
    )
    for c in reversed(candidates):
        if (c / "initdb").exists() and (c / "pg_ctl").exists():
            return c
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    return None


def postgres_unavailable_reason() -> str | None:
    """None when a private server can be started here, else why not (with the fix)."""
    if find_pg_bin() is None:
        return f"PostgreSQL is not installed: {INSTALL_HINT}"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed: pip install 'aistack[postgres]'"
    if os.geteuid() == 0:
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root but there is no 'postgres' user to run the server as"
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(kw_only=True)
class PostgresServer:
    """A running private PostgreSQL cluster."""

    base_dir: Path
    bin_dir: Path
    port: int
    user: str
    password: str
    host: str = "127.0.0.1"
    run_as: str | None = None  # OS user the server runs as (postgres when we are root)
    _stopped: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "sock"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgres.log"

    def url(self, database: str = "postgres", *, driver: str = "psycopg") -> str:
        """SQLAlchemy URL of one database on this server."""
        return (
            f"postgresql+{driver}://{self.user}:{self.password}@{self.host}:{self.port}/{database}"
        )

    def _connect(self, database: str = "postgres") -> Any:
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database,
            autocommit=True,
            connect_timeout=10,
        )

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a random name by default) and return its URL."""
        name = name or f"aistack_{secrets.token_hex(6)}"
        if not name.replace("_", "").isalnum():
            raise NotSupportedError(
                f"database name {name!r} must be letters, digits and underscores",
                hint="e.g. aistack_test",
            )
        with self._connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self._connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def is_running(self) -> bool:
        if self._stopped:
            return False
        res = _run(
            [str(self.bin_dir / "pg_ctl"), "status", "-D", str(self.data_dir)],
            self.run_as,
            check=False,
        )
        return res.returncode == 0

    def stop(self, *, remove: bool = True) -> None:
        """Stop the server (fast shutdown) and delete its directory. Safe to call twice."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        try:
            _run(
                [
                    str(self.bin_dir / "pg_ctl"),
                    "stop",
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "30",
                ],
                self.run_as,
                check=False,
            )
        finally:
            if remove:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _run(
    cmd: list[str], run_as: str | None, *, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    kwargs: dict[str, Any] = {}
    if run_as:
        kwargs.update(user=run_as, group=run_as, extra_groups=[])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    res = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd="/", **kwargs
    )
    if check and res.returncode != 0:
        raise BackendError(
            f"{Path(cmd[0]).name} failed (exit {res.returncode}): {(res.stderr or res.stdout).strip()[-2000:]}"
        )
    return res


def start_postgres(
    *,
    port: int | None = None,
    user: str = "aistack",
    fast: bool = True,
    base_dir: Path | None = None,
    max_connections: int = 200,
) -> PostgresServer:
    """Create and start a private PostgreSQL cluster on 127.0.0.1; about 1-2 s.

    ``fast=True`` turns off fsync (a crash of the machine loses the test database, nothing
    else). Raises NotSupportedError when PostgreSQL is not installed, BackendError when it
    does not start (the message carries the end of the server log).
    """
    reason = postgres_unavailable_reason()
    if reason:
        raise NotSupportedError(reason)
    bin_dir = find_pg_bin()
    assert bin_dir is not None
    run_as = "postgres" if os.geteuid() == 0 else None
    base = Path(base_dir) if base_dir else Path(tempfile.mkdtemp(prefix="aistack-pg-"))
    base.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(16)
    (base / "sock").mkdir(exist_ok=True)
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n")
    os.chmod(base, 0o700)
    os.chmod(pwfile, 0o600)
    if run_as:
        import pwd

        pw = pwd.getpwnam(run_as)
        for p in (base, base / "sock", pwfile):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    data = base / "data"
    t0 = time.monotonic()
    _run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            user,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ],
        run_as,
        timeout=120,
    )
    pwfile.unlink(missing_ok=True)
    opts = [
        "-c",
        "listen_addresses=127.0.0.1",
        "-k",
        str(base / "sock"),
        "-c",
        f"max_connections={max_connections}",
    ]
    if fast:
        opts += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    last_err: Exception | None = None
    for attempt in range(3):
        pg_port = port if port is not None else free_port()
        server = PostgresServer(
            base_dir=base,
            bin_dir=bin_dir,
            port=pg_port,
            user=user,
            password=password,
            run_as=run_as,
        )
        res = _run(
            [
                str(bin_dir / "pg_ctl"),
                "start",
                "-D",
                str(data),
                "-l",
                str(server.log_file),
                "-w",
                "-t",
                "60",
                "-o",
                " ".join(opts + ["-p", str(pg_port)]),
            ],
            run_as,
            check=False,
            timeout=90,
        )
        if res.returncode == 0:
            log.info(
                "PostgreSQL started on 127.0.0.1:%d in %.1f s (%s)",
                pg_port,
                time.monotonic() - t0,
                base,
            )
            return server
        tail = (
            server.log_file.read_text(errors="replace")[-2000:]
            if server.log_file.exists()
            else res.stderr
        )
        last_err = BackendError(f"PostgreSQL did not start on port {pg_port}: {tail.strip()}")
        if port is not None or "could not bind" not in tail:
            break
        log.warning("port %d taken, retrying (attempt %d)", pg_port, attempt + 1)
    shutil.rmtree(base, ignore_errors=True)
    assert last_err is not None
    raise last_err


@contextlib.contextmanager
def postgres_server(**kwargs: Any) -> Iterator[PostgresServer]:
    """``with postgres_server() as pg: url = pg.create_database()``; stopped on exit."""
    server = start_postgres(**kwargs)
    try:
        yield server
    finally:
        server.stop()


# --- shared per-process server for pytest -------------------------------------------------

_SHARED: PostgresServer | None = None
_SHARED_LOCK = threading.Lock()


def shared_server() -> PostgresServer:
    """One server per process (a pytest session), started on first use, stopped at exit."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None or _SHARED._stopped:
            _SHARED = start_postgres()
            atexit.register(_SHARED.stop)
        return _SHARED


def stop_shared_server() -> None:
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is not None:
            _SHARED.stop()
            _SHARED = None


def database_url_for(request: Any, tmp_path: Path) -> str:
    """Body of a plugin-free, parametrized pytest fixture (see the module docstring).

    ``request.param`` is "sqlite" (a file in ``tmp_path``) or "postgresql" (a fresh database
    on the session's private server, which is stopped at the end of the session). Skips the
    test with the install command when PostgreSQL is missing.
    """
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'aistack.db'}"
    if kind not in ("postgresql", "postgres"):
        raise ValueError(f"database kind must be 'sqlite' or 'postgresql', got {kind!r}")
    import pytest

    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    first = _SHARED is None
    server = shared_server()
    if first:
        request.config.add_cleanup(stop_shared_server)
    return server.create_database()
