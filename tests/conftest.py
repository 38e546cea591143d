"""Shared fixtures: a temporary AISTACK_HOME, and a real aistack server in a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# MLflow clients retry failed requests with exponential backoff for minutes by default: in tests a
# failure should show at once, not hang the run
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# The CLI's consoles are made at import, and rich fixes a console's width to COLUMNS when it is
# set then: pytest-xdist's workers start with COLUMNS=80, and every test there printed 80 columns
# wide whatever COLUMNS it set. Without COLUMNS at import (as in a serial run), rich reads it at
# each print.
os.environ.pop("COLUMNS", None)

# Each pytest-xdist worker has its own default AISTACK_HOME (a serial run shares ~/.aistack
# between its tests, and so do a worker's): a test in one worker read the add leases of a test in
# the other, and its gc kept the objects it expected deleted. (Unit tests get one each:
# tests/unit/conftest.py.)
if os.environ.get("PYTEST_XDIST_WORKER") and "AISTACK_HOME" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _worker_home = tempfile.mkdtemp(prefix=f"aistack-home-{os.environ['PYTEST_XDIST_WORKER']}-")
    os.environ["AISTACK_HOME"] = _worker_home
    atexit.register(shutil.rmtree, _worker_home, ignore_errors=True)

import aistack.cli._common  # noqa: E402, F401


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def aistack_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "aistack-home"
    monkeypatch.setenv("AISTACK_HOME", str(home))
    monkeypatch.delenv("AISTACK_URL", raising=False)
    monkeypatch.delenv("AISTACK_TOKEN", raising=False)
    monkeypatch.delenv("AISTACK_DATABASE_URL", raising=False)
    monkeypatch.delenv("AISTACK_STORAGE_URL", raising=False)
    from aistack.settings import reset_settings_cache

    reset_settings_cache()
    yield home
    reset_settings_cache()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """``AISTACK_HOME`` = ``tmp_path / "home"`` with the default (local) store and catalog
    (storage, web-data and ``aistack data`` CLI tests); yields ``tmp_path``."""
    from aistack.settings import reset_settings_cache

    monkeypatch.setenv("AISTACK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AISTACK_STORAGE_URL", raising=False)
    monkeypatch.delenv("AISTACK_DATABASE_URL", raising=False)
    reset_settings_cache()
    yield tmp_path
    reset_settings_cache()


@dataclass
class ServerProc:
    url: str
    home: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def token(self) -> str:
        return (self.home / "token").read_text().strip()

    def client(self):  # type: ignore[no-untyped-def]
        from aistack.client import Client

        return Client(self.url, self.token)

    def start(self, timeout: float = 60.0) -> None:
        log = (self.home / "server-test.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aistack",
                "up",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "server exited:\n" + (self.home / "server-test.log").read_text()[-3000:]
                )
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(
            "server did not start:\n" + (self.home / "server-test.log").read_text()[-3000:]
        )

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def make_server(tmp_path: Path, **env_extra: str) -> ServerProc:
    home = tmp_path / "server-home"
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AISTACK_", "MLFLOW_"))}
    env.update(
        {
            "AISTACK_HOME": str(home),
            "AISTACK_PORT": str(port),
            "AISTACK_CPUS": "2",
            "AISTACK_MLFLOW_ENABLED": "false",
            "AISTACK_CANCEL_GRACE_S": "2",
        }
    )
    env.update(env_extra)
    return ServerProc(url=f"http://127.0.0.1:{port}", home=home, port=port, env=env)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[object]:
    """Start servers with extra environment: ``server_factory(AISTACK_EXECUTOR="memory")``."""
    started: list[ServerProc] = []

    def factory(**env: str) -> ServerProc:
        srv = make_server(tmp_path / f"s{len(started)}", **env)
        srv.start(timeout=120)
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        srv.stop()
        _kill_leftover_supervisors(srv.home)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """Every server test runs on SQLite (the embedded default) and on a real PostgreSQL."""
    if request.param == "sqlite":
        return None
    from aistack.testing.postgres import database_url_for

    return database_url_for(request, tmp_path)


@pytest.fixture
def server(tmp_path: Path, database_url: str | None) -> Iterator[ServerProc]:
    srv = make_server(tmp_path, **({"AISTACK_DATABASE_URL": database_url} if database_url else {}))
    srv.start()
    yield srv
    srv.stop()
    _kill_leftover_supervisors(srv.home)


def _kill_leftover_supervisors(home: Path) -> None:
    """Kill every process started for this server's home (supervisors and their jobs)."""
    from aistack.testing.procs import kill_processes_of_home

    kill_processes_of_home(home)


@pytest.fixture(autouse=True)
def _isolate_mlflow_globals() -> Iterator[None]:
    """mlflow.set_tracking_uri() changes a module global *and* os.environ; undo it after each
    test so one test's tracking server does not leak into the next."""
    import sys

    saved = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    yield
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None:
        try:
            mlflow.set_tracking_uri(None)
        except Exception:  # noqa: BLE001
            pass
        try:
            mlflow.set_registry_uri(None)
        except Exception:  # noqa: BLE001
            pass
    for k in [k for k in os.environ if k.startswith("MLFLOW_")]:
        if k not in saved:
            del os.environ[k]
    os.environ.update(saved)


@dataclass
class InProcessApi:
    """The real app in this process: ``http`` is a TestClient that sends the token, ``client``
    an ``aistack.Client`` that talks to it, ``ctx`` the server context."""

    http: object
    client: object
    ctx: object


@pytest.fixture
def api(aistack_home: Path) -> Iterator[InProcessApi]:
    """The server app in process (memory executor: one node with 4 fake GPUs and 8 CPUs; no
    scheduling loop, no MLflow): for API and CLI tests without a server process."""
    from fastapi.testclient import TestClient

    from aistack.client import Client
    from aistack.server.app import create_app
    from aistack.settings import Settings

    settings = Settings(home=aistack_home, executor="memory", mlflow_enabled=False)
    app = create_app(settings, start_loop=False)
    ctx = app.state.ctx
    http = TestClient(app, raise_server_exceptions=False)
    http.headers["Authorization"] = f"Bearer {ctx.token}"
    client = Client("http://testserver", ctx.token, settings=settings)
    client._http.close()
    client._http = http
    yield InProcessApi(http=http, client=client, ctx=ctx)
    http.close()
    ctx.executor.close()
    ctx.engine.dispose()


# what `sacct -X -a --parsable2 --format=JobID,User,Account,Submit,Start,End,AllocTRES,Timelimit`
# prints (plus a step row, as without -X): '|'-separated, ISO times, TRES lists, Slurm durations
_SACCT = """JobID|User|Account|Submit|Start|End|AllocTRES|Timelimit
1001|alice|vision|2026-11-02T09:00:00|2026-11-02T09:00:05|2026-11-02T11:30:05|billing=8,cpu=8,gres/gpu=2,mem=64G,node=1|04:00:00
1001.batch|||2026-11-02T09:00:05|2026-11-02T09:00:05|2026-11-02T11:30:05|cpu=8,gres/gpu=2,mem=64G,node=1|
1002|bob|nlp|2026-11-02T09:10:00|2026-11-02T09:20:00|2026-11-03T10:20:00|billing=64,cpu=64,gres/gpu:a100=8,mem=512G,node=1|2-00:00:00
1003|alice|vision|2026-11-02T09:15:00|Unknown|Unknown||01:00:00
1004_1|carol|nlp|2026-11-02T09:30:00|2026-11-02T09:30:01|2026-11-02T09:45:31|billing=4,cpu=4,gres/gpu=1,mem=16G,node=1|30:00
1005|dave|hpc|2026-11-02T10:00:00|2026-11-02T10:00:00|2026-11-02T10:05:00|billing=32,cpu=32,mem=128G,node=1|UNLIMITED
1006|bob|nlp|2026-11-02T10:30:00|2026-11-02T10:30:00|Unknown|billing=16,cpu=16,gres/gpu=4,node=1|1-12:00:00
"""


@pytest.fixture
def sacct_file(tmp_path: Path) -> Path:
    """A Slurm cluster's job history as sacct writes it (see ``_SACCT``)."""
    p = tmp_path / "sacct.txt"
    p.write_text(_SACCT)
    return p


# Integration and e2e tests run in two pytest-xdist workers with ``--dist loadgroup`` (make test):
# each test file is one group (its module-scoped servers start once, in one worker), and the Ray
# tests are one group together: `ray start`, ``address="auto"`` and ``ray.init`` read this
# machine's /tmp/ray, which two Ray clusters started side by side would share.
_RAY_FILES = ("test_scaleout_ray", "test_webdata_ray")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        if "unit" in path.parts or item.get_closest_marker("xdist_group"):
            continue
        group = "ray" if path.name.startswith(_RAY_FILES) else path.stem
        item.add_marker(pytest.mark.xdist_group(group))
