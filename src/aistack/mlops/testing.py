"""A real embedded MLflow server in a subprocess, for tests and benchmarks.

``python -m aistack.mlops.server`` (a FastAPI app with only :func:`mount_mlflow`) served by
uvicorn on 127.0.0.1, stopped by PID. Measures start-up time and resident memory.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from aistack.errors import BackendError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TrackingServer:
    """``with TrackingServer(home) as srv: srv.tracking_uri ...``"""

    def __init__(
        self,
        home: str | os.PathLike[str],
        *,
        token: str | None = "test-token",
        port: int | None = None,
        startup_timeout_s: float = 60.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.home = Path(home)
        self.token = token
        self.port = port or free_port()
        self.startup_timeout_s = startup_timeout_s
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None  # until /mlflow/health answers (tracking ready)
        self.api_ready_s: float | None = None  # until /healthz answers (server accepting)
        self.log_path = self.home / "mlflow-server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tracking_uri(self) -> str:
        return f"{self.url}/mlflow"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def start(self) -> TrackingServer:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "AISTACK_STORAGE_URL"}
        env.update(
            {"AISTACK_HOME": str(self.home), "MLFLOW_DISABLE_TELEMETRY": "true", **self.extra_env}
        )
        cmd = [sys.executable, "-m", "aistack.mlops.server", "--port", str(self.port)]
        if self.token:
            cmd += ["--token", self.token]
        t0 = time.perf_counter()
        self.api_ready_s = self.startup_s = None
        logf = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        deadline = t0 + self.startup_timeout_s
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise BackendError(
                    f"tracking server exited with {self.proc.returncode}: {self._log_tail()}"
                )
            try:
                if self.api_ready_s is None:
                    httpx.get(f"{self.url}/healthz", timeout=1.0).raise_for_status()
                    self.api_ready_s = time.perf_counter() - t0
                r = httpx.get(f"{self.tracking_uri}/health", headers=self.headers(), timeout=60)
                if r.status_code == 200:
                    self.startup_s = time.perf_counter() - t0
                    return self
                if r.status_code == 503:
                    raise BackendError(f"tracking server failed: {r.text}")
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise BackendError(f"tracking server did not start in {self.startup_timeout_s} s")

    def rss_mb(self) -> float:
        import psutil

        if self.proc is None:
            return 0.0
        p = psutil.Process(self.proc.pid)
        procs = [p, *p.children(recursive=True)]
        return sum(x.memory_info().rss for x in procs) / 2**20

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text()[-2000:]
        except OSError:
            return ""

    def __enter__(self) -> TrackingServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
