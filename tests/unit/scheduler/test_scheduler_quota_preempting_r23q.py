"""GPU quotas count the jobs that preempt.

A job that preempts in a pass starts on the GPUs its victims free, but the pass counted only
its running and started jobs toward its project's quota: a later job of the project was
checked against the quota without the preemptor, so the pass started it, preempted for it, or
gave it a reservation, and the project went beyond its quota once the preemptor started (the
ITP cluster10 trace with quotas: 207 of p1 preempting 2 GPUs, 205 started, the head 123 of p1
with 4 GPUs checked as 2 + 4 <= 6 and given a reservation, with p1 at 8 of 6). The same held in
the passes after, while the victims still ran (their preemptor holds their GPUs)."""

from __future__ import annotations

import random

import pytest
from test_scheduler_allocation_ledger import job, node, running

from aistack.scheduler import get_policy
from aistack.scheduler.types import ClusterState, Decision, JobRequest, RunningJob


def _committed(
    d: Decision,
    queue: list[JobRequest],
    cl: ClusterState,
    preemptors: set[str] = frozenset(),  # type: ignore[assignment]
    gone: set[str] = frozenset(),  # type: ignore[assignment]
) -> tuple[dict[str, int], dict[str, int]]:
    """GPUs per project now (the running jobs, victims included, and this pass's starts) and
    once the preemptors have started (victims gone: ``gone`` and this pass's preemptions)."""
    size = {j.id: j.gpus * j.nodes for j in queue}
    proj = {j.id: j.project for j in queue}
    victims = set(gone) | {p.job_id for p in d.preemptions}
    pre = set(preemptors) | {p.for_job for p in d.preemptions if p.for_job}
    now: dict[str, int] = {}
    after: dict[str, int] = {}
    for r in cl.running:
        now[r.project] = now.get(r.project, 0) + r.allocation.total_gpus
        if r.id not in victims:
            after[r.project] = after.get(r.project, 0) + r.allocation.total_gpus
    for s in d.starts:
        for m in (now, after):
            m[proj[s.job_id]] = m.get(proj[s.job_id], 0) + size[s.job_id]
    for jid in pre:
        after[proj[jid]] = after.get(proj[jid], 0) + size[jid]
    return now, after


def _over(d: Decision, queue: list[JobRequest], cl: ClusterState, **kw: set[str]) -> list[str]:
    now, after = _committed(d, queue, cl, **kw)
    bad = []
    for p, q in cl.gpu_quotas.items():
        for when, m in (("now", now), ("after the preemptions", after)):
            if m.get(p, 0) > q:
                bad.append(f"project {p}: {m[p]} GPUs of its quota of {q} {when}")
    return bad


def _two_nodes() -> tuple[RunningJob, ...]:
    # node a (4 GPUs): v of project o (preemptible, priority 0); node b: w of o on GPUs 0-1
    # (not preemptible), GPUs 2-3 free
    v = running("v", {"a": (0, 1, 2, 3)}, project="o", start_time=0.0)
    w = running("w", {"b": (0, 1)}, project="o", start_time=0.0, preemptible=False)
    return v, w


def _cluster(quota: int, run: tuple[RunningJob, ...] | None = None) -> ClusterState:
    return ClusterState(
        nodes=(node("a", free=()), node("b", free=(2, 3))),
        running=_two_nodes() if run is None else run,
        gpu_quotas={"p": quota},
    )


def test_a_job_behind_a_preemptor_of_its_project_does_not_start_beyond_the_quota() -> None:
    # hp (p, 4 GPUs) preempts v on a; s (p, 2 GPUs) fits b's free GPUs: it started, and p held
    # 6 GPUs of its quota of 4 once hp started
    queue = [
        job("hp", 4, priority=10, submit_time=1.0, project="p"),
        job("s", 2, priority=5, submit_time=2.0, project="p"),
    ]
    cl = _cluster(4)
    d = get_policy("priority").schedule(queue, cl, now=10.0)
    assert [(p.job_id, p.for_job) for p in d.preemptions] == [("v", "hp")]
    assert d.starts == ()
    assert d.pending["s"].reason == "project p at its GPU quota (4/4 GPUs in use)"
    assert _over(d, queue, cl) == []


def test_a_job_whose_start_would_pass_the_quota_preempts_nothing() -> None:
    # two 4-GPU jobs of p (quota 4), each could preempt a node's jobs of o: the second one
    # preempted too (p at 8 of 4, or the second one's victims killed for a job that cannot run)
    v, _ = _two_nodes()
    v2 = running("v2", {"b": (0, 1, 2, 3)}, project="o", start_time=0.0)
    cl = ClusterState(
        nodes=(node("a", free=()), node("b", free=())), running=(v, v2), gpu_quotas={"p": 4}
    )
    queue = [
        job("hp1", 4, priority=10, submit_time=1.0, project="p"),
        job("hp2", 4, priority=9, submit_time=2.0, project="p"),
    ]
    d = get_policy("priority").schedule(queue, cl, now=10.0)
    assert [p.for_job for p in d.preemptions] == ["hp1"]
    assert d.pending["hp2"].reason == "project p at its GPU quota (4/4 GPUs in use)"
    assert _over(d, queue, cl) == []


def test_the_head_behind_a_preemptor_and_a_start_gets_no_reservation_beyond_the_quota() -> None:
    # the cluster10 case: hp (p, 4 GPUs) preempts v, s (p, 2 GPUs) starts on b (4 + 2 = 6 of
    # 6), h (p, 4 GPUs) was checked as 2 + 4 <= 6 and reserved
    queue = [
        job("hp", 4, priority=10, submit_time=1.0, project="p"),
        job("s", 2, priority=5, submit_time=2.0, project="p"),
        job("h", 4, priority=1, submit_time=3.0, project="p"),
    ]
    cl = _cluster(6)
    d = get_policy("priority").schedule(queue, cl, now=10.0)
    assert [(p.job_id, p.for_job) for p in d.preemptions] == [("v", "hp")]
    assert [s.job_id for s in d.starts] == ["s"]
    assert set(d.reservations) == {"hp"}  # h: none (it had one from w's end)
    assert d.pending["h"].reason == "project p at its GPU quota (6/6 GPUs in use)"
    assert _over(d, queue, cl) == []


def test_a_preemptor_waiting_for_its_victims_counts_in_the_passes_after() -> None:
    # pass 1: hp preempts v; pass 2, v still in its grace period: hp holds v's GPUs, and s
    # (p, 2 GPUs) was started beside it (p at 6 of 4 once v is gone)
    queue = [
        job("hp", 4, priority=10, submit_time=1.0, project="p"),
        job("s", 2, priority=5, submit_time=2.0, project="p"),
    ]
    cl = _cluster(4)
    pol = get_policy("priority")
    d1 = pol.schedule(queue, cl, now=10.0)
    assert [p.for_job for p in d1.preemptions] == ["hp"]
    d2 = pol.schedule(queue, cl, now=11.0)
    assert d2.preemptions == ()  # asked once
    assert d2.starts == ()
    assert d2.reservations.get("hp", (None,))[0] == 11.0
    assert d2.pending["s"].reason == "project p at its GPU quota (4/4 GPUs in use)"
    assert _over(d2, queue, cl, preemptors={"hp"}, gone={"v"}) == []


@pytest.mark.parametrize("name", ["default", "priority", "las", "srtf"])
def test_no_pass_commits_a_project_beyond_its_quota(
    name: str, seed: int = 29, cases: int = 300
) -> None:
    # random two-node clusters of preemptible jobs and queues of three projects with quotas:
    # counting the running jobs, this pass's starts and its preemptors (victims gone), no
    # project holds more than its quota
    rng = random.Random(seed)
    projects = ["p", "q", "o"]
    checked = preempted = 0
    for case in range(cases):
        run: list[RunningJob] = []
        free: dict[str, tuple[int, ...]] = {}
        for nm in ("a", "b"):
            g, k = 0, 0
            while g < 4 and rng.random() < 0.8:
                n = rng.randint(1, 4 - g)
                run.append(
                    running(
                        f"r{nm}{k}",
                        {nm: tuple(range(g, g + n))},
                        project=rng.choice(projects),
                        priority=rng.randint(0, 2),
                        start_time=float(rng.randint(0, 5)),
                        attained_service_s=float(rng.randint(0, 4000)),
                        max_runtime_s=float(rng.randint(1, 20) * 100),
                        true_duration_s=float(rng.randint(1, 20) * 100),
                    )
                )
                g, k = g + n, k + 1
            free[nm] = tuple(range(g, 4))
        quotas = {p: rng.randint(2, 8) for p in projects}
        for p in projects:  # running within their quota (a lowered quota is another case)
            quotas[p] = max(quotas[p], sum(r.allocation.total_gpus for r in run if r.project == p))
        queue = [
            job(
                f"j{k}",
                rng.randint(1, 4),
                priority=rng.randint(0, 5),
                submit_time=float(k),
                max_runtime_s=float(rng.randint(1, 20) * 50),
                true_duration_s=float(rng.randint(1, 20) * 50),
                project=rng.choice(projects),
            )
            for k in range(rng.randint(2, 10))
        ]
        cl = ClusterState(
            nodes=tuple(node(nm, free=free[nm]) for nm in ("a", "b")),
            running=tuple(run),
            gpu_quotas=quotas,
        )
        d = get_policy(name).schedule(queue, cl, now=10.0)
        bad = _over(d, queue, cl)
        assert not bad, (case, bad, d)
        checked += 1
        preempted += bool(d.preemptions)
    assert checked == cases
    assert preempted >= 10  # the check saw preemptions (these seeds give dozens)
