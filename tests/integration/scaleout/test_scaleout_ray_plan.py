"""Ray executor logic that needs no cluster: placement-group plan, rank environments with
host placeholders, and the coordinator's log buffer. Fast and offline (no marker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aistack.errors import ValidationError
from aistack.executors.base import LaunchRequest
from aistack.executors.ray import RayExecutor
from aistack.executors.ray_actors import JobCoordinator, rank_envs
from aistack.scheduler.types import Allocation, NodeAlloc

N1 = "a" * 56
N2 = "b" * 56


def _req(**kw: object) -> LaunchRequest:
    base: dict[str, object] = dict(
        job_id="j1",
        attempt=2,
        command="python train.py",
        allocation=Allocation(
            nodes={
                N1: NodeAlloc(gpus=(0, 1), cpus=(0, 1, 2, 3), memory_mb=1024),
                N2: NodeAlloc(gpus=(2, 3), cpus=(0, 1, 2, 3), memory_mb=1024),
            }
        ),
        job_dir=Path("/tmp/x"),
        distributed="torch",
    )
    base.update(kw)
    return LaunchRequest(**base)  # type: ignore[arg-type]


def test_gang_plan_spreads_and_pins_bundles() -> None:
    spec = RayExecutor().plan(_req())
    assert spec["strategy"] == "STRICT_SPREAD"
    assert spec["bundles"] == [{"CPU": 4.0, "GPU": 2.0, "memory": 1024.0 * 2**20}] * 2
    assert spec["label_selectors"] == [{"ray.io/node-id": N1}, {"ray.io/node-id": N2}]
    assert (spec["procs_per_node"], spec["threads_per_proc"]) == (2, 2)
    assert spec["pg_name"] == "aistack-j1-2"


def test_single_node_plan_packs_and_non_ray_names_are_not_pinned() -> None:
    spec = RayExecutor().plan(
        _req(allocation=Allocation(nodes={"node-a": NodeAlloc(cpus=(0,))}), distributed=None)
    )
    assert spec["strategy"] == "STRICT_PACK"
    assert spec["bundles"] == [{"CPU": 1.0}]
    assert spec["label_selectors"] is None and spec["procs_per_node"] == 1
    assert RayExecutor(pin_nodes=False).plan(_req())["label_selectors"] is None
    assert RayExecutor(strategy="SPREAD").plan(_req())["strategy"] == "SPREAD"


def test_bad_input_is_rejected_with_the_field() -> None:
    with pytest.raises(ValidationError, match="strategy"):
        RayExecutor(strategy="RANDOM")
    with pytest.raises(ValidationError, match="command"):
        RayExecutor().plan(_req(command=" "))
    with pytest.raises(ValidationError, match="procs_per_node"):
        RayExecutor().plan(_req(procs_per_node=0))
    with pytest.raises(ValidationError, match="handle"):
        RayExecutor._job_dir("slurm:1:/x")


def test_rank_envs_use_rank0_node_ip_even_when_nodes_share_an_ip() -> None:
    spec = RayExecutor().plan(_req())
    ranks = rank_envs(spec, ["10.0.0.5", "10.0.0.5"], 29500)
    assert [r for r, _ in ranks] == [0, 1, 2, 3]
    envs = [e for _, e in ranks]
    assert {e["MASTER_ADDR"] for e in envs} == {"10.0.0.5"}
    assert [e["NODE_RANK"] for e in envs] == ["0", "0", "1", "1"]
    assert [e["LOCAL_RANK"] for e in envs] == ["0", "1", "0", "1"]
    assert all(e["WORLD_SIZE"] == "4" and e["MASTER_PORT"] == "29500" for e in envs)
    ranks2 = rank_envs(spec, ["10.0.0.7", "10.0.0.8"], 1234)
    assert {e["MASTER_ADDR"] for _, e in ranks2} == {"10.0.0.7"}
    plain = rank_envs({**spec, "distributed": None, "procs_per_node": 1}, ["h1", "h2"], 1)
    assert [e["AISTACK_RANK"] for _, e in plain] == ["0", "1"]


def test_coordinator_log_buffer_hands_out_each_byte_once() -> None:
    c = JobCoordinator.__new__(JobCoordinator)
    c.__dict__.update(_log=bytearray(), _log_base=0, _tails={}, _partial={})
    import threading

    c._lock = threading.Lock()
    c._append(b"one\n")
    c._append(b"two\n")
    data, off = c.read_log(0)
    assert (data, off) == (b"one\ntwo\n", 8)
    assert c.read_log(off) == (b"", 8)
    c._append(b"three\n")
    assert c.read_log(off) == (b"three\n", 14)
    assert len(c._log) == 6  # acknowledged bytes were dropped
    assert c.read_log(4) == (b"three\n", 14)  # an old offset cannot rewind past what was dropped


def test_tensorflow_worker_list_gets_the_real_ips() -> None:
    import json

    spec = RayExecutor().plan(_req(distributed="tensorflow", procs_per_node=1))
    ranks = rank_envs(spec, ["10.0.0.7", "10.0.0.8"], 4000)
    configs = [json.loads(e["TF_CONFIG"]) for _, e in ranks]
    assert all(c["cluster"]["worker"] == ["10.0.0.7:4000", "10.0.0.8:4000"] for c in configs)
    assert [c["task"]["index"] for c in configs] == [0, 1]


def test_node_agent_reads_a_huge_line_in_parts() -> None:
    import time

    from aistack.executors.ray_actors import MAX_LINE_BYTES, NodeAgent

    agent = NodeAgent()
    agent.start("head -c 1000000 /dev/zero | tr '\\0' x; exit 4", None, [(0, {})])
    data, codes = b"", {0: None}
    deadline = time.monotonic() + 30
    while codes[0] is None and time.monotonic() < deadline:
        time.sleep(0.05)
        codes, chunk = agent.poll()  # once the rank is over, poll waits for its output
        data += chunk
    assert codes == {0: 4}
    lines = data.splitlines()
    assert data.count(b"x") == 1_000_000
    assert len(lines) >= 1_000_000 // MAX_LINE_BYTES
    assert all(ln.startswith(b"[rank 0] ") and len(ln) <= MAX_LINE_BYTES + 9 for ln in lines)
