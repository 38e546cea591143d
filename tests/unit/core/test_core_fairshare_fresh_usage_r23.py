"""The fair-share usage the pass orders by follows the allocations that just started or ended.

The loop caches the decayed usage per project for 30 s (one query over the allocation
records instead of one per pass). The cache outlived the starts and ends it should have
counted: a project whose job had just run for a whole second still read "no usage" in the
pass right after, so its next job went ahead of a project that had used nothing (fair share
ordered by submit time, as FIFO would). Starting or ending an allocation now drops the cache.
"""

from __future__ import annotations

import time
from pathlib import Path

from aistack.executors.memory import MemoryExecutor
from aistack.scheduler import get_policy
from aistack.server.db.models import Job
from aistack.server.services.jobs import submit_job
from aistack.server.services.scheduling import SchedulerLoop
from aistack.settings import Settings
from aistack.testing.loop import scheduler_loop


def _submit(loop: SchedulerLoop, project: str, seconds: float) -> str:
    spec = {
        "command": "train",
        "project": project,
        "resources": {"gpus": 1},
        "env": {"AISTACK_FAKE_DURATION_S": str(seconds)},
    }
    with loop.sessions() as s:
        jid = submit_job(s, spec, nodes=loop.nodes()).id
        s.commit()
    return jid


def _state(loop: SchedulerLoop, jid: str) -> str:
    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None
        return str(job.state)


def test_the_project_that_just_used_the_gpu_waits_behind_the_one_that_did_not(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path, executor="memory", mlflow_enabled=False)
    loop = scheduler_loop(
        settings, MemoryExecutor(gpus_per_node=1), get_policy("fairshare", preempt=False)
    )
    a1 = _submit(loop, "alpha", 1.0)
    loop.run_once()  # the usage is read (nothing yet), then a1 starts on the only GPU
    assert _state(loop, a1) == "RUNNING"
    a2 = _submit(loop, "alpha", 0.0)  # alpha's second job, submitted first
    b1 = _submit(loop, "beta", 0.0)
    deadline = time.time() + 30
    while _state(loop, a1) == "RUNNING" and time.time() < deadline:
        time.sleep(0.3)
        loop.run_once()
    assert _state(loop, a1) == "SUCCEEDED"
    # alpha used the GPU for ~1 s, beta for nothing: beta's job goes first (the stale cache
    # still said neither had used anything and started a2, the older one)
    assert _state(loop, b1) in ("RUNNING", "SUCCEEDED")
    assert _state(loop, a2) == "QUEUED"
