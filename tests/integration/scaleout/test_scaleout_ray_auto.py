"""The Ray executor with ``address="auto"`` (``AISTACK_RAY_ADDRESS=auto``, its default) on a
cluster whose GCS listens on 127.0.0.1 only (``ray.cluster_utils.Cluster`` with
``node_ip_address="127.0.0.1"``, as the scale-out tests start it).

Ray's lookup for ``auto`` finds that cluster in its record of the latest cluster started on
this machine (``ray_current_cluster``, written by ``ray.cluster_utils`` for its head; here in a
Ray temporary directory of the test's own, ``RAY_TMPDIR``, that the executor's driver process
inherits). ``ray.init(address="auto")`` rewrote the 127.0.0.1 it found to the machine's outward
IP, where nothing listens, and retried there for many minutes: the executor never connected.
The driver now looks ``auto`` up first and keeps a loopback address loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120)]


@pytest.fixture
def loopback_cluster() -> Iterator[Any]:
    """A one-node cluster bound to 127.0.0.1 (2 CPUs, 1 fake GPU); this process is not its
    driver (the executor's driver process is)."""
    from aistack.testing.raycluster import ray_unavailable_reason, start_ray_cluster

    reason = ray_unavailable_reason()
    if reason:
        pytest.skip(reason)
    import ray

    rc = start_ray_cluster(nodes=1, gpus_per_node=1, cpus_per_node=2)
    ray.shutdown()
    try:
        yield rc
    finally:
        rc.shutdown()


@pytest.mark.timeout(60)  # the old code never connected: fail in time, not hang the suite
def test_auto_connects_to_a_cluster_bound_to_loopback_only(
    loopback_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray._private.utils import write_ray_address

    from aistack.executors.ray import RayExecutor
    from aistack.executors.ray_connection import host_port

    address = loopback_cluster.address
    assert address.startswith("127.0.0.1:"), address
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # whatever ~/.ray/auth_token this has
    ray_tmp = tmp_path / "raytmp"
    (ray_tmp / "ray").mkdir(parents=True)
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))  # (not the machine's /tmp/ray)
    write_ray_address(address)  # as ray.cluster_utils records a head it starts
    assert (ray_tmp / "ray" / "ray_current_cluster").read_text() == address

    ex = RayExecutor(address="auto", connect_timeout_s=20, retry_interval_s=60)
    try:
        nodes = ex.inventory()
        assert ex.unavailable_reason() is None, ex.unavailable_reason()
        assert [n.name for n in nodes] == loopback_cluster.node_ids()
        assert [(n.cpus, len(n.gpus), n.labels["head"]) for n in nodes] == [(2, 1, "true")]
        assert ex.link.connects == 1
        assert ex.link._target == host_port(address)  # the GCS `auto` led to (health checks)
    finally:
        ex.close()
