"""The Ray executor on a Ray Client address (``ray://host:port``), the way a laptop or a
login node reaches a remote cluster: the two-node cluster of ``ray_cluster`` with a Ray Client
server in front of its head (``ray_client_address``)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aistack.executors.base import LaunchRequest
from aistack.scheduler.types import Allocation, NodeAlloc
from aistack.testing.procs import wait_until

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


def _wait(pred: Callable[[], Any], timeout_s: float, every: float = 0.3) -> Any:
    return wait_until(pred, timeout_s, every)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_job_through_the_server_on_a_ray_client_address(
    ray_cluster, ray_client_address: str, server_factory
) -> None:  # type: ignore[no-untyped-def]
    """`aistack up` with AISTACK_RAY_ADDRESS=ray://…: the cluster's nodes show, and a 2-node
    job runs one rank on each node and succeeds with its output back."""
    srv = server_factory(AISTACK_EXECUTOR="ray", AISTACK_RAY_ADDRESS=ray_client_address)
    c = srv.client()
    text = str(c.cluster())
    assert all(n in text for n in ray_cluster.node_ids()), text
    job = c.submit(
        {
            "name": "via-ray-client",
            "command": "echo rank $AISTACK_RANK of $AISTACK_WORLD_SIZE on $AISTACK_RAY_NODE_ID",
            "resources": {"nodes": 2, "gpus": 1, "cpus": 1, "memory": "128MB"},
        }
    )
    j = c.wait(job["id"], timeout=180)
    assert (j["state"], j["exit_code"], j["attempt"]) == ("SUCCEEDED", 0, 0), j
    out = c.logs(job["id"])["text"]
    ranks = sorted(line.split("] ", 1)[1] for line in out.splitlines() if " of 2 on " in line)
    assert [r.split()[1] for r in ranks] == ["0", "1"], out
    assert {r.rsplit(" ", 1)[1] for r in ranks} == set(ray_cluster.node_ids()), out


def test_link_stays_up_and_cancel_works_on_a_ray_client_address(
    ray_cluster, ray_client_address: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The health monitor checks a ray:// link through the Ray Client port and a ping through
    Ray: the link is up and stays up (one driver, one connection) while a gang runs; the
    gang's nodes are known; a cancel ends it."""
    from aistack.executors.ray import RayExecutor

    ex = RayExecutor(address=ray_client_address, health_interval_s=0.5)
    try:
        nodes = ex.inventory()
        assert sorted(n.name for n in nodes) == sorted(ray_cluster.node_ids())
        link = ex.link
        assert (link.state, ex.unavailable_reason()) == ("up", None)
        port = int(ray_client_address.rsplit(":", 1)[1])
        assert link._target == ("127.0.0.1", port)  # checked: the client port, not the GCS
        driver = link.pid
        req = LaunchRequest(
            job_id="client-cancel",
            attempt=0,
            command="echo started $AISTACK_RANK; exec sleep 300",
            allocation=Allocation(
                nodes={n.name: NodeAlloc(cpus=(0,), memory_mb=128) for n in nodes}
            ),
            job_dir=tmp_path / "job",
            env={"AISTACK_GRACE_S": "1"},
        )
        h = ex.launch(req)
        st = _wait(lambda: (s := ex.poll(h)).state == "running" and s, 90)
        assert st and st.state == "running", ex.poll(h)
        assert sorted(ex.job_nodes(h)) == sorted(ray_cluster.node_ids())
        time.sleep(3)  # six health checks
        assert (link.state, link.connects, link.pid) == ("up", 1, driver)
        assert ex.unavailable_reason() is None
        ex.cancel(h, grace_s=1)
        st = _wait(lambda: (s := ex.poll(h)).final and s, 60)
        assert st and st.state == "cancelled", ex.poll(h)
        assert "started 0" in req.log_path.read_text()
    finally:
        ex.close()


def test_wrong_ray_client_port_fails_at_once_with_the_fix() -> None:
    """Nothing listens at the ray:// port: no hang, calls answer at once with a reason that
    names the address and how to fix it, and a job is not started (lost, so requeued)."""
    from aistack.executors.ray import RayExecutor

    port = _free_port()
    addr = f"ray://127.0.0.1:{port}"
    ex = RayExecutor(address=addr)
    try:
        t0 = time.monotonic()
        assert ex.inventory() == []
        reason = ex.unavailable_reason() or ""
        took = time.monotonic() - t0
        assert took < 60, f"{took:.0f} s to find out that nothing listens at {addr}"
        assert f"the Ray cluster at {addr} is unreachable" in reason, reason
        assert f"127.0.0.1:{port}: connection refused" in reason, reason
        assert f"Ray Client server on port {port} of 127.0.0.1" in reason, reason
        assert "AISTACK_RAY_ADDRESS" in reason, reason
    finally:
        ex.close()


def test_mixed_up_gcs_and_ray_client_ports_get_a_hint(ray_cluster, ray_client_address: str) -> None:  # type: ignore[no-untyped-def]
    """The cluster's GCS port written as ray://, and its Ray Client port written without it:
    both ports listen, Ray does not answer (it gives up after 30 s and 20 s; 3 s here), and
    the reason says which address to write instead (it used to say to start a cluster)."""
    from aistack.executors.ray import RayExecutor

    gcs = ray_cluster.address  # 127.0.0.1:<port>
    client = ray_client_address.removeprefix("ray://")
    for address, fix in (
        (f"ray://{gcs}", f"drop ray:// (AISTACK_RAY_ADDRESS={gcs})"),
        (client, f"AISTACK_RAY_ADDRESS=ray://{client}"),
    ):
        ex = RayExecutor(address=address, connect_timeout_s=3)
        try:
            assert ex.inventory() == []
            reason = _wait(lambda ex=ex: ex.link.state == "down" and ex.unavailable_reason(), 30)
            assert reason, (address, ex.link.state)
            assert f"the Ray cluster at {address} is unreachable" in reason, reason
            assert "accepts connections but no Ray" in reason, reason
            assert fix in reason, reason
        finally:
            ex.close()
