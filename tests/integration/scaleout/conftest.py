"""Real servers for the scale-out tests, all on 127.0.0.1 and stopped after:

* ``pg_server`` / ``pg_url``: a private PostgreSQL cluster (one per session, a fresh
  database per test); ``database_url`` runs a test on SQLite and on PostgreSQL.
* ``slurm``: munged + slurmctld + slurmd with a config written at run time (per module).
* ``ray_cluster``: a two-node ``ray.cluster_utils.Cluster`` with fake GPUs (per module).

Each skips with the command that installs what is missing.
"""

from __future__ import annotations

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
def slurm() -> Iterator[object]:
    from aistack.testing.slurm import slurm_unavailable_reason, start_slurm

    reason = slurm_unavailable_reason()
    if reason:
        pytest.skip(reason)
    cluster = start_slurm(gpus=2)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[object]:
    from aistack.testing.raycluster import ray_unavailable_reason, start_ray_cluster

    reason = ray_unavailable_reason()
    if reason:
        pytest.skip(reason)
    cluster = start_ray_cluster(nodes=2, gpus_per_node=2)
    yield cluster
    cluster.shutdown()
