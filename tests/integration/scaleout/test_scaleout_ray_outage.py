"""The Ray executor when its whole Ray cluster dies and comes back at the same address.

Each cluster here is a one-node ``ray.cluster_utils.Cluster`` started by a helper process on
a fixed GCS port of 127.0.0.1 (this test process never connects to it as a Ray driver: Ray
would end the test process along with the cluster). Killing the helper's process group
(SIGKILL) takes down the GCS, the raylet and every Ray worker at once, like a head machine
that loses power; a second helper on the same port is the cluster coming back.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aistack.executors.base import LaunchRequest
from aistack.scheduler.types import Allocation, NodeAlloc
from aistack.testing.procs import wait_until

pytestmark = [pytest.mark.ray, pytest.mark.timeout(180)]

CLUSTER = r"""
import json, os, sys, tempfile
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
from ray.cluster_utils import Cluster
td = tempfile.mkdtemp(prefix="aistack-ray-")
c = Cluster(initialize_head=True, head_node_args=dict(
    num_cpus=2, num_gpus=1, memory=1024 * 2**20, object_store_memory=80 * 2**20,
    node_ip_address="127.0.0.1", gcs_server_port=int(sys.argv[1]), include_dashboard=False,
    temp_dir=td))
print(json.dumps({"address": c.address, "node": c.head_node.node_id, "temp_dir": td}), flush=True)
sys.stdin.read()
c.shutdown()
"""


@dataclass
class HelperCluster:
    proc: subprocess.Popen[bytes]
    address: str
    node: str
    temp_dir: str

    def kill(self) -> None:
        """SIGKILL the whole cluster (the helper leads the process group of all its Ray
        processes)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def clusters() -> Iterator[Callable[[int], HelperCluster]]:
    pytest.importorskip("ray.cluster_utils")
    started: list[HelperCluster] = []

    def start(port: int) -> HelperCluster:
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        proc = subprocess.Popen(
            [sys.executable, "-c", CLUSTER, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.wait(10)
            pytest.fail(f"the Ray helper cluster did not start (exit code {proc.returncode})")
        info = json.loads(line)
        c = HelperCluster(
            proc=proc, address=info["address"], node=info["node"], temp_dir=info["temp_dir"]
        )
        started.append(c)
        return c

    yield start
    for c in started:
        if c.proc.poll() is None:
            c.kill()


def _wait(pred: Callable[[], Any], timeout_s: float, every: float = 0.2) -> Any:
    return wait_until(pred, timeout_s, every)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _req(job_id: str, tmp_path: Path, command: str, node: str) -> LaunchRequest:
    return LaunchRequest(
        job_id=job_id,
        attempt=0,
        command=command,
        allocation=Allocation(nodes={node: NodeAlloc(cpus=(0,), memory_mb=128)}),
        job_dir=tmp_path / job_id,
        env={"AISTACK_GRACE_S": "1"},
    )


def test_executor_outlives_its_cluster_and_reconnects(clusters, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The cluster dies under a running job: calls answer at once with a reason that names
    the cluster and the fix, the job is lost after lost_after_s (its rank process gone with
    its agent), a job launched meanwhile is lost at once; the cluster comes back on the same
    port: the executor reconnects by itself and runs jobs again."""
    from aistack.executors.ray import RayExecutor

    port = _free_port()
    addr = f"127.0.0.1:{port}"
    first = clusters(port)
    ex = RayExecutor(address=addr, health_interval_s=0.5, retry_interval_s=0.5, lost_after_s=4)
    try:
        assert [n.name for n in ex.inventory()] == [first.node]
        assert ex.unavailable_reason() is None
        pid_file = tmp_path / "rank.pid"
        h = ex.launch(_req("long", tmp_path, f"echo $$ > {pid_file}; exec sleep 300", first.node))
        st = _wait(lambda: (s := ex.poll(h)).state == "running" and pid_file.exists() and s, 90)
        assert st and st.state == "running", ex.poll(h)
        rank_pid = int(pid_file.read_text())
        assert _alive(rank_pid)

        first.kill()
        reason = _wait(ex.unavailable_reason, 20)
        assert reason, "the executor did not notice that its cluster died"
        assert f"the Ray cluster at {addr} is unreachable" in reason
        assert f"ray start --head --port={port}" in reason and "AISTACK_RAY_ADDRESS" in reason
        # nothing waits on the dead cluster
        t0 = time.monotonic()
        nodes = ex.inventory()
        st = ex.poll(h)
        took = time.monotonic() - t0
        assert nodes == []
        assert st.state == "running" and f"{addr} is unreachable" in (st.reason or ""), st
        assert took < 5.0, f"inventory + poll took {took:.1f} s on a dead cluster"
        # a job launched while the cluster is away is lost at once (the server requeues it)
        h2 = ex.launch(_req("during", tmp_path, "echo never", first.node))
        st2 = ex.poll(h2)
        assert st2.state == "lost", st2
        assert (st2.reason or "").startswith(f"not started: the Ray cluster at {addr}"), st2
        # after lost_after_s the running job is given up: lost, with the reason
        st = _wait(lambda: (s := ex.poll(h)).final and s, 20)
        assert st and st.state == "lost", ex.poll(h)
        assert f"{addr} is unreachable" in (st.reason or "")
        assert "given up after 4 s without its cluster" in (st.reason or ""), st
        # its rank did not outlive its node agent
        assert _wait(lambda: not _alive(rank_pid), 15), f"rank {rank_pid} outlived its agent"

        second = clusters(port)  # the cluster comes back at the same address
        nodes = _wait(ex.inventory, 60, every=0.5)
        assert [n.name for n in nodes] == [second.node] and second.node != first.node
        assert ex.unavailable_reason() is None and ex.link.connects == 2
        h3 = ex.launch(_req("after", tmp_path, "echo back again", second.node))
        st3 = _wait(lambda: (s := ex.poll(h3)).final and s, 90)
        assert st3 and st3.state == "succeeded", ex.poll(h3)
        assert "back again" in (tmp_path / "after" / "output.log").read_text()
        assert ex.poll(h).state == "lost"  # sticky
    finally:
        ex.close()


def test_server_stays_up_when_its_ray_cluster_dies(clusters, server_factory) -> None:  # type: ignore[no-untyped-def]
    """`aistack up` on a Ray cluster that dies: the server process stays up and answers (it
    used to be ended by Ray with its driver), the running job is lost and requeued with a
    reason that names the cluster, a new submission is accepted and waits; the cluster comes
    back at the same address: both jobs run."""
    import httpx

    port = _free_port()
    addr = f"127.0.0.1:{port}"
    first = clusters(port)
    srv = server_factory(
        AISTACK_EXECUTOR="ray",
        AISTACK_RAY_ADDRESS=addr,
        AISTACK_RAY_LOST_AFTER_S="3",
        AISTACK_RAY_HEALTH_INTERVAL_S="0.5",
        AISTACK_RAY_RETRY_INTERVAL_S="0.5",
        # Ray ends a driver 5 s (not 60 s) after its GCS is gone: the old in-process driver
        # took the server with it within seconds
        RAY_gcs_rpc_server_reconnect_timeout_s="5",
    )
    c = srv.client()

    def server_answers() -> bool:
        assert srv.proc is not None
        return srv.proc.poll() is None and httpx.get(srv.url + "/healthz", timeout=5).is_success

    job1 = c.submit(
        {
            "name": "survivor",
            "command": 'echo "attempt $AISTACK_ATTEMPT"; [ "$AISTACK_ATTEMPT" -ge 1 ] || exec sleep 300',
            "resources": {"cpus": 1, "memory": "128MB"},
        }
    )
    assert _wait(lambda: c.get_job(job1["id"])["state"] == "RUNNING", 90), c.get_job(job1["id"])

    first.kill()
    killed_at = time.monotonic()
    # the job is lost with its cluster and requeued (a lost job does not use a retry)
    j = _wait(
        lambda: (x := c.get_job(job1["id"]))["state"] == "QUEUED" and x["attempt"] == 1 and x, 30
    )
    assert j, c.get_job(job1["id"])
    assert f"the Ray cluster at {addr} is unreachable" in (j["failure_reason"] or ""), j
    # new work is accepted and waits for the cluster
    job2 = c.submit({"name": "newcomer", "command": "echo newcomer ran", "resources": {"cpus": 1}})
    assert c.get_job(job2["id"])["state"] == "QUEUED"
    # the server outlives Ray's reconnect timeout (5 s here) by a margin, answering all along
    while time.monotonic() - killed_at < 8:
        assert server_answers()
        time.sleep(0.5)
    for jid in (job1["id"], job2["id"]):
        # queued, and the pending reason says why and how to fix it (not "no node can hold it")
        x = _wait(lambda jid=jid: (y := c.get_job(jid))["pending_reason"] and y, 10)
        assert x and x["state"] == "QUEUED", c.get_job(jid)
        assert f"the Ray cluster at {addr} is unreachable" in x["pending_reason"], x
        assert "ray start --head" in x["pending_reason"], x

    clusters(port)  # back at the same address
    j1 = c.wait(job1["id"], timeout=120)
    j2 = c.wait(job2["id"], timeout=60)
    assert j1["state"] == "SUCCEEDED" and j1["attempt"] == 1, j1
    assert j2["state"] == "SUCCEEDED", j2
    assert "attempt 1" in c.logs(job1["id"])["text"]
    assert "newcomer ran" in c.logs(job2["id"])["text"]
    assert server_answers()
