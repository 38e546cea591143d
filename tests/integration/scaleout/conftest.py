"""Real servers for the scale-out tests, all on 127.0.0.1 and stopped after:

* ``pg_server`` / ``pg_url``: a private PostgreSQL cluster (one per session, a fresh
  database per test); ``database_url`` runs a test on SQLite and on PostgreSQL.
* ``slurm`` (tests/integration/conftest.py): munged + slurmctld + slurmd with a config
  written at run time (per module).
* ``ray_cluster``: a two-node ``ray.cluster_utils.Cluster`` with fake GPUs (per module).
* ``ray_client_address``: ``ray://127.0.0.1:<port>``, a Ray Client server for the head of
  ``ray_cluster`` (``Cluster`` starts none; ``ray start --head`` does, on 10001).

Each skips with the command that installs what is missing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aistack.testing.postgres import (
    PostgresServer,
    database_url_for,
    postgres_unavailable_reason,
    start_postgres,
)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    return pg_server.create_database()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url_for(request, tmp_path)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[object]:
    from aistack.testing.raycluster import ray_unavailable_reason, start_ray_cluster

    reason = ray_unavailable_reason()
    if reason:
        pytest.skip(reason)
    cluster = start_ray_cluster(nodes=2, gpus_per_node=2)
    yield cluster
    cluster.shutdown()


@pytest.fixture(scope="module")
def ray_client_address(ray_cluster) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A Ray Client server in proxy mode for the head of ``ray_cluster``, on a free port of
    127.0.0.1, started the way the head's own would be (``ray start --head``). Its log is
    ``ray_client_proxy.log`` in the cluster's temporary directory."""
    head = ray_cluster.cluster.head_node
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {
        **os.environ,
        # the cluster listens on 127.0.0.1 only: keep the client server's drivers there too
        # instead of the machine's outward IP (like aistack's loopback_bootstrap)
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        # the proxy forks one server per client while its gRPC threads run, and gRPC's fork
        # handlers (not needed before an exec) crash that child now and then
        # (ray-project/ray#63202; seen here with the proxy started by Ray's own launcher)
        "GRPC_ENABLE_FORK_SUPPORT": "false",
    }
    log_path = Path(ray_cluster.temp_dir) / "ray_client_proxy.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ray.util.client.server",
                f"--address={ray_cluster.address}",
                "--host=127.0.0.1",
                f"--port={port}",
                "--mode=proxy",
                f"--runtime-env-agent-address={head.runtime_env_agent_address}",
                f"--node-id={head.node_id}",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its per-client servers are in its process group
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"the Ray Client server did not start (exit code {proc.poll()}): "
                        + log_path.read_text(errors="replace")[-2000:]
                    )
                time.sleep(0.2)
        yield f"ray://127.0.0.1:{port}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):  # the proxy and its per-client servers
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
