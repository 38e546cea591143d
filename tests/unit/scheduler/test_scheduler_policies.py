"""Each policy's decisions on small hand-made queues: gangs, packing, quotas, priority,
backfill, preemption, pending reasons and start estimates."""

from __future__ import annotations

import math

import pytest

from aistack.errors import ValidationError
from aistack.scheduler import get_policy, policy_names
from aistack.scheduler.check import validate_decision
from aistack.scheduler.types import (
    Allocation,
    ClusterState,
    JobRequest,
    NodeAlloc,
    NodeState,
    RunningJob,
)


def node(
    name: str,
    gpus: int = 4,
    free: list[int] | None = None,
    *,
    cpus: int = 16,
    typ: str | None = None,
) -> NodeState:
    f = list(range(gpus)) if free is None else free
    return NodeState(
        name=name,
        gpu_type=typ,
        gpus_total=tuple(range(gpus)),
        gpus_free=frozenset(f),
        cpus_total=tuple(range(cpus)),
        cpus_free=frozenset(range(cpus)),
        memory_total_mb=64_000,
        memory_free_mb=64_000,
    )


def job(jid: str, gpus: int = 1, *, t: float = 0.0, nodes: int = 1, **kw) -> JobRequest:
    kw.setdefault("cpus", 1)
    return JobRequest(id=jid, gpus=gpus, nodes=nodes, submit_time=t, **kw)


def running(
    jid: str, node_name: str, gpus: tuple[int, ...], *, start: float = 0.0, **kw
) -> RunningJob:
    return RunningJob(
        id=jid,
        allocation=Allocation(nodes={node_name: NodeAlloc(gpus=gpus)}),
        start_time=start,
        **kw,
    )


def run(policy: str, queue, cluster, now: float = 0.0, **opts):
    d = get_policy(policy, **opts).schedule(queue, cluster, now)
    validate_decision(queue, cluster, d, now)
    return d


def started(d) -> list[str]:
    return [s.job_id for s in d.starts]


# ---------------------------------------------------------------- registry


def test_policy_names_and_unknown_policy() -> None:
    assert policy_names() == [
        "default",
        "easy",
        "fairshare",
        "fifo",
        "las",
        "priority",
        "sjf",
        "srtf",
    ]
    with pytest.raises(ValidationError, match="unknown scheduling policy 'nope'"):
        get_policy("nope")
    with pytest.raises(ValidationError, match="unknown option.*colour"):
        get_policy("easy", colour="red")
    with pytest.raises(ValidationError, match="aging_per_hour"):
        get_policy("priority", aging_per_hour=-1)
    assert get_policy().name == "default"


# ---------------------------------------------------------------- gangs, packing, types


@pytest.mark.parametrize("name", ["fifo", "easy", "priority", "fairshare", "las", "default"])
def test_gang_all_or_nothing(name: str) -> None:
    cluster = ClusterState(nodes=(node("n0", 4, [0, 1, 2, 3]), node("n1", 4, [0, 1, 2])))
    d = run(name, [job("big", 4, nodes=2)], cluster)
    assert d.starts == ()
    assert "needs 4 GPUs on each of 2 nodes; 1 node has that many free" in d.pending["big"].reason
    cluster2 = ClusterState(nodes=(node("n0"), node("n1")))
    d2 = run(name, [job("big", 4, nodes=2)], cluster2)
    assert started(d2) == ["big"]
    alloc = d2.starts[0].allocation
    assert alloc.total_gpus == 8 and set(alloc.nodes) == {"n0", "n1"}


def test_best_fit_packs_onto_fullest_node_and_picks_indices() -> None:
    cluster = ClusterState(nodes=(node("n0", 8), node("n1", 8, [5, 6, 7]), node("n2", 8, [7])))
    d = run("easy", [job("a", 2), job("b", 1)], cluster)
    by = {s.job_id: s.allocation for s in d.starts}
    assert by["a"].nodes["n1"].gpus == (5, 6)  # 3 free → best fit for 2
    assert by["b"].nodes["n2"].gpus == (7,)  # 1 free → exact fit
    assert len(by["a"].nodes["n1"].cpus) == 1


def test_gpu_type_is_honoured() -> None:
    cluster = ClusterState(nodes=(node("a100", 4, typ="A100"), node("h100", 4, typ="H100")))
    d = run("easy", [job("j", 2, gpu_type="H100")], cluster)
    assert list(d.starts[0].allocation.nodes) == ["h100"]
    d2 = run("easy", [job("j", 2, gpu_type="V100")], cluster)
    assert "no node of this cluster can ever hold it" in d2.pending["j"].reason


def test_cpu_only_job_gets_core_ids_and_stays_off_free_gpu_nodes() -> None:
    cluster = ClusterState(nodes=(node("gpu", 4), node("cpu", 0, cpus=8)))
    d = run("default", [job("c", 0, cpus=4)], cluster)
    a = d.starts[0].allocation
    assert list(a.nodes) == ["cpu"] and a.nodes["cpu"].cpus == (0, 1, 2, 3)


# ---------------------------------------------------------------- FIFO vs EASY backfill


def test_fifo_is_strict_and_easy_backfills_short_jobs() -> None:
    cluster = ClusterState(
        nodes=(node("n0", 4, [3]),),
        running=(running("r", "n0", (0, 1, 2), max_runtime_s=100.0),),
    )
    q = [
        job("head", 4, t=0, max_runtime_s=50),
        job("short", 1, t=1, max_runtime_s=60),
        job("long", 1, t=2, max_runtime_s=500),
    ]
    d = run("fifo", q, cluster)
    assert started(d) == []
    assert "waiting behind job head (strict FIFO)" in d.pending["short"].reason
    d = run("easy", q, cluster)
    assert started(d) == ["short"]  # ends at 60 ≤ reservation at 100
    assert d.reservations["head"] == (100.0, ("n0",))
    assert d.pending["head"].estimated_start == 100.0
    assert (
        d.pending["head"].reason
        == "needs 4 GPUs on one node; no GPU free; first in line, reserved to start in 1.7 min"
    )


def test_backfill_refused_when_it_would_delay_the_head() -> None:
    cluster = ClusterState(
        nodes=(node("n0", 4, [3]),),
        running=(running("r", "n0", (0, 1, 2), max_runtime_s=100.0),),
    )
    q = [job("head", 4, t=0), job("long", 1, t=1, max_runtime_s=500)]
    d = run("easy", q, cluster)
    assert started(d) == []
    assert d.pending["long"].reason.startswith(
        "fits now but would delay the reservation of job head"
    )
    assert "a max_runtime under 1.7 min would let it backfill" in d.pending["long"].reason


def test_backfill_onto_capacity_the_head_does_not_need() -> None:
    # head needs 2 GPUs at t=100 on n0 (3 free then); a long 1-GPU job may use the spare one
    cluster = ClusterState(
        nodes=(node("n0", 4, [3]),),
        running=(
            running("r", "n0", (0, 1), max_runtime_s=100.0),
            running("s", "n0", (2,), max_runtime_s=10_000.0),
        ),
    )
    q = [
        job("head", 3, t=0),
        job("long1", 1, t=1, max_runtime_s=9999),
        job("long2", 1, t=2, max_runtime_s=9999),
    ]
    d = run("easy", q, cluster)
    # at 100: 2 free (0,1) + 3 (now free) = 3 → head needs 3 → no spare: nothing backfills
    assert started(d) == []
    cluster2 = ClusterState(
        nodes=(node("n0", 4, [2, 3]),),
        running=(running("r", "n0", (0, 1), max_runtime_s=100.0),),
    )
    q2 = [
        job("head", 3, t=0),
        job("long1", 1, t=1, max_runtime_s=9999),
        job("long2", 1, t=2, max_runtime_s=9999),
    ]
    d2 = run("easy", q2, cluster2)
    assert started(d2) == ["long1"]  # 4 free at 100, head needs 3: one spare GPU
    assert "would delay the reservation" in d2.pending["long2"].reason


def test_unknown_max_runtime_makes_reservation_unknown_and_conservative() -> None:
    cluster = ClusterState(
        nodes=(node("n0", 4, [3]), node("n1", 1, [0])),
        running=(running("r", "n0", (0, 1, 2)),),  # no max_runtime
    )
    q = [job("head", 4, t=0), job("small", 1, t=1, max_runtime_s=10)]
    d = run("easy", q, cluster)
    reason = d.pending["head"].reason
    assert "reservation time unknown: running job r has no max_runtime" in reason
    # n0 could host the head: nothing there; n1 (1 GPU) can never host it: backfill ok
    assert started(d) == ["small"]
    assert list(d.starts[0].allocation.nodes) == ["n1"]
    assert d.pending["head"].estimated_start is None


# ---------------------------------------------------------------- quotas and priority


def test_quota_blocks_only_that_project() -> None:
    cluster = ClusterState(
        nodes=(node("n0", 8, [4, 5, 6, 7]),),
        running=(
            RunningJob(
                id="r",
                project="X",
                allocation=Allocation(nodes={"n0": NodeAlloc(gpus=(0, 1, 2, 3))}),
            ),
        ),
        gpu_quotas={"X": 4, "Y": 2},
    )
    q = [
        job("x1", 1, t=0, project="X"),
        job("y1", 4, t=1, project="Y"),
        job("z1", 2, t=2, project="Z"),
    ]
    d = run("easy", q, cluster)
    assert started(d) == ["z1"]
    assert d.pending["x1"].reason == "project X at its GPU quota (4/4 GPUs in use)"
    assert "needs 4 GPUs but project Y's GPU quota is 2" in d.pending["y1"].reason


def test_priority_then_submit_order() -> None:
    cluster = ClusterState(nodes=(node("n0", 2),))
    q = [job("a", 2, t=0), job("b", 2, t=1, priority=5), job("c", 2, t=2, priority=5)]
    for name in ["priority", "default", "las"]:
        d = run(name, q, cluster)
        assert started(d) == ["b"], name
        assert d.pending["c"].reason.startswith("needs 2 GPUs on one node; no GPU free")
        assert "1 job ahead" in d.pending["a"].reason


def test_priority_aging_lets_old_jobs_overtake() -> None:
    cluster = ClusterState(nodes=(node("n0", 1),))
    q = [job("old", 1, t=0.0), job("vip", 1, t=3600.0 * 10, priority=5)]
    d = run("priority", q, cluster, now=3600.0 * 10, aging_per_hour=1.0)
    assert started(d) == ["old"]  # 10 h of aging beat 5 priority points
    d = run("priority", q, cluster, now=3600.0 * 10, aging_per_hour=0.0)
    assert started(d) == ["vip"]


def test_preemption_of_lower_priority_with_protection_and_preemptible() -> None:
    nodes = (node("n0", 2, []),)
    r_low = running("low", "n0", (0, 1), priority=0, protected_until=0.0)
    q = [job("hi", 2, priority=10)]
    d = run("priority", q, ClusterState(nodes=nodes, running=(r_low,)), now=100.0)
    assert [p.job_id for p in d.preemptions] == ["low"]
    assert d.preemptions[0].for_job == "hi"
    assert "preempting low" in d.pending["hi"].reason
    assert d.pending["hi"].estimated_start == 100.0
    # protected (min run time) → no preemption
    r_prot = running("low", "n0", (0, 1), priority=0, protected_until=500.0)
    d = run("priority", q, ClusterState(nodes=nodes, running=(r_prot,)), now=100.0)
    assert d.preemptions == ()
    # not preemptible → no preemption
    r_np = running("low", "n0", (0, 1), priority=0, preemptible=False)
    d = run("priority", q, ClusterState(nodes=nodes, running=(r_np,)), now=100.0)
    assert d.preemptions == ()
    # equal priority → no preemption
    r_eq = running("low", "n0", (0, 1), priority=10)
    d = run("priority", q, ClusterState(nodes=nodes, running=(r_eq,)), now=100.0)
    assert d.preemptions == ()


def test_preemption_picks_fewest_victims() -> None:
    nodes = (node("n0", 4, []), node("n1", 4, []))
    runs = (
        running("a", "n0", (0, 1)),
        running("b", "n0", (2, 3)),
        running("c", "n1", (0, 1, 2, 3)),
    )
    d = run("priority", [job("hi", 4, priority=1)], ClusterState(nodes=nodes, running=runs), now=10)
    assert [p.job_id for p in d.preemptions] == ["c"]


def test_a_gang_preempts_only_where_its_nodes_are_not_free() -> None:
    """gang_free_nodes=True: a 2-node gang with one node free and one held by an outranked
    job preempts that one job (by default only nodes with victims count, so it waits); with
    both nodes busy it preempts both, and beside a node free enough it preempts only where
    it must."""
    gang = [job("gang", 1, nodes=2, priority=5)]
    low = running("low", "n1", (0,), priority=0)
    one_free = ClusterState(nodes=(node("n0", 1), node("n1", 1, [])), running=(low,))
    d = run("priority", gang, one_free, now=100.0, aging_per_hour=0.0)
    assert d.preemptions == () and d.starts == ()  # the default rule (measured, kept)
    opts = {"aging_per_hour": 0.0, "gang_free_nodes": True}
    d = run("priority", gang, one_free, now=100.0, **opts)
    assert [p.job_id for p in d.preemptions] == ["low"]
    assert "preempting low" in d.pending["gang"].reason
    # the next pass, the victim gone: the gang starts on both nodes
    d2 = run("priority", gang, ClusterState(nodes=(node("n0", 1), node("n1", 1))), now=101.0)
    assert started(d2) == ["gang"]
    busy = ClusterState(
        nodes=(node("n0", 1, []), node("n1", 1, [])),
        running=(running("a", "n0", (0,), priority=0), running("b", "n1", (0,), priority=0)),
    )
    d = run("priority", gang, busy, now=100.0, **opts)
    assert sorted(p.job_id for p in d.preemptions) == ["a", "b"]
    # a free node beside a node that is free enough already (its job need not go)
    roomy = ClusterState(
        nodes=(node("n0", 2, [1]), node("n1", 1, [])),
        running=(running("c", "n0", (0,), priority=0), running("d", "n1", (0,), priority=0)),
    )
    d = run("priority", gang, roomy, now=100.0, **opts)
    assert [p.job_id for p in d.preemptions] == ["d"]
    d = run("default", gang, one_free, now=100.0, gang_free_nodes=True)
    assert [p.job_id for p in d.preemptions] == ["low"]  # an option of every queue policy


def test_promised_job_starts_first_after_preemption() -> None:
    pol = get_policy("priority")
    nodes = (node("n0", 1, []),)
    cl = ClusterState(nodes=nodes, running=(running("low", "n0", (0,)),))
    q = [job("older", 1, t=0.0, priority=0), job("hi", 1, t=5.0, priority=3)]
    d = pol.schedule(q, cl, 10.0)
    assert [p.job_id for p in d.preemptions] == ["low"]
    # next pass: the victim is gone; the freed GPU goes to the preemptor
    d2 = pol.schedule(q, ClusterState(nodes=(node("n0", 1),)), 11.0)
    assert started(d2) == ["hi"]


def test_victims_in_their_grace_period_are_not_preempted_twice() -> None:
    pol = get_policy("priority")
    nodes = (node("n0", 2, [1]),)
    cl = ClusterState(nodes=nodes, running=(running("low", "n0", (0,)),))
    q = [job("hi", 2, t=5.0, priority=3), job("small", 1, t=6.0)]
    d = pol.schedule(q, cl, 10.0)
    validate_decision(q, cl, d, 10.0)
    assert [p.job_id for p in d.preemptions] == ["low"] and d.starts == ()
    # 0.2 s later the victim still runs (checkpointing): no second Preempt, the free GPU
    # stays with the preemptor, and the reason says what it waits for
    d2 = pol.schedule(q, cl, 10.2)
    validate_decision(q, cl, d2, 10.2)
    assert d2.preemptions == () and d2.starts == ()
    assert d2.pending["hi"].reason.endswith("waiting for preempted jobs to release their GPUs")
    assert d2.pending["hi"].estimated_start == 10.2
    # the victim is gone: the preemptor starts
    d3 = pol.schedule(q, ClusterState(nodes=(node("n0", 2),)), 12.0)
    assert started(d3) == ["hi"]


# ---------------------------------------------------------------- LAS, SRTF, SJF, fair share


def test_las_preempts_the_job_with_more_attained_service() -> None:
    nodes = (node("n0", 1, []),)
    r = running("old", "n0", (0,), start=0.0, attained_service_s=0.0)
    q = [job("new", 1, t=5000.0)]
    d = run("las", q, ClusterState(nodes=nodes, running=(r,)), now=5000.0, thresholds=[3600.0])
    assert [p.job_id for p in d.preemptions] == ["old"]
    assert "least-attained-service" in d.preemptions[0].reason
    d = run("las", q, ClusterState(nodes=nodes, running=(r,)), now=1000.0, thresholds=[3600.0])
    assert d.preemptions == ()  # same queue (below the threshold): no preemption


def test_las_orders_by_attained_service_queue() -> None:
    q = [job("served", 1, t=0, attained_service_s=10_000.0), job("fresh", 1, t=50)]
    d = run("las", q, ClusterState(nodes=(node("n0", 1),)), now=100)
    assert started(d) == ["fresh"]


def test_oracles_use_true_durations_and_refuse_without() -> None:
    q = [job("long", 1, t=0, true_duration_s=1000), job("short", 1, t=1, true_duration_s=10)]
    for name in ["sjf", "srtf"]:
        assert started(run(name, q, ClusterState(nodes=(node("n0", 1),)))) == ["short"]
    with pytest.raises(ValidationError, match="oracles need true_duration_s"):
        get_policy("srtf").schedule([job("x", 1)], ClusterState(nodes=(node("n0", 1),)), 0)
    r = running("long", "n0", (0,), start=0.0, true_duration_s=1000.0)
    d = run(
        "srtf",
        [job("short", 1, t=1, true_duration_s=10)],
        ClusterState(nodes=(node("n0", 1, []),), running=(r,)),
        now=100,
    )
    assert [p.job_id for p in d.preemptions] == ["long"]


def test_fairshare_prefers_the_under_served_project() -> None:
    cluster = ClusterState(nodes=(node("n0", 1),), usage={"heavy": 1e6, "light": 10.0})
    q = [job("h", 1, t=0, project="heavy"), job("l", 1, t=1, project="light")]
    d = run("fairshare", q, cluster)
    assert started(d) == ["l"]
    # shares change the picture: heavy has 1000× the shares
    cluster2 = ClusterState(
        nodes=(node("n0", 1),),
        usage={"heavy": 1e6, "light": 1e4},
        shares={"heavy": 1000, "light": 1},
    )
    assert started(run("fairshare", q, cluster2)) == ["h"]


def test_fairshare_under_share_job_preempts_over_share_one() -> None:
    r = RunningJob(
        id="hog", project="heavy", allocation=Allocation(nodes={"n0": NodeAlloc(gpus=(0,))})
    )
    cluster = ClusterState(
        nodes=(node("n0", 1, []),), running=(r,), usage={"heavy": 1e6, "light": 0.0}
    )
    d = run("fairshare", [job("l", 1, project="light")], cluster, now=10)
    assert [p.job_id for p in d.preemptions] == ["hog"]
    assert "over its fair share" in d.preemptions[0].reason


def test_default_learns_from_history() -> None:
    # heavy tail: most jobs 10 min, a few 100 h → a job that ran 20 h is unlikely to end
    hist = [(600.0, 1)] * 90 + [(360_000.0, 1)] * 10
    pol = get_policy("default", history=hist)
    r = running("old", "n0", (0,), start=0.0)
    cl = ClusterState(nodes=(node("n0", 1, []),), running=(r,))
    d = pol.schedule([job("new", 1, t=72_000.0)], cl, 72_000.0)
    validate_decision([job("new", 1, t=72_000.0)], cl, d, 72_000.0)
    assert [p.job_id for p in d.preemptions] == ["old"]
    # light tail (all jobs ~10 h): a job that ran 5 h is close to done → no preemption
    pol2 = get_policy("default", history=[(36_000.0 + i, 1) for i in range(100)])
    d2 = pol2.schedule(
        [job("new", 1, t=18_000.0)],
        ClusterState(nodes=(node("n0", 1, []),), running=(r,)),
        18_000.0,
    )
    assert d2.preemptions == ()
    # without history it is priority-then-submit order
    d3 = get_policy("default").schedule(
        [job("b", 1, t=2), job("a", 1, t=1)], ClusterState(nodes=(node("n0", 1),)), 5
    )
    assert started(d3) == ["a"]


def test_default_wait_bound() -> None:
    # heavy tail, as above: a new job preempts a job that has run 20 h ...
    hist = [(600.0, 1)] * 90 + [(360_000.0, 1)] * 10
    r = running("old", "n0", (0,), start=0.0, submit_time=0.0)
    cl = ClusterState(nodes=(node("n0", 1, []),), running=(r,))
    now = 72_000.0
    pol = get_policy("default", history=hist, max_wait_s=3600.0)
    d = pol.schedule([job("new", 1, t=now)], cl, now)
    assert [p.job_id for p in d.preemptions] == ["old"]
    # ... but not one that had waited the bound (1 h) before it started
    r2 = running("old", "n0", (0,), start=3600.0, submit_time=0.0)
    cl2 = ClusterState(nodes=(node("n0", 1, []),), running=(r2,))
    pol = get_policy("default", history=hist, max_wait_s=3600.0)
    d = pol.schedule([job("new", 1, t=now)], cl2, now)
    assert d.preemptions == ()
    # without the bound (the default) it would be preempted
    d = get_policy("default", history=hist).schedule([job("new", 1, t=now)], cl2, now)
    assert [p.job_id for p in d.preemptions] == ["old"]
    # a head job that has waited W gets a firm reservation: no job behind it preempts on
    # the reserved node (n1, free first; `small` could preempt the old job r1 there,
    # which would push big's start back)
    cl4 = ClusterState(
        nodes=(node("n0", 2, []), node("n1", 2, [])),
        running=(
            running("r0", "n0", (0, 1), preemptible=False, max_runtime_s=2e6),
            running("r1", "n1", (0,), max_runtime_s=1e6),
            running("r2", "n1", (1,), preemptible=False, max_runtime_s=1e6),
        ),
    )
    q = [job("big", 2, t=0.0), job("small", 1, t=now)]
    d = get_policy("default", history=hist).schedule(q, cl4, now)
    assert [p.job_id for p in d.preemptions] == ["r1"]  # no bound: small preempts
    pol = get_policy("default", history=hist, max_wait_s=3600.0)
    assert [j.id for j in sorted(q, key=pol.order_key)] == ["big", "small"]
    d = pol.schedule(q, cl4, now)
    validate_decision(q, cl4, d, now)
    assert d.preemptions == () and d.starts == ()
    assert get_policy("default", history=hist, max_wait_s=3600.0, explain=True).schedule(
        q, cl4, now
    ).reservations["big"] == (1e6, ("n1",))
    # preemption on nodes outside the reservation goes on (reserved: n0, free first now)
    cl5 = ClusterState(
        nodes=cl4.nodes,
        running=(
            running("r0", "n0", (0, 1), preemptible=False, max_runtime_s=1e6),
            running("r1", "n1", (0,), max_runtime_s=2e6),
            running("r2", "n1", (1,), preemptible=False, max_runtime_s=2e6),
        ),
    )
    pol = get_policy("default", history=hist, max_wait_s=3600.0)
    d = pol.schedule(q, cl5, now)
    validate_decision(q, cl5, d, now)
    assert [p.job_id for p in d.preemptions] == ["r1"]
    with pytest.raises(ValidationError, match="max_wait"):
        get_policy("default", max_wait_factor=0)


# ---------------------------------------------------------------- reasons and estimates


def test_pending_reason_text_and_estimates() -> None:
    cluster = ClusterState(
        nodes=(node("n0", 4, [0, 1]), node("n1", 4, [])),
        running=(
            running("r0", "n0", (2, 3), start=0.0, max_runtime_s=600.0),
            running("r1", "n1", (0, 1, 2, 3), start=0.0, max_runtime_s=1200.0),
        ),
    )
    q = [job("a", 4, t=0, max_runtime_s=300), job("b", 4, t=1, max_runtime_s=300)]
    d = run("easy", q, cluster, now=0.0)
    assert d.pending["a"].reason == (
        "needs 4 GPUs on one node; largest free block is 2 GPUs (node n0); first in line, reserved to start in 10.0 min"
    )
    assert (
        d.pending["b"].reason
        == "needs 4 GPUs on one node; largest free block is 2 GPUs (node n0); 1 job ahead"
    )
    assert d.pending["a"].estimated_start == 600.0
    assert d.pending["b"].estimated_start == 900.0  # after a on n0 (600+300) < n1 at 1200


def test_every_waiting_job_gets_a_reason_in_a_long_queue() -> None:
    cluster = ClusterState(nodes=(node("n0", 2),))
    q = [job(f"j{i}", 1 + i % 2, t=i, max_runtime_s=100) for i in range(1200)]
    for name in ["default", "easy", "fifo", "las", "fairshare"]:
        d = run(name, q, cluster)
        assert len(d.starts) + len(d.pending) == len(q)
        ests = [d.pending[f"j{i}"].estimated_start for i in range(2, 1200) if f"j{i}" in d.pending]
        assert all(e is not None for e in ests)

    cl = ClusterState(
        nodes=(node("n0", 4, [2, 3]),), running=(running("r", "n0", (0, 1), max_runtime_s=100.0),)
    )
    q2 = [job("head", 4, t=0)] + [job(f"k{i}", 2, t=1 + i, max_runtime_s=1000) for i in range(600)]
    d = run("easy", q2, cl)
    assert d.starts == ()
    assert d.pending["k10"].reason.startswith(
        "fits now but would delay the reservation of job head"
    )
    assert "beyond the backfill window (first 500 jobs); 550 jobs ahead" in d.pending["k549"].reason


def test_pending_reasons_use_singular_for_one() -> None:
    cluster = ClusterState(nodes=(node("n0", 2, cpus=1),), gpu_quotas={"Q": 0})
    q = [
        job("hog", 0, t=0, cpus=1),
        job("cpu", 0, t=1, cpus=1),
        job("g1", 1, t=2, project="Q"),
    ]
    d = run("easy", q, cluster)
    assert started(d) == ["hog"]
    assert d.pending["cpu"].reason.startswith(
        "needs 1 CPU on one node; largest free block is 0 CPUs"
    )
    assert "needs 1 GPU but project Q's GPU quota is 0" in d.pending["g1"].reason
    one = ClusterState(nodes=(node("n0", 2, cpus=1),), gpu_quotas={"Q": 1})
    d = run("easy", [job("g2", 2, t=0, project="Q")], one)
    assert d.pending["g2"].reason.endswith("request at most 1 GPU")  # (it read "1 GPUs")


def test_explain_does_not_change_decisions_when_a_job_behind_the_head_preempts() -> None:
    """The server (explain=True) and the simulator (explain=False) must decide alike. The
    head's reservation was computed before a job behind it preempted: it still counted on
    the victim's node at the victim's max_runtime (t=50), though the preemptor takes that
    node; so the server refused a backfill (ends at 80) that the simulator started. The
    head's estimate must not count on that node either."""
    # (n3 has one GPU free, too few for the head's 2 per node: the head cannot start or
    # preempt now, as a gang takes free nodes beside its victims' nodes)
    cluster = ClusterState(
        nodes=(
            node("n0", 2, []),
            node("n1", 2, [], typ="A"),
            node("n2", 2, []),
            node("n3", 2, [1]),
        ),
        running=(
            running("r0", "n0", (0, 1), max_runtime_s=100.0, preemptible=False),
            running("r1", "n1", (0, 1), max_runtime_s=50.0),
            running("r2", "n2", (0, 1), max_runtime_s=5000.0, preemptible=False),
            running("r3", "n3", (0,), max_runtime_s=60.0, preemptible=False),
        ),
    )
    queue = [
        job("head", 2, nodes=2, priority=5),
        job("preemptor", 1, t=1, priority=3, gpu_type="A"),
        job("short", 1, t=2, priority=1, max_runtime_s=80.0),
    ]
    out = {}
    for explain in (True, False):
        d = get_policy("priority", aging_per_hour=0, explain=explain).schedule(queue, cluster, 0)
        validate_decision(queue, cluster, d, 0.0, require_pending=explain)
        out[explain] = (started(d), [p.job_id for p in d.preemptions], d.reservations["head"])
        if explain:
            assert d.pending["head"].estimated_start == 100.0
            assert "reserved to start in 1.7 min" in d.pending["head"].reason
    assert out[True] == out[False] == (["short"], ["r1"], (100.0, ("n0", "n3")))


def test_reason_says_over_quota_when_the_quota_was_lowered_and_counts_one_gpu() -> None:
    """An admin lowered project X's quota to 2 while it runs 4 GPUs: 'over', not 'at'.
    A 1-GPU-per-node gang reads '1 GPU on each of 2 nodes', not '1 GPUs'."""
    cluster = ClusterState(
        nodes=(node("n0", 4, []), node("n1", 1, [])),
        running=(running("r", "n0", (0, 1, 2, 3), project="X"), running("s", "n1", (0,))),
        gpu_quotas={"X": 2},
    )
    d = run("easy", [job("x1", 1, project="X"), job("g", 1, t=1, nodes=2)], cluster)
    assert d.pending["x1"].reason == "project X over its GPU quota (4/2 GPUs in use)"
    assert d.pending["g"].reason.startswith("needs 1 GPU on each of 2 nodes; ")


def test_gpu_type_words_match_the_drivers_name() -> None:
    # NVML names the GPU "NVIDIA H100 80GB HBM3"; users write "H100" (the spec's example):
    # placed, where the scheduler compared whole names and queued such a job forever
    cluster = ClusterState(
        nodes=(
            node("a100", 4, typ="NVIDIA A100-SXM4-80GB"),
            node("a10", 4, typ="NVIDIA A10"),
            node("h100", 4, typ="NVIDIA H100 80GB HBM3"),
        )
    )
    for want, where in [
        ("H100", "h100"),
        ("h100 80gb", "h100"),
        ("A100-80GB", "a100"),
        ("A10", "a10"),  # a word, not a prefix: never the A100
        ("NVIDIA A10", "a10"),
        ("NVIDIA H100 80GB HBM3", "h100"),
    ]:
        d = run("easy", [job("j", 2, gpu_type=want)], cluster)
        assert [list(s.allocation.nodes) for s in d.starts] == [[where]], want
        validate_decision([job("j", 2, gpu_type=want)], cluster, d, 0.0)
    for want in ("V100", "H10", "A100 40GB", "fake"):
        d = run("easy", [job("j", 2, gpu_type=want)], cluster)
        assert d.starts == () and "can ever hold it" in d.pending["j"].reason, want


def test_gpu_type_matches() -> None:
    from aistack.compute.resources import gpu_type_matches

    assert gpu_type_matches("NVIDIA H100 80GB HBM3", None)
    assert gpu_type_matches(None, None)
    assert not gpu_type_matches(None, "H100")
    assert gpu_type_matches("FakeGPU", "FakeGPU")
    assert gpu_type_matches("FakeGPU", "fakegpu")
    assert not gpu_type_matches("FakeGPU", "fake")
    assert gpu_type_matches("Tesla V100-SXM2-16GB", "v100")
    assert not gpu_type_matches("NVIDIA A100-SXM4-80GB", "A10")
    assert not gpu_type_matches("NVIDIA A100-SXM4-80GB", "")
    assert not gpu_type_matches("NVIDIA A100-SXM4-80GB", "--")


@pytest.mark.parametrize(
    ("name", "options", "why"),
    [
        ("default", {"max_wait_factor": "x"}, "option max_wait_factor must be a number, got 'x'"),
        ("default", {"aging_factor": math.nan}, "option aging_factor must be a finite number"),
        ("default", {"max_wait_factor": math.inf}, "option max_wait_factor must be a finite"),
        ("default", {"aging_factor": True}, "option aging_factor must be a number, got True"),
        ("default", {"aging_factor": None}, "option aging_factor needs a value"),
        ("easy", {"backfill_depth": 2.5}, "option backfill_depth must be a whole number"),
        ("las", {"explain": 1}, "option explain must be true or false, got 1"),
    ],
)
def test_policy_option_values_of_the_wrong_kind_are_refused_naming_the_option(
    name: str, options: dict[str, object], why: str
) -> None:
    # NaN was accepted (no wait bound: NaN compares false), True taken as 1, a text gave
    # Python's "'<=' not supported between instances of 'str' and 'int'"
    with pytest.raises(ValidationError) as ei:
        get_policy(name, **options)
    assert str(ei.value).startswith(f"policy {name}: {why}")


def test_policy_options_of_the_right_kind_are_taken() -> None:
    assert get_policy("default", max_wait_factor=None, aging_s=5).name == "default"
    assert get_policy("default", max_wait_factor=20.0, history=[(60.0, 1)] * 3)
    assert get_policy("las", thresholds=[100.0, 1000.0]).name == "las"
