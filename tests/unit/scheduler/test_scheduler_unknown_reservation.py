"""Behind a head whose reservation time is unknown (running jobs without max_runtime), the
jobs that fit only on nodes it could use wait: their estimated start is unknown too, and
their reason does not speak of a reservation to delay. They had an estimated start of "now"
(the dashboard showed "0 s ago"), and the jobs after them were chained on that one's
max_runtime ("in 30 min / 60 min / 1.5 h")."""

from __future__ import annotations

import pytest
from test_scheduler_allocation_ledger import job, node, running

from aistack.scheduler import get_policy
from aistack.scheduler.types import ClusterState


def _cluster() -> ClusterState:
    # node a: all 4 GPUs held by r; node b: 2 of 4 held by r2; neither has a max_runtime
    r = running("r", {"a": (0, 1, 2, 3)}, max_runtime_s=None, start_time=0.0)
    r2 = running("r2", {"b": (0, 1)}, max_runtime_s=None, start_time=0.0)
    return ClusterState(nodes=(node("a", free=()), node("b", free=(2, 3))), running=(r, r2))


QUEUE = [job("head", 4, submit_time=1.0, max_runtime_s=1800.0)] + [
    job(f"w{i}", 2, submit_time=2.0 + i, max_runtime_s=1800.0) for i in range(3)
]


@pytest.mark.parametrize("name", ["easy", "default", "priority", "fairshare", "las"])
def test_jobs_behind_an_unknown_reservation_have_no_invented_start(name: str) -> None:
    d = get_policy(name).schedule(QUEUE, _cluster(), now=100.0)
    assert d.starts == ()
    assert d.pending["head"].reason.endswith(
        "reservation time unknown: running jobs r and 1 more have no max_runtime, so nothing "
        "is backfilled onto nodes it could use"
    )
    for jid in ("head", "w0", "w1", "w2"):
        assert d.pending[jid].estimated_start is None, (jid, d.pending[jid])
    assert d.pending["w0"].reason == (
        "fits now, but only on nodes kept for job head, whose start is unknown (running jobs "
        "without max_runtime); 1 job ahead"
    )


def test_a_job_on_a_node_the_head_can_never_use_keeps_its_estimate() -> None:
    cl = _cluster()
    cl = ClusterState(nodes=(*cl.nodes, node("small", gpus=2, free=(0, 1))), running=cl.running)
    q = [*QUEUE, job("x", 2, submit_time=9.0, max_runtime_s=60.0)]
    # one 2-GPU job starts on node small now (the head can never use it)
    d = get_policy("easy").schedule(q, cl, now=100.0)
    assert [s.job_id for s in d.starts] == ["w0"]
    assert list(d.starts[0].allocation.nodes) == ["small"]
    # the next one fits there once w0 ends (its max_runtime): a real estimate
    assert d.pending["w1"].estimated_start == 1900.0
