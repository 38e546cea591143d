"""Start estimates respect GPU quotas: the replay behind the estimates started a second job of
a project at its quota beside the first (the pass never does), so ``aistack jobs`` promised it
the same start as the first. Seen live: project q with quota 1, q1 and q1b of 1 GPU each behind
a 4-GPU head; both read "est. start in 14.2 min", and q1b could only start after q1."""

from __future__ import annotations

import pytest
from test_scheduler_allocation_ledger import job, node, running

from aistack.scheduler import get_policy
from aistack.scheduler.types import ClusterState


def _cluster(quotas: dict[str, int]) -> ClusterState:
    big = running("big", {"a": (0, 1, 2)}, max_runtime_s=600.0, start_time=0.0)
    c = running("c", {"a": (3,)}, max_runtime_s=120.0, start_time=0.0)
    return ClusterState(nodes=(node("a", free=()),), running=(big, c), gpu_quotas=quotas)


QUEUE = [
    job("head", 4, submit_time=1.0, max_runtime_s=300.0),
    job("q1", 1, submit_time=2.0, max_runtime_s=60.0, project="q"),
    job("q1b", 1, submit_time=3.0, max_runtime_s=60.0, project="q"),
]


@pytest.mark.parametrize("name", ["easy", "default", "priority", "fairshare"])
def test_a_second_job_of_a_project_at_its_quota_starts_after_the_first_in_the_estimate(
    name: str,
) -> None:
    d = get_policy(name).schedule(QUEUE, _cluster({"q": 1}), now=10.0)
    assert d.starts == ()
    est = {k: p.estimated_start for k, p in d.pending.items()}
    # head at big's end (600 s), q1 when the head ends (900 s), q1b when q1 ends (960 s)
    assert est == {"head": 600.0, "q1": 900.0, "q1b": 960.0}
    # without the quota both fit beside each other once the head ends
    d = get_policy(name).schedule(QUEUE, _cluster({}), now=10.0)
    assert {k: p.estimated_start for k, p in d.pending.items()} == {
        "head": 600.0,
        "q1": 900.0,
        "q1b": 900.0,
    }


def test_the_replay_gives_a_project_its_gpus_back_when_its_jobs_end() -> None:
    # q runs r (1 GPU, max_runtime: ends at 500 s); the head h (4 GPUs) starts then and ends at
    # 550 s; q2 and q2b of q follow it
    r = running("r", {"a": (0,)}, max_runtime_s=500.0, start_time=0.0, project="q")
    s = running("s", {"a": (1,)}, max_runtime_s=100.0, start_time=0.0)

    def est(quota: int, gpus: int) -> dict[str, float | None]:
        cl = ClusterState(nodes=(node("a", free=(2, 3)),), running=(r, s), gpu_quotas={"q": quota})
        q = [
            job("h", 4, submit_time=1.0, max_runtime_s=50.0),
            job("q2", gpus, submit_time=2.0, max_runtime_s=1000.0, project="q"),
            job("q2b", gpus, submit_time=3.0, max_runtime_s=1000.0, project="q"),
        ]
        d = get_policy("easy").schedule(q, cl, now=10.0)
        assert d.starts == ()
        return {k: p.estimated_start for k, p in d.pending.items()}

    # r's GPU is back at 500 s: both 1-GPU jobs fit the quota of 2 beside each other at 550 s
    assert est(2, 1) == {"h": 500.0, "q2": 550.0, "q2b": 550.0}
    # two 2-GPU jobs do not fit a quota of 3 together: q2b after q2's end (550 + 1000 s)
    assert est(3, 2) == {"h": 500.0, "q2": 550.0, "q2b": 1550.0}


@pytest.mark.parametrize("name", ["easy", "default", "priority", "fairshare"])
def test_a_job_at_its_quota_does_not_push_back_the_estimates_of_other_projects(
    name: str,
) -> None:
    # b5 (project other) is behind q1b: at 900 s the head ends, q1 takes a GPU, q1b waits for
    # its quota, b5 starts. The replay moved its clock to q1b's start (960 s) for everyone.
    queue = [*QUEUE, job("b5", 1, submit_time=4.0, max_runtime_s=60.0, project="other")]
    d = get_policy(name).schedule(queue, _cluster({"q": 1}), now=10.0)
    assert d.starts == ()
    est = {k: p.estimated_start for k, p in d.pending.items()}
    assert est == {"head": 600.0, "q1": 900.0, "q1b": 960.0, "b5": 900.0}
    d = get_policy(name).schedule(queue, _cluster({}), now=10.0)
    assert {k: p.estimated_start for k, p in d.pending.items()} == {
        "head": 600.0,
        "q1": 900.0,
        "q1b": 900.0,
        "b5": 900.0,
    }


def test_a_job_at_its_quota_holds_its_gpus_from_its_estimated_start() -> None:
    # q1b starts at 960 s (q1's end) and runs 600 s: b4 (all 4 GPUs, project other) starts
    # after it (1560 s), q1c (q) after it too (quota 1); b1 (1 GPU, other) fits beside q1 at
    # 900 s and is not held back by q's quota
    queue = [
        job("head", 4, submit_time=1.0, max_runtime_s=300.0),
        job("q1", 1, submit_time=2.0, max_runtime_s=60.0, project="q"),
        job("q1b", 1, submit_time=3.0, max_runtime_s=600.0, project="q"),
        job("b1", 1, submit_time=4.0, max_runtime_s=30.0, project="other"),
        job("q1c", 1, submit_time=5.0, max_runtime_s=60.0, project="q"),
        job("b4", 4, submit_time=6.0, max_runtime_s=60.0, project="other"),
    ]
    d = get_policy("easy").schedule(queue, _cluster({"q": 1}), now=10.0)
    assert d.starts == ()
    assert {k: p.estimated_start for k, p in d.pending.items()} == {
        "head": 600.0,
        "q1": 900.0,
        "q1b": 960.0,
        "b1": 900.0,
        "q1c": 1560.0,
        "b4": 1620.0,
    }
