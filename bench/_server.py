"""Start a throwaway aistack server for a benchmark (temp home, free port)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


class BenchServer:
    def __init__(self, **env: str) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="aistack-bench-")
        self.home = Path(self.tmp.name) / "home"
        self.home.mkdir()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AISTACK_")}
        self.env.update(
            {
                "AISTACK_HOME": str(self.home),
                "AISTACK_PORT": str(self.port),
                "AISTACK_MLFLOW_ENABLED": "false",
            }
        )
        self.env.update(env)
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BenchServer:
        log = (self.home / "server.log").open("ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aistack", "up", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
            if self.proc.poll() is not None or time.perf_counter() - t0 > 120:
                raise RuntimeError((self.home / "server.log").read_text()[-2000:])
        self.startup_s = time.perf_counter() - t0
        return self

    @property
    def token(self) -> str:
        return (self.home / "token").read_text().strip()

    def client(self):  # type: ignore[no-untyped-def]
        from aistack.client import Client

        return Client(self.url, self.token)

    def __exit__(self, *exc: object) -> None:
        from aistack.testing.procs import kill_processes_of_home

        if self.proc:
            self.proc.terminate()
            self.proc.wait(20)
        kill_processes_of_home(self.home)
        self.tmp.cleanup()
