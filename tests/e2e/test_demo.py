"""`make demo` end to end (slow): crawl → corpus → train → register → gate → serve → cost, then a
second run that reuses the corpus and the model."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _run(env: dict[str, str], timeout: float = 900) -> str:
    p = subprocess.run(
        [sys.executable, "-m", "aistack.demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    return out


def test_demo_twice(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AISTACK_", "MLFLOW_"))}
    env.update({"AISTACK_HOME": str(home), "AISTACK_PORT": str(port), "COLUMNS": "200"})
    try:
        first = _run(env)
        for step in (
            "a. crawl",
            "b. extract",
            "c. train",
            "c. registered demo-gpt v1",
            "d. promoted demo-gpt v1",
            "/v1/completions",
            "cost of what ran",
            "dashboard: http://127.0.0.1:",
        ):
            assert step in first, (step, first[-3000:])
        assert "documents," in first and "tokens" in first
        # lineage from the crawled WARC files to the endpoint, in order
        lin = first[first.index("d. lineage") :]
        hops = ["file", "webdata:", "dataset:demo-corpus@v1", "job:", "run:"]
        hops += ["model:demo-gpt@v1", "service:demo-gpt"]
        at = [lin.find(h) for h in hops]
        assert -1 not in at and at == sorted(at), (hops, at, lin[:2000])
        second = _run(env)
        assert "reusing the corpus demo-corpus@v1" in second
        assert "reusing demo-gpt v1" in second and "no re-training" in second
        assert "c. train the reference GPT" not in second
    finally:
        subprocess.run(
            [sys.executable, "-m", "aistack", "serve", "delete", "demo-gpt"],
            env=env,
            capture_output=True,
            timeout=60,
        )
        subprocess.run(
            [sys.executable, "-m", "aistack", "down"], env=env, capture_output=True, timeout=60
        )
        from aistack.testing.procs import kill_processes_of_home

        kill_processes_of_home(home)
