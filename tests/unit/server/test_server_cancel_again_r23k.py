"""A second cancel of a job that is already stopping (``aistack cancel J --grace 2`` after
``--grace 60``): it was dropped by the server (request_cancel returned at once for a job
CANCELLING), so the job was SIGKILLed 60 s after the first cancel, and the answer said only
CANCELLING. Now the rule the executors follow for a second stop holds from the API down: the
first SIGKILL time stands, a later cancel may bring it forward, never postpone it; the answer
(``message``) and the job's event say which, and the job's API view has ``kill_at``.

A cancel after a preemption said "SIGTERM, then SIGKILL after 0 s" although the job had got
its SIGTERM from the preemption: now it says it is already stopping and when the SIGKILL is.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from aistack.executors.base import ExecStatus
from aistack.executors.memory import MemoryExecutor
from aistack.scheduler import get_policy
from aistack.server.db.models import Job, JobEvent, utcnow
from aistack.server.db.session import make_engine, migrate, session_factory
from aistack.server.services.jobs import submit_job, to_public
from aistack.server.services.scheduling import SchedulerLoop
from aistack.settings import Settings

pytestmark = pytest.mark.timeout(120)


class Recording(MemoryExecutor):
    def __init__(self) -> None:
        super().__init__(gpus_per_node=1, n_nodes=1)
        self.cancels: list[float] = []
        self.preempts: list[float] = []
        self.status: ExecStatus | None = None

    def cancel(self, handle: str, grace_s: float = 10.0) -> None:
        self.cancels.append(grace_s)

    def preempt(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        self.preempts.append(grace_s)

    def poll(self, handle: str) -> ExecStatus:
        return self.status or super().poll(handle)


def _loop(tmp_path: Path, **settings: Any) -> tuple[SchedulerLoop, Recording]:
    st = Settings(home=tmp_path, executor="memory", mlflow_enabled=False, **settings)
    st.ensure_home()
    engine = make_engine(st.db_url)
    migrate(engine)
    ex = Recording()
    loop = SchedulerLoop(
        settings=st, sessions=session_factory(engine), executor=ex, policy=get_policy("priority")
    )
    return loop, ex


def _submit(loop: SchedulerLoop, **spec: Any) -> str:
    with loop.sessions() as s:
        jid = submit_job(
            s,
            {"command": "x", "env": {"AISTACK_FAKE_DURATION_S": "3600"}, **spec},
            nodes=loop.nodes(),
        ).id
        s.commit()
    return jid


def _running(tmp_path: Path) -> tuple[SchedulerLoop, Recording, str]:
    loop, ex = _loop(tmp_path)
    jid = _submit(loop)
    loop.run_once()
    return loop, ex, jid


def _cancel(loop: SchedulerLoop, ex: Recording, jid: str, grace: float, **kw: Any) -> str:
    from aistack.server.services.jobs import cancel_job

    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None
        _, words = cancel_job(s, job, ex, grace, default_grace_s=10.0, **kw)
        s.commit()
    return words


def _job(loop: SchedulerLoop, jid: str) -> Job:
    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None
        return job


def _events(loop: SchedulerLoop, jid: str, kind: str) -> list[str]:
    with loop.sessions() as s:
        rows = s.execute(
            select(JobEvent).where(JobEvent.job_id == jid, JobEvent.kind == kind)
        ).scalars()
        return [r.message for r in rows]


def _seconds_to(t: dt.datetime | None) -> float:
    assert t is not None
    if t.tzinfo is not None:
        t = t.replace(tzinfo=None)
    return (t - utcnow()).total_seconds()


def test_a_shorter_second_cancel_reaches_the_executor_and_brings_the_sigkill_forward(
    tmp_path: Path,
) -> None:
    loop, ex, jid = _running(tmp_path)
    first = _cancel(loop, ex, jid, 60.0)
    assert first.startswith("SIGTERM sent; SIGKILL at ") and "(in 60 s)" in first, first
    assert 50 < _seconds_to(_job(loop, jid).kill_at) <= 60
    words = _cancel(loop, ex, jid, 2.0)
    assert ex.cancels == [60.0, 2.0]  # the second was dropped: killed 60 s after the first
    job = _job(loop, jid)
    assert job.state == "CANCELLING"
    assert -5 < _seconds_to(job.kill_at) <= 2
    assert re.fullmatch(
        r"already cancelling: SIGKILL at \d\d:\d\d:\d\d UTC \((in \d s|due now)\), brought "
        r"forward from \d\d:\d\d:\d\d UTC by this cancel's 2 s grace period",
        words,
    ), words
    said = _events(loop, jid, "cancelling")
    assert len(said) == 2 and said[1] == words, said
    # the end names the grace the job got, counted from its SIGTERM (about 2 s, not 60 s)
    ex.status = ExecStatus(state="cancelled", exit_code=-9)
    loop.run_once()
    end = _job(loop, jid).failure_reason or ""
    assert re.search(r"killed with SIGKILL after the [23](\.\d)? s grace period", end), end


def test_a_longer_second_cancel_keeps_the_first_sigkill_and_says_so(tmp_path: Path) -> None:
    loop, ex, jid = _running(tmp_path)
    _cancel(loop, ex, jid, 5.0, reason="wrong data")
    kill_at = _job(loop, jid).kill_at
    words = _cancel(loop, ex, jid, 120.0, reason="other")
    assert ex.cancels == [5.0]  # not sent again (Slurm would signal the job again)
    job = _job(loop, jid)
    assert job.kill_at == kill_at and job.cancel_grace_s == 5.0
    assert job.failure_reason == "wrong data"
    assert re.fullmatch(
        r"already cancelling: the first cancel's SIGKILL at \d\d:\d\d:\d\d UTC "
        r"\((in \d s|due now)\) stands \(a cancel never postpones it; this one's 120 s grace "
        r"period would end later\); the first cancel's reason stands \(wrong data\)",
        words,
    ), words
    assert _events(loop, jid, "cancelling")[-1] == f"cancel again: {words}"


def test_the_api_view_of_a_stopping_job_says_when_the_sigkill_is_due(tmp_path: Path) -> None:
    loop, ex, jid = _running(tmp_path)
    assert to_public(_job(loop, jid)).kill_at is None  # running: no SIGKILL due
    _cancel(loop, ex, jid, 30.0)
    pub = to_public(_job(loop, jid))
    assert pub.state == "CANCELLING" and pub.kill_at is not None
    assert pub.kill_at.tzinfo is not None and 20 < _seconds_to(pub.kill_at) <= 30
    assert "kill_at" in pub.model_dump(mode="json")
    ex.status = ExecStatus(state="cancelled", exit_code=-15)
    loop.run_once()
    assert to_public(_job(loop, jid)).kill_at is None  # ended: nothing due


def _preempted(tmp_path: Path) -> tuple[SchedulerLoop, Recording, str]:
    loop, ex = _loop(tmp_path, preempt_protect_s=0.0, cancel_grace_s=40.0)
    low = _submit(loop, resources={"gpus": 1})
    loop.run_once()
    assert _job(loop, low).state == "RUNNING"
    _submit(loop, resources={"gpus": 1}, priority=10)
    loop.run_once()
    job = _job(loop, low)
    assert job.state == "PREEMPTING" and ex.preempts == [40.0], (job.state, ex.preempts)
    return loop, ex, low


def test_a_preempted_job_has_its_kill_time_and_its_event_says_it(tmp_path: Path) -> None:
    loop, ex, jid = _preempted(tmp_path)
    pub = to_public(_job(loop, jid))
    assert 30 < _seconds_to(pub.kill_at) <= 40
    said = _events(loop, jid, "preempting")
    assert len(said) == 1 and re.search(
        r"; SIGTERM, then SIGKILL after 40 s, at \d\d:\d\d:\d\d UTC$", said[0]
    ), said


def test_a_cancel_after_a_preemption_says_the_job_is_already_stopping(tmp_path: Path) -> None:
    loop, ex, jid = _preempted(tmp_path)
    kill_at = _job(loop, jid).kill_at
    words = _cancel(loop, ex, jid, 0.0 + 300.0, reason="not needed")  # longer: 40 s stands
    job = _job(loop, jid)
    assert job.state == "CANCELLING" and job.cancel_requested and job.kill_at == kill_at
    assert re.fullmatch(
        r"already stopping \(preempted\): it got SIGTERM at the preemption; SIGKILL at "
        r"\d\d:\d\d:\d\d UTC \(in \d+ s\); it ends cancelled, not requeued",
        words,
    ), words
    said = _events(loop, jid, "cancelling")
    assert said == [words + " (not needed)"], said  # it said "SIGTERM, then SIGKILL after 300 s"
    # the executor is told it is a cancel now, with what is left of the preemption's 40 s
    assert len(ex.cancels) == 1 and 30 < ex.cancels[0] <= 40
    ex.status = ExecStatus(state="cancelled", exit_code=-15)
    loop.run_once()
    job = _job(loop, jid)
    assert (job.state, job.failure_reason) == ("CANCELLED", "not needed")


def test_a_shorter_cancel_after_a_preemption_brings_its_sigkill_forward(tmp_path: Path) -> None:
    loop, ex, jid = _preempted(tmp_path)
    words = _cancel(loop, ex, jid, 1.0)
    assert ex.cancels == [1.0]
    assert -5 < _seconds_to(_job(loop, jid).kill_at) <= 1
    assert re.fullmatch(
        r"already stopping \(preempted\): it got SIGTERM at the preemption; SIGKILL at "
        r"\d\d:\d\d:\d\d UTC \((in \d s|due now)\), brought forward from \d\d:\d\d:\d\d UTC by "
        r"this cancel's 1 s grace period; it ends cancelled, not requeued",
        words,
    ), words


def test_the_cancel_route_answers_with_its_message_and_kill_at(api: Any) -> None:
    jid = api.client.submit({"command": "sleep 1000"})["id"]
    sent: list[float] = []
    ex = api.ctx.executor
    with api.ctx.sessions() as s:
        job = s.get(Job, jid)
        job.state, job.handle = "RUNNING", "h1"
        s.commit()
    ex.cancel = lambda handle, grace_s=10.0: sent.append(grace_s)  # type: ignore[method-assign]
    r = api.http.post(f"/api/v1/jobs/{jid}/cancel", json={"grace_s": 60})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "CANCELLING" and body["kill_at"] is not None
    assert body["message"].startswith("SIGTERM sent; SIGKILL at "), body["message"]
    r = api.http.post(f"/api/v1/jobs/{jid}/cancel", json={"grace_s": 2})
    body2 = r.json()
    assert sent == [60.0, 2.0]
    assert body2["message"].startswith("already cancelling: SIGKILL at "), body2["message"]
    assert body2["kill_at"] < body["kill_at"]
    got = api.http.get(f"/api/v1/jobs/{jid}").json()
    assert got["kill_at"] == body2["kill_at"]
    r = api.http.post(f"/api/v1/jobs/{jid}/cancel", json={"grace_s": 600})
    assert sent == [60.0, 2.0] and "stands" in r.json()["message"]
    assert r.json()["kill_at"] == body2["kill_at"]
