"""Start estimates and reasons of the jobs that the pass itself finds at their project's GPU
quota (the project's running jobs, and the jobs this pass starts, already use it).

Such a job had no estimate at all (``estimated_start`` None, "unknown" in ``aistack jobs``):
only the jobs that the replay behind the estimates found at their quota were estimated. Now it
is in the replay at its place in the queue, deferred like those: it starts when its project's
jobs end and give it the GPUs it needs, and takes its GPUs from then on (the jobs behind it are
estimated after it). None only where those GPUs are held by jobs without max_runtime.

Its reason gave the project's use when it was checked, not the pass's final state: a later job
of the project that fitted the quota and started in the same pass was left out ("1/2 GPUs in
use" with 2 of 2 in use). The decisions are unchanged."""

from __future__ import annotations

import random

import pytest
from test_scheduler_allocation_ledger import job, node, running
from test_scheduler_quota_estimates_r23i import GPUS, _overcommits, random_quota_case

from aistack.scheduler import get_policy
from aistack.scheduler.types import ClusterState, Decision

POLICIES = ["easy", "default", "priority", "fairshare"]


def _est(d: Decision) -> dict[str, float | None]:
    return {k: p.estimated_start for k, p in d.pending.items()}


def _q_runs_one(max_runtime_s: float | None = 500.0) -> ClusterState:
    # node a (4 GPUs): r of project q holds GPU 0 (to 500 s); quota of q: 2 GPUs
    r = running("r", {"a": (0,)}, max_runtime_s=max_runtime_s, start_time=0.0, project="q")
    return ClusterState(nodes=(node("a", free=(1, 2, 3)),), running=(r,), gpu_quotas={"q": 2})


@pytest.mark.parametrize("name", POLICIES)
def test_a_job_the_pass_finds_at_its_quota_gets_the_start_its_projects_jobs_allow(
    name: str,
) -> None:
    # qbig (2 GPUs) would make 3 of q's quota of 2: it waits; qsmall (1 GPU) fits the quota and
    # starts now (to 1010 s). qbig starts when both r (500 s) and qsmall (1010 s) have ended
    queue = [
        job("qbig", 2, submit_time=1.0, max_runtime_s=100.0, project="q"),
        job("qsmall", 1, submit_time=2.0, max_runtime_s=1000.0, project="q"),
    ]
    d = get_policy(name).schedule(queue, _q_runs_one(), now=10.0)
    assert [s.job_id for s in d.starts] == ["qsmall"]
    assert _est(d) == {"qbig": 1010.0}
    # the reason is the pass's final state: qsmall took q's second GPU (it read 1/2)
    assert d.pending["qbig"].reason == "project q at its GPU quota (2/2 GPUs in use)"


@pytest.mark.parametrize("name", POLICIES)
def test_the_reason_says_how_many_gpus_of_the_quota_are_free_where_some_are(name: str) -> None:
    # q uses 1 of its 2 GPUs: "at its GPU quota (1/2 GPUs in use)" was not true; qbig waits
    # for r's end (500 s)
    queue = [job("qbig", 2, submit_time=1.0, max_runtime_s=100.0, project="q")]
    d = get_policy(name).schedule(queue, _q_runs_one(), now=10.0)
    assert d.starts == ()
    assert d.pending["qbig"].reason == (
        "needs 2 GPUs but project q has only 1 GPU of its GPU quota free (1/2 GPUs in use)"
    )
    assert _est(d) == {"qbig": 500.0}


@pytest.mark.parametrize("name", POLICIES)
def test_no_estimate_where_its_projects_gpus_are_held_by_jobs_without_max_runtime(
    name: str,
) -> None:
    queue = [job("qbig", 2, submit_time=1.0, max_runtime_s=100.0, project="q")]
    d = get_policy(name).schedule(queue, _q_runs_one(max_runtime_s=None), now=10.0)
    assert _est(d) == {"qbig": None}
    # a job larger than the quota itself never starts: no estimate, and its own reason
    queue = [job("huge", 3, submit_time=1.0, max_runtime_s=100.0, project="q")]
    d = get_policy(name).schedule(queue, _q_runs_one(), now=10.0)
    assert _est(d) == {"huge": None}
    assert d.pending["huge"].reason.startswith("needs 3 GPUs but project q's GPU quota is 2; ")


@pytest.mark.parametrize("name", POLICIES)
def test_a_job_blocked_by_its_quota_takes_its_gpus_before_the_jobs_behind_it(name: str) -> None:
    # node a: r (q, 2 GPUs, to 500 s), quota of q 2. qb (q, 2 GPUs) waits for r; o2 (other)
    # starts now on the 2 free GPUs (to 110 s); o4 (other, all 4 GPUs) waits. At 500 s r ends
    # and qb, ahead of o4 in the queue, starts (to 1500 s): o4 after it. It read 500 s, as if
    # qb were not there
    r = running("r", {"a": (0, 1)}, max_runtime_s=500.0, start_time=0.0, project="q")
    cl = ClusterState(nodes=(node("a", free=(2, 3)),), running=(r,), gpu_quotas={"q": 2})
    queue = [
        job("qb", 2, submit_time=1.0, max_runtime_s=1000.0, project="q"),
        job("o2", 2, submit_time=2.0, max_runtime_s=100.0, project="other"),
        job("o4", 4, submit_time=3.0, max_runtime_s=100.0, project="other"),
    ]
    d = get_policy(name).schedule(queue, cl, now=10.0)
    assert [s.job_id for s in d.starts] == ["o2"]
    assert _est(d) == {"qb": 500.0, "o4": 1500.0}
    assert d.pending["qb"].reason == "project q at its GPU quota (2/2 GPUs in use)"


def test_jobs_at_their_quota_in_the_pass_come_back_in_queue_order() -> None:
    # quota of q 2, r (q, 2 GPUs) to 500 s: q1 (2 GPUs, to 1500 s) and q2 (1 GPU) wait; at 500 s
    # q1 starts, q2 after it (1500 s). o1 (other) is not held back by q's quota
    r = running("r", {"a": (0, 1)}, max_runtime_s=500.0, start_time=0.0, project="q")
    s = running("s", {"a": (2, 3)}, max_runtime_s=100.0, start_time=0.0, project="other")
    cl = ClusterState(nodes=(node("a", free=()),), running=(r, s), gpu_quotas={"q": 2})
    queue = [
        job("q1", 2, submit_time=1.0, max_runtime_s=1000.0, project="q"),
        job("q2", 1, submit_time=2.0, max_runtime_s=100.0, project="q"),
        job("o1", 1, submit_time=3.0, max_runtime_s=100.0, project="other"),
    ]
    d = get_policy("easy").schedule(queue, cl, now=10.0)
    assert d.starts == ()
    assert _est(d) == {"q1": 500.0, "q2": 1500.0, "o1": 100.0}
    for jid in ("q1", "q2"):
        assert d.pending[jid].reason == "project q at its GPU quota (2/2 GPUs in use)"


@pytest.mark.parametrize("name", POLICIES)
def test_beyond_the_replayed_jobs_it_waits_at_least_for_its_projects_gpus(name: str) -> None:
    # estimate_depth 0: every job has the fluid estimate (GPU-seconds ahead / GPUs), which
    # knows no quota: qbig read 10 s (now); it is no earlier than r's end (500 s). o4 (other,
    # 4 GPUs) has the fluid estimate: 10 s + qbig's 200 GPU-seconds / 4 GPUs
    s = running("s", {"a": (1, 2, 3)}, max_runtime_s=50.0, start_time=0.0, project="other")
    cl = _q_runs_one()
    cl = ClusterState(nodes=(node("a", free=()),), running=(*cl.running, s), gpu_quotas={"q": 2})
    queue = [
        job("qbig", 2, submit_time=1.0, max_runtime_s=100.0, project="q"),
        job("o4", 4, submit_time=2.0, max_runtime_s=100.0, project="other"),
    ]
    d = get_policy(name, estimate_depth=0).schedule(queue, cl, now=10.0)
    assert d.starts == ()
    assert _est(d) == {"qbig": 500.0, "o4": 60.0}
    # its project's GPU held by a job without max_runtime: unknown (the fluid estimate said
    # 10 s); o4's is not (s's and qbig's runtimes are known)
    cl = _q_runs_one(max_runtime_s=None)
    cl = ClusterState(nodes=(node("a", free=()),), running=(*cl.running, s), gpu_quotas={"q": 2})
    d = get_policy(name, estimate_depth=0).schedule(queue, cl, now=10.0)
    assert _est(d) == {"qbig": None, "o4": 60.0}


@pytest.mark.parametrize("name", POLICIES)
def test_every_job_within_its_quota_is_estimated_and_the_estimates_are_a_schedule(
    name: str, seed: int = 31, cases: int = 200
) -> None:
    # random single-node queues with quotas, every job with a max_runtime: each waiting job
    # that may ever run (it needs no more GPUs than its quota) has an estimate, and the
    # estimates, read as a schedule, fit the node and every quota
    rng = random.Random(seed)
    blocked = 0
    for case in range(cases):
        run, quotas, queue, cl = random_quota_case(rng, quota=(1, 4))
        d = get_policy(name).schedule(queue, cl, now=10.0)
        est = _est(d)
        for j in queue:
            p = d.pending.get(j.id)
            if p is None:
                continue
            if "GPU quota (" in p.reason or "of its GPU quota free" in p.reason:
                blocked += 1
            if j.gpus <= quotas.get(j.project, GPUS):
                assert p.estimated_start is not None, (case, j, p)
        for s in d.starts:
            est[s.job_id] = 10.0
        bad = _overcommits(est, queue, run, GPUS, quotas, 10.0)
        assert not bad, (case, bad, est)
    assert blocked > 50  # the pass found jobs at their quota in many cases
