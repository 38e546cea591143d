"""Start estimates of a job that the replay finds at its project's GPU quota. Its start was
looked up on a copy of the replay as it stood when the job's turn came, so two kinds of jobs
placed after it in the replay, but before that start, were ignored:

(a) a later job of its own project that fitted the quota and started at once (quota 2, q1 runs
    1 GPU; qbig needs 2: blocked; qsmall needs 1: starts). qbig was promised q1's end; it also
    waits for qsmall's GPU;
(b) jobs of other projects that took the GPUs it needs at that start.

Both made its estimate optimistic (and the replay then handed out GPUs it had already given
away). Now the blocked job is back in line at the first end after which its project's GPUs
allow it, on the replay as it is then. The estimates only: the decisions are unchanged."""

from __future__ import annotations

import random

import pytest
from test_scheduler_allocation_ledger import job, node, running

from aistack.scheduler import get_policy
from aistack.scheduler.types import ClusterState, JobRequest, RunningJob

POLICIES = ["easy", "default", "priority", "fairshare"]


def _est(name: str, queue: list[JobRequest], cluster: ClusterState) -> dict[str, float | None]:
    d = get_policy(name).schedule(queue, cluster, now=10.0)
    assert d.starts == ()
    return {k: p.estimated_start for k, p in d.pending.items()}


def _full(quotas: dict[str, int]) -> ClusterState:
    # node a (4 GPUs) is all s's (project other) until 100 s
    s = running("s", {"a": (0, 1, 2, 3)}, max_runtime_s=100.0, start_time=0.0, project="other")
    return ClusterState(nodes=(node("a", free=()),), running=(s,), gpu_quotas=quotas)


@pytest.mark.parametrize("name", POLICIES)
def test_a_later_job_of_its_project_that_starts_first_delays_it(name: str) -> None:
    # quota 2. At 100 s q1 (1 GPU, to 1100 s) starts; qbig (2 GPUs) would make 3: blocked;
    # qsmall (1 GPU, to 2100 s) makes 2 and starts. qbig needs both GPUs back: 2100 s (the
    # look-ahead said 1100 s, q1's end, and so ran 4 GPUs of q from then on)
    queue = [
        job("q1", 1, submit_time=1.0, max_runtime_s=1000.0, project="q"),
        job("qbig", 2, submit_time=2.0, max_runtime_s=100.0, project="q"),
        job("qsmall", 1, submit_time=3.0, max_runtime_s=2000.0, project="q"),
    ]
    assert _est(name, queue, _full({"q": 2})) == {"q1": 100.0, "qbig": 2100.0, "qsmall": 100.0}
    # a quota of 3 lets qbig start beside q1, and qsmall when qbig ends
    assert _est(name, queue, _full({"q": 3})) == {"q1": 100.0, "qbig": 100.0, "qsmall": 200.0}


@pytest.mark.parametrize("name", POLICIES)
def test_jobs_of_other_projects_placed_before_its_start_keep_their_gpus(name: str) -> None:
    # quota 2. At 100 s q1 (1 GPU, to 600 s) starts, qb (2 GPUs) is blocked by the quota, o3
    # (3 GPUs, project other, to 1100 s) takes the rest. At 600 s q's GPU is back but only
    # 1 GPU is free: qb starts when o3 ends (the look-ahead said 600 s)
    queue = [
        job("q1", 1, submit_time=1.0, max_runtime_s=500.0, project="q"),
        job("qb", 2, submit_time=2.0, max_runtime_s=100.0, project="q"),
        job("o3", 3, submit_time=3.0, max_runtime_s=1000.0, project="other"),
    ]
    assert _est(name, queue, _full({"q": 2})) == {"q1": 100.0, "qb": 1100.0, "o3": 100.0}
    # o1 (1 GPU) behind them: in the replay (which plans no backfill) it does not start before
    # qb once qb is back in line at 600 s; it starts beside qb
    queue.append(job("o1", 1, submit_time=4.0, max_runtime_s=50.0, project="other"))
    assert _est(name, queue, _full({"q": 2})) == {
        "q1": 100.0,
        "qb": 1100.0,
        "o3": 100.0,
        "o1": 1100.0,
    }


@pytest.mark.parametrize("name", POLICIES)
def test_a_blocked_job_that_does_not_fit_yet_does_not_move_the_clock_of_the_jobs_behind(
    name: str,
) -> None:
    # quota 2. At 100 s q1 (1 GPU) and o2 (2 GPUs, other, to 600 s) start; qb (2 GPUs) is at
    # q's quota and only 1 GPU is free: it waits (keeping nothing), and o1 (1 GPU) starts at
    # 100 s as the pass starts it. The replay moved its clock to o2's end, where qb fitted, and
    # only then saw the quota: o1 read 600 s
    queue = [
        job("q1", 1, submit_time=1.0, max_runtime_s=1000.0, project="q"),
        job("o2", 2, submit_time=2.0, max_runtime_s=500.0, project="other"),
        job("qb", 2, submit_time=3.0, max_runtime_s=100.0, project="q"),
        job("o1", 1, submit_time=4.0, max_runtime_s=50.0, project="other"),
    ]
    assert _est(name, queue, _full({"q": 2})) == {
        "q1": 100.0,
        "o2": 100.0,
        "qb": 1100.0,
        "o1": 100.0,
    }


def test_blocked_jobs_come_back_in_queue_order() -> None:
    # quotas p 2, q 2. At 100 s p1 (to 300 s) and q1 (to 300 s) start; p2 and q2 (2 GPUs
    # each) would make 3: blocked; o2 (2 GPUs, other, to 400 s) starts. At 300 s p's and q's
    # GPUs are back and 2 GPUs free: p2 (first in the queue) takes them, q2 starts when o2
    # ends (the look-ahead gave both 300 s, on the same 2 GPUs)
    queue = [
        job("p1", 1, submit_time=1.0, max_runtime_s=200.0, project="p"),
        job("q1", 1, submit_time=2.0, max_runtime_s=200.0, project="q"),
        job("p2", 2, submit_time=3.0, max_runtime_s=1000.0, project="p"),
        job("q2", 2, submit_time=4.0, max_runtime_s=1000.0, project="q"),
        job("o2", 2, submit_time=5.0, max_runtime_s=300.0, project="other"),
    ]
    quotas = {"p": 2, "q": 2}
    assert _est("easy", queue, _full(quotas)) == {
        "p1": 100.0,
        "q1": 100.0,
        "p2": 300.0,
        "q2": 400.0,
        "o2": 100.0,
    }


def test_a_blocked_job_waits_for_the_end_of_its_projects_job_as_the_replay_assumes_it() -> None:
    # q runs r (no max_runtime, 1 GPU; quota 2): q1 takes q's second GPU at 100 s, qb waits
    # for q1's end; o1 (other) is not held back by q's quota
    r = running("r", {"a": (0,)}, max_runtime_s=None, start_time=0.0, project="q")
    s = running("s", {"a": (1, 2, 3)}, max_runtime_s=100.0, start_time=0.0, project="other")
    cl = ClusterState(nodes=(node("a", free=()),), running=(r, s), gpu_quotas={"q": 2})
    queue = [
        job("q1", 1, submit_time=1.0, max_runtime_s=500.0, project="q"),
        job("qb", 1, submit_time=2.0, max_runtime_s=100.0, project="q"),
        job("o1", 1, submit_time=3.0, max_runtime_s=100.0, project="other"),
    ]
    assert _est("easy", queue, cl) == {"q1": 100.0, "qb": 600.0, "o1": 100.0}
    # q1 without max_runtime runs the mean of the known ones (s, qb, o1: 100 s)
    queue[0] = job("q1", 1, submit_time=1.0, max_runtime_s=None, project="q")
    assert _est("easy", queue, cl) == {"q1": 100.0, "qb": 200.0, "o1": 100.0}


# ---------------------------------------------------------------- the estimates are a schedule
def _overcommits(
    est: dict[str, float | None],
    queue: list[JobRequest],
    run: tuple[RunningJob, ...],
    total: int,
    quotas: dict[str, int],
    now: float,
) -> list[str]:
    """Times at which the jobs, each run from its estimated start for its max_runtime (the
    running ones to theirs), would hold more GPUs than the cluster has or a project more than
    its quota: each such time is a promise the scheduler cannot keep."""
    spans: list[tuple[float, float, int, str]] = []
    for r in run:
        assert r.max_runtime_s is not None
        end = max(now, r.start_time + r.max_runtime_s)
        spans.append((now, end, r.allocation.total_gpus, r.project))
    for j in queue:
        e = est.get(j.id)
        if e is not None:
            assert j.max_runtime_s is not None
            spans.append((e, e + j.max_runtime_s, j.gpus * j.nodes, j.project))
    bad = []
    for t in sorted({s for s, _, _, _ in spans}):
        live = [(g, p) for s, e, g, p in spans if s <= t < e]
        if sum(g for g, _ in live) > total:
            bad.append(f"{sum(g for g, _ in live)} GPUs at {t} s")
        for p, q in quotas.items():
            u = sum(g for g, pp in live if pp == p)
            if u > q:
                bad.append(f"project {p}: {u} GPUs (quota {q}) at {t} s")
    return bad


GPUS = 8  # the node of the random cases


def random_quota_case(
    rng: random.Random, *, quota: tuple[int, int]
) -> tuple[tuple[RunningJob, ...], dict[str, int], list[JobRequest], ClusterState]:
    """A random single-node case (``GPUS`` GPUs) with quotas for projects p and q (each drawn
    from ``quota``, at least what the project's running jobs hold): (running jobs, quotas,
    queue of 2 to 12 jobs with max_runtime, cluster)."""
    projects = ["p", "q", "other"]
    run = []
    used = 0
    for k in range(rng.randint(1, 4)):
        g = rng.randint(1, 3)
        if used + g > GPUS:
            break
        run.append(
            running(
                f"r{k}",
                {"a": tuple(range(used, used + g))},
                max_runtime_s=float(rng.randint(1, 20) * 50),
                start_time=0.0,
                project=rng.choice(projects),
            )
        )
        used += g
    quotas = {"p": rng.randint(*quota), "q": rng.randint(*quota)}
    for r in run:
        if r.project in quotas:
            quotas[r.project] = max(
                quotas[r.project],
                sum(x.allocation.total_gpus for x in run if x.project == r.project),
            )
    queue = [
        job(
            f"j{k}",
            rng.randint(1, 4),
            submit_time=float(k),
            max_runtime_s=float(rng.randint(1, 20) * 50),
            project=rng.choice(projects),
        )
        for k in range(rng.randint(2, 12))
    ]
    cl = ClusterState(
        nodes=(node("a", gpus=GPUS, free=tuple(range(used, GPUS))),),
        running=tuple(run),
        gpu_quotas=quotas,
    )
    return tuple(run), quotas, queue, cl


@pytest.mark.parametrize("name", POLICIES)
def test_the_estimates_never_promise_more_gpus_than_the_cluster_or_a_quota_holds(
    name: str, seed: int = 23, cases: int = 300
) -> None:
    # random single-node queues with quotas: the estimates, read as a schedule, fit the node
    # and every quota (the look-ahead's promises overlapped the jobs placed after it)
    rng = random.Random(seed)
    for case in range(cases):
        run, quotas, queue, cl = random_quota_case(rng, quota=(2, 5))
        d = get_policy(name).schedule(queue, cl, now=10.0)
        est: dict[str, float | None] = {k: p.estimated_start for k, p in d.pending.items()}
        for s in d.starts:
            est[s.job_id] = 10.0
        # jobs without an estimate (None: those larger than their quota) are left out; the
        # jobs the pass found at their quota are estimated and checked like the others
        bad = _overcommits(est, queue, run, GPUS, quotas, 10.0)
        assert not bad, (case, bad, est)
