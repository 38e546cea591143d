"""A job cancelled while queued after an earlier attempt (a retry, a preemption) has an MLflow
run: its end (KILLED) is told to the tracking hook. No process ends, so the loop's `_finish`
never ran and the run stayed as the last attempt left it (FINISHED from the script's own exit,
or RUNNING where the process was killed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from aistack.executors.memory import MemoryExecutor
from aistack.scheduler import get_policy
from aistack.server.db.models import Job
from aistack.server.db.session import make_engine, migrate, session_factory
from aistack.server.services.jobs import request_cancel, submit_job
from aistack.server.services.scheduling import SchedulerLoop
from aistack.settings import Settings


@pytest.fixture
def loop(tmp_path: Path) -> tuple[SchedulerLoop, list[tuple[str, str]]]:
    settings = Settings(home=tmp_path, executor="memory", mlflow_enabled=False)
    settings.ensure_home()
    engine = make_engine(settings.db_url)
    migrate(engine)
    ended: list[tuple[str, str]] = []

    def on_finish(job: Job, st: Any) -> None:
        ended.append((job.id, job.state))

    lp = SchedulerLoop(
        settings=settings,
        sessions=session_factory(engine),
        executor=MemoryExecutor(gpus_per_node=4, n_nodes=1),
        policy=get_policy("default"),
        on_finish=on_finish,
    )
    return lp, ended


def _requeued_job(lp: SchedulerLoop, **values: Any) -> str:
    """A job queued again after an attempt that had an MLflow run."""
    with lp.sessions() as s:
        job = submit_job(s, {"command": "train"}, nodes=lp.nodes())
        s.commit()
        s.execute(
            update(Job).where(Job.id == job.id).values(attempt=1, mlflow_run_id="run-1", **values)
        )
        s.commit()
        return job.id


def test_a_cancel_of_a_requeued_job_ends_its_run(loop: Any) -> None:
    lp, ended = loop
    jid = _requeued_job(lp)
    with lp.sessions() as s:
        job = request_cancel(s, s.get(Job, jid), lp.executor, 10.0)
        s.commit()
        assert job.state == "CANCELLED"
        lp.cancelled_off_loop(job)  # what POST /jobs/{id}/cancel does after its commit
    assert ended == [(jid, "CANCELLED")]


def test_a_job_requeued_after_its_cancel_ends_its_run_in_the_loop(loop: Any) -> None:
    lp, ended = loop
    jid = _requeued_job(lp, cancel_requested=True, failure_reason="stop it")
    with lp.sessions() as s:
        lp.reconcile(s)
        s.commit()
        assert s.get(Job, jid).state == "CANCELLED"  # type: ignore[union-attr]
    assert ended == [(jid, "CANCELLED")]


def test_a_job_without_a_run_tells_nothing(loop: Any) -> None:
    lp, ended = loop
    with lp.sessions() as s:
        job = submit_job(s, {"command": "train"}, nodes=lp.nodes())
        s.commit()
        job = request_cancel(s, job, lp.executor, 10.0)
        s.commit()
        lp.cancelled_off_loop(job)
    assert ended == []


def test_the_cancel_route_tells_the_loop(api: Any) -> None:
    jid = api.http.post("/api/v1/jobs", json={"command": "x"}).json()["id"]
    with api.ctx.sessions() as s:
        s.execute(update(Job).where(Job.id == jid).values(attempt=1, mlflow_run_id="run-1"))
        s.commit()
    told: list[tuple[str, str]] = []

    class Loop:
        def cancelled_off_loop(self, job: Job) -> None:
            told.append((job.id, job.state))

        def wake(self) -> None:
            pass

    api.ctx.loop = Loop()
    try:
        r = api.http.post(f"/api/v1/jobs/{jid}/cancel")
    finally:
        api.ctx.loop = None
    assert r.status_code == 200 and r.json()["state"] == "CANCELLED"
    assert told == [(jid, "CANCELLED")]
