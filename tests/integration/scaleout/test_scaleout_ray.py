"""The Ray executor on a real two-node Ray cluster (ray.cluster_utils) with fake GPUs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from aistack.executors.base import ExecStatus, LaunchRequest
from aistack.scheduler.types import Allocation, NodeAlloc

pytestmark = [pytest.mark.ray, pytest.mark.timeout(420)]

DDP_SCRIPT = """
import os, torch, torch.distributed as dist
dist.init_process_group("gloo")
r = dist.get_rank()
t = torch.tensor([float(r + 1)])
dist.all_reduce(t)
print(f"RESULT rank={r} world={dist.get_world_size()} node={os.environ['AISTACK_RAY_NODE_ID']} "
      f"master={os.environ['MASTER_ADDR']} sum={t.item():.0f} gpus={os.environ.get('CUDA_VISIBLE_DEVICES')}", flush=True)
dist.destroy_process_group()
"""


def _wait(ex, handle: str, pred, timeout_s: float = 180) -> ExecStatus:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        st = ex.poll(handle)
        if pred(st) or time.monotonic() > deadline:
            return st
        time.sleep(0.5)


@pytest.fixture(scope="module")
def ex(ray_cluster):  # type: ignore[no-untyped-def]
    from aistack.executors.ray import RayExecutor

    return RayExecutor(address=ray_cluster.address)


def _two_node_alloc(ex) -> Allocation:  # type: ignore[no-untyped-def]
    nodes = ex.inventory()
    assert len(nodes) == 2
    return Allocation(nodes={n.name: NodeAlloc(gpus=(0,), cpus=(0,), memory_mb=256) for n in nodes})


def test_inventory_reports_both_nodes_with_fake_gpus(ex, ray_cluster) -> None:  # type: ignore[no-untyped-def]
    nodes = ex.inventory()
    assert sorted(n.name for n in nodes) == sorted(ray_cluster.node_ids())
    assert all(len(n.gpus) == 2 and n.cpus == 2 and n.memory_mb == 2048 for n in nodes)
    assert sorted(n.labels["head"] for n in nodes) == ["false", "true"]


@pytest.mark.torch
def test_two_node_ddp_gang_runs_on_two_ray_nodes(ex, ray_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    req = LaunchRequest(
        job_id="ddp",
        attempt=1,
        command=f"{sys.executable} {script}",
        allocation=_two_node_alloc(ex),
        job_dir=tmp_path / "job",
        env={"GLOO_SOCKET_IFNAME": "lo"},
        distributed="torch",
    )
    handle = ex.launch(req)
    st = _wait(ex, handle, lambda s: s.final)
    text = req.log_path.read_text() if req.log_path.exists() else ""
    assert st.state == "succeeded", (st, text)
    results = sorted(line.split("RESULT ", 1)[1] for line in text.splitlines() if "RESULT " in line)
    assert len(results) == 2, text
    fields = [dict(kv.split("=", 1) for kv in r.split()) for r in results]
    assert [f["rank"] for f in fields] == ["0", "1"]
    assert all(f["world"] == "2" and f["sum"] == "3" and f["master"] == "127.0.0.1" for f in fields)
    # the ranks really ran on different Ray nodes: the two nodes of the cluster
    assert fields[0]["node"] != fields[1]["node"]
    assert {f["node"] for f in fields} == set(ray_cluster.node_ids())
    assert all(f["gpus"] not in (None, "", "None") for f in fields)  # Ray assigned a (fake) GPU
    assert ex.poll(handle).state == "succeeded"  # sticky


def test_failure_and_cancel(ex, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    alloc = _two_node_alloc(ex)
    h1 = ex.launch(
        LaunchRequest(
            job_id="fail",
            attempt=1,
            command='echo rank $AISTACK_RANK; [ "$AISTACK_RANK" = 1 ] && exit 4; sleep 60',
            allocation=alloc,
            job_dir=tmp_path / "fail",
        )
    )
    st = _wait(ex, h1, lambda s: s.final)
    assert (st.state, st.exit_code) == ("failed", 4), st
    assert "rank 1 exited with code 4" in (st.reason or "")
    h2 = ex.launch(
        LaunchRequest(
            job_id="cancel",
            attempt=1,
            command="echo started; sleep 300",
            allocation=alloc,
            job_dir=tmp_path / "cancel",
        )
    )
    assert _wait(ex, h2, lambda s: s.state == "running" or s.final).state == "running"
    ex.cancel(h2, grace_s=2)
    st2 = _wait(ex, h2, lambda s: s.final, 60)
    assert st2.state == "cancelled", st2


def test_removed_node_makes_the_job_lost(ex, ray_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # runs last in this module: it takes a node away
    req = LaunchRequest(
        job_id="lost",
        attempt=1,
        command="echo up; sleep 300",
        allocation=_two_node_alloc(ex),
        job_dir=tmp_path / "lost",
    )
    handle = ex.launch(req)
    assert _wait(ex, handle, lambda s: s.state == "running" or s.final).state == "running"
    ray_cluster.remove_node(1)
    st = _wait(ex, handle, lambda s: s.final, 120)
    assert st.state == "lost", st
    assert "lost a Ray node" in (st.reason or "") or "coordinator" in (st.reason or "")
