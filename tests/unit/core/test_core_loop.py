"""The scheduling loop against the DB with the in-memory executor (no processes)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from aistack.executors.memory import MemoryExecutor
from aistack.scheduler import get_policy
from aistack.server.db.models import AllocationRow, Job, Project
from aistack.server.services.jobs import submit_job
from aistack.server.services.scheduling import SchedulerLoop
from aistack.settings import Settings
from aistack.testing.loop import scheduler_loop


@pytest.fixture
def loop(tmp_path: Path) -> SchedulerLoop:
    settings = Settings(home=tmp_path, executor="memory", mlflow_enabled=False)
    ex = MemoryExecutor(gpus_per_node=4, n_nodes=2)
    return scheduler_loop(settings, ex)


def submit(loop: SchedulerLoop, **spec) -> str:  # type: ignore[no-untyped-def]
    spec.setdefault("command", "train")
    with loop.sessions() as s:
        job = submit_job(s, spec, nodes=loop.nodes())
        s.commit()
        return job.id


def state(loop: SchedulerLoop, jid: str) -> Job:
    with loop.sessions() as s:
        return s.get(Job, jid)  # type: ignore[return-value]


def test_gang_all_or_nothing_and_pending_reason(loop: SchedulerLoop) -> None:
    a = submit(loop, resources={"gpus": 3}, env={"AISTACK_FAKE_DURATION_S": "60"})
    b = submit(loop, resources={"gpus": 3}, env={"AISTACK_FAKE_DURATION_S": "60"})
    c = submit(loop, resources={"gpus": 4, "nodes": 2}, env={"AISTACK_FAKE_DURATION_S": "60"})
    loop.run_once()
    ja, jb, jc = state(loop, a), state(loop, b), state(loop, c)
    assert ja.state == "RUNNING" and jb.state == "RUNNING"
    assert {next(iter(ja.allocation)), next(iter(jb.allocation))} == {"mem0", "mem1"}  # type: ignore[arg-type]
    assert jc.state == "QUEUED"
    assert jc.allocation is None
    assert "4 GPU" in (jc.pending_reason or "") or "GPUs" in (jc.pending_reason or "")


def test_packing_fewest_nodes(loop: SchedulerLoop) -> None:
    ids = [
        submit(loop, resources={"gpus": 1}, env={"AISTACK_FAKE_DURATION_S": "60"}) for _ in range(4)
    ]
    loop.run_once()
    nodes = {next(iter(state(loop, j).allocation or {})) for j in ids}
    assert len(nodes) == 1  # four 1-GPU jobs packed on one 4-GPU node


def test_quota_blocks_with_reason(loop: SchedulerLoop) -> None:
    with loop.sessions() as s:
        s.add(Project(name="research", gpu_quota=2))
        s.commit()
    a = submit(
        loop, project="research", resources={"gpus": 2}, env={"AISTACK_FAKE_DURATION_S": "60"}
    )
    b = submit(
        loop, project="research", resources={"gpus": 1}, env={"AISTACK_FAKE_DURATION_S": "60"}
    )
    c = submit(loop, project="other", resources={"gpus": 1}, env={"AISTACK_FAKE_DURATION_S": "60"})
    loop.run_once()
    assert state(loop, a).state == "RUNNING"
    jb = state(loop, b)
    assert jb.state == "QUEUED" and "quota" in (jb.pending_reason or "")
    assert state(loop, c).state == "RUNNING"


def test_finish_retry_and_allocation_records(loop: SchedulerLoop) -> None:
    ok = submit(loop, resources={"gpus": 1})
    bad = submit(loop, resources={"gpus": 1}, retries=1, env={"AISTACK_FAKE_EXIT_CODE": "3"})
    loop.run_once()
    time.sleep(0.01)
    loop.run_once()  # reconcile: ok → SUCCEEDED, bad → retried
    assert state(loop, ok).state == "SUCCEEDED"
    jb = state(loop, bad)
    assert jb.attempt == 1 and jb.retries_left == 0
    for _ in range(3):
        loop.run_once()
    jb = state(loop, bad)
    assert jb.state == "FAILED" and jb.exit_code == 3 and "exit code 3" in (jb.failure_reason or "")
    with loop.sessions() as s:
        rows = s.query(AllocationRow).filter(AllocationRow.job_id == bad).all()
        assert len(rows) == 2 and all(r.end is not None for r in rows)
        assert [r.attempt for r in rows] == [0, 1]


def test_a_failing_tracking_hook_starts_the_job_and_says_so(loop: SchedulerLoop) -> None:
    from sqlalchemy import select

    from aistack.server.db.models import JobEvent

    def broken(job: Job) -> dict[str, str]:
        raise RuntimeError("MLflow answered 401: missing or wrong API token")

    loop.job_env = broken
    jid = submit(loop, env={"AISTACK_FAKE_DURATION_S": "60"})
    loop.run_once()
    assert state(loop, jid).state == "RUNNING"  # tracking is not a reason to hold a job
    with loop.sessions() as s:
        events = s.execute(select(JobEvent).where(JobEvent.job_id == jid)).scalars().all()
    [w] = [e for e in events if e.kind == "warning"]
    assert "starts without an MLflow run" in w.message and "401" in w.message


def test_cancel_with_a_stale_queued_view_cancels_the_started_job(loop: SchedulerLoop) -> None:
    """The API read the job while QUEUED; the scheduler started it before the cancel was
    written. The cancel must reach the running job, not mark it 'cancelled while queued' and
    leave its processes running."""
    from aistack.server.services.jobs import request_cancel

    jid = submit(loop, env={"AISTACK_FAKE_DURATION_S": "60"})
    api = loop.sessions()
    stale = api.get(Job, jid)
    assert stale is not None and stale.state == "QUEUED"
    loop.run_once()  # started meanwhile, by the scheduler's own session
    assert state(loop, jid).state == "RUNNING"
    job = request_cancel(api, stale, loop.executor, 1.0)
    api.commit()
    assert job.state == "CANCELLING" and job.failure_reason is None
    loop.run_once()
    j = state(loop, jid)
    assert j.state == "CANCELLED" and j.failure_reason != "cancelled by user while queued"
    api.close()


def test_starting_a_job_does_not_refresh_the_inventory_inside_its_transaction(
    loop: SchedulerLoop,
) -> None:
    """A refresh stores the nodes through another session; on SQLite that waited 30 s for the
    write lock the starting pass holds (the server stalled, 'database is locked')."""
    real = loop.nodes
    calls = {"n": 0}

    def nodes_then_expire():  # type: ignore[no-untyped-def]
        out = real()
        calls["n"] += 1
        loop._nodes_at = -1e9  # the 30 s cache runs out right after the pass read it
        return out

    loop.nodes = nodes_then_expire  # type: ignore[method-assign]
    jid = submit(loop, resources={"gpus": 1}, env={"AISTACK_FAKE_DURATION_S": "60"})
    t0 = time.monotonic()
    loop.run_once()
    assert time.monotonic() - t0 < 10
    assert state(loop, jid).state == "RUNNING"
    with loop.sessions() as s:
        [row] = s.execute(select(AllocationRow).where(AllocationRow.job_id == jid)).scalars()
        assert row.gpus and row.gpu_type is not None


def test_cancel_with_a_stale_running_view_of_a_requeued_job_cancels_it(
    loop: SchedulerLoop,
) -> None:
    """The API read the job while RUNNING; the loop found it lost and requeued it before the
    cancel was written. The cancel wrote CANCELLING over the requeue (no handle, nothing to
    signal): the job stayed CANCELLING for ever. It must end CANCELLED."""
    from aistack.server.services.jobs import request_cancel

    jid = submit(loop, env={"AISTACK_FAKE_DURATION_S": "60"})
    loop.run_once()
    api = loop.sessions()
    stale = api.get(Job, jid)
    assert stale is not None and stale.state == "RUNNING" and stale.handle
    loop.executor._jobs.pop(stale.handle)  # type: ignore[attr-defined]  # the supervisor is gone
    with loop.sessions() as s:  # only the reconcile step: the job is requeued, not restarted
        loop.reconcile(s)
        s.commit()
    assert state(loop, jid).state == "QUEUED"
    job = request_cancel(api, stale, loop.executor, 1.0)
    api.commit()
    api.close()
    assert job.state == "CANCELLED"
    loop.run_once()
    j = state(loop, jid)
    assert j.state == "CANCELLED" and j.finished_at is not None and j.attempt == 1


def test_a_job_the_loop_requeues_from_a_stale_read_after_a_cancel_is_not_restarted(
    loop: SchedulerLoop,
) -> None:
    """The loop read the job RUNNING (not cancel-requested); the cancel was committed and its
    signal killed the supervisor; the loop's stale read took that for a lost job and requeued
    it. The cancel stands: the loop cancels it instead of starting it again."""
    from aistack.server.db.models import JobEvent
    from aistack.server.services.jobs import request_cancel

    jid = submit(loop, env={"AISTACK_FAKE_DURATION_S": "60"})
    loop.run_once()
    with loop.sessions() as s:
        stale = s.get(Job, jid)  # the loop's view, before the cancel
        assert stale is not None and not stale.cancel_requested
        handle = stale.handle
        with loop.sessions() as api:
            request_cancel(api, api.get(Job, jid), loop.executor, 1.0)
            api.commit()
        loop.executor._jobs.pop(handle)  # type: ignore[attr-defined]  # died without an exit record
        loop.reconcile(s)  # requeues it from its stale view, then finds the cancel
        s.commit()
    loop._nodes_at = -1e9  # the pass refreshes the inventory: not while it holds the write lock
    t0 = time.monotonic()
    loop.run_once()
    assert time.monotonic() - t0 < 10
    j = state(loop, jid)
    assert j.state == "CANCELLED" and j.attempt == 1
    with loop.sessions() as s:
        kinds = [
            e.kind for e in s.execute(select(JobEvent).where(JobEvent.job_id == jid)).scalars()
        ]
    assert kinds.count("started") == 1, kinds


def test_a_cancelling_job_without_a_process_is_finished(loop: SchedulerLoop) -> None:
    """Such a job (CANCELLING, no handle) was left by the cancel/requeue race in existing DBs:
    the loop skipped it for ever."""
    jid = submit(loop)
    with loop.sessions() as s:
        job = s.get(Job, jid)
        assert job is not None
        job.state, job.cancel_requested, job.attempt = "CANCELLING", True, 1
        s.commit()
    loop.run_once()
    j = state(loop, jid)
    assert j.state == "CANCELLED" and j.finished_at is not None


def test_a_retried_job_that_succeeds_shows_no_failure_reason(loop: SchedulerLoop) -> None:
    """The failure of an earlier attempt stays in the job's events; the job that then
    succeeded has no failure reason (the API showed the first attempt's)."""
    from aistack.server.db.models import JobEvent
    from aistack.server.services.jobs import to_public

    ex = loop.executor
    launch = ex.launch

    def second_attempt_succeeds(req):  # type: ignore[no-untyped-def]
        if req.attempt >= 1:
            req.env = {**req.env, "AISTACK_FAKE_EXIT_CODE": "0"}
        return launch(req)

    ex.launch = second_attempt_succeeds  # type: ignore[method-assign]
    jid = submit(loop, retries=1, env={"AISTACK_FAKE_EXIT_CODE": "3"})
    for _ in range(6):
        loop.run_once()
        time.sleep(0.01)
    job = state(loop, jid)
    assert (job.state, job.attempt, job.exit_code) == ("SUCCEEDED", 1, 0)
    assert job.failure_reason is None
    pub = to_public(job)
    assert (pub.failure_reason, pub.stop_reason) == (None, None)
    with loop.sessions() as s:
        events = s.execute(select(JobEvent).where(JobEvent.job_id == jid)).scalars().all()
        assert any("exit code 3" in (e.message or "") for e in events)  # kept in the events


def test_sibling_probes_in_the_scheduling_loop(tmp_path: Path) -> None:
    # the default with siblings="named" and probes, driven by the server's loop (queue in
    # submit order, sorted every pass): the second GPU goes to another user's later job,
    # not to the probe's sibling, and the probe's runtime reaches the policy with its id
    history = [(3600.0 + 72.0 * i, 1) for i in range(100)]  # learned: jobs run 1–3 h
    fast = {"AISTACK_FAKE_DURATION_S": "0.2"}
    slow = {"AISTACK_FAKE_DURATION_S": "600"}

    def make(home: Path, **opts) -> SchedulerLoop:  # type: ignore[no-untyped-def]
        settings = Settings(home=home, executor="memory", mlflow_enabled=False)
        return scheduler_loop(
            settings,
            MemoryExecutor(gpus_per_node=1, n_nodes=2),
            get_policy("default", history=history, siblings="named", **opts),
        )

    def sweep_then_bob(lp: SchedulerLoop, n: int) -> tuple[list[str], str]:
        a = [submit(lp, resources={"gpus": 1}, project="sweep", env=fast) for _ in range(n)]
        with lp.sessions() as s:
            b = submit_job(s, {"command": "x", "resources": {"gpus": 1}, "env": slow}, user="bob")
            s.commit()
            return a, b.id

    lp = make(tmp_path / "probes", sibling_hold=1.0)
    a, b = sweep_then_bob(lp, 3)
    lp.run_once()
    running = {j for j in [*a, b] if state(lp, j).state == "RUNNING"}
    assert running == {a[0], b}  # a[0] is the probe; a[1], a[2] wait for what it shows
    time.sleep(0.3)
    lp.run_once()  # a[0] finished: its siblings are ranked from its runtime, a[1] starts
    assert state(lp, a[0]).state == "SUCCEEDED"
    assert state(lp, a[1]).state == "RUNNING" and state(lp, a[2]).state == "QUEUED"
    assert lp.policy._gsorted  # type: ignore[attr-defined]  # learned with the job's id
    assert lp.policy.take_rekeyed() == set()  # type: ignore[attr-defined]  # nothing kept

    # without probes the sweep's jobs take both GPUs in submit order
    plain = make(tmp_path / "plain")
    a, b = sweep_then_bob(plain, 2)
    plain.run_once()
    assert {j for j in [*a, b] if state(plain, j).state == "RUNNING"} == set(a)


def test_a_gpu_type_in_words_of_the_drivers_name_is_submitted_and_placed(tmp_path: Path) -> None:
    # "H100" on nodes whose driver says "NVIDIA H100 80GB HBM3": the submit check accepted
    # it (a part of the name) and the scheduler, comparing whole names, never placed it
    from aistack.compute.resources import GpuDevice, Node

    def node(name: str, gpu: str) -> Node:
        gpus = tuple(
            GpuDevice(index=g, uuid=f"GPU-{name}-{g}", name=gpu, memory_mb=80 * 1024)
            for g in range(4)
        )
        return Node(name=name, cpus=8, memory_mb=64 * 1024, gpus=gpus)

    settings = Settings(home=tmp_path, executor="memory", mlflow_enabled=False)
    nodes = [node("a100", "NVIDIA A100-SXM4-80GB"), node("h100", "NVIDIA H100 80GB HBM3")]
    loop = scheduler_loop(settings, MemoryExecutor(nodes))
    dur = {"AISTACK_FAKE_DURATION_S": "60"}
    h = submit(loop, resources={"gpus": 2, "gpu_type": "H100"}, env=dur)
    a = submit(loop, resources={"gpus": 4, "gpu_type": "a100 80gb"}, env=dur)
    loop.run_once()
    assert state(loop, h).state == "RUNNING"
    assert list(state(loop, h).allocation or {}) == ["h100"]
    assert state(loop, a).state == "RUNNING"
    assert list(state(loop, a).allocation or {}) == ["a100"]
