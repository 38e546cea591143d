"""The pure scheduler no longer trusts running allocations: a node where they contradict the
node's inventory (a GPU it does not list, one GPU held twice, a held GPU listed free) gets
nothing placed on it, named in ``Decision.blocked_nodes``; the ledger behind it is
incremental and agrees with a from-scratch check after every pass."""

from __future__ import annotations

import random

import pytest

from aistack.errors import ValidationError
from aistack.scheduler import get_policy
from aistack.scheduler.check import validate_decision
from aistack.scheduler.ledger import AllocationLedger
from aistack.scheduler.types import (
    Allocation,
    ClusterState,
    JobRequest,
    NodeAlloc,
    NodeState,
    RunningJob,
)

POLICIES = ["default", "fifo", "easy", "priority", "fairshare", "las", "srtf", "sjf"]


def node(name: str, gpus: int = 4, free: tuple[int, ...] | None = None) -> NodeState:
    f = tuple(range(gpus)) if free is None else free
    return NodeState(
        name=name,
        gpus_total=tuple(range(gpus)),
        gpus_free=frozenset(f),
        cpus_total=tuple(range(16)),
        cpus_free=frozenset(range(16)),
        memory_total_mb=64_000,
        memory_free_mb=64_000,
    )


def running(jid: str, where: dict[str, tuple[int, ...]], **kw: object) -> RunningJob:
    kw.setdefault("max_runtime_s", 1000.0)
    kw.setdefault("true_duration_s", 1000.0)
    return RunningJob(
        id=jid,
        allocation=Allocation(nodes={n: NodeAlloc(gpus=g) for n, g in where.items()}),
        **kw,  # type: ignore[arg-type]
    )


def job(jid: str, gpus: int, **kw: object) -> JobRequest:
    kw.setdefault("true_duration_s", 10.0)
    kw.setdefault("max_runtime_s", 10.0)
    return JobRequest(id=jid, gpus=gpus, cpus=1, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", POLICIES)
def test_a_gpu_held_by_a_running_job_but_listed_free_is_not_handed_out(name: str) -> None:
    # node a lists GPUs 0-3 free, but job r holds GPU 1: before, the 4-GPU job was started on
    # a with GPU 1 in its allocation (two jobs on one GPU)
    cluster = ClusterState(
        nodes=(node("a", free=(0, 1, 2, 3)), node("b", free=())),
        running=(running("r", {"a": (1,)}), running("s", {"b": (0, 1, 2, 3)})),
    )
    d = get_policy(name).schedule([job("new", 4)], cluster, now=0.0)
    assert d.starts == ()
    assert d.blocked_nodes == {
        "a": "GPU(s) 1 are listed free but running job(s) r hold them",
    }
    # a's GPUs are not counted as free (srtf preempts s on b instead: its own choice)
    assert d.pending["new"].reason.startswith("needs 4 GPUs on one node; ")
    assert "2 free" not in d.pending["new"].reason


@pytest.mark.parametrize("name", POLICIES)
def test_the_rest_of_the_cluster_is_scheduled_as_usual(name: str) -> None:
    cluster = ClusterState(
        nodes=(node("a", free=(0, 1, 2, 3)), node("b")),
        running=(running("r", {"a": (1,)}),),
    )
    d = get_policy(name).schedule([job("new", 4)], cluster, now=0.0)
    validate_decision([job("new", 4)], cluster, d)
    assert [(s.job_id, dict(s.allocation.nodes)) for s in d.starts] == [
        ("new", {"b": NodeAlloc(gpus=(0, 1, 2, 3), cpus=(0,))})
    ]
    assert list(d.blocked_nodes) == ["a"]


@pytest.mark.parametrize("name", ["default", "las", "srtf", "priority"])
def test_a_running_job_holding_a_gpu_the_node_lacks_is_not_preempted_to_free_it(
    name: str,
) -> None:
    # node a has 4 GPUs (0-3), all held by r (0-2) and by the stale row's GPU 7: before, the
    # urgent 4-GPU job preempted r and q, counting GPU 7 as one of the four it would get
    victims = (
        running("r", {"a": (0, 1, 2)}, priority=-5, start_time=-9000.0, attained_service_s=9e6),
        running("q", {"a": (3, 7)}, priority=-5, start_time=-9000.0, attained_service_s=9e6),
    )
    cluster = ClusterState(nodes=(node("a", free=()),), running=victims)
    urgent = job("urgent", 4, priority=100, submit_time=0.0, true_duration_s=1.0)
    d = get_policy(name).schedule([urgent], cluster, now=10.0)
    assert d.preemptions == ()
    assert d.starts == ()
    assert d.blocked_nodes == {
        "a": "running jobs hold GPU(s) 7, which its inventory lacks (it lists 0, 1, 2, 3)"
    }
    assert d.pending["urgent"].reason == (
        "needs 4 GPUs on one node: only node a (running jobs hold GPU(s) 7, which its "
        "inventory lacks (it lists 0, 1, 2, 3)) can hold it, and it takes no new jobs now; "
        "it waits until it does"
    )


@pytest.mark.parametrize("name", ["default", "las", "srtf", "priority"])
def test_two_running_jobs_holding_one_gpu_are_not_preempted_to_free_it(name: str) -> None:
    victims = (
        running("r", {"a": (0, 1)}, priority=-5, start_time=-9000.0, attained_service_s=9e6),
        running("q", {"a": (1, 2, 3)}, priority=-5, start_time=-9000.0, attained_service_s=9e6),
    )
    cluster = ClusterState(nodes=(node("a", free=()),), running=victims)
    urgent = job("urgent", 4, priority=100, true_duration_s=1.0)
    d = get_policy(name).schedule([urgent], cluster, now=10.0)
    assert d.preemptions == ()
    assert d.blocked_nodes == {
        "a": "running jobs q, r all hold GPU(s) 1: which job holds it is unknown"
    }


def test_a_job_listing_one_gpu_twice_blocks_its_node() -> None:
    cluster = ClusterState(nodes=(node("a", free=(2, 3)),), running=(running("r", {"a": (0, 0)}),))
    d = get_policy("easy").schedule([job("new", 1)], cluster, now=0.0)
    assert d.starts == ()
    assert d.blocked_nodes == {
        "a": "running job r lists twice GPU(s) 0: which job holds it is unknown"
    }


def test_a_node_is_used_again_once_its_allocations_agree() -> None:
    policy = get_policy("easy")
    bad = ClusterState(nodes=(node("a", free=(0, 1, 2, 3)),), running=(running("r", {"a": (1,)}),))
    assert policy.schedule([job("new", 2)], bad, now=0.0).starts == ()
    # the caller fixes its free list: the same running object, a new NodeState
    good = ClusterState(nodes=(node("a", free=(0, 2, 3)),), running=bad.running)
    d = policy.schedule([job("new", 2)], good, now=1.0)
    assert d.blocked_nodes == {}
    assert [s.allocation.nodes["a"].gpus for s in d.starts] == [(0, 2)]
    # and the stale row goes away: r stops running, its GPU is free again
    done = ClusterState(nodes=(node("a"),), running=())
    assert policy.schedule([job("new", 4)], done, now=2.0).blocked_nodes == {}


def test_an_empty_queue_still_reports_the_blocked_nodes() -> None:
    cluster = ClusterState(nodes=(node("a", free=(0, 1)),), running=(running("r", {"a": (0,)}),))
    d = get_policy("default").schedule([], cluster, now=0.0)
    assert d.blocked_nodes == {"a": "GPU(s) 0 are listed free but running job(s) r hold them"}


@pytest.mark.parametrize("empty_queue", [False, True])
def test_a_running_job_id_listed_twice_is_refused(empty_queue: bool) -> None:
    # with jobs queued, the second copy was trusted: its GPUs counted twice when preempting
    r = running("r", {"a": (0,)})
    cluster = ClusterState(nodes=(node("a", free=(1, 2, 3)),), running=(r, r))
    queue = [] if empty_queue else [job("new", 1)]
    with pytest.raises(ValidationError, match="job id 'r' is listed 2 times"):
        get_policy("easy").schedule(queue, cluster, now=0.0)


def test_a_job_on_a_drained_node_is_told_it_waits_for_it() -> None:
    # before: "no node of this cluster can ever hold it"
    drained = NodeState(
        name="big",
        gpus_total=tuple(range(8)),
        gpus_free=frozenset(range(8)),
        cpus_total=tuple(range(16)),
        cpus_free=frozenset(range(16)),
        schedulable=False,
    )
    cluster = ClusterState(nodes=(node("a"), drained))
    d = get_policy("easy").schedule([job("wide", 8)], cluster, now=0.0)
    assert d.pending["wide"].reason == (
        "needs 8 GPUs on one node: only node big (not schedulable) can hold it, and it takes "
        "no new jobs now; it waits until it does"
    )


def _from_scratch(cluster: ClusterState) -> dict[str, str]:
    return dict(AllocationLedger().update(cluster))


def test_the_incremental_ledger_agrees_with_a_fresh_one_after_every_pass() -> None:
    # random passes that keep some objects, replace others, add, drop, and corrupt
    rng = random.Random(7)
    names = [f"n{i}" for i in range(5)]
    ledger = AllocationLedger()
    jobs: dict[str, RunningJob] = {}
    nodes = {n: node(n) for n in names}
    blocked_seen = 0
    for step in range(600):
        op = rng.random()
        if op < 0.35 or not jobs:
            n = rng.choice(names)
            gpus = tuple(sorted(rng.sample(range(6), rng.randint(1, 2))))  # 4, 5: not listed
            jid = f"j{step}"
            jobs[jid] = running(jid, {n: gpus})
        elif op < 0.6:
            del jobs[rng.choice(sorted(jobs))]
        elif op < 0.75:
            jid = rng.choice(sorted(jobs))
            jobs[jid] = running(jid, {rng.choice(names): (rng.randrange(4),)})
        else:
            n = rng.choice(names)
            nodes[n] = node(n, free=tuple(sorted(rng.sample(range(4), rng.randint(0, 4)))))
        cluster = ClusterState(nodes=tuple(nodes.values()), running=tuple(jobs.values()))
        got = dict(ledger.update(cluster))
        assert got == _from_scratch(cluster), step
        blocked_seen += bool(got)
    assert blocked_seen > 50  # the walk did exercise contradictions


def test_the_simulator_never_blocks_a_node() -> None:
    # the simulator builds consistent states: the ledger must find nothing (and decide
    # nothing differently) on a real replay
    from aistack.scheduler.simulator import SimConfig, simulate, synthetic_mix, with_estimates

    trace = with_estimates(synthetic_mix(400, seed=3, mean_gap_s=120.0))
    policy = get_policy("default", explain=False)
    seen: list[dict[str, str]] = []
    real = policy.schedule

    def spy(queue, cluster, now):  # type: ignore[no-untyped-def]
        d = real(queue, cluster, now)
        seen.append(d.blocked_nodes)
        return d

    policy.schedule = spy  # type: ignore[method-assign]
    simulate(trace, policy, SimConfig(nodes=4, gpus_per_node=8))
    assert len(seen) > 100
    assert all(b == {} for b in seen)


@pytest.mark.parametrize("empty_queue", [True, False])
def test_a_running_job_listed_twice_after_another_stopped_is_refused(empty_queue: bool) -> None:
    """A job that stopped and a duplicate leave the list as long as before: the ledger's fast
    path saw no new object and no change in count, and kept the stopped job's GPUs."""
    policy = get_policy("easy")
    a, b = running("ja", {"a": (0,)}), running("jb", {"a": (1,)})
    first = policy.schedule([], ClusterState(nodes=(node("a", free=(2, 3)),), running=(a, b)), 0.0)
    assert first.blocked_nodes == {}
    # jb stopped (GPU 1 free again) and ja is listed twice: as many running jobs as before
    queue = [] if empty_queue else [job("q", 1)]
    again = ClusterState(nodes=(node("a", free=(1, 2, 3)),), running=(a, a))
    with pytest.raises(ValidationError, match="job id 'ja' is listed 2 times") as info:
        policy.schedule(queue, again, now=1.0)
    assert info.value.details["job_id"] == "ja"
    # the caller's next, correct state is scheduled as usual: jb's GPU is not counted held
    d = policy.schedule([], ClusterState(nodes=(node("a", free=(1, 2, 3)),), running=(a,)), 2.0)
    assert d.blocked_nodes == {}
