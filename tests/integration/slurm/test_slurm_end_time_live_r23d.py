"""Against real Slurm daemons: a job that ended while the aistack server was down ends, in
aistack, at Slurm's EndTime (scontrol's; sacct's once slurmctld forgot it), not when the
restarted server first looked: its runtime and GPU-hours counted the downtime."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from aistack.executors.base import LaunchRequest
from aistack.executors.slurm import SlurmExecutor
from aistack.executors.slurm_commands import slurm_time
from aistack.scheduler.types import Allocation, NodeAlloc
from aistack.server.db.models import AllocationRow, Job
from aistack.server.services.jobs import submit_job
from aistack.server.services.scheduling import SchedulerLoop
from aistack.settings import Settings
from aistack.testing.loop import scheduler_loop

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(240)]

DOWN_S = 8.0  # how long the server is "down" after the job ended


SLURM_GPUS = 1
# with accounting where slurmdbd and MariaDB are installed (the sacct test needs it)
SLURM_ACCOUNTING = "if-installed"


def _loop(settings: Settings, ex: SlurmExecutor) -> SchedulerLoop:
    return scheduler_loop(settings, ex)


def _from_epoch(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC).replace(tzinfo=None)


def test_a_job_that_ended_while_the_server_was_down_ends_at_slurms_end_time(
    slurm: Any, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path / "home", executor="slurm", mlflow_enabled=False)
    settings.ensure_home()
    ex = SlurmExecutor(slurm_conf=slurm.conf_path, command_timeout_s=20)
    loop = _loop(settings, ex)
    with loop.sessions() as s:
        jid = submit_job(
            s, {"command": "sleep 2", "resources": {"gpus": 1, "cpus": 1}}, nodes=loop.nodes()
        ).id
        s.commit()

    def job(lp: SchedulerLoop) -> Job:
        with lp.sessions() as s:
            j = s.get(Job, jid)
            assert j is not None
            s.expunge(j)
            return j

    deadline = time.monotonic() + 60
    while job(loop).state != "RUNNING" and time.monotonic() < deadline:
        loop.run_once()
        time.sleep(0.3)
    j = job(loop)
    assert j.state == "RUNNING", (j.state, j.failure_reason)
    ex.close()  # the server stops; the job runs on under Slurm and ends
    _, job_dir = SlurmExecutor.parse_handle(j.handle or "")
    deadline = time.monotonic() + 60
    while not (job_dir / "exit_code").exists() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert (job_dir / "exit_code").exists(), slurm.logs()
    time.sleep(DOWN_S)

    restarted = _loop(settings, SlurmExecutor(slurm_conf=slurm.conf_path, command_timeout_s=20))
    first_look = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    restarted.run_once()
    j = job(restarted)
    assert j.state == "SUCCEEDED", (j.state, j.failure_reason)
    job_id = (job_dir / "slurm_job_id").read_text().strip()
    info = restarted.executor.job_info(job_id)  # type: ignore[attr-defined]
    assert info is not None
    end = slurm_time(info["EndTime"])
    assert end is not None, info
    assert j.finished_at == _from_epoch(end), (j.finished_at, info["EndTime"])
    assert (first_look - j.finished_at).total_seconds() >= DOWN_S - 1.5
    assert j.started_at is not None
    ran = (j.finished_at - j.started_at).total_seconds()
    assert 1.0 <= ran <= 5.0, ran  # the 2 s it ran, not the downtime on top
    with restarted.sessions() as s:
        (row,) = s.execute(select(AllocationRow).where(AllocationRow.job_id == jid)).scalars()
        assert row.end == j.finished_at  # its GPU-hours end there too


def test_saccts_end_is_read_for_a_job_slurmctld_forgot(slurm: Any, tmp_path: Path) -> None:
    if not slurm.accounting:
        pytest.skip("no Slurm accounting here (slurmdbd, MariaDB)")
    ex = SlurmExecutor(slurm_conf=slurm.conf_path, command_timeout_s=20)
    node = ex.inventory()[0].name
    handle = ex.launch(
        LaunchRequest(
            job_id="e1",
            attempt=1,
            command="sleep 1",
            allocation=Allocation(nodes={node: NodeAlloc(cpus=(0,))}),
            job_dir=tmp_path / "e1",
        )
    )
    job_id, _ = SlurmExecutor.parse_handle(handle)
    slurm.wait_accounted([job_id])
    info = ex.job_info(job_id)
    assert info is not None and info["JobState"] == "COMPLETED", info
    ex.job_info = lambda _id: None  # type: ignore[method-assign] # forgotten (MinJobAge)
    st = ex.poll(handle)
    assert st.state == "succeeded", st
    assert st.finished_at == slurm_time(info["EndTime"]), (st, info["EndTime"])
    ex.close()
