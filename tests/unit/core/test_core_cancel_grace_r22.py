"""A cancel's own grace period (``POST /jobs/{id}/cancel`` ``grace_s``) is kept with the job:
a cancel that reached a job before it had a handle is signalled later with it (it was the
server's 10 s), and a job killed after it says so (it said 10 s)."""

from __future__ import annotations

from pathlib import Path

from aistack.executors.base import ExecStatus
from aistack.executors.memory import MemoryExecutor
from aistack.scheduler import get_policy
from aistack.server.db.models import Job
from aistack.server.db.session import make_engine, migrate, session_factory
from aistack.server.services.jobs import request_cancel, submit_job
from aistack.server.services.scheduling import SchedulerLoop
from aistack.settings import Settings


class Recording(MemoryExecutor):
    def __init__(self) -> None:
        super().__init__(gpus_per_node=1, n_nodes=1)
        self.cancels: list[float] = []
        self.status: ExecStatus | None = None

    def cancel(self, handle: str, grace_s: float = 10.0) -> None:
        self.cancels.append(grace_s)

    def poll(self, handle: str) -> ExecStatus:
        return self.status or super().poll(handle)


def _running(tmp_path: Path) -> tuple[SchedulerLoop, Recording, str]:
    settings = Settings(home=tmp_path, executor="memory", mlflow_enabled=False)
    settings.ensure_home()
    engine = make_engine(settings.db_url)
    migrate(engine)
    ex = Recording()
    loop = SchedulerLoop(
        settings=settings, sessions=session_factory(engine), executor=ex, policy=get_policy("fifo")
    )
    with loop.sessions() as s:
        jid = submit_job(
            s, {"command": "x", "env": {"AISTACK_FAKE_DURATION_S": "3600"}}, nodes=loop.nodes()
        ).id
        s.commit()
    loop.run_once()
    return loop, ex, jid


def test_a_cancel_signalled_later_keeps_its_grace(tmp_path: Path) -> None:
    loop, ex, jid = _running(tmp_path)
    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None and job.state == "RUNNING"
        job.state, handle, job.handle = "STARTING", job.handle, None  # as before the hand-over
        s.commit()
        request_cancel(s, job, ex, 2.5, reason="wrong data")
        s.commit()
        assert job.cancel_grace_s == 2.5 and ex.cancels == []  # no handle yet: nothing sent
        job.handle = handle
        s.commit()
    loop.run_once()
    assert ex.cancels == [2.5]  # it was the server's 10 s


def test_the_end_of_a_job_killed_after_its_cancel_names_that_grace(tmp_path: Path) -> None:
    loop, ex, jid = _running(tmp_path)
    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None
        request_cancel(s, job, ex, 3.0)
        s.commit()
        assert ex.cancels == [3.0]
        request_cancel(s, job, ex, 60.0)  # a second cancel changes nothing
        s.commit()
        assert job.cancel_grace_s == 3.0 and ex.cancels == [3.0]
    ex.status = ExecStatus(state="cancelled", exit_code=-9)
    loop.run_once()
    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None and job.state == "CANCELLED"
        assert "killed with SIGKILL after the 3 s grace period" in (job.failure_reason or "")


def test_a_second_cancel_before_the_signal_takes_the_shorter_grace(tmp_path: Path) -> None:
    """(It kept the first one's 60 s; now a second stop may bring the SIGKILL forward, never
    postpone it, as the executors do: the shorter of the two.)"""
    loop, ex, jid = _running(tmp_path)
    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None
        job.state, handle, job.handle = "STARTING", job.handle, None
        s.commit()
        request_cancel(s, job, ex, 60.0)  # no handle: recorded, not sent
        s.commit()
        job.handle = handle  # launched meanwhile
        s.commit()
        request_cancel(s, job, ex, 10.0)  # the second cancel, before the loop signals it
        s.commit()
        assert ex.cancels == [10.0] and job.cancel_grace_s == 10.0


def test_slurms_137_and_a_zero_grace_are_said_right(tmp_path: Path) -> None:
    loop, ex, jid = _running(tmp_path)
    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None
        request_cancel(s, job, ex, 0.0)
        s.commit()
    ex.status = ExecStatus(state="cancelled", exit_code=137)  # Slurm: 128 + SIGKILL
    loop.run_once()
    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None
        # (it said nothing for 137, and "SIGTERM did not stop it" after a grace of 0 s)
        assert "killed with SIGKILL at once (a grace period of 0 s after SIGTERM)" in (
            job.failure_reason or ""
        )
