"""Preemption options that were accepted and ignored (``preempt_min_wait_s``) or not checked
(negative times), and the reason of a job beyond the backfill window."""

from __future__ import annotations

import pytest
from test_scheduler_allocation_ledger import job, node, running

from aistack.errors import ValidationError
from aistack.scheduler import get_policy
from aistack.scheduler.types import ClusterState


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
