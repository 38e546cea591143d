"""The job lifecycle as users see it (round 22):

* a job retried, or requeued after a preemption or a loss, that runs again shows no exit code
  and no failure reason (they were the previous attempt's; its events keep them);
* a cancel, a preemption or a max_runtime stop that had to end in SIGKILL says so;
* the `aistack jobs` request column shows the memory a job asked for;
* GET /cost/report?project= reads the known projects with one query.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from aistack.executors.base import ExecStatus, LaunchRequest
from aistack.executors.memory import MemoryExecutor
from aistack.server.db.models import Job, JobEvent
from aistack.server.services.jobs import request_cancel, submit_job, to_public
from aistack.server.services.scheduling import SchedulerLoop
from aistack.settings import Settings
from aistack.testing.loop import scheduler_loop


class ByAttempt(MemoryExecutor):
    """The memory executor, with an outcome per attempt: ``outcomes[attempt]`` is
    ``(duration_s, exit_code)``; a stop ends with ``stop_code`` (-9: SIGKILL'd)."""

    def __init__(self, outcomes: dict[int, tuple[float, int]], stop_code: int = -15) -> None:
        super().__init__(gpus_per_node=4, n_nodes=1)
        self.outcomes = outcomes
        self.stop_code = stop_code
        self.lose: set[str] = set()

    def launch(self, req: LaunchRequest) -> str:
        dur, code = self.outcomes.get(req.attempt, (3600.0, 0))
        req.env["AISTACK_FAKE_DURATION_S"] = str(dur)
        req.env["AISTACK_FAKE_EXIT_CODE"] = str(code)
        return super().launch(req)

    def poll(self, handle: str) -> ExecStatus:
        if handle in self.lose:
            return ExecStatus(state="lost", reason="the node went away")
        st = super().poll(handle)
        if st.exit_code == -15:
            st.exit_code = self.stop_code
        return st


def _loop(tmp_path: Path, executor: MemoryExecutor, **settings: Any) -> SchedulerLoop:
    s = Settings(home=tmp_path, executor="memory", mlflow_enabled=False, **settings)
    return scheduler_loop(s, executor)


def _submit(loop: SchedulerLoop, **spec: Any) -> str:
    spec.setdefault("command", "train")
    with loop.sessions() as s:
        job = submit_job(s, spec, nodes=loop.nodes())
        s.commit()
        return job.id


def _job(loop: SchedulerLoop, jid: str) -> Job:
    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None
        return job


def _events(loop: SchedulerLoop, jid: str) -> list[tuple[str, str]]:
    with loop.sessions() as s:
        rows = s.execute(select(JobEvent).where(JobEvent.job_id == jid).order_by(JobEvent.id))
        return [(e.kind, e.message) for e in rows.scalars()]


def test_a_retried_job_running_again_has_no_exit_code_or_failure(tmp_path: Path) -> None:
    loop = _loop(tmp_path, ByAttempt({0: (0.0, 3)}))
    jid = _submit(loop, retries=2)
    loop.run_once()  # attempt 0 starts
    loop.run_once()  # it exited 3: requeued and started again as attempt 1
    job = _job(loop, jid)
    assert (job.state, job.attempt, job.retries_left) == ("RUNNING", 1, 1)
    pub = to_public(job)
    assert (pub.exit_code, pub.failure_reason, pub.stop_reason) == (None, None, None)
    # the first attempt's outcome is in the job's history
    assert ("retry", "attempt 0 failed: exit code 3") in _events(loop, jid)


def test_a_preempted_or_lost_job_running_again_has_no_exit_code(tmp_path: Path) -> None:
    ex = ByAttempt({}, stop_code=-9)
    loop = _loop(tmp_path, ex)
    jid = _submit(loop)
    loop.run_once()
    with loop.sessions() as s:  # preempted (as the scheduler does), then started again
        job = s.get(Job, jid)
        assert job is not None and job.handle
        job.state, job.preempt_requested = "PREEMPTING", True
        ex.preempt(job.handle)
        s.commit()
    loop.run_once()
    job = _job(loop, jid)
    assert (job.state, job.attempt, job.preempt_count) == ("RUNNING", 1, 1)
    assert (job.exit_code, job.failure_reason) == (None, None)
    ex.lose.add(str(job.handle))
    loop.run_once()  # lost: requeued (with the loss as its reason) and started again
    job = _job(loop, jid)
    assert (job.state, job.attempt) == ("RUNNING", 2)
    assert (to_public(job).exit_code, to_public(job).failure_reason) == (None, None)
    kinds = [k for k, _ in _events(loop, jid)]
    assert kinds.count("started") == 3 and "preempted" in kinds and "requeued" in kinds
    preempted = next(m for k, m in _events(loop, jid) if k == "preempted")
    assert preempted.endswith(
        "; killed with SIGKILL after the 10 s grace period: SIGTERM did not stop it"
    )


def test_a_cancel_that_ended_in_sigkill_says_so(tmp_path: Path) -> None:
    loop = _loop(tmp_path, ByAttempt({}, stop_code=-9), cancel_grace_s=7.0)
    killed = _submit(loop, stop_signal="SIGINT")
    clean = _submit(loop)
    loop.run_once()
    for jid, code in ((killed, -9), (clean, -15)):
        loop.executor.stop_code = code  # type: ignore[attr-defined]
        with loop.sessions() as s:
            job = s.get(Job, jid)
            assert job is not None
            request_cancel(s, job, loop.executor, 7.0, reason="scaled down")
            s.commit()
        loop.run_once()
    job = _job(loop, killed)
    assert (job.state, job.exit_code) == ("CANCELLED", -9)
    why = "scaled down; killed with SIGKILL after the 7 s grace period: SIGINT did not stop it"
    assert to_public(job).failure_reason == why
    assert ("cancelled", why) in _events(loop, killed)
    # (the event also says when the SIGKILL is due: "..., at 12:00:07 UTC")
    said = [m for k, m in _events(loop, killed) if k == "cancelling"]
    assert len(said) == 1 and re.fullmatch(
        r"SIGINT, then SIGKILL after 7 s, at \d\d:\d\d:\d\d UTC \(scaled down\)", said[0]
    ), said
    job = _job(loop, clean)  # it stopped on SIGTERM: nothing about SIGKILL
    assert (job.state, job.exit_code, job.failure_reason) == ("CANCELLED", -15, "scaled down")


class Timeout(MemoryExecutor):
    def __init__(self, code: int) -> None:
        super().__init__(gpus_per_node=4, n_nodes=1)
        self.code = code

    def poll(self, handle: str) -> ExecStatus:
        return ExecStatus(
            state="timeout", exit_code=self.code, reason="exceeded max_runtime of 2 s"
        )


@pytest.mark.parametrize(
    ("code", "env", "reason"),
    [
        (
            -9,
            {},
            "exceeded max_runtime of 2 s; killed with SIGKILL after the 10 s grace period: "
            "SIGTERM did not stop it",
        ),
        (
            -9,
            {"AISTACK_GRACE_S": "30"},  # the job's own grace (the executor reads it at launch)
            "exceeded max_runtime of 2 s; killed with SIGKILL after the 30 s grace period: "
            "SIGTERM did not stop it",
        ),
        (-15, {}, "exceeded max_runtime of 2 s"),
    ],
)
def test_a_timeout_that_ended_in_sigkill_says_so(
    tmp_path: Path, code: int, env: dict[str, str], reason: str
) -> None:
    loop = _loop(tmp_path, Timeout(code))
    jid = _submit(loop, max_runtime="2s", env=env)
    loop.run_once()
    loop.run_once()
    job = _job(loop, jid)
    assert (job.state, job.exit_code, job.failure_reason) == ("TIMEOUT", code, reason)
    assert ("timeout", reason) in _events(loop, jid)


@pytest.mark.parametrize(
    ("memory", "req"),
    [
        (None, "0 GPUs, 1 CPU"),
        ("2GB", "0 GPUs, 1 CPU, 2 GiB memory"),
        ("1536MB", "0 GPUs, 1 CPU, 1.5 GiB memory"),
        (512, "0 GPUs, 1 CPU, 512 MiB memory"),
    ],
)
def test_the_jobs_table_shows_the_memory_asked_for(memory: Any, req: str) -> None:
    from aistack.cli.jobs import _job_row

    row = _job_row(
        {
            "id": "abc",
            "name": "n",
            "project": "p",
            "state": "RUNNING",
            "resources": {"gpus": 0, "cpus": 1, "memory": memory, "nodes": 1},
            "submitted_at": "2026-11-01T00:00:00Z",
        }
    )
    assert row[4] == req
    multi = _job_row(
        {
            "id": "abc",
            "name": "n",
            "project": "p",
            "state": "QUEUED",
            "resources": {"gpus": 2, "cpus": 4, "memory": "16GB", "nodes": 2},
            "submitted_at": "2026-11-01T00:00:00Z",
        }
    )
    assert multi[4] == "2 GPUs, 4 CPUs, 16 GiB memory per node × 2 nodes"


def test_cost_report_reads_the_known_projects_once(api: Any) -> None:
    assert api.http.put("/api/v1/projects/vision", json={"gpu_quota": 4}).status_code == 200
    assert api.http.post("/api/v1/jobs", json={"command": "x", "project": "nlp"}).status_code == 201
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = api.ctx.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        r = api.http.get("/api/v1/cost/report", params={"project": "nope"})
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert r.status_code == 404, r.text
    assert r.json()["hint"] == "known projects: nlp, vision"
    names = [s for s in statements if "projects.name" in s or "jobs.project" in s]
    assert len(names) == 1, names
    ok = api.http.get("/api/v1/cost/report", params={"project": "nlp"})
    assert ok.status_code == 200, ok.text


def test_an_unknown_page_start_is_named(api: Any) -> None:
    r = api.http.get("/api/v1/jobs", params={"before": "zzz"})
    assert r.status_code == 404, r.text
    assert r.json()["message"] == "before: job 'zzz' not found"
    one = api.http.get("/api/v1/jobs/zzz")
    assert one.status_code == 404 and one.json()["message"] == "job 'zzz' not found"
