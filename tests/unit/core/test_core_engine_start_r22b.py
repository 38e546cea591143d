"""A job its engine holds in its own queue after the hand-over (Slurm's PENDING after sbatch)
showed RUNNING, and its start (``started_at``, the allocation rows' start: its GPU-hours) was
the hand-over's. Now it is STARTING while the engine holds it, and its start moves to the
engine's (``ExecStatus.started_at``, Slurm's StartTime) at the first running status."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from aistack.executors.base import ExecStatus
from aistack.executors.memory import MemoryExecutor
from aistack.server.db.models import AllocationRow, Job, JobEvent
from aistack.server.services.jobs import submit_job
from aistack.server.services.scheduling import SchedulerLoop
from aistack.server.services.usage import allocation_records
from aistack.settings import Settings
from aistack.testing.loop import scheduler_loop

HOUR = 3600.0


class Scripted(MemoryExecutor):
    """Launches like the memory executor; each poll answers the next scripted status (the
    last one again once the script is used up)."""

    def __init__(self) -> None:
        super().__init__(gpus_per_node=4, n_nodes=1)
        self.script: list[ExecStatus] = []

    def poll(self, handle: str) -> ExecStatus:
        if len(self.script) > 1:
            return self.script.pop(0)
        return self.script[0] if self.script else super().poll(handle)


def _utc(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC).replace(tzinfo=None)


def _loop(tmp_path: Path) -> tuple[SchedulerLoop, Scripted]:
    settings = Settings(home=tmp_path, executor="memory", mlflow_enabled=False)
    ex = Scripted()
    loop = scheduler_loop(settings, ex)
    return loop, ex


def _handed_over_an_hour_ago(loop: SchedulerLoop, gpus: int = 2) -> tuple[str, float]:
    """Submit a job with ``gpus`` GPUs, let the loop hand it over, and move that hand-over
    (the job's start and its allocation rows' start) an hour back. Returns (id, hand-over)."""
    with loop.sessions() as s:
        jid = submit_job(
            s,
            {
                "command": "x",
                "resources": {"gpus": gpus},
                "env": {"AISTACK_FAKE_DURATION_S": "36000"},
            },
            nodes=loop.nodes(),
        ).id
        s.commit()
    loop.run_once()
    handed = time.time() - HOUR
    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None and job.state == "RUNNING" and job.started_at is not None
        job.started_at = _utc(handed)
        job.protected_until = _utc(handed + 60)
        for a in s.execute(select(AllocationRow).where(AllocationRow.job_id == jid)).scalars():
            a.start = _utc(handed)
        s.commit()
    return jid, handed


def _gpu_hours(loop: SchedulerLoop, jid: str) -> float:
    with loop.sessions() as s:
        rows = allocation_records(s, job_id=jid)
    total = 0.0
    for r in rows:
        start = dt.datetime.fromisoformat(r["start"])
        end = dt.datetime.fromisoformat(r["end"])
        total += (end - start).total_seconds() * r["gpus"] / HOUR
    return total


def test_a_job_its_engine_holds_is_starting_and_counts_from_the_engines_start(
    tmp_path: Path,
) -> None:
    loop, ex = _loop(tmp_path)
    jid, handed = _handed_over_an_hour_ago(loop)
    ran = handed + 0.5 * HOUR  # Slurm ran it half an hour after sbatch
    ended = handed + 0.75 * HOUR
    ex.script = [ExecStatus(state="starting", reason="waiting for resources")]
    loop.run_once()
    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None
        assert job.state == "STARTING"  # was RUNNING
        assert job.started_at == _utc(handed)  # nothing known of its start yet
    ex.script = [ExecStatus(state="running", started_at=ran)]
    loop.run_once()
    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None
        assert job.state == "RUNNING"
        assert job.started_at == _utc(ran)  # was the hand-over
        assert job.protected_until == _utc(ran + 60)  # the protection moved with it
        starts = [
            a.start
            for a in s.execute(select(AllocationRow).where(AllocationRow.job_id == jid)).scalars()
        ]
        assert starts == [_utc(ran)]
        said = [
            (e.kind, e.message)
            for e in s.execute(select(JobEvent).where(JobEvent.job_id == jid).order_by(JobEvent.id))
            .scalars()
            .all()
            if e.kind in ("waiting", "running")
        ]
        assert said == [
            ("waiting", "memory: waiting for resources"),
            (
                "running",
                f"memory runs it now (since {_utc(ran):%H:%M:%S} UTC, 1800 s after the launch: "
                "its runtime and GPU-hours count from then)",
            ),
        ]
    # a later status with another start (a requeue in the engine) leaves it alone
    ex.script = [ExecStatus(state="running", started_at=ran + 300)]
    loop.run_once()
    ex.script = [ExecStatus(state="succeeded", exit_code=0, finished_at=ended, started_at=ran)]
    loop.run_once()
    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None and job.state == "SUCCEEDED"
        assert job.started_at == _utc(ran)
        assert job.attained_service_s == pytest.approx(2 * 0.25 * HOUR, abs=1e-3)
    # 2 GPUs for the quarter hour it ran, not the 45 minutes since the hand-over
    assert _gpu_hours(loop, jid) == pytest.approx(0.5, abs=1e-6)


def test_a_job_that_ends_before_the_server_saw_it_run_counts_from_the_engines_start(
    tmp_path: Path,
) -> None:
    loop, ex = _loop(tmp_path)
    jid, handed = _handed_over_an_hour_ago(loop, gpus=1)
    ran, ended = handed + 0.9 * HOUR, handed + 0.95 * HOUR
    ex.script = [ExecStatus(state="starting", reason="waiting for resources")]
    loop.run_once()
    ex.script = [ExecStatus(state="failed", exit_code=3, finished_at=ended, started_at=ran)]
    loop.run_once()
    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None and job.state == "FAILED"
        assert job.started_at == _utc(ran)
    assert _gpu_hours(loop, jid) == pytest.approx(0.05, abs=1e-6)


def test_a_start_before_the_hand_over_or_none_leaves_the_start_alone(tmp_path: Path) -> None:
    loop, ex = _loop(tmp_path)
    jid, handed = _handed_over_an_hour_ago(loop, gpus=1)
    ex.script = [ExecStatus(state="running", started_at=handed - 5)]  # another clock
    loop.run_once()
    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None and job.state == "RUNNING"
        assert job.started_at == _utc(handed)


def test_an_engine_start_in_the_future_is_clamped_to_now(tmp_path: Path) -> None:
    loop, ex = _loop(tmp_path)
    jid, _ = _handed_over_an_hour_ago(loop, gpus=1)
    ex.script = [ExecStatus(state="running", started_at=time.time() + 10 * HOUR)]
    before = _utc(time.time())
    loop.run_once()
    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None and job.started_at is not None
        assert before <= job.started_at <= _utc(time.time())


def test_a_job_waiting_in_its_engine_can_still_be_cancelled_and_preempted(
    tmp_path: Path,
) -> None:
    """STARTING (held by the engine) is preemptible as RUNNING was: the scheduler still sees
    it in the cluster state and may pick it as a victim."""
    loop, ex = _loop(tmp_path)
    jid, _ = _handed_over_an_hour_ago(loop, gpus=1)
    ex.script = [ExecStatus(state="starting", reason="waiting for resources")]
    loop.run_once()
    with loop.sessions() as s:
        state = loop.cluster_state(s, time.time())
    (running,) = state.running
    assert running.id == jid and running.preemptible is True
