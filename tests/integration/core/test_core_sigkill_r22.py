"""With the local executor (real processes): a job that ignores SIGTERM and is stopped, by a
cancel or by its max_runtime, ends killed by SIGKILL once the grace period passes, and its
failure reason and events say so (they said "cancelled by user" / "exceeded max_runtime"
alone)."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select

from aistack.executors.local import LocalExecutor
from aistack.server.db.models import Job, JobEvent
from aistack.server.services.jobs import request_cancel, submit_job
from aistack.server.services.scheduling import SchedulerLoop
from aistack.settings import Settings
from aistack.testing.loop import close_loop, scheduler_loop
from aistack.testing.procs import kill_processes_of_home


def _run_until_final(loop: SchedulerLoop, ids: list[str], timeout: float = 60.0) -> list[Job]:
    deadline = time.monotonic() + timeout
    while True:
        loop.run_once()
        with loop.sessions() as s:
            jobs = [s.get(Job, j) for j in ids]
        if all(j is not None and j.finished_at is not None for j in jobs):
            return jobs  # type: ignore[return-value]
        assert time.monotonic() < deadline, [(j.state if j else None) for j in jobs]
        time.sleep(0.2)


def test_sigkill_after_the_grace_period_is_said(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path / "home", executor="local", mlflow_enabled=False, cancel_grace_s=1.0
    )
    loop = scheduler_loop(settings, LocalExecutor(cpus=4))
    try:
        with loop.sessions() as s:
            stubborn = {"command": "trap '' TERM; echo up; sleep 60", "workdir": str(tmp_path)}
            cancelled = submit_job(s, dict(stubborn), nodes=loop.nodes()).id
            polite = submit_job(
                s, {"command": "echo up; exec sleep 60", "workdir": str(tmp_path)}
            ).id
            s.commit()
        deadline = time.monotonic() + 30
        while True:  # wait until the two to cancel have written their first line (trap set)
            loop.run_once()
            logs = [
                tmp_path / "home" / "jobs" / j / "0" / "output.log" for j in (cancelled, polite)
            ]
            if all(p.exists() and p.read_text() for p in logs):
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        with loop.sessions() as s:
            for jid in (cancelled, polite):
                job = s.get(Job, jid)
                assert job is not None
                request_cancel(s, job, loop.executor, settings.cancel_grace_s)
            timed_out = submit_job(s, {**stubborn, "max_runtime": "1s"}, nodes=loop.nodes()).id
            s.commit()
        a, b, c = _run_until_final(loop, [cancelled, timed_out, polite])
        note = "; killed with SIGKILL after the 1 s grace period: SIGTERM did not stop it"
        assert (a.state, a.exit_code, a.failure_reason) == (
            "CANCELLED",
            -9,
            "cancelled by user" + note,
        )
        assert (b.state, b.exit_code, b.failure_reason) == (
            "TIMEOUT",
            -9,
            "exceeded max_runtime of 1 s" + note,
        )
        assert (c.state, c.exit_code, c.failure_reason) == ("CANCELLED", -15, "cancelled by user")
        with loop.sessions() as s:
            kinds = s.execute(
                select(JobEvent.kind, JobEvent.message).where(JobEvent.job_id == timed_out)
            ).all()
        assert ("timeout", "exceeded max_runtime of 1 s" + note) in [tuple(k) for k in kinds]
    finally:
        kill_processes_of_home(settings.home)
        close_loop(loop)
