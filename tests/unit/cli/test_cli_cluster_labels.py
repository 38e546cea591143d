"""`aistack cluster` shows what the engine says about its nodes: a Slurm node's state and
partitions, a Ray node's custom resources and accelerator type (docs/cluster.md). The
executors put them in the nodes' labels; GET /cluster dropped them and the table had no place
for them, so a drained Slurm node or a Ray node's TPUs were nowhere to be seen."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli import jobs as jobs_cli
from aistack.cli.main import app
from aistack.compute.resources import GpuDevice, Node

runner = CliRunner()

RAY_ID = "a" * 56
SLURM = Node(
    name="gpu-01",
    cpus=64,
    memory_mb=512_000,
    gpus=tuple(
        GpuDevice(index=i, uuid=f"slurm-gpu-01-gpu{i}", name="a100", memory_mb=0) for i in range(2)
    ),
    address="gpu-01",
    labels={"slurm_state": "MIXED+DRAIN", "partitions": "gpu,debug"},
)
RAY = Node(
    name=RAY_ID,
    cpus=8,
    memory_mb=16_000,
    gpus=(),
    address="10.0.0.11",
    labels={
        "ray_node_id": RAY_ID,
        "hostname": "tpu-host",
        "head": "false",
        "resources": '{"TPU": 4.0}',
        "accelerator_type": "TPU-V4",
    },
)


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")
    monkeypatch.setattr(jobs_cli.console, "_width", 1000)


def _with_nodes(api: Any, monkeypatch: pytest.MonkeyPatch, nodes: list[Node]) -> None:
    monkeypatch.setattr(api.ctx.executor, "inventory", lambda: list(nodes))
    monkeypatch.setattr(jobs_cli, "client", lambda: api.client)


def test_cluster_api_returns_node_labels(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _with_nodes(api, monkeypatch, [SLURM, RAY])
    r = api.http.get("/api/v1/cluster")
    assert r.status_code == 200, r.text
    nodes = {n["name"]: n for n in r.json()["nodes"]}
    assert nodes["gpu-01"]["labels"] == {"slurm_state": "MIXED+DRAIN", "partitions": "gpu,debug"}
    assert nodes[RAY_ID]["labels"]["resources"] == '{"TPU": 4.0}'
    assert nodes[RAY_ID]["labels"]["accelerator_type"] == "TPU-V4"


def test_cluster_table_shows_slurm_state_and_ray_resources(
    api: Any, monkeypatch: pytest.MonkeyPatch, wide: None
) -> None:
    _with_nodes(api, monkeypatch, [SLURM, RAY])
    res = runner.invoke(app, ["cluster"])
    assert res.exit_code == 0, (res.exception, res.output)
    lines = res.output.splitlines()
    slurm_row = next(ln for ln in lines if "gpu-01" in ln and "CPUs" in ln)
    assert "slurm_state=MIXED+DRAIN" in slurm_row and "partitions=gpu,debug" in slurm_row
    ray_row = next(ln for ln in lines if RAY_ID in ln)
    assert 'resources={"TPU": 4.0}' in ray_row and "accelerator_type=TPU-V4" in ray_row
    assert "hostname=tpu-host" in ray_row
    # the node id is the node's name already: not repeated as a label
    assert ray_row.count(RAY_ID) == 1
    header = next(ln for ln in lines if "allocated to" in ln)
    assert "labels" in header


def test_cluster_table_without_labels_has_no_labels_column(
    api: Any, monkeypatch: pytest.MonkeyPatch, wide: None
) -> None:
    plain = Node(name="n1", cpus=4, memory_mb=1024)
    _with_nodes(api, monkeypatch, [plain])
    res = runner.invoke(app, ["cluster"])
    assert res.exit_code == 0, (res.exception, res.output)
    header = next(ln for ln in res.output.splitlines() if "allocated to" in ln)
    assert "labels" not in header
