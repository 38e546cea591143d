"""The allocation ledger across passes: a running job id listed twice is refused on the
second pass too, when a job that stopped leaves the list as long as before (the ledger's
fast path saw no new object and no change in count, and kept the stopped job's GPUs)."""

from __future__ import annotations

import pytest

from aistack.errors import ValidationError
from aistack.scheduler import get_policy
from aistack.scheduler.types import (
    Allocation,
    ClusterState,
    JobRequest,
    NodeAlloc,
    NodeState,
    RunningJob,
)


def _node(free: tuple[int, ...]) -> NodeState:
    return NodeState(
        name="a",
        gpus_total=(0, 1, 2, 3),
        gpus_free=frozenset(free),
        cpus_total=tuple(range(8)),
        cpus_free=frozenset(range(8)),
        memory_total_mb=1000,
        memory_free_mb=1000,
    )


def _running(jid: str, gpu: int) -> RunningJob:
    return RunningJob(
        id=jid,
        allocation=Allocation(nodes={"a": NodeAlloc(gpus=(gpu,))}),
        max_runtime_s=100.0,
    )


@pytest.mark.parametrize("empty_queue", [True, False])
def test_a_running_job_listed_twice_after_another_stopped_is_refused(empty_queue: bool) -> None:
    policy = get_policy("easy")
    a, b = _running("ja", 0), _running("jb", 1)
    first = policy.schedule([], ClusterState(nodes=(_node((2, 3)),), running=(a, b)), now=0.0)
    assert first.blocked_nodes == {}
    # jb stopped (GPU 1 free again) and ja is listed twice: as many running jobs as before
    queue = [] if empty_queue else [JobRequest(id="q", gpus=1, cpus=1, max_runtime_s=10.0)]
    again = ClusterState(nodes=(_node((1, 2, 3)),), running=(a, a))
    with pytest.raises(ValidationError, match="job id 'ja' is listed 2 times") as info:
        policy.schedule(queue, again, now=1.0)
    assert info.value.details["job_id"] == "ja"
    # the caller's next, correct state is scheduled as usual: jb's GPU is not counted held
    d = policy.schedule([], ClusterState(nodes=(_node((1, 2, 3)),), running=(a,)), now=2.0)
    assert d.blocked_nodes == {}
