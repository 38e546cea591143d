"""A head that outranks a running job still inside its protection (the server's
``preempt_protect_s``, ``min_run_s``) or that must first wait ``preempt_min_wait_s`` is told
when it will preempt, and that moment is its estimated start. Its reason said "reservation
time unknown: running job r has no max_runtime" and it had no estimate, though it preempted
at the protection's end (seen with ``aistack submit --priority 10`` against a running job)."""

from __future__ import annotations

import pytest
from test_scheduler_allocation_ledger import job, node, running

from aistack.scheduler import get_policy
from aistack.scheduler.types import ClusterState


def _cluster(protected_until: float = 0.0, start_time: float = 0.0) -> ClusterState:
    r = running(
        "r",
        {"a": (0, 1, 2, 3)},
        priority=0,
        start_time=start_time,
        protected_until=protected_until,
        max_runtime_s=None,  # as a job submitted without max_runtime
    )
    return ClusterState(nodes=(node("a", gpus=4, free=()),), running=(r,))


@pytest.mark.parametrize("name", ["default", "priority", "fairshare", "las"])
def test_a_head_waiting_for_a_protection_to_end_is_told_when_it_preempts(name: str) -> None:
    urgent = job("u", 4, priority=10, submit_time=100.0)
    policy = get_policy(name)
    d = policy.schedule([urgent], _cluster(protected_until=160.0), now=137.0)
    assert d.preemptions == ()
    p = d.pending["u"]
    assert p.reason == (
        "needs 4 GPUs on one node; no GPU free; first in line; "
        "preempts job r in 23 s, when its minimum run time ends"
    ), p.reason
    assert p.estimated_start == 160.0
    # and it does, then
    d = policy.schedule([urgent], _cluster(protected_until=160.0), now=160.0)
    assert [x.job_id for x in d.preemptions] == ["r"]


def test_min_run_s_and_preempt_min_wait_s_give_the_later_of_their_ends() -> None:
    urgent = job("u", 4, priority=10, submit_time=100.0)
    d = get_policy("priority", min_run_s=600.0).schedule([urgent], _cluster(), now=200.0)
    assert d.pending["u"].reason.endswith(
        "preempts job r in 6.7 min, when its minimum run time ends"
    ), d.pending["u"].reason
    assert d.pending["u"].estimated_start == 600.0
    d = get_policy("priority", preempt_min_wait_s=900.0).schedule([urgent], _cluster(), now=200.0)
    assert d.pending["u"].reason.endswith(
        "preempts job r in 13.3 min, once it has waited 15.0 min (preempt_min_wait_s)"
    ), d.pending["u"].reason
    assert d.pending["u"].estimated_start == 1000.0


def test_a_head_that_outranks_no_one_is_not_told_it_preempts() -> None:
    same = job("s", 4, priority=0, submit_time=100.0)
    d = get_policy("priority").schedule([same], _cluster(protected_until=160.0), now=137.0)
    assert "preempts" not in d.pending["s"].reason
    assert "reservation time unknown" in d.pending["s"].reason
    # nor a policy that never preempts
    d = get_policy("easy").schedule(
        [job("u", 4, priority=10)], _cluster(protected_until=160.0), now=137.0
    )
    assert "preempts" not in d.pending["u"].reason


def test_telling_it_changes_no_decision() -> None:
    """The look ahead is for the reason only: the same pass without explain decides the same."""
    queue = [job("u", 4, priority=10, submit_time=100.0), job("b", 1, submit_time=101.0)]
    a = get_policy("priority").schedule(queue, _cluster(protected_until=160.0), now=137.0)
    b = get_policy("priority", explain=False).schedule(
        queue, _cluster(protected_until=160.0), now=137.0
    )
    assert (a.starts, a.preemptions) == (b.starts, b.preemptions)
    assert a.starts == () and a.preemptions == ()
