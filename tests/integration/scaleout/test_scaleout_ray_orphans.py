"""No rank process outlives its Ray node agent, on a real Ray cluster (ray.cluster_utils).

Each rank here is a program that ignores SIGTERM and starts two children: one with an empty
environment (it stays in the rank's process group) and one in a session of its own (it
leaves the group). The agent that started them is killed (``ray.kill``) or its node is
removed (the raylet SIGKILLed, as ``ray stop`` or a machine loss does): every one of those
processes must be gone soon after.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aistack.executors.base import ExecStatus, LaunchRequest
from aistack.scheduler.types import Allocation, NodeAlloc

pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]

RANK = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
plain = subprocess.Popen(["/bin/sleep", "300"], env={})
detached = subprocess.Popen(["/bin/sleep", "300"], start_new_session=True)
out = os.path.join(sys.argv[1], "rank" + os.environ["AISTACK_RANK"])
with open(out + ".tmp", "w") as fh:
    fh.write(f"{os.getpid()} {plain.pid} {detached.pid}")
os.replace(out + ".tmp", out)
time.sleep(300)
"""


@pytest.fixture
def ex(ray_cluster) -> Iterator[object]:  # type: ignore[no-untyped-def]
    from aistack.executors.ray import RayExecutor

    e = RayExecutor(address=ray_cluster.address)
    yield e
    e.close()


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_final(ex, handle: str, timeout_s: float = 90) -> ExecStatus:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        st = ex.poll(handle)
        if st.final or time.monotonic() > deadline:
            return st  # type: ignore[no-any-return]
        time.sleep(0.3)


def _start_gang(
    ex, tmp_path: Path, job_id: str, nodes: list[str]
) -> tuple[str, dict[int, list[int]]]:  # type: ignore[no-untyped-def]
    script = tmp_path / "rank.py"
    script.write_text(RANK)
    out = tmp_path / f"{job_id}-pids"
    out.mkdir()
    h = ex.launch(
        LaunchRequest(
            job_id=job_id,
            attempt=0,
            command=f"{sys.executable} {script} {out}",
            allocation=Allocation(
                nodes={n: NodeAlloc(gpus=(0,), cpus=(0,), memory_mb=128) for n in nodes}
            ),
            job_dir=tmp_path / job_id,
            env={"AISTACK_GRACE_S": "1"},
        )
    )
    deadline = time.monotonic() + 120
    while len(list(out.glob("rank?"))) < len(nodes) and time.monotonic() < deadline:
        time.sleep(0.2)
    pids = {int(p.name[4:]): [int(x) for x in p.read_text().split()] for p in out.glob("rank?")}
    assert sorted(pids) == list(range(len(nodes))), (pids, ex.poll(h))
    assert all(_alive(pid) for ps in pids.values() for pid in ps)
    return h, pids


def _survivors(pids: dict[int, list[int]], timeout_s: float = 20) -> list[int]:
    """The processes still running after ``timeout_s`` (SIGKILLed then, so that a failed
    run leaves nothing behind)."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [pid for ps in pids.values() for pid in ps if _alive(pid)]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for pid in alive:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return alive


def test_killed_agent_takes_its_ranks_along(ex, ray_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import ray

    h, pids = _start_gang(ex, tmp_path, "agentkill", sorted(n.name for n in ex.inventory()))
    ray.kill(ray.get_actor("aistack-agentkill-0-node1", namespace="aistack"))
    st = _wait_final(ex, h)
    assert st.state == "lost", st
    # rank 1's agent is gone: its program (which ignores SIGTERM) and both of its children
    # end; rank 0's were stopped by the coordinator and its agent removed at clean-up
    assert _survivors(pids) == [], f"rank processes outlived their agents: {pids}"


def test_removed_node_leaves_no_rank_behind(ex, ray_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Runs last in this module (it takes a node away): the raylet of a node running rank 1
    is SIGKILLed, as `ray stop` on that node does."""
    ray_cluster.add_node(cpus=2, gpus=2, memory_mb=2048)
    workers = ray_cluster.node_ids()[1:]  # the head keeps the coordinator
    h, pids = _start_gang(ex, tmp_path, "nodekill", workers)
    ray_cluster.remove_node(ray_cluster.node_ids().index(workers[1]))
    st = _wait_final(ex, h)
    assert st.state == "lost", st
    assert _survivors(pids) == [], f"rank processes outlived their node: {pids}"
