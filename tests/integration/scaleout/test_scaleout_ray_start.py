"""The Ray executor on a cluster started the way a user starts one: ``ray start --head``.

``ray.cluster_utils.Cluster`` (the other Ray tests) registers its raylets at 127.0.0.1;
``ray start --head`` registers the raylet under the machine's outward IP, also when given
``--node-ip-address=127.0.0.1`` (Ray rewrites a loopback node address). aistack's driver
reaches the GCS at ``127.0.0.1:PORT`` either way and must then use the raylet wherever it
registered: naming 127.0.0.1 as its node left ``ray.init`` waiting for a raylet at
127.0.0.1 until it gave up, so no job could run.

Each cluster is one ``ray start --head --block`` (1 CPU) in a process group of its own with
its own ``--temp-dir``, ended by killing that group; no ``ray stop`` (it would stop every
Ray cluster on the machine).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aistack.executors.base import LaunchRequest
from aistack.scheduler.types import Allocation, NodeAlloc
from aistack.testing.procs import wait_until

pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RayStartCluster:
    proc: subprocess.Popen[bytes]
    port: int
    temp_dir: str

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return (Path(self.temp_dir) / "ray_start.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):  # ray start and every Ray process it ran
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(15)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture
def ray_start() -> Iterator[Callable[..., RayStartCluster]]:
    pytest.importorskip("ray")
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists():
        pytest.skip(f"no `ray` command next to {sys.executable}: pip install 'aistack[ray]'")
    started: list[RayStartCluster] = []

    def start(*flags: str, env: dict[str, str] | None = None) -> RayStartCluster:
        port = _free_port()
        temp_dir = tempfile.mkdtemp(prefix="aistack-raystart-")
        cmd = [
            str(ray_bin),
            "start",
            "--head",
            f"--port={port}",
            "--num-cpus=1",
            "--num-gpus=0",
            f"--memory={512 * 2**20}",
            f"--object-store-memory={80 * 2**20}",
            "--include-dashboard=false",
            # fixed default ports would clash with another cluster on this machine
            f"--ray-client-server-port={_free_port()}",
            f"--dashboard-agent-listen-port={_free_port()}",
            "--disable-usage-stats",
            f"--temp-dir={temp_dir}",
            "--block",
            *flags,
        ]
        full_env = {
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            # as in conftest: gRPC's fork handlers crash Ray's forked children now and then
            "GRPC_ENABLE_FORK_SUPPORT": "false",
            **(env or {}),
        }
        with (Path(temp_dir) / "ray_start.log").open("wb") as log:
            proc = subprocess.Popen(
                cmd,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        c = RayStartCluster(proc=proc, port=port, temp_dir=temp_dir)
        started.append(c)
        deadline = time.monotonic() + 60
        while "--block" not in c.log():  # ray start prints it once the node is up
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"`ray start --head` did not start (exit code {proc.poll()}): {c.log()}"
                )
            time.sleep(0.3)
        return c

    yield start
    for c in started:
        c.stop()


def _wait(pred: Callable[[], Any], timeout_s: float, every: float = 0.5) -> Any:
    return wait_until(pred, timeout_s, every)


def _run_job(ex: Any, tmp_path: Path, job_id: str) -> None:
    """One 1-CPU job on the cluster's only node: it succeeds and its output comes back."""
    nodes = ex.inventory()
    assert len(nodes) == 1, (nodes, ex.unavailable_reason())
    node = nodes[0]
    assert node.cpus == 1 and node.labels["head"] == "true", node
    req = LaunchRequest(
        job_id=job_id,
        attempt=0,
        command=f"echo ran-{job_id}",
        allocation=Allocation(nodes={node.name: NodeAlloc(cpus=(0,), memory_mb=128)}),
        job_dir=tmp_path / job_id,
        env={"AISTACK_GRACE_S": "1"},
    )
    h = ex.launch(req)
    st = _wait(lambda: (s := ex.poll(h)).final and s, 90)
    assert st and st.state == "succeeded", ex.poll(h)
    assert f"ran-{job_id}" in (tmp_path / job_id / "output.log").read_text()


def test_job_runs_on_ray_start_head_at_loopback(ray_start, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`ray start --head --node-ip-address=127.0.0.1` and AISTACK_RAY_ADDRESS=127.0.0.1:PORT:
    the executor connects and a job runs (it used to fail to connect: no raylet at
    127.0.0.1)."""
    from aistack.executors.ray import RayExecutor

    # no token authentication: this test is about the node address only
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    c = ray_start("--node-ip-address=127.0.0.1", env={"RAY_AUTH_MODE": "disabled"})
    ex = RayExecutor(address=c.address, connect_timeout_s=45)
    try:
        _run_job(ex, tmp_path, "loopback")
        assert ex.unavailable_reason() is None
    finally:
        ex.close()


def test_ray_start_with_token_auth_says_how_to_connect(ray_start, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`ray start --head` as a user runs it (no --node-ip-address) with token authentication:
    without RAY_AUTH_MODE=token the driver is refused, and the reason says to set it; with it
    the executor connects and a job runs."""
    from aistack.executors.ray import RayExecutor

    token = secrets.token_hex(16)
    monkeypatch.setenv("RAY_AUTH_TOKEN", token)  # the token, but not sent (mode unset)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    c = ray_start(env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})

    refused = RayExecutor(address=c.address, connect_timeout_s=45, retry_interval_s=60)
    try:
        assert refused.inventory() == []
        reason = refused.unavailable_reason() or ""
        assert f"the Ray cluster at {c.address} is unreachable" in reason, reason
        assert "set RAY_AUTH_MODE=token where aistack runs (RAY_AUTH_MODE is unset" in reason
    finally:
        refused.close()

    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    ex = RayExecutor(address=c.address, connect_timeout_s=45)
    try:
        _run_job(ex, tmp_path, "token")
    finally:
        ex.close()
