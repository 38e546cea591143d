"""A multi-node Ray cluster on this machine, for tests, benchmarks and demos.

``start_ray_cluster(nodes=2, gpus_per_node=2)`` starts ``ray.cluster_utils.Cluster`` with
one head and ``nodes - 1`` worker nodes, each a separate raylet with its own resources:
fake GPU counts (Ray only counts them), a fixed ``memory=`` (otherwise every node claims
all of the machine's RAM), a small object store (Ray reserves 30% of RAM in /dev/shm by
default) and everything bound to 127.0.0.1. The calling process is connected as the driver
(``ray.init``); :class:`aistack.executors.ray.RayExecutor` in the same process reuses that
connection. ``remove_node(i)`` kills a worker node (to test lost nodes); ``shutdown()``
stops them all.

Ray writes its session files under a temporary directory of ours (``_temp_dir``), removed
at shutdown.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aistack.errors import BackendError
from aistack.executors.ray import loopback_bootstrap

log = logging.getLogger(__name__)


def ray_unavailable_reason() -> str | None:
    try:
        import ray  # noqa: F401
        from ray import cluster_utils  # noqa: F401
    except ImportError:
        return "ray is not installed: pip install 'aistack[ray]'"
    return None


@dataclass(kw_only=True)
class RayTestCluster:
    cluster: Any
    temp_dir: str
    node_handles: list[Any] = field(default_factory=list)  # index 0 = head

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def node_ids(self) -> list[str]:
        return [str(n.node_id) for n in self.node_handles]

    def add_node(self, **kwargs: Any) -> Any:
        node = self.cluster.add_node(**_node_args(**kwargs))
        self.cluster.wait_for_nodes()
        self.node_handles.append(node)
        return node

    def remove_node(self, index: int) -> None:
        """Kill worker node ``index`` (1..) the way a machine dies: its raylet goes away."""
        if index == 0:
            raise ValueError(
                "removing the head node ends the cluster; remove a worker (index >= 1)"
            )
        node = self.node_handles.pop(index)
        self.cluster.remove_node(node, allow_graceful=False)

    def shutdown(self) -> None:
        import ray

        with contextlib.suppress(Exception):
            ray.shutdown()
        with contextlib.suppress(Exception):
            self.cluster.shutdown()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _node_args(
    *,
    cpus: int = 2,
    gpus: int = 2,
    memory_mb: int = 2048,
    object_store_mb: int = 80,
    resources: dict[str, float] | None = None,
    temp_dir: str | None = None,
) -> dict[str, Any]:
    args: dict[str, Any] = dict(
        num_cpus=cpus,
        num_gpus=gpus,
        memory=memory_mb * 2**20,
        object_store_memory=object_store_mb * 2**20,
        node_ip_address="127.0.0.1",
        resources=resources or {},
    )
    if temp_dir:
        args["temp_dir"] = temp_dir
    return args


def _ensure_address_record_folder() -> None:
    """Create the folder of Ray's record of the latest cluster on this machine
    (``/tmp/ray/ray_current_cluster``, or under ``RAY_TMPDIR``). ``ray.cluster_utils`` writes it
    for its head whatever ``temp_dir`` the nodes use, and fails with FileNotFoundError where the
    folder does not exist yet: on a fresh machine where no Ray ran before (as in CI, where the
    scale-out tests run before any test that starts Ray with its default folder)."""
    try:
        from ray._common.utils import get_ray_address_file
    except ImportError:  # (another Ray release: its Cluster makes the folder or fails as before)
        return
    Path(get_ray_address_file(None)).parent.mkdir(parents=True, exist_ok=True)


def start_ray_cluster(
    *,
    nodes: int = 2,
    gpus_per_node: int = 2,
    cpus_per_node: int = 2,
    memory_mb: int = 2048,
    object_store_mb: int = 80,
    namespace: str = "aistack",
    resources: dict[str, float] | None = None,
) -> RayTestCluster:
    """Start a ``nodes``-node cluster on 127.0.0.1 and connect this process to it."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        raise BackendError(
            "this process is already connected to Ray", hint="call ray.shutdown() first"
        )
    temp_dir = tempfile.mkdtemp(prefix="aistack-ray-")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    t0 = time.monotonic()
    head = _node_args(
        cpus=cpus_per_node,
        gpus=gpus_per_node,
        memory_mb=memory_mb,
        object_store_mb=object_store_mb,
        resources=resources,
        temp_dir=temp_dir,
    )
    head["include_dashboard"] = False
    _ensure_address_record_folder()
    cluster = Cluster(initialize_head=True, head_node_args=head)
    rc = RayTestCluster(cluster=cluster, temp_dir=temp_dir, node_handles=[cluster.head_node])
    try:
        for _ in range(nodes - 1):
            node = cluster.add_node(
                **_node_args(
                    cpus=cpus_per_node,
                    gpus=gpus_per_node,
                    memory_mb=memory_mb,
                    object_store_mb=object_store_mb,
                    resources=resources,
                )
            )
            rc.node_handles.append(node)
        cluster.wait_for_nodes()
        with loopback_bootstrap():
            ray.init(
                address=cluster.address,
                namespace=namespace,
                log_to_driver=False,
                logging_level=logging.WARNING,
                _node_ip_address="127.0.0.1",
            )
    except BaseException:
        rc.shutdown()
        raise
    log.info(
        "Ray cluster with %d nodes up in %.1f s at %s",
        nodes,
        time.monotonic() - t0,
        cluster.address,
    )
    return rc


@contextlib.contextmanager
def ray_cluster(**kwargs: Any) -> Iterator[RayTestCluster]:
    rc = start_ray_cluster(**kwargs)
    try:
        yield rc
    finally:
        rc.shutdown()
