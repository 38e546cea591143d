"""A job the engine still holds before running it (Slurm's PENDING, with its reason) is told in
its events: the reason the executor gave was dropped, and the job showed RUNNING with nothing
said while Slurm queued it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from aistack.executors.base import ExecStatus
from aistack.executors.memory import MemoryExecutor
from aistack.server.db.models import JobEvent
from aistack.server.services.jobs import submit_job
from aistack.settings import Settings
from aistack.testing.loop import scheduler_loop


class QueuedFirst(MemoryExecutor):
    """The engine holds each job for its first polls, for a reason that changes once."""

    def __init__(self) -> None:
        super().__init__(gpus_per_node=0, n_nodes=1)
        self.reasons = ["waiting for resources", "waiting for resources", "held by a reservation"]

    def poll(self, handle: str) -> ExecStatus:
        if self.reasons:
            return ExecStatus(state="starting", reason=self.reasons.pop(0))
        return super().poll(handle)


def test_the_engines_wait_and_its_end_are_in_the_events(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, executor="memory", mlflow_enabled=False)
    loop = scheduler_loop(settings, QueuedFirst())
    with loop.sessions() as s:
        jid = submit_job(
            s, {"command": "x", "env": {"AISTACK_FAKE_DURATION_S": "600"}}, nodes=loop.nodes()
        ).id
        s.commit()
    for _ in range(5):
        loop.run_once()
    with loop.sessions() as s:
        said = [
            (e.kind, e.message)
            for e in s.execute(select(JobEvent).where(JobEvent.job_id == jid).order_by(JobEvent.id))
            .scalars()
            .all()
        ]
    waits = [x for x in said if x[0] in ("waiting", "running")]
    assert waits == [
        ("waiting", "memory: waiting for resources"),
        ("waiting", "memory: held by a reservation"),
        ("running", "memory runs it now"),
    ], said
