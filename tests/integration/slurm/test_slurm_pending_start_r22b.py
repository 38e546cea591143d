"""Against real Slurm daemons: a job aistack handed over with sbatch that Slurm holds PENDING
(both GPUs of the one node are taken by a job aistack does not know) is STARTING in aistack,
not RUNNING, and once Slurm runs it, its start and its GPU-hours count from Slurm's
StartTime, not from the sbatch (they counted the whole wait in Slurm's queue).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from aistack.executors.base import LaunchRequest
from aistack.executors.slurm import SlurmExecutor
from aistack.scheduler.types import Allocation, NodeAlloc
from aistack.server.db.models import AllocationRow, Job, JobEvent
from aistack.server.services.jobs import submit_job
from aistack.settings import Settings
from aistack.testing.loop import scheduler_loop

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(240)]

HOLD_S = 8.0  # how long Slurm keeps aistack's job PENDING


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def test_a_job_slurm_holds_pending_is_starting_and_counts_from_slurms_start(
    ex: SlurmExecutor, tmp_path: Path
) -> None:
    node = ex.inventory()[0]
    # a job aistack does not know takes both GPUs: aistack places its own job on GPU 0, which
    # it thinks is free, and Slurm keeps that one PENDING ("Resources")
    hog = ex.launch(
        LaunchRequest(
            job_id="hog",
            attempt=1,
            command="sleep 120",
            allocation=Allocation(nodes={node.name: NodeAlloc(gpus=(0, 1), cpus=(0,))}),
            job_dir=tmp_path / "hog",
        )
    )
    deadline = time.monotonic() + 30
    while ex.poll(hog).state != "running" and time.monotonic() < deadline:
        time.sleep(0.3)
    assert ex.poll(hog).state == "running"

    settings = Settings(home=tmp_path / "home", executor="slurm", mlflow_enabled=False)
    loop = scheduler_loop(settings, ex)
    with loop.sessions() as s:
        jid = submit_job(
            s, {"command": "sleep 4", "resources": {"gpus": 1, "cpus": 1}}, nodes=loop.nodes()
        ).id
        s.commit()

    def job() -> Job:
        with loop.sessions() as s:
            j = s.get(Job, jid)
            assert j is not None
            s.expunge(j)
            return j

    loop.run_once()
    handed = job().started_at
    assert job().handle and handed is not None
    states = []
    t_end = time.monotonic() + HOLD_S
    while time.monotonic() < t_end:
        loop.run_once()
        states.append(job().state)
        time.sleep(0.5)
    assert set(states) == {"STARTING"}, states  # was RUNNING all along
    assert job().started_at == handed  # its start is not known yet

    ex.cancel(hog, grace_s=0)  # the GPUs are free: Slurm runs aistack's job now
    freed = _utc_now()
    deadline = time.monotonic() + 60
    while job().state != "RUNNING" and time.monotonic() < deadline:
        loop.run_once()
        time.sleep(0.3)
    j = job()
    assert j.state == "RUNNING", (j.state, j.failure_reason)
    assert j.started_at is not None
    waited = (j.started_at - handed).total_seconds()
    # Slurm's StartTime (whole seconds) after the hog's end: not the sbatch's time
    assert waited >= HOLD_S - 1.5, (handed, j.started_at)
    assert j.started_at >= freed - dt.timedelta(seconds=1.5)

    deadline = time.monotonic() + 60
    while job().state not in ("SUCCEEDED", "FAILED") and time.monotonic() < deadline:
        loop.run_once()
        time.sleep(0.3)
    j = job()
    assert j.state == "SUCCEEDED", (j.state, j.failure_reason)
    with loop.sessions() as s:
        (row,) = s.execute(select(AllocationRow).where(AllocationRow.job_id == jid)).scalars()
        assert row.start == j.started_at  # the allocation counts from Slurm's start too
        assert row.end is not None
        gpu_s = (row.end - row.start).total_seconds() * len(row.gpus)
        events = [
            e.message
            for e in s.execute(select(JobEvent).where(JobEvent.job_id == jid)).scalars()
            if e.kind in ("waiting", "running")
        ]
    # the 4 s it ran (and a poll's lag), not the wait in Slurm's queue on top
    assert 3.0 <= gpu_s < 4.0 + (HOLD_S - 2), (gpu_s, waited)
    assert any(e.startswith("slurm: waiting for resources") for e in events[:-1]), events
    assert events[-1].startswith("slurm runs it now (since "), events
