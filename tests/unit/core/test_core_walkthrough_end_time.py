"""A job that ends while the server is down keeps its real end time (found by walking through
the platform core: kill -9 the server, a job exits meanwhile, `aistack up` again).

The restarted server's first pass stamped the job with its own time: a 0.5 s job that ended
during 3 s of downtime had finished_at 3 s late, and its runtime, attained service (fair share,
LAS), allocation end (usage, cost) and "failed" event counted the downtime. The local
executor's exit.json holds when the job ended; the loop uses it now.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from aistack.executors.local import LocalExecutor
from aistack.server.db.models import AllocationRow, Job, JobEvent
from aistack.server.services.jobs import submit_job
from aistack.server.services.scheduling import SchedulerLoop, _epoch
from aistack.settings import Settings
from aistack.testing.loop import scheduler_loop


@pytest.fixture
def loop(tmp_path: Path) -> SchedulerLoop:
    settings = Settings(home=tmp_path, executor="local", mlflow_enabled=False)
    return scheduler_loop(settings, LocalExecutor(cpus=2), "fifo")


def _exit_record(loop: SchedulerLoop, jid: str, timeout: float = 30.0) -> dict:  # type: ignore[type-arg]
    with loop.sessions() as s:
        handle = s.get(Job, jid).handle  # type: ignore[union-attr]
    assert handle
    deadline = time.time() + timeout
    while time.time() < deadline:
        p = Path(handle) / "exit.json"
        if p.exists():
            return json.loads(p.read_text())  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError("the job did not end")


@pytest.mark.parametrize(("command", "state"), [("exit 7", "FAILED"), ("true", "SUCCEEDED")])
def test_a_job_that_ended_while_no_pass_ran_keeps_its_end(
    loop: SchedulerLoop, command: str, state: str
) -> None:
    with loop.sessions() as s:
        jid = submit_job(s, {"command": command, "resources": {"cpus": 1}}, nodes=loop.nodes()).id
        s.commit()
    loop.run_once()  # launches it
    ended = float(_exit_record(loop, jid)["finished_at"])
    time.sleep(2.5)  # the server is down: no pass looks at the job
    loop.run_once()
    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None and job.state == state
        assert job.started_at is not None and job.finished_at is not None
        assert abs(_epoch(job.finished_at) - ended) < 0.01  # was the pass's time, 2.5 s later
        runtime = (job.finished_at - job.started_at).total_seconds()
        assert 0 <= runtime < 2.0
        assert job.attained_service_s < 2.0
        alloc = s.execute(select(AllocationRow).where(AllocationRow.job_id == jid)).scalar_one()
        assert alloc.end is not None and abs(_epoch(alloc.end) - ended) < 0.01
        last = s.execute(
            select(JobEvent).where(JobEvent.job_id == jid).order_by(JobEvent.id.desc()).limit(1)
        ).scalar_one()
        assert last.kind == state.lower()
        assert abs(_epoch(last.t) - ended) < 0.01


def test_a_retried_attempts_event_is_at_its_end(loop: SchedulerLoop) -> None:
    with loop.sessions() as s:
        spec = {"command": "exit 3", "retries": 1, "resources": {"cpus": 1}}
        jid = submit_job(s, spec, nodes=loop.nodes()).id
        s.commit()
    loop.run_once()
    ended = float(_exit_record(loop, jid)["finished_at"])
    time.sleep(1.5)
    loop.run_once()  # sees attempt 0 fail: requeued (and started again)
    with loop.sessions() as s:
        ev = s.execute(
            select(JobEvent).where(JobEvent.job_id == jid, JobEvent.kind == "retry")
        ).scalar_one()
        assert abs(_epoch(ev.t) - ended) < 0.01
    _exit_record(loop, jid)
    for _ in range(100):
        loop.run_once()
        with loop.sessions() as s:
            if s.get(Job, jid).state == "FAILED":  # type: ignore[union-attr]
                break
        time.sleep(0.05)
    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None and job.state == "FAILED" and job.attempt == 1
