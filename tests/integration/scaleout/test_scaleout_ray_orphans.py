"""No rank process outlives its Ray node agent, on a real Ray cluster (ray.cluster_utils).

Each rank here is a program that ignores SIGTERM and starts two children: one with an empty
environment (it stays in the rank's process group) and one in a session of its own (it
leaves the group). The agent that started them is killed (``ray.kill``) or its node is
removed (the raylet SIGKILLed, as ``ray stop`` or a machine loss does): every one of those
processes must be gone soon after.

Also a process that does both (``env -i setsid``, or a double fork on top): neither the
rank's group nor the agent's token finds it, and it must end with the job all the same,
whether the job's command exits, the job is cancelled or its agent is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aistack.executors.base import ExecStatus, LaunchRequest
from aistack.scheduler.types import Allocation, NodeAlloc
from aistack.testing.procs import escaping_command, kill_marked, marked_pids, wait_until

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


@pytest.mark.parametrize("how", ["exits", "cancelled", "agent-killed"])
def test_a_leftover_that_cleared_its_environment_ends_with_the_job(  # type: ignore[no-untyped-def]
    ex, ray_cluster, tmp_path: Path, how: str
) -> None:
    """The command leaves two sleeps that clear their environment (env -i: no
    AISTACK_RANK_TOKEN) and leave its process group and session (setsid), one daemonized (a
    double fork). They were reparented to init, out of reach of the agent's stop (the
    rank's group) and of its reaper (the token, the group): they kept running after the
    job, holding its GPUs. Each rank runs under a child subreaper now, and they end with
    the job whether its command exits, it is cancelled (its command ignores the stop
    signal: it is SIGKILLed after the grace period, the subreaper too) or its agent is
    killed (the reaper finds them below the subreaper, which ignores SIGTERM as its command
    and they do here, and SIGKILLs them with it)."""
    import ray

    mark = f"aistack-ray-left-{uuid.uuid4().hex[:12]}"
    then = "echo started; exit 0" if how == "exits" else "echo started; exec sleep 300"
    command = escaping_command(mark, then)
    if how != "exits":  # the leftovers and the command ignore SIGTERM
        command = "trap '' TERM; " + command
    job_id = f"escape-{how}"
    node = sorted(n.name for n in ex.inventory())[0]
    req = LaunchRequest(
        job_id=job_id,
        attempt=0,
        command=command,
        allocation=Allocation(nodes={node: NodeAlloc(gpus=(0,), cpus=(0,), memory_mb=128)}),
        job_dir=tmp_path / job_id,
        env={"AISTACK_GRACE_S": "1"},
    )
    try:
        h = ex.launch(req)
        if how != "exits":
            assert wait_until(lambda: len(marked_pids(mark)) == 2, 120), ex.poll(h)
            if how == "cancelled":
                ex.cancel(h, grace_s=1)
            else:
                ray.kill(ray.get_actor(f"aistack-{job_id}-0-node0", namespace="aistack"))
        st = _wait_final(ex, h)
        want = {"exits": "succeeded", "cancelled": "cancelled", "agent-killed": "lost"}[how]
        assert st.state == want, st
        if how == "exits":  # the others waited for both leftovers to be up
            assert "started" in req.log_path.read_text(), req.log_path.read_text()
        wait_until(lambda: not marked_pids(mark), 15)
        assert marked_pids(mark) == [], "a leftover without the rank's token outlived the job"
    finally:
        kill_marked(mark)


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
