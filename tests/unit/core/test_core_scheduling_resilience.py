"""One odd job, or a failing pass, does not stop the scheduling loop for everyone (the memory
executor, no processes)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from aistack.executors.base import LaunchRequest
from aistack.executors.memory import MemoryExecutor
from aistack.scheduler import get_policy
from aistack.scheduler.types import Allocation, ClusterState, JobRequest
from aistack.server.db.models import Job, JobEvent
from aistack.server.services.jobs import submit_job
from aistack.server.services.scheduling import SchedulerLoop
from aistack.settings import Settings
from aistack.testing.loop import scheduler_loop

LONG = {"AISTACK_FAKE_DURATION_S": "60"}


@pytest.fixture
def loop(tmp_path: Path) -> SchedulerLoop:
    settings = Settings(
        home=tmp_path, executor="memory", mlflow_enabled=False, schedule_interval_s=0.01
    )
    return scheduler_loop(settings, MemoryExecutor(gpus_per_node=4, n_nodes=2))


def submit(loop: SchedulerLoop, **spec: Any) -> str:
    spec.setdefault("command", "train")
    spec.setdefault("env", dict(LONG))
    with loop.sessions() as s:
        job = submit_job(s, spec, nodes=loop.nodes())
        s.commit()
        return job.id


def state(loop: SchedulerLoop, jid: str) -> Job:
    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None
        return job


def corrupt(loop: SchedulerLoop, jid: str, **columns: Any) -> None:
    """Store ``columns`` in the job's row as an older server (or a hand edit) might have."""
    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None
        for k, v in columns.items():
            setattr(job, k, v)
        s.commit()


def events(loop: SchedulerLoop, jid: str, kind: str) -> list[str]:
    with loop.sessions() as s:
        rows = s.execute(select(JobEvent).where(JobEvent.job_id == jid, JobEvent.kind == kind))
        return [e.message for e in rows.scalars()]


class Raising:
    """The default policy, raising when ``bad(queue)`` says so."""

    name = "raising"

    def __init__(self, bad: Any) -> None:
        self.inner = get_policy("default")
        self.bad = bad
        self.calls = 0

    def schedule(self, queue: Sequence[JobRequest], cluster: ClusterState, now: float) -> Any:
        self.calls += 1
        if self.bad(queue):
            raise RuntimeError(f"policy bug at call {self.calls}")
        return self.inner.schedule(queue, cluster, now)


def test_a_stored_spec_that_no_longer_reads_does_not_stop_the_others(
    loop: SchedulerLoop,
) -> None:
    bad = submit(loop, resources={"gpus": 1})
    good = submit(loop, resources={"gpus": 1})
    spec = dict(state(loop, bad).spec or {})
    corrupt(loop, bad, spec={**spec, "resources": {"gpus": "two"}})  # int('two'): ValueError
    for _ in range(3):
        loop.run_once()
    assert state(loop, good).state == "RUNNING"
    jb = state(loop, bad)
    assert jb.state == "QUEUED"
    assert jb.pending_reason == (
        "cannot be scheduled: ValueError: invalid literal for int() with base 10: 'two'; "
        "cancel it and resubmit"
    )
    assert events(loop, bad, "warning") == [jb.pending_reason]  # once, not every pass
    assert loop.errors == 0 and loop.last_error is None
    # fixed (or cancelled and resubmitted): it runs
    corrupt(loop, bad, spec=spec)
    loop.run_once()
    assert state(loop, bad).state == "RUNNING"


def test_a_spec_whose_launch_cannot_be_prepared_is_held_and_the_rest_start(
    loop: SchedulerLoop,
) -> None:
    bad = submit(loop, resources={"gpus": 4})  # first in the queue, takes a whole node
    good = [submit(loop, resources={"gpus": 4}) for _ in range(2)]
    spec = dict(state(loop, bad).spec or {})
    corrupt(loop, bad, spec={**spec, "env": ["not", "a", "mapping"]})
    loop.run_once()
    jb = state(loop, bad)
    assert jb.state == "QUEUED" and jb.handle is None
    assert (jb.pending_reason or "").startswith("cannot be started: ValueError: ")
    assert (jb.pending_reason or "").endswith("; cancel it and resubmit")
    assert [state(loop, j).state for j in good] == ["RUNNING", "QUEUED"]
    loop.run_once()  # held back: the node it was given goes to the next job
    assert [state(loop, j).state for j in good] == ["RUNNING", "RUNNING"]
    assert state(loop, bad).state == "QUEUED"


def test_a_job_the_policy_raises_on_is_held_and_the_rest_scheduled(
    loop: SchedulerLoop,
) -> None:
    first = submit(loop, resources={"gpus": 1})
    bad = submit(loop, resources={"gpus": 1})
    last = submit(loop, resources={"gpus": 1})
    policy = Raising(lambda queue: any(j.id == bad for j in queue))
    loop.policy = policy
    loop.run_once()
    assert state(loop, first).state == "RUNNING" and state(loop, last).state == "RUNNING"
    jb = state(loop, bad)
    assert jb.state == "QUEUED"
    assert (jb.pending_reason or "").startswith(
        "cannot be scheduled: the raising policy fails on it (RuntimeError: policy bug at call"
    )
    assert loop.errors == 0 and loop.last_error is None
    calls = policy.calls
    loop.run_once()  # held: no search again
    assert policy.calls == calls + 1
    assert state(loop, bad).state == "QUEUED"


def test_a_failing_pass_is_counted_shown_and_retried(loop: SchedulerLoop) -> None:
    jid = submit(loop, resources={"gpus": 1})
    failures = [1]

    def once(queue: Sequence[JobRequest]) -> bool:
        if failures:
            failures.pop()
            return True
        return False

    loop.policy = Raising(once)
    assert loop.run_once() is None  # the pass failed; run_once did not raise
    assert loop.errors == 1
    assert loop.last_error == "RuntimeError: policy bug at call 1"
    j = state(loop, jid)
    assert j.state == "QUEUED"
    assert (j.pending_reason or "").startswith(
        "the scheduler fails (RuntimeError: policy bug at call 1); it tries again every pass"
    )
    loop.run_once()
    assert state(loop, jid).state == "RUNNING"
    assert loop.errors == 1 and loop.last_error is None


def test_the_loop_thread_logs_a_failing_pass_once_and_schedules_when_it_works(
    loop: SchedulerLoop, caplog: pytest.LogCaptureFixture
) -> None:
    jid = submit(loop, resources={"gpus": 1})
    broken = [True]
    loop.policy = Raising(lambda queue: broken[0])  # fails on any queue: the pass's fault
    caplog.set_level(logging.INFO, logger="aistack.server.services.scheduling")
    loop.start()
    try:
        deadline = time.monotonic() + 30
        while loop.errors < 5:
            assert time.monotonic() < deadline, "the loop stopped running passes"
            time.sleep(0.01)
        broken[0] = False
        while state(loop, jid).state != "RUNNING":
            assert time.monotonic() < deadline, "the loop did not schedule once the policy worked"
            time.sleep(0.01)
    finally:
        loop.stop()
    records = [r for r in caplog.records if r.name == "aistack.server.services.scheduling"]
    tracebacks = [r for r in records if r.exc_info]
    assert len(tracebacks) == 1  # not one per pass
    assert "RuntimeError: policy bug at call 1" in tracebacks[0].getMessage()
    assert any("work again after" in r.getMessage() for r in records)


def test_a_running_job_whose_allocation_cannot_be_read_blocks_only_its_node(
    loop: SchedulerLoop,
) -> None:
    running = submit(loop, resources={"gpus": 1})
    loop.run_once()
    node = next(iter(state(loop, running).allocation or {}))
    corrupt(loop, running, allocation={node: {"gpus": ["zero"], "cpus": [0]}})
    later = submit(loop, resources={"gpus": 1})
    loop.run_once()
    j = state(loop, later)
    assert j.state == "RUNNING"
    assert list(j.allocation or {}) != [node]  # not placed where the free GPUs are unknown
    assert loop.errors == 0


def test_the_cluster_view_survives_an_unreadable_allocation_and_shows_the_loop_error(
    api,  # type: ignore[no-untyped-def]
) -> None:
    """GET /cluster read every active job's allocation with int(): one unreadable row (the case
    the loop now tolerates) was a 500 for the whole view. It now lists that job and shows the
    loop's failed passes and last error."""
    from aistack.server.db.models import Job as JobRow

    ctx = api.ctx
    ids = []
    for _ in range(2):
        r = api.http.post("/api/v1/jobs", json={"command": "x", "resources": {"gpus": 1}})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    with ctx.sessions() as s:
        good, bad = (s.get(JobRow, i) for i in ids)
        assert good is not None and bad is not None
        good.state, good.allocation = "RUNNING", {"mem0": {"gpus": [1], "cpus": [0]}}
        bad.state, bad.allocation = "RUNNING", {"mem0": {"gpus": ["zero"], "cpus": [1]}}
        s.commit()
    r = api.http.get("/api/v1/cluster")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scheduler"]["unreadable_allocations"] == [ids[1]]
    gpus = {g["index"]: g["job"] for g in body["nodes"][0]["gpus"]}
    assert gpus[1] == ids[0] and body["totals"]["gpus_allocated"] == 1
    assert (body["scheduler"]["failed_passes"], body["scheduler"]["last_error"]) == (0, None)
    # with a loop whose passes fail: how many, and the last error
    from types import SimpleNamespace

    real_loop = ctx.loop
    ctx.loop = SimpleNamespace(
        nodes=ctx.executor.inventory,
        policy=SimpleNamespace(name="default"),
        last_pass_s=0.001,
        errors=3,
        last_error="RuntimeError: policy bug",
    )
    try:
        sched = api.http.get("/api/v1/cluster").json()["scheduler"]
    finally:
        ctx.loop = real_loop
    assert (sched["failed_passes"], sched["last_error"]) == (3, "RuntimeError: policy bug")


def running_handles(loop: SchedulerLoop, jid: str) -> list[str]:
    """The in-memory executor's handles of ``jid`` that still 'run' (not stopped)."""
    ex = loop.executor
    assert isinstance(ex, MemoryExecutor)
    return [h for h, j in ex._jobs.items() if h.endswith(f"-{jid}") and not j["stopped"]]


def test_a_pass_whose_commit_fails_after_a_launch_stops_it_and_the_job_runs_once(
    loop: SchedulerLoop,
) -> None:
    jid = submit(loop, resources={"gpus": 1})
    commits = [0]

    def disk_full(session: Any) -> None:
        commits[0] += 1
        if commits[0] == 2:  # the pass's: the first is reconcile's
            raise RuntimeError("database or disk is full")

    event.listen(loop.sessions, "before_commit", disk_full)
    try:
        assert loop.run_once() is None
    finally:
        event.remove(loop.sessions, "before_commit", disk_full)
    assert loop.last_error == "RuntimeError: database or disk is full"
    assert state(loop, jid).state == "QUEUED"
    assert running_handles(loop, jid) == []  # launched, then stopped: the DB does not know it
    loop.run_once()
    j = state(loop, jid)
    assert j.state == "RUNNING"
    assert running_handles(loop, jid) == [j.handle]  # once, not twice
    assert j.attempt == 1  # attempt 0's folder belongs to the launch that was stopped
    (warning,) = [m for m in events(loop, jid, "warning") if "never recorded" in m]
    assert (
        warning == "attempt 0 was launched but never recorded (it was stopped); starting attempt 1"
    )


def test_a_launch_the_server_never_recorded_is_stopped_when_the_job_starts_again(
    loop: SchedulerLoop,
) -> None:
    """The server stopped between a launch and the pass's commit: the job is QUEUED, the launch
    runs, and its attempt folder says so."""
    jid = submit(loop, resources={"gpus": 1})
    ex = loop.executor
    assert isinstance(ex, MemoryExecutor)
    d = loop.settings.jobs_dir / jid / "0"
    req = LaunchRequest(
        job_id=jid, attempt=0, command="train", allocation=Allocation(), env=dict(LONG), job_dir=d
    )
    orphan = ex.launch(req)
    d.mkdir(parents=True)
    (d / "scheduler.json").write_text(json.dumps({"job_id": jid, "attempt": 0, "handle": orphan}))
    (loop.settings.jobs_dir / jid / "1").mkdir()
    (loop.settings.jobs_dir / jid / "1" / "scheduler.json").write_text('{"job_id": "x", "atte')
    loop.run_once()
    j = state(loop, jid)
    assert j.state == "RUNNING" and j.attempt == 2
    assert ex._jobs[orphan]["stopped"] == "cancelled"
    assert running_handles(loop, jid) == [j.handle]
    assert [m for m in events(loop, jid, "warning") if "never recorded" in m] == [
        "attempt 0 was launched but never recorded (it was stopped); starting attempt 1",
        "attempt 1 was launched but never recorded (no launch was found); starting attempt 2",
    ]
    record = json.loads((loop.settings.jobs_dir / jid / "2" / "scheduler.json").read_text())
    assert record["handle"] == j.handle and record["attempt"] == 2


class FindsLaunches(MemoryExecutor):
    """The in-memory executor, finding a launch's handle in its folder as the real ones do."""

    def launch(self, req: LaunchRequest) -> str:
        handle = super().launch(req)
        req.job_dir.mkdir(parents=True, exist_ok=True)
        (req.job_dir / "handle").write_text(handle)
        return handle

    def handle_in(self, job_dir: Path) -> str | None:
        path = job_dir / "handle"
        return path.read_text() if path.exists() else None


def test_a_launch_stopped_before_its_handle_was_kept_is_found_by_the_executor(
    loop: SchedulerLoop,
) -> None:
    ex = loop.executor = FindsLaunches(gpus_per_node=4, n_nodes=2)
    jid = submit(loop, resources={"gpus": 1})
    d = loop.settings.jobs_dir / jid / "0"
    req = LaunchRequest(
        job_id=jid, attempt=0, command="train", allocation=Allocation(), env=dict(LONG), job_dir=d
    )
    orphan = ex.launch(req)
    (d / "scheduler.json").write_text(json.dumps({"job_id": jid, "attempt": 0}))  # no handle
    loop.run_once()
    j = state(loop, jid)
    assert j.state == "RUNNING" and j.attempt == 1
    assert ex._jobs[orphan]["stopped"] == "cancelled"
    assert running_handles(loop, jid) == [j.handle]


def _fill_other_node(loop: SchedulerLoop, first: str) -> str:
    """A 4-GPU job on the node ``first`` is not on (the memory executor's nodes have 4 GPUs)."""
    whole = submit(loop, resources={"gpus": 4})
    loop.run_once()
    j = state(loop, whole)
    assert j.state == "RUNNING" and list(j.allocation or {}) != [first]
    return whole


def test_a_running_job_holding_a_gpu_its_node_lacks_blocks_the_node(
    loop: SchedulerLoop, caplog: pytest.LogCaptureFixture
) -> None:
    """A running job's row names GPU 7 of a 4-GPU node (the GPU fell off the bus, or the row is
    stale): the GPU it really holds looked free, and the next job was placed on it."""
    running = submit(loop, resources={"gpus": 1})
    loop.run_once()
    node = next(iter(state(loop, running).allocation or {}))
    _fill_other_node(loop, node)
    corrupt(loop, running, allocation={node: {"gpus": [7], "cpus": [0]}})
    later = submit(loop, resources={"gpus": 1})
    caplog.set_level(logging.WARNING, logger="aistack.server.services.scheduling")
    loop.run_once()
    loop.run_once()
    assert state(loop, later).state == "QUEUED"
    assert loop.errors == 0
    said = [r.getMessage() for r in caplog.records if "gets no new jobs" in r.getMessage()]
    assert said == [
        f"node {node} gets no new jobs: running jobs hold GPU(s) 7, which its inventory lacks"
    ]  # once, not once a pass


def test_two_running_jobs_holding_one_gpu_block_the_node(loop: SchedulerLoop) -> None:
    """Two running rows name GPU g of one node: the GPU the second really holds looked free."""
    first = submit(loop, resources={"gpus": 1})
    loop.run_once()
    node, a = next(iter((state(loop, first).allocation or {}).items()))
    _fill_other_node(loop, node)
    second = submit(loop, resources={"gpus": 1})
    loop.run_once()
    assert list(state(loop, second).allocation or {}) == [node]
    corrupt(loop, second, allocation={node: {"gpus": list(a["gpus"]), "cpus": [1]}})
    later = submit(loop, resources={"gpus": 1})
    loop.run_once()
    assert state(loop, later).state == "QUEUED"
    assert loop.errors == 0
