"""Helpers for the serving benchmarks: start a replica or router process, run the load
generator in a second process, wait for health."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

PY = sys.executable


class Proc:
    """A replica/router process on a free port (``--port 0`` + ready file)."""

    def __init__(self, module: str, args: list[str], workdir: Path, name: str) -> None:
        self.ready = workdir / f"{name}.ready.json"
        self.ready.unlink(missing_ok=True)
        self.log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115
        cmd = [PY, "-m", module, *args]
        if module.endswith("replica"):
            cmd += ["--ready-file", str(self.ready)]
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.url: str | None = None

    def wait(self, timeout: float = 120.0, url: str | None = None) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"process exited with {self.proc.returncode}; see {self.log.name}"
                )
            if url is None and self.ready.exists():
                info = json.loads(self.ready.read_text())
                url = f"http://{info['host']}:{info['port']}"
            if url:
                try:
                    if httpx.get(url + "/health", timeout=2).status_code == 200:
                        self.url = url
                        return url
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        raise TimeoutError("not healthy in time")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def loadgen(
    url: str,
    steps: str,
    body: dict[str, Any],
    path: str = "/v1/completions",
    max_requests: int = 100_000,
    out: Path | None = None,
) -> list[dict[str, Any]]:
    """Run the load generator in its own process; returns its per-step summary."""
    cmd = [
        PY,
        "-m",
        "aistack.serving.loadgen",
        "--url",
        url,
        "--path",
        path,
        "--body",
        json.dumps(body),
        "--steps",
        steps,
        "--max-requests",
        str(max_requests),
    ]
    if out is not None:
        cmd += ["--out", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
