"""Property tests (hypothesis): no over-allocation under random job mixes for every policy,
and EASY backfill never delays the head job's reservation."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aistack.scheduler import get_policy
from aistack.scheduler.check import validate_decision
from aistack.scheduler.types import (
    Allocation,
    ClusterState,
    JobRequest,
    NodeAlloc,
    NodeState,
    RunningJob,
)

POLICIES = ["fifo", "easy", "priority", "fairshare", "las", "srtf", "sjf", "default"]


@st.composite
def scenarios(draw, *, known_runtimes: bool = False):
    n_nodes = draw(st.integers(1, 4))
    nodes = []
    running = []
    rid = 0
    for k in range(n_nodes):
        g = draw(st.sampled_from([0, 1, 2, 4, 8]))
        c = draw(st.integers(2, 16))
        typ = draw(st.sampled_from(["A100", "H100"])) if g else None
        busy_g = draw(st.integers(0, g))
        busy_c = draw(st.integers(0, c // 2))
        # split busy GPUs among running jobs
        left = list(range(busy_g))
        while left:
            take = draw(st.integers(1, len(left)))
            gpus, left = tuple(left[:take]), left[take:]
            rt = (
                draw(st.one_of(st.none(), st.floats(1, 5000)))
                if not known_runtimes
                else draw(st.floats(1, 5000))
            )
            running.append(
                RunningJob(
                    id=f"r{rid}",
                    project=draw(st.sampled_from(["p", "q"])),
                    priority=draw(st.integers(0, 2)),
                    allocation=Allocation(nodes={f"n{k}": NodeAlloc(gpus=gpus)}),
                    start_time=draw(st.floats(0, 100)),
                    max_runtime_s=rt,
                    attained_service_s=draw(st.floats(0, 10_000)),
                    protected_until=draw(st.sampled_from([0.0, 1e9])),
                    preemptible=draw(st.booleans()),
                    true_duration_s=draw(st.floats(1, 5000)),
                )
            )
            rid += 1
        mem = draw(st.integers(0, 64_000))
        nodes.append(
            NodeState(
                name=f"n{k}",
                gpu_type=typ,
                gpus_total=tuple(range(g)),
                gpus_free=frozenset(range(busy_g, g)),
                cpus_total=tuple(range(c)),
                cpus_free=frozenset(range(busy_c, c)),
                memory_total_mb=64_000,
                memory_free_mb=mem,
                schedulable=draw(st.booleans()) or k == 0,
            )
        )
    n_jobs = draw(st.integers(1, 25))
    queue = []
    for i in range(n_jobs):
        rt = (
            draw(st.one_of(st.none(), st.floats(1, 5000)))
            if not known_runtimes
            else draw(st.floats(1, 5000))
        )
        queue.append(
            JobRequest(
                id=f"j{i}",
                project=draw(st.sampled_from(["p", "q", "r"])),
                priority=draw(st.integers(0, 3)),
                submit_time=float(i),
                gpus=draw(st.sampled_from([0, 1, 1, 2, 4, 8])),
                gpu_type=draw(st.sampled_from([None, None, "A100", "H100"])),
                cpus=draw(st.integers(0, 6)),
                memory_mb=draw(st.sampled_from([0, 0, 1000, 30_000])),
                nodes=draw(st.sampled_from([1, 1, 1, 2])),
                max_runtime_s=rt,
                attained_service_s=draw(st.sampled_from([0.0, 0.0, 5000.0])),
                true_duration_s=draw(st.floats(1, 5000)),
            )
        )
    quotas = draw(st.sampled_from([{}, {"p": 2}, {"p": 4, "q": 1}]))
    usage = {"p": draw(st.floats(0, 1e5)), "q": draw(st.floats(0, 1e5))}
    return queue, ClusterState(
        nodes=tuple(nodes), running=tuple(running), gpu_quotas=quotas, usage=usage
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sc=scenarios(), policy=st.sampled_from(POLICIES), now=st.sampled_from([0.0, 200.0, 1e6]))
def test_no_over_allocation_and_every_waiting_job_has_a_reason(sc, policy, now) -> None:
    queue, cluster = sc
    d = get_policy(policy).schedule(queue, cluster, now)
    validate_decision(queue, cluster, d, now)  # gangs, free ids, quotas, protection, reasons
    for p in d.pending.values():
        assert p.reason and p.job_id in {j.id for j in queue}


def _fits_at(head: JobRequest, t: float, cluster: ClusterState, d, queue) -> bool:
    """Independent check: with everything the decision started, does `head` fit at time t,
    once running/started jobs whose max_runtime says they are done by t have released?"""
    jobs = {j.id: j for j in queue}
    free = {n.name: [len(n.gpus_free), len(n.cpus_free), n.memory_free_mb] for n in cluster.nodes}
    for s in d.starts:
        j = jobs[s.job_id]
        ends = t + 1 if j.max_runtime_s is None else j.max_runtime_s  # now = 0
        for name, a in s.allocation.nodes.items():
            free[name][0] -= len(a.gpus)
            free[name][1] -= len(a.cpus)
            free[name][2] -= a.memory_mb
            if ends <= t:
                free[name][0] += len(a.gpus)
                free[name][1] += len(a.cpus)
                free[name][2] += a.memory_mb
    for r in cluster.running:
        if r.max_runtime_s is not None and r.start_time + r.max_runtime_s <= t:
            for name, a in r.allocation.nodes.items():
                free[name][0] += len(a.gpus)
                free[name][1] += len(a.cpus)
                free[name][2] += a.memory_mb
    ok = 0
    for n in cluster.nodes:
        g, c, m = free[n.name]
        if not n.schedulable or (head.gpu_type is not None and n.gpu_type != head.gpu_type):
            continue
        if g >= head.gpus and c >= head.cpus and m >= head.memory_mb:
            ok += 1
    return ok >= head.nodes


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sc=scenarios(known_runtimes=True))
def test_backfill_never_delays_the_head_reservation(sc) -> None:
    queue, cluster = sc
    cluster = ClusterState(nodes=cluster.nodes, running=cluster.running)  # no quotas
    d = get_policy("easy").schedule(queue, cluster, 0.0)
    validate_decision(queue, cluster, d, 0.0)
    jobs = {j.id: j for j in queue}
    for hid, (t, _nodes) in d.reservations.items():
        assert _fits_at(jobs[hid], t, cluster, d, queue), (hid, t)
        assert d.pending[hid].estimated_start == t


def _without_caches(policy):
    """A copy of the policy with the same state (promises, in-flight victims, learned
    tables) but none of the per-job parts it keeps across passes."""
    fresh = copy.deepcopy(policy)
    fresh._parts.clear()
    fresh._iparts.clear()
    fresh._layout = ()
    return fresh


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scs=st.lists(scenarios(), min_size=2, max_size=4),
    policy=st.sampled_from(["default", "las", "priority", "fairshare", "srtf"]),
    now=st.sampled_from([200.0, 1e6]),
)
def test_a_policy_reused_across_passes_decides_as_one_without_its_caches(scs, policy, now) -> None:
    # the scenarios reuse running-job ids (r0, r1, …) with other allocations and nodes:
    # what the policy kept from an earlier pass must not leak into a later one
    pol = get_policy(policy)
    for queue, cluster in scs:
        expected = _without_caches(pol).schedule(queue, cluster, now)
        got = pol.schedule(queue, cluster, now)
        assert got == expected
        validate_decision(queue, cluster, got, now)
