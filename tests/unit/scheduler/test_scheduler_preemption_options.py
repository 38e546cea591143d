"""Preemption options that were accepted and ignored (``preempt_min_wait_s``) or not checked
(negative times), and the reason of a job beyond the backfill window."""

from __future__ import annotations

import pytest
from test_scheduler_allocation_ledger import job, node, running

from aistack.errors import ValidationError
from aistack.scheduler import get_policy
from aistack.scheduler.types import ClusterState, NodeState


def _busy_cluster() -> ClusterState:
    """One node of 8 GPUs, 6 held by a long, outranked running job."""
    r = running(
        "r", {"a": (0, 1, 2, 3, 4, 5)}, priority=-5, start_time=-9000.0, attained_service_s=9e6
    )
    return ClusterState(nodes=(node("a", gpus=8, free=(6, 7)),), running=(r,))


@pytest.mark.parametrize("name", ["default", "priority", "las", "srtf"])
def test_preempt_min_wait_s_makes_a_job_wait_that_long_before_it_preempts(name: str) -> None:
    """The option was accepted and ignored: a job preempted at once whatever it said."""
    urgent = job("urgent", 8, priority=100, submit_time=0.0, true_duration_s=1.0)
    assert get_policy(name).schedule([urgent], _busy_cluster(), now=10.0).preemptions
    policy = get_policy(name, preempt_min_wait_s=600.0)
    assert policy.schedule([urgent], _busy_cluster(), now=10.0).preemptions == ()
    d = policy.schedule([urgent], _busy_cluster(), now=601.0)
    assert [p.job_id for p in d.preemptions] == ["r"]


@pytest.mark.parametrize("opt", ["preempt_min_wait_s", "min_run_s", "promise_s"])
def test_negative_preemption_times_are_refused(opt: str) -> None:
    with pytest.raises(ValidationError, match=f"{opt} must be >= 0 seconds, got -5"):
        get_policy("default", **{opt: -5})


def test_a_job_beyond_the_backfill_window_is_not_said_to_be_short_of_cpus() -> None:
    """It was never tried against the free capacity: its reason said "2 GPUs free on node a
    but CPUs or memory are short" while 15 CPUs were free."""
    queue = [job("head", 8, submit_time=0.0)] + [
        job(f"w{i}", 1, submit_time=1.0 + i, max_runtime_s=7200.0) for i in range(4)
    ]
    d = get_policy("easy", backfill_depth=2).schedule(queue, _busy_cluster(), now=100.0)
    assert d.pending["w3"].reason == (
        "needs 1 GPU on one node; 2 GPUs free on node a; beyond the backfill window "
        "(first 2 jobs); 4 jobs ahead"
    )


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("easy", {"min_run_s": 60.0}),
        ("fifo", {"max_preempt_heads": 2}),
        ("sjf", {"gang_free_nodes": True}),
        ("las", {"preempt": False, "promise_s": 5.0}),
        ("priority", {"preempt": False, "preempt_min_wait_s": 60.0}),
    ],
)
def test_preemption_options_on_a_policy_that_never_preempts_are_refused(
    name: str, options: dict[str, object]
) -> None:
    """They were accepted and did nothing: min_run_s on easy protected no job."""
    with pytest.raises(ValidationError, match="apply only to a policy that preempts") as ei:
        get_policy(name, **options)
    assert ei.value.hint and "leave them out" in ei.value.hint
    kept = {k: v for k, v in options.items() if k == "preempt"}
    get_policy(name, **kept)  # the policy itself is fine


def test_preemption_options_on_a_policy_that_preempts_are_taken() -> None:
    for name in ("default", "las", "srtf", "priority", "fairshare"):
        assert get_policy(name, min_run_s=60.0).min_run_s == 60.0  # type: ignore[attr-defined]


def test_a_reservation_is_not_made_on_a_node_that_takes_no_jobs() -> None:
    """What ends on a drained node frees nothing a waiting job may use (a guard: the head's
    reservation and estimate come from the node that takes jobs)."""
    drained = NodeState(
        name="d",
        gpus_total=tuple(range(8)),
        gpus_free=frozenset(),
        cpus_total=tuple(range(16)),
        cpus_free=frozenset(range(16)),
        schedulable=False,
    )
    ends_soon = running("r", {"d": tuple(range(8))}, max_runtime_s=600.0)
    on_a = running("s", {"a": tuple(range(8))}, max_runtime_s=7200.0)
    cluster = ClusterState(nodes=(node("a", gpus=8, free=()), drained), running=(ends_soon, on_a))
    d = get_policy("easy").schedule([job("wide", 8)], cluster, now=0.0)
    assert d.reservations["wide"] == (7200.0, ("a",))
    assert d.pending["wide"].estimated_start == 7200.0
