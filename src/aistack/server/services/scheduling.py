"""The scheduling loop: reads queue + cluster state from the DB, asks the pure scheduler for a
decision, applies it through the executor, and reconciles what the executor reports.

It runs in one background thread of the server. Each pass:

1. reconcile: poll every active job's handle (this is also how a restarted server re-adopts
   jobs: a live supervisor → still RUNNING; an exit record → finished; nothing → lost);
2. schedule: build ``ClusterState`` (inventory minus active allocations) and the queue, call
   ``policy.schedule``, start jobs, preempt victims, store pending reasons and start estimates;
3. monitor (every ``monitor_interval_s``): store usage samples of running jobs.

A submission wakes the loop at once (``wake()``), so submit → RUNNING does not wait a tick.

One odd job does not stop the others. A queued job whose request cannot be built (a stored spec
an upgrade no longer reads), that the policy raises on, or whose launch cannot be prepared stays
QUEUED — not failed: the cause may be the server's (a policy bug an upgrade fixes), and Slurm, too,
keeps a job it cannot run pending with a reason — with the pending reason "cannot be scheduled:
<error>; cancel it and resubmit" and a warning event, and the pass schedules the rest. A job the
policy raised on, or that could not be prepared, is left out for ``HOLD_RETRY_S``, then tried
again. An error of the pass as a whole (the policy fails on an empty queue, the executor or the DB
is down) is logged with its traceback once per distinct error, counted in /metrics
(``aistack_scheduler_errors_total``), kept in ``last_error`` and written as every queued job's
pending reason; the next pass tries again, and the first pass that works again is logged.

A start is recorded in the DB only when the pass commits. So that a job never runs twice, the
loop writes ``scheduler.json`` in the attempt's folder before it launches (and the handle after),
and when the pass fails after launching (the commit fails: disk full, the database is down), it
stops what it launched. A job whose attempt folder holds that file when it is started again was
launched but never recorded (the server stopped between the two): that launch is stopped through
its handle (kept in the file, or found by the executor in the folder: ``Executor.handle_in``) and
the job starts as the next attempt, in a folder of its own.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from aistack.compute.resources import Node
from aistack.executors.base import ExecStatus, Executor, LaunchRequest
from aistack.executors.supervisor import write_json_atomic
from aistack.scheduler.types import (
    Allocation,
    ClusterState,
    Decision,
    JobRequest,
    NodeState,
    RunningJob,
)
from aistack.server.db.models import AllocationRow, Job, NodeRow, Project, UsageSampleRow, utcnow
from aistack.server.schemas.jobs import ACTIVE_STATES
from aistack.server.services.jobs import (
    add_event,
    attempt_dir,
    max_runtime_grace_s,
    stop_grace_s,
    stop_signal_of,
    stop_words,
)
from aistack.settings import Settings

log = logging.getLogger(__name__)
HOLD_RETRY_S = 600.0  # a job the policy raised on is left out this long, then tried again
MAX_ISOLATION_CALLS = 64  # schedule() calls one pass may spend finding jobs the policy raises on
REPEAT_LOG_S = 600.0  # a pass error already logged is logged again (one line) at most this often
MAX_LOST_REQUEUES = 3  # a job lost by the machine is requeued this often before it fails
USAGE_HALF_LIFE_S = 7 * 24 * 3600.0  # fair-share decay (Slurm's PriorityDecayHalfLife default)
LAUNCH_RECORD = "scheduler.json"  # in an attempt's folder: that attempt was launched (see above)
MAX_SKIPPED_ATTEMPTS = 100  # unrecorded launches one start steps over before it gives up


def _epoch(t: dt.datetime | None) -> float:
    if t is None:
        return 0.0
    return t.replace(tzinfo=dt.UTC).timestamp() if t.tzinfo is None else t.timestamp()


def _open_allocations(s: Session, job_id: str) -> list[AllocationRow]:
    """The allocation rows of ``job_id`` that have not ended (one per node it runs on)."""
    rows = s.execute(
        select(AllocationRow).where(AllocationRow.job_id == job_id, AllocationRow.end.is_(None))
    )
    return list(rows.scalars().all())


def _unless_cancelled(reason: str | None) -> Any:
    """``failure_reason`` for a job the loop requeues or ends from a read without the cancel:
    ``reason``, unless a cancel was committed since that read; then the cancel's (request_cancel
    wrote it; None when it gave none). Decided in the UPDATE itself (the attribute is a SQL
    expression until the flush), so no cancel can come in between: the loop used to overwrite
    the cancel's reason, and the job ended "cancelled by user"."""
    return case((Job.cancel_requested.is_(True), Job.failure_reason), else_=reason)


def _from_epoch(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC).replace(tzinfo=None)


def _ended_at(st: ExecStatus, job: Job, now: dt.datetime) -> dt.datetime:
    """When the job's attempt ended: the executor's record of it (the local executor's
    ``finished_at``) when it has one between the start and ``now``, else ``now``. A job that
    ended while the server was down was stamped with the restarted server's first look: its
    runtime, attained service, usage and cost counted the downtime too."""
    t = st.finished_at
    if t is None or not math.isfinite(t):
        return now
    end = _from_epoch(t)
    if job.started_at is not None and end < job.started_at:
        return job.started_at
    return min(end, now)


def _describe(exc: BaseException) -> str:
    """``Type: message`` on one line, at most 300 characters of message."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def _signature(exc: BaseException) -> str:
    """What makes two pass errors "the same" for logging: the type, where it was raised and the
    message with its numbers blurred (a time or a count in it does not make a new error)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else "?"
    return f"{type(exc).__qualname__}@{where}: {re.sub(r'[0-9]+', 'N', str(exc))[:300]}"


def input_env(inputs: list[str]) -> dict[str, str]:
    """What a job is told of its ``inputs:`` (pinned at submit): ``AISTACK_INPUTS`` (the refs,
    comma-separated) and ``AISTACK_INPUT_<NAME>`` per dataset (``corpus@v3``; the name in capitals,
    other characters as ``_``), to read with ``aistack data get "$AISTACK_INPUT_CORPUS" DIR`` or
    ``Datasets.open(ref)``."""
    if not inputs:
        return {}
    env = {"AISTACK_INPUTS": ",".join(inputs)}
    for ref in inputs:
        name = ref.split("@", 1)[0]
        env["AISTACK_INPUT_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()] = ref
    return env


class SchedulerLoop:
    def __init__(
        self,
        *,
        settings: Settings,
        sessions: sessionmaker[Session],
        executor: Executor,
        policy: Any,
        job_env: Callable[[Job], dict[str, str]] | None = None,
        on_finish: Callable[[Job, ExecStatus], None] | None = None,
        monitors: list[Callable[[], None]] | None = None,
        lease: Any = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.executor = executor
        self.policy = policy
        self.job_env = job_env
        self.on_finish = on_finish
        self.monitors = list(monitors or [])
        # the DB's server lease (services/lease.py): no pass runs while another server holds it
        self.lease = lease
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nodes: list[Node] = []
        self._nodes_at = 0.0
        self._nodes_lock = threading.Lock()
        self._last_monitor = 0.0
        self._usage_cache: tuple[float, dict[str, float]] = (0.0, {})
        # job id -> time of its newest stored usage sample (None: none yet)
        self._last_sample_t: dict[str, float | None] = {}
        self.history: deque[dict[str, Any]] = deque(
            maxlen=1800
        )  # cluster samples for the dashboard
        self.last_pass_s = 0.0
        self.passes = 0
        self.errors = 0  # passes that failed as a whole (/metrics: aistack_scheduler_errors_total)
        # the error of the last failed pass, None once a pass works again
        self.last_error: str | None = None
        self._failed_passes = 0  # failed passes in a row
        self._failing_since = 0.0
        self._logged_errors: set[str] = set()  # signatures logged since the last pass that worked
        self._last_repeat_log = 0.0
        # queued jobs left out of the policy's queue: job id -> (pending reason, since (monotonic))
        self.held: dict[str, tuple[str, float]] = {}
        self._warned: dict[str, str] = {}  # job id or node -> the error logged for it
        self._launched: list[tuple[str, str]] = []  # (job id, handle) started in this pass
        # job id → why its engine still holds it before it runs (Slurm's PENDING reason), as
        # last told in its events
        self._engine_waits: dict[str, str] = {}
        # job id → the handle its engine was seen running or ended with by this server: its
        # start is settled (a later "starting", Slurm's requeue, leaves it alone)
        self._engine_ran: dict[str, str] = {}

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._teach_policy()
        self._thread = threading.Thread(target=self._run, name="aistack-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _teach_policy(self, limit: int = 20_000) -> None:
        """Replay finished jobs' runtimes into a learning policy (the default learns the
        service distribution per job size from what finished)."""
        observe = getattr(self.policy, "observe", None)
        if observe is None:
            return
        with self.sessions() as s:
            rows = (
                s.execute(
                    select(Job)
                    .where(Job.state == "SUCCEEDED", Job.started_at.is_not(None))
                    .order_by(Job.seq.desc())
                    .limit(limit)
                )
                .scalars()
                .all()
            )
            for j in reversed(rows):
                if j.finished_at and j.started_at:
                    try:
                        gpus = _job_gpus(j)
                    except Exception as exc:  # noqa: BLE001 - one odd stored job: not learned
                        self._warn_once(j.id, "finished job %s is not learned from", exc)
                        continue
                    observe((j.finished_at - j.started_at).total_seconds(), gpus)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.schedule_interval_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            if self.lease is not None and not self.lease.held:
                continue
            try:
                self.run_once()
            except Exception as exc:  # noqa: BLE001 - the loop must survive one bad pass
                self._pass_failed(exc)

    def _pass_failed(self, exc: BaseException) -> None:
        """Count a failed pass and log it: with its traceback the first time this error is seen
        since the last pass that worked, then one line at most every ``REPEAT_LOG_S`` (a pass runs
        every ``schedule_interval_s``: a traceback each time would flood the log)."""
        self.errors += 1
        now = time.monotonic()
        if self._failed_passes == 0:
            self._failing_since = now
        self._failed_passes += 1
        self.last_error = _describe(exc)
        key = _signature(exc)
        if key not in self._logged_errors and len(self._logged_errors) < 32:
            self._logged_errors.add(key)
            self._last_repeat_log = now
            log.error(
                "scheduling pass failed (the loop tries again every pass; this error is "
                "logged once): %s",
                self.last_error,
                exc_info=exc,
            )
        elif now - self._last_repeat_log >= REPEAT_LOG_S:
            self._last_repeat_log = now
            log.error(
                "scheduling passes still fail: %d in a row over %.0f s, the last: %s",
                self._failed_passes,
                now - self._failing_since,
                self.last_error,
            )

    def _pass_worked(self) -> None:
        if self._failed_passes:
            log.warning(
                "scheduling passes work again after %d failed over %.0f s",
                self._failed_passes,
                time.monotonic() - self._failing_since,
            )
        self._failed_passes = 0
        self.last_error = None
        self._logged_errors.clear()

    # -- one pass ----------------------------------------------------------------------------------
    def nodes(self) -> list[Node]:
        """The executor's inventory, refreshed every 30 s (the API and the loop both ask)."""
        with self._nodes_lock:
            now = time.monotonic()
            if self._nodes and now - self._nodes_at <= 30:
                return self._nodes
            self._nodes = self.executor.inventory()
            self._nodes_at = now
            try:
                self._store_nodes(self._nodes)
            except Exception:  # noqa: BLE001 - the inventory is a cache of the executor's view
                log.warning("could not store the node inventory", exc_info=True)
            return self._nodes

    def _store_nodes(self, nodes: list[Node]) -> None:
        with self.sessions() as s:
            for n in nodes:
                row = s.get(NodeRow, n.name)
                if row is None:
                    row = NodeRow(
                        name=n.name, executor=self.executor.name, cpus=n.cpus, memory_mb=n.memory_mb
                    )
                    s.add(row)
                row.executor, row.address, row.cpus, row.memory_mb = (
                    self.executor.name,
                    n.address,
                    n.cpus,
                    n.memory_mb,
                )
                row.gpus = [
                    {"index": g.index, "uuid": g.uuid, "name": g.name, "memory_mb": g.memory_mb}
                    for g in n.gpus
                ]
                row.last_seen = utcnow()
                s.flush()
            s.commit()

    def run_once(self) -> Decision | None:
        t0 = time.perf_counter()
        with self.sessions() as s:
            self.reconcile(s)
            s.commit()
            self._launched = []
            try:
                decision = self.schedule(s)
                s.commit()
            except Exception as exc:  # noqa: BLE001 - logged once, counted, shown; next pass retries
                s.rollback()
                self._stop_unrecorded_launches(exc)
                decision = None
                self._pass_failed(exc)
                self._tell_queue(s)
            else:
                self._pass_worked()
            if time.monotonic() - self._last_monitor >= self.settings.monitor_interval_s:
                self._last_monitor = time.monotonic()
                self.monitor(s)
                s.commit()
                for check in self.monitors:
                    try:
                        check()
                    except Exception:  # noqa: BLE001
                        log.exception("monitor hook failed")
        self.last_pass_s = time.perf_counter() - t0
        self.passes += 1
        return decision

    # -- reconcile ---------------------------------------------------------------------------------
    def reconcile(self, s: Session) -> None:
        active = s.execute(select(Job).where(Job.state.in_(ACTIVE_STATES))).scalars().all()
        for job in active:
            if not job.handle:
                if job.state == "CANCELLING":
                    # left by a cancel that overwrote a requeue (before that race was closed):
                    # no process to signal or wait for
                    job.state, job.finished_at = "CANCELLED", utcnow()
                    job.failure_reason = job.failure_reason or "cancelled by user"
                    add_event(s, job.id, "cancelled", f"{job.failure_reason} (no process was left)")
                    self.cancelled_off_loop(job)
                continue
            try:
                st = self.executor.poll(job.handle)
            except Exception as exc:  # noqa: BLE001
                log.warning("poll of job %s failed: %s", job.id, exc)
                continue
            moved = self._engine_start(s, job, st)
            self._engine_wait(s, job, st, moved)
            if st.final:
                self._finish(s, job, st)
            elif job.cancel_requested and job.state in ("STARTING", "RUNNING"):
                # asked while it was being started (no handle yet to signal): signal it now
                was, job.state = job.state, "CANCELLING"
                grace = self._cancel_grace(job)
                job.kill_at = utcnow() + dt.timedelta(seconds=max(0.0, grace))
                add_event(s, job.id, "cancelling", stop_words(job, grace, job.kill_at))
                try:
                    self.executor.cancel(job.handle, grace)
                except Exception as exc:  # noqa: BLE001 - tried again next pass
                    job.state = was
                    log.warning("cancel of job %s failed: %s", job.id, exc)
        # cancelled while this loop requeued it from a stale read (lost, retry, preempted): the
        # cancel stands, the job is not started again. Here, not in schedule(): this pass's
        # transaction is committed before schedule() refreshes the inventory in another session
        # The requeue kept the reason given with the cancel (see _unless_cancelled).
        requeued = select(Job.id, Job.failure_reason, Job.mlflow_run_id).where(
            Job.state == "QUEUED", Job.cancel_requested.is_(True)
        )
        for jid, asked, run_id in s.execute(requeued).all():
            why = asked or "cancelled by user"
            done = s.execute(
                update(Job)
                .where(Job.id == jid, Job.state == "QUEUED")
                .values(
                    state="CANCELLED",
                    finished_at=utcnow(),
                    pending_reason=None,
                    estimated_start=None,
                    failure_reason=why,
                )
            )
            if getattr(done, "rowcount", 0) == 1:
                add_event(s, jid, "cancelled", f"{why} (it was requeued meanwhile)")
                if run_id:
                    gone = s.get(Job, jid)
                    if gone is not None:
                        s.refresh(gone)
                        self.cancelled_off_loop(gone)

    def _engine_start(self, s: Session, job: Job, st: ExecStatus) -> str | None:
        """Keep the job's state and start to what its engine says. A job the engine holds
        before running it (Slurm's PENDING, with its reason) is STARTING, not RUNNING, until
        the engine runs it; then (or at its first final status) ``job.started_at``, the open
        allocation rows' start (its GPU-hours) and the preemption protection move to the
        engine's start (``st.started_at``), where that is later: they counted from the
        hand-over (sbatch), the time it waited in Slurm's queue included. Done once per job
        and server (the first running or final status this server sees), so a job the engine
        requeued after it ran keeps its first start. Returns words for its event when it
        moved the start, else None."""
        seen = self._engine_ran.get(job.id) == job.handle
        if st.state == "starting":
            if st.reason and job.state == "RUNNING" and not seen:
                job.state = "STARTING"
            return None
        if st.state == "running" and job.state == "STARTING":
            job.state = "RUNNING"
        if seen or job.handle is None:
            return None
        self._engine_ran[job.id] = job.handle
        t = st.started_at
        if t is None or not math.isfinite(t) or job.started_at is None:
            return None
        try:
            start = min(_from_epoch(t), utcnow())
        except (OverflowError, OSError, ValueError):  # not a time on this clock
            return None
        if start <= job.started_at:
            return None
        late = start - job.started_at
        for a in _open_allocations(s, job.id):
            if a.start is None or a.start < start:
                a.start = start
        if job.protected_until is not None:
            job.protected_until += late
        job.started_at = start
        return (
            f"since {start:%H:%M:%S} UTC, {late.total_seconds():.0f} s after the launch: its "
            "runtime and GPU-hours count from then"
        )

    def _engine_wait(self, s: Session, job: Job, st: ExecStatus, moved: str | None = None) -> None:
        """A job this server started that its engine still holds before running it (Slurm's
        PENDING: its own queue, a node still booting) is told in its events, with the engine's
        reason, each time that reason changes, and once when it starts running there (the
        reason was dropped: such a job showed RUNNING with nothing said), with ``moved``
        (:meth:`_engine_start`'s words) when its start moved."""
        said = self._engine_waits.get(job.id)
        if st.state == "starting" and st.reason and job.state in ("STARTING", "RUNNING"):
            if st.reason != said:
                self._engine_waits[job.id] = st.reason
                add_event(s, job.id, "waiting", f"{self.executor.name}: {st.reason}")
        elif said is not None or moved:
            self._engine_waits.pop(job.id, None)
            # only when it runs: a job Slurm cancelled while PENDING ends with StartTime = the
            # cancel's time, and "slurm started it" would be false (its times say the rest)
            if st.state == "running":
                add_event(
                    s,
                    job.id,
                    "running",
                    f"{self.executor.name} runs it now" + (f" ({moved})" if moved else ""),
                )

    def cancelled_off_loop(self, job: Job) -> None:
        """Tell ``on_finish`` (the MLflow run's end) of a job that became CANCELLED without a
        process that ended: cancelled while queued for a retry or after a preemption, or left
        CANCELLING with nothing to signal. Its run stayed as the last attempt left it (RUNNING
        where that process was killed) instead of ending KILLED."""
        if self.on_finish is None or job.state != "CANCELLED" or not job.mlflow_run_id:
            return
        try:
            self.on_finish(job, ExecStatus(state="cancelled", reason=job.failure_reason))
        except Exception:  # noqa: BLE001
            log.exception("on_finish hook failed for job %s", job.id)

    @staticmethod
    def _lost_requeues(s: Session, job: Job) -> int:
        from aistack.server.db.models import JobEvent

        return int(
            s.execute(
                select(func.count())
                .select_from(JobEvent)
                .where(JobEvent.job_id == job.id, JobEvent.kind == "requeued")
            ).scalar_one()
        )

    def _finish(self, s: Session, job: Job, st: ExecStatus) -> None:
        self._record_usage(s, job)  # the samples since the last monitor pass, while still open
        self._last_sample_t.pop(job.id, None)
        self._engine_ran.pop(job.id, None)
        now = _ended_at(st, job, utcnow())
        allocs = _open_allocations(s, job.id)
        for a in allocs:
            a.end = max(now, a.start) if a.start is not None else now
        self._usage_cache = (float("-inf"), {})  # the usage counts this end in the next pass
        units = max(
            1,
            (job.allocation and sum(len(v.get("gpus", [])) for v in job.allocation.values())) or 0,
        )
        if job.started_at:
            job.attained_service_s += max(0.0, (now - job.started_at).total_seconds()) * units
        preempted = st.state == "preempted" or (
            job.preempt_requested and st.state in ("cancelled", "failed")
        )
        job.exit_code = st.exit_code
        killed = self._sigkill_note(job, st)
        if preempted and not job.cancel_requested:
            job.state = "QUEUED"
            job.preempt_requested = False
            job.preempt_count += 1
            job.attempt += 1
            job.handle, job.allocation, job.started_at = None, None, None
            job.pending_reason = "requeued after preemption"
            add_event(
                s,
                job.id,
                "preempted",
                (st.reason or "preempted; requeued with its attained service kept") + killed,
                t=now,
            )
        elif st.state == "succeeded":
            job.state, job.finished_at = "SUCCEEDED", now
            # an earlier attempt's failure (kept in its events) is not this job's: cleared,
            # unless the column holds the reason of a cancel (shown as the stop reason)
            job.failure_reason = _unless_cancelled(None)
            add_event(s, job.id, "succeeded", "exit code 0", t=now)
        elif st.state == "cancelled" or job.cancel_requested:
            job.state, job.finished_at = "CANCELLED", now
            # the reason given with the cancel (request_cancel keeps it) before the executor's
            if job.cancel_requested:
                job.failure_reason = job.failure_reason or st.reason or "cancelled by user"
            else:  # a cancel committed since this pass read the job may have given one
                job.failure_reason = _unless_cancelled(st.reason or "cancelled by user")
                s.flush()  # the value the row ends with (the attribute is reloaded)
                job.failure_reason = job.failure_reason or st.reason or "cancelled by user"
            job.failure_reason = (job.failure_reason or "cancelled by user") + killed
            add_event(s, job.id, "cancelled", job.failure_reason, t=now)
        elif st.state == "timeout":
            job.state, job.finished_at = "TIMEOUT", now
            job.failure_reason = (st.reason or "exceeded max_runtime") + killed
            add_event(s, job.id, "timeout", job.failure_reason, t=now)
        elif st.state == "lost" and self._lost_requeues(s, job) < MAX_LOST_REQUEUES:
            # the machine lost the job (node gone, supervisor killed): requeue it without using
            # one of its retries, as Slurm requeues on node failure; the trainer resumes from its
            # last checkpoint
            self._nodes_at = 0.0  # refresh the inventory: the node may be gone
            job.attempt += 1
            job.state = "QUEUED"
            job.handle, job.allocation, job.started_at = None, None, None
            job.failure_reason = _unless_cancelled(st.reason)
            job.pending_reason = f"requeued after the job was lost: {(st.reason or '')[:200]}"
            add_event(s, job.id, "requeued", f"attempt {job.attempt - 1} lost: {st.reason}", t=now)
        else:  # failed, or lost too often
            reason = st.reason or f"exit code {st.exit_code}"
            if job.retries_left > 0:
                job.retries_left -= 1
                job.attempt += 1
                job.state = "QUEUED"
                job.handle, job.allocation, job.started_at = None, None, None
                job.failure_reason = _unless_cancelled(reason)
                job.pending_reason = (
                    f"retrying ({job.retries_left} retries left) after: {reason[:200]}"
                )
                add_event(
                    s, job.id, "retry", f"attempt {job.attempt - 1} {st.state}: {reason}", t=now
                )
            else:
                job.state, job.finished_at = "FAILED", now
                job.failure_reason = reason if st.state != "lost" else f"lost: {reason}"
                add_event(s, job.id, st.state, job.failure_reason, t=now)
        observe = getattr(self.policy, "observe", None)
        if observe is not None and job.state == "SUCCEEDED" and job.started_at:
            # with the job's id, a policy that learns from sibling jobs (the default with
            # ``siblings="named"``) also re-ranks the finished job's waiting siblings
            observe((now - job.started_at).total_seconds(), _job_gpus(job), job_id=job.id)
        if self.on_finish is not None:
            try:
                self.on_finish(job, st)
            except Exception:  # noqa: BLE001
                log.exception("on_finish hook failed for job %s", job.id)

    def _cancel_grace(self, job: Job) -> float:
        """The grace period of the job's cancel: the one it asked for, else the server's."""
        return stop_grace_s(job, self.settings.cancel_grace_s)

    def _sigkill_note(self, job: Job, st: ExecStatus) -> str:
        """The words "; killed with SIGKILL after the 10 s grace period: SIGTERM did not stop
        it" for an attempt that was stopped (cancel, preemption, max_runtime) and ended by SIGKILL (exit
        code -9: the executor's escalation once the grace period passed), else "". Such a job
        ended "cancelled by user" or "exceeded max_runtime" alone: that its stop signal was
        ignored, and what it was doing then lost, was not said."""
        # -9: the local and Ray executors; 137 (128 + 9): Slurm's (a shell's) way to say it
        if st.exit_code not in (-int(signal.SIGKILL), 128 + int(signal.SIGKILL)):
            return ""
        if not (
            st.state in ("cancelled", "timeout", "preempted")
            or job.cancel_requested
            or job.preempt_requested
        ):
            return ""
        if st.state == "timeout":  # the launch's grace: the job's own AISTACK_GRACE_S, if given
            grace = max_runtime_grace_s(job.spec or {}, self.settings.cancel_grace_s)
        else:
            grace = self._cancel_grace(job)
        stop = stop_signal_of(job)
        if grace <= 0:  # no time to stop: not "did not stop it"
            return f"; killed with SIGKILL at once (a grace period of 0 s after {stop})"
        return f"; killed with SIGKILL after the {grace:g} s grace period: {stop} did not stop it"

    # -- schedule ----------------------------------------------------------------------------------
    def cluster_state(self, s: Session, now: float) -> ClusterState:
        nodes = self.nodes()
        active = s.execute(select(Job).where(Job.state.in_(ACTIVE_STATES))).scalars().all()
        used_gpus: dict[str, set[int]] = {n.name: set() for n in nodes}
        used_cpus: dict[str, set[int]] = {n.name: set() for n in nodes}
        used_mem: dict[str, int] = {n.name: 0 for n in nodes}
        running = []
        # nodes not to place anything on: a running job's allocation there cannot be read (what
        # is free on them is unknown), or their inventory cannot be read
        blocked: dict[str, str] = {}
        for j in active:
            try:
                alloc = Allocation.from_dict(j.allocation)
            except Exception as exc:  # noqa: BLE001 - its nodes are left alone, not the cluster
                if not isinstance(j.allocation, dict) or not j.allocation:
                    raise  # nothing says where it runs: no placement is safe (a pass error)
                self._warn_once(
                    j.id, "job %s: its allocation cannot be read; its nodes get no new jobs", exc
                )
                for node in j.allocation:
                    blocked[str(node)] = f"the allocation of job {j.id} cannot be read"
                alloc = Allocation()
            for node, a in alloc.nodes.items():
                held = used_gpus.setdefault(node, set())
                twice = held.intersection(a.gpus)
                if twice and node not in blocked:
                    # two running jobs name one GPU (a stale or hand-edited row): which of
                    # them holds it is unknown, and preempting either would "free" it
                    blocked[node] = f"job {j.id} and another running job both hold GPU(s) " + (
                        ", ".join(str(g) for g in sorted(twice))
                    )
                held.update(a.gpus)
                used_cpus.setdefault(node, set()).update(a.cpus)
                used_mem[node] = used_mem.get(node, 0) + a.memory_mb
            spec = j.spec or {}
            running.append(
                RunningJob(
                    id=j.id,
                    project=j.project,
                    user=j.user,
                    priority=j.priority,
                    allocation=alloc,
                    start_time=_epoch(j.started_at),
                    submit_time=_epoch(j.submitted_at),
                    max_runtime_s=_max_rt(spec),
                    attained_service_s=j.attained_service_s,
                    # STARTING: handed to its engine, which holds it in its own queue
                    preemptible=bool(spec.get("preemptible", True))
                    and (j.state == "RUNNING" or (j.state == "STARTING" and bool(j.handle))),
                    protected_until=_epoch(j.protected_until),
                )
            )
        states = []
        for n in nodes:
            try:
                g_all = tuple(g.index for g in n.gpus)
                c_all = tuple(range(n.cpus))
                unknown = used_gpus.get(n.name, set()).difference(g_all)
                if unknown and n.name not in blocked:
                    # a running job holds a GPU the node's inventory does not list (it fell off
                    # the bus, or the row is stale): preempting that job would "free" a GPU
                    # that is not there, and a job placed on it would fail
                    listed = ", ".join(str(g) for g in sorted(unknown))
                    blocked[n.name] = (
                        f"running jobs hold GPU(s) {listed}, which its inventory lacks"
                    )
                if n.name in blocked:
                    self._log_once(
                        f"blocked {n.name}", "node %s gets no new jobs: %s", n.name, blocked[n.name]
                    )
                state = NodeState(
                    name=n.name,
                    gpu_type=n.gpu_type,
                    gpus_total=g_all,
                    gpus_free=frozenset(set(g_all) - used_gpus.get(n.name, set())),
                    cpus_total=c_all,
                    cpus_free=frozenset(set(c_all) - used_cpus.get(n.name, set())),
                    memory_total_mb=n.memory_mb,
                    memory_free_mb=max(0, n.memory_mb - used_mem.get(n.name, 0)),
                    schedulable=n.name not in blocked,
                )
            except Exception as exc:  # noqa: BLE001 - this node is left out, not the cluster
                self._warn_once(
                    f"node {n.name}", "%s gets no jobs: its inventory cannot be read", exc
                )
                state = NodeState(name=str(n.name), schedulable=False)
            states.append(state)
        projects = s.execute(select(Project)).scalars().all()
        quotas = {p.name: int(p.gpu_quota) for p in projects if p.gpu_quota is not None}
        shares = {p.name: float(p.share) for p in projects}
        return ClusterState(
            nodes=tuple(states),
            running=tuple(running),
            gpu_quotas=quotas,
            usage=self._usage(s, now),
            shares=shares,
        )

    def _usage(self, s: Session, now: float) -> dict[str, float]:
        """Decayed GPU-seconds (CPU-seconds for CPU-only jobs) per project and per user."""
        at, cached = self._usage_cache
        if now - at < 30:  # (dropped when an allocation starts or ends)
            return cached
        since = _from_epoch(now - 4 * USAGE_HALF_LIFE_S)
        rows = (
            s.execute(
                select(AllocationRow).where(
                    (AllocationRow.end.is_(None)) | (AllocationRow.end > since)
                )
            )
            .scalars()
            .all()
        )
        out: dict[str, float] = {}
        for a in rows:
            end = _epoch(a.end) if a.end else now
            dur = max(0.0, end - _epoch(a.start))
            units = len(a.gpus or []) or len(a.cpus or []) or 1
            w = 0.5 ** (max(0.0, now - end) / USAGE_HALF_LIFE_S)
            v = dur * units * w
            out[a.project] = out.get(a.project, 0.0) + v
            out[f"user:{a.user}"] = out.get(f"user:{a.user}", 0.0) + v
        self._usage_cache = (now, out)
        return out

    def schedule(self, s: Session) -> Decision | None:
        queued = (
            s.execute(select(Job).where(Job.state == "QUEUED").order_by(Job.seq)).scalars().all()
        )
        queued = [j for j in queued if not j.cancel_requested]  # reconcile cancels them
        if not queued and not self.policy_needs_idle_pass():
            return None
        # an executor whose cluster cannot be reached (Ray) says why and how to fix it: that,
        # not "no node can ever hold it", is why the queue waits
        unavailable = getattr(self.executor, "unavailable_reason", None)
        why = unavailable() if callable(unavailable) else None
        if why:
            for j in queued:
                if j.pending_reason != why:
                    j.pending_reason, j.estimated_start = why, None
            return None
        now = time.time()
        cluster = self.cluster_state(s, now)
        by_id = {j.id: j for j in queued}
        queue = self._requests(s, queued)
        decision = self._decide(s, queue, cluster, now, by_id)
        for st in decision.starts:
            job = by_id.get(st.job_id)
            if job is not None:
                self._start(s, job, st.allocation, backfilled=st.backfilled)
        for pre in decision.preemptions:
            victim = s.get(Job, pre.job_id)
            if victim is None or victim.state not in ("RUNNING", "STARTING") or not victim.handle:
                continue
            victim.state = "PREEMPTING"
            victim.preempt_requested = True
            # when its SIGKILL is due (the API shows it; a cancel meanwhile may bring it forward)
            grace = max(0.0, self.settings.cancel_grace_s)
            victim.kill_at = utcnow() + dt.timedelta(seconds=grace)
            add_event(
                s,
                victim.id,
                "preempting",
                f"{pre.reason}; {stop_words(victim, grace, victim.kill_at)}",
            )
            try:
                self.executor.preempt(victim.handle, self.settings.cancel_grace_s, pre.reason)
            except Exception as exc:  # noqa: BLE001
                log.warning("preempting %s failed: %s", victim.id, exc)
        for jid, p in decision.pending.items():
            job = by_id.get(jid)
            if job is None or job.state != "QUEUED":
                continue
            try:
                est = _from_epoch(p.estimated_start) if p.estimated_start else None
            except (OverflowError, OSError, ValueError, TypeError):  # not a time on this clock
                est = None
            if job.pending_reason != p.reason:
                job.pending_reason = p.reason
            if (
                est is None
                or job.estimated_start is None
                or abs((est - job.estimated_start).total_seconds()) > 1
            ):
                job.estimated_start = est
        return decision

    def policy_needs_idle_pass(self) -> bool:
        return False

    # -- jobs that cannot be scheduled -------------------------------------------------------------
    def _requests(self, s: Session, queued: Sequence[Job]) -> list[JobRequest]:
        """The policy's queue: a request per queued job, less the jobs held back (see
        ``_hold``) and those whose request cannot be built, which stay QUEUED with the reason."""
        live = {j.id for j in queued}
        for jid in [jid for jid in self.held if jid not in live]:  # started, cancelled, gone
            del self.held[jid]
        now = time.monotonic()
        queue = []
        for j in queued:
            held = self.held.get(j.id)
            if held is not None and now - held[1] < HOLD_RETRY_S:
                self._show_held(s, j, held[0])
                continue
            try:
                queue.append(_request(j))
            except Exception as exc:  # noqa: BLE001 - this job's problem, not the others'
                self._log_job_error(j.id, "its request cannot be built", exc)
                self._show_held(
                    s, j, f"cannot be scheduled: {_describe(exc)}; cancel it and resubmit"
                )
        return queue

    def _decide(
        self,
        s: Session,
        queue: list[JobRequest],
        cluster: ClusterState,
        now: float,
        by_id: dict[str, Job],
    ) -> Decision:
        """``policy.schedule``. When it raises, the job whose addition to the queue makes it
        raise is found by bisection (it works on a prefix of the queue, raises one job later),
        held back, and the rest scheduled; when it raises on an empty queue too, does not raise
        again (it failed once: the pass's error, not a job's), or after ``MAX_ISOLATION_CALLS``
        calls, the pass fails with the first error. A policy that does not
        raise is called once, with the whole queue, as before."""
        first: Exception | None = None
        calls = 0
        while True:
            try:
                return self.policy.schedule(queue, cluster, now)  # type: ignore[no-any-return]
            except Exception as exc:  # noqa: BLE001 - found out below: one job's, or the pass's
                first = first or exc
                err: Exception = exc
            if not queue:
                raise first
            lo, hi = 0, len(queue)  # the policy works on queue[:lo], raises on queue[:hi]
            try:
                calls += 1
                self.policy.schedule([], cluster, now)
            except Exception:  # noqa: BLE001 - not any job's: the pass's, raised as that
                raise first from None
            reproduced = False
            while hi - lo > 1:
                if calls >= MAX_ISOLATION_CALLS:
                    raise first
                mid = (lo + hi) // 2
                calls += 1
                try:
                    self.policy.schedule(queue[:mid], cluster, now)
                    lo = mid
                except Exception as exc:  # noqa: BLE001
                    hi, err, reproduced = mid, exc, True
            if not reproduced:  # is it the last job's, or did the policy fail once (the pass's)?
                try:
                    calls += 1
                    self.policy.schedule(queue, cluster, now)
                except Exception as exc:  # noqa: BLE001
                    err = exc
                else:
                    raise first
            bad = queue[hi - 1]
            name = getattr(self.policy, "name", None) or type(self.policy).__name__
            self._log_job_error(bad.id, f"the {name} policy raises on it", err)
            self._hold(
                s,
                by_id[bad.id],
                f"cannot be scheduled: the {name} policy fails on it ({_describe(err)}); "
                "cancel it and resubmit",
            )
            queue = queue[: hi - 1] + queue[hi:]

    def _hold(self, s: Session, job: Job, reason: str) -> None:
        """Leave ``job`` out of the policy's queue for ``HOLD_RETRY_S``; it stays QUEUED."""
        self.held[job.id] = (reason, time.monotonic())
        self._show_held(s, job, reason)

    def _show_held(self, s: Session, job: Job, reason: str) -> None:
        if job.pending_reason != reason:
            job.pending_reason, job.estimated_start = reason, None
            add_event(s, job.id, "warning", reason)

    def _log_job_error(self, jid: str, what: str, exc: BaseException) -> None:
        self._warn_once(jid, "job %s is left queued: " + what.replace("%", "%%"), exc)

    def _warn_once(self, key: str, message: str, exc: BaseException) -> None:
        """Log ``message % key`` with the error and its traceback, once per key and error (it
        is met again every pass)."""
        text = _describe(exc)
        if self._seen(key, text):
            return
        log.warning(message + ": %s", key, text, exc_info=exc)

    def _log_once(self, key: str, message: str, name: str, text: str) -> None:
        """Log ``message % (name, text)``, once per key and text (met again every pass)."""
        if not self._seen(key, text):
            log.warning(message, name, text)

    def _seen(self, key: str, text: str) -> bool:
        """Whether ``text`` was logged for ``key`` last; remembers it if not."""
        if self._warned.get(key) == text:
            return True
        if len(self._warned) >= 4096:  # oldest first: one of them is logged again, at worst
            del self._warned[next(iter(self._warned))]
        self._warned[key] = text
        return False

    def _tell_queue(self, s: Session) -> None:
        """After a failed pass: every queued job's pending reason says the scheduler fails (its
        old reason would say why it waited before), until a pass works again."""
        why = (
            f"the scheduler fails ({self.last_error}); it tries again every pass — an operator "
            "can see the error in the server's log"
        )
        try:
            for j in s.execute(select(Job).where(Job.state == "QUEUED")).scalars():
                if j.pending_reason != why and not j.cancel_requested:
                    j.pending_reason, j.estimated_start = why, None
            s.commit()
        except Exception:  # noqa: BLE001 - the pass's error is logged; this is its echo
            s.rollback()
            log.debug("could not store the pending reasons of a failed pass", exc_info=True)

    def _stop_unrecorded_launches(self, exc: BaseException) -> None:
        """The pass failed after it launched jobs: its rollback put them back in the queue, so
        what runs is stopped (the next pass starts them again, each as a new attempt)."""
        launched, self._launched = self._launched, []
        for jid, handle in launched:
            log.warning(
                "job %s was launched but the pass could not record it (%s); it is stopped and "
                "started again by a later pass",
                jid,
                _describe(exc),
            )
            try:
                self.executor.cancel(handle, self.settings.cancel_grace_s)
            except Exception as err:  # noqa: BLE001 - tried again when the job is started again
                log.warning("stopping the unrecorded launch of job %s failed: %s", jid, err)

    def _skip_unrecorded_attempts(self, s: Session, job: Job) -> None:
        """Step ``job`` past attempts that were launched but never recorded (their folder has
        ``LAUNCH_RECORD``), stopping each through the handle it kept, if any."""
        for _ in range(MAX_SKIPPED_ATTEMPTS):
            d = attempt_dir(self.settings.jobs_dir, job.id, job.attempt)
            try:
                record = json.loads((d / LAUNCH_RECORD).read_text())
            except FileNotFoundError:
                return
            except (OSError, ValueError):  # cut short by a crash: launched or not, step over it
                record = {}
            handle = record.get("handle") if isinstance(record, dict) else None
            if not (isinstance(handle, str) and handle):  # stopped before it kept the handle
                try:
                    handle = self.executor.handle_in(d)
                except Exception:  # noqa: BLE001 - then nothing says it was launched
                    handle = None
            how = "no launch was found"
            if isinstance(handle, str) and handle:
                try:
                    self.executor.cancel(handle, self.settings.cancel_grace_s)
                    how = "it was stopped"
                except Exception as exc:  # noqa: BLE001 - it may be gone already
                    how = f"stopping it failed: {_describe(exc)}"
            add_event(
                s,
                job.id,
                "warning",
                f"attempt {job.attempt} was launched but never recorded ({how}); "
                f"starting attempt {job.attempt + 1}",
            )
            job.attempt += 1
        raise RuntimeError(
            f"{MAX_SKIPPED_ATTEMPTS} attempts of the job were launched but never recorded (see "
            f"{attempt_dir(self.settings.jobs_dir, job.id, job.attempt)})"
        )

    def _start(self, s: Session, job: Job, alloc: Allocation, *, backfilled: bool) -> None:
        try:
            self._skip_unrecorded_attempts(s, job)
            req = self._launch_request(s, job, alloc)
        except Exception as exc:  # noqa: BLE001 - this job's problem: the other starts go on
            self._log_job_error(job.id, "its launch cannot be prepared", exc)
            self._hold(s, job, f"cannot be started: {_describe(exc)}; cancel it and resubmit")
            return
        now = utcnow()
        # claim the job: only one scheduling loop may start it (one server per DB is the
        # supported set-up; this keeps a second one from starting a job twice)
        # the exit code and failure of an earlier attempt (a retry, a requeue after preemption
        # or loss; its events keep them) are not this attempt's: a running job showed them.
        # A cancel's reason in the column stays (shown as the stop reason)
        claimed = s.execute(
            update(Job)
            .where(Job.id == job.id, Job.state == "QUEUED")
            .values(state="STARTING", exit_code=None, failure_reason=_unless_cancelled(None))
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]  # a CursorResult for UPDATE
            s.expire(job)
            return
        s.expire(job, ["exit_code", "failure_reason"])  # what the claim wrote
        record = req.job_dir / LAUNCH_RECORD
        try:
            req.job_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(record, {"job_id": job.id, "attempt": job.attempt, "t": time.time()})
            handle = self.executor.launch(req)
        except Exception as exc:  # noqa: BLE001
            job.state, job.finished_at = "FAILED", now
            job.failure_reason = f"the {self.executor.name} executor could not start the job: {exc}"
            add_event(s, job.id, "failed", job.failure_reason)
            return
        self._launched.append((job.id, handle))
        try:
            write_json_atomic(
                record,
                {"job_id": job.id, "attempt": job.attempt, "t": time.time(), "handle": handle},
            )
        except OSError as exc:  # the pass's commit records the handle; this is the spare copy
            log.warning("job %s: could not keep its handle in %s: %s", job.id, record, exc)
        job.handle, job.executor = handle, self.executor.name
        job.allocation = alloc.to_dict()
        job.state, job.started_at = "RUNNING", now
        job.pending_reason, job.estimated_start = None, None
        job.protected_until = _from_epoch(time.time() + self.settings.preempt_protect_s)
        # the inventory this pass scheduled on, not a refresh: a refresh stores the nodes
        # through another session, which on SQLite waits (30 s) for the write lock this
        # session holds since its claim above
        with self._nodes_lock:
            gpu_types = {n.name: n.gpu_type for n in self._nodes}
        for node, a in alloc.nodes.items():
            s.add(
                AllocationRow(
                    job_id=job.id,
                    attempt=job.attempt,
                    project=job.project,
                    user=job.user,
                    node=node,
                    gpus=list(a.gpus),
                    gpu_type=gpu_types.get(node) if a.gpus else None,
                    cpus=list(a.cpus),
                    memory_mb=a.memory_mb,
                    start=now,
                )
            )
        # the next pass's fair share counts this start (a 30 s old snapshot ordered the next
        # job of the project that just took the GPUs as if it had used nothing)
        self._usage_cache = (float("-inf"), {})
        add_event(
            s,
            job.id,
            "started",
            f"attempt {job.attempt} on {', '.join(alloc.nodes) or '-'}"
            + (" (backfilled)" if backfilled else ""),
        )

    def _launch_request(self, s: Session, job: Job, alloc: Allocation) -> LaunchRequest:
        spec = job.spec or {}
        d = attempt_dir(self.settings.jobs_dir, job.id, job.attempt)
        env = {
            "AISTACK_JOB_ID": job.id,
            "AISTACK_JOB_NAME": job.name,
            "AISTACK_PROJECT": job.project,
            "AISTACK_USER": job.user,
            "AISTACK_ATTEMPT": str(job.attempt),
            "AISTACK_GRACE_S": str(self.settings.cancel_grace_s),
            "AISTACK_HOME": str(self.settings.home),
        }
        # what the stored spec says is read before the tracking hook runs: a spec that cannot be
        # read holds the job back (see _start) without having made it an MLflow run
        inputs = input_env(spec.get("inputs") or [])
        user_env = dict(spec.get("env") or {})
        fields: dict[str, Any] = dict(
            command=spec.get("command") or spec.get("script") or "",
            workdir=spec.get("workdir"),
            max_runtime_s=_max_rt(spec),
            distributed=spec.get("distributed"),
            procs_per_node=spec.get("procs_per_node"),
            stop_signal=spec.get("stop_signal", "SIGTERM"),
        )
        env.update(inputs)
        if self.settings.storage_url:
            env["AISTACK_STORAGE_URL"] = self.settings.storage_url
        if self.settings.database_url:
            env["AISTACK_DATABASE_URL"] = self.settings.database_url
        if self.job_env is not None:
            try:
                env.update(self.job_env(job))
            except Exception as exc:  # noqa: BLE001 - tracking must not keep a job from running
                log.exception("job env hook failed for %s", job.id)
                add_event(
                    s,
                    job.id,
                    "warning",
                    f"attempt {job.attempt} starts without an MLflow run (tracking failed: "
                    f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]})",
                )
        env.update(user_env)
        return LaunchRequest(
            job_id=job.id,
            attempt=job.attempt,
            allocation=alloc,
            job_dir=d,
            env=env,
            name=job.name,
            **fields,
        )

    # -- monitor -----------------------------------------------------------------------------------
    def monitor(self, s: Session) -> None:
        running = s.execute(select(Job).where(Job.state == "RUNNING")).scalars().all()
        self._sample_cluster(running)
        for job in running:
            self._record_usage(s, job)

    def _record_usage(self, s: Session, job: Job) -> None:
        """Store the job's usage samples taken since the last stored one (all of them, not only
        the latest: a job shorter than the monitor interval keeps its samples too)."""
        if not job.handle:
            return
        if job.id in self._last_sample_t:
            after = self._last_sample_t[job.id]
        else:  # first look since this server started: the newest stored sample, once
            last = s.execute(
                select(func.max(UsageSampleRow.t)).where(UsageSampleRow.job_id == job.id)
            ).scalar_one_or_none()
            # stored times are whole microseconds: step past the stored sample itself
            after = _epoch(last) + 1e-5 if last is not None else None
            self._last_sample_t[job.id] = after
        try:
            samples = self.executor.usage_since(job.handle, after)
        except Exception:  # noqa: BLE001
            return
        if not samples:
            return
        self._last_sample_t[job.id] = max(u.t for u in samples)
        allocs = _open_allocations(s, job.id)
        # a sample is the whole job's (all its nodes): stored once (it was once per node, so a
        # 2-node job's chart and MLflow system metrics had every point twice), and its CPU use
        # spread over all the job's cores
        cores = max(1, sum(len(a.cpus or []) for a in allocs))
        for u in samples:
            if allocs:
                s.add(
                    UsageSampleRow(
                        allocation_id=allocs[0].id,
                        job_id=job.id,
                        t=_from_epoch(u.t),
                        cpu_percent=u.cpu_percent,
                        rss_mb=u.rss_mb,
                        gpu_util=u.gpu_util,
                        gpu_mem_mb=u.gpu_mem_mb,
                    )
                )
            for a in allocs:
                n = a.samples
                # percent of the job's cores; its processes can briefly use more (children off
                # the affinity mask, sampling jitter): the allocation is then 100 % used
                used = min(100.0, u.cpu_percent / cores)
                a.cpu_util_avg = ((a.cpu_util_avg or 0.0) * n + used) / (n + 1)
                if u.gpu_util is not None:
                    a.gpu_util_avg = ((a.gpu_util_avg or 0.0) * n + u.gpu_util) / (n + 1)
                    a.gpu_mem_max_mb = max(a.gpu_mem_max_mb or 0.0, u.gpu_mem_mb or 0.0)
                a.rss_max_mb = max(a.rss_max_mb or 0.0, u.rss_mb)
                a.samples = n + 1

    def _sample_cluster(self, running: Sequence[Job]) -> None:
        nodes = self.nodes()
        gpus = sum(len(n.gpus) for n in nodes)
        cpus = sum(n.cpus for n in nodes)
        g_alloc = sum(
            len(a.get("gpus", [])) for j in running for a in (j.allocation or {}).values()
        )
        c_alloc = sum(
            len(a.get("cpus", [])) for j in running for a in (j.allocation or {}).values()
        )
        sample: dict[str, Any] = {
            "t": dt.datetime.now(dt.UTC).isoformat(),
            "running_jobs": len(running),
            "gpus_allocated_percent": 100.0 * g_alloc / gpus if gpus else None,
            "cpus_allocated_percent": 100.0 * c_alloc / cpus if cpus else None,
        }
        if self.executor.name == "local":
            from aistack.compute.inventory import live_utilization

            live = live_utilization()
            g = [x["util_percent"] for x in live["gpus"] if x["util_percent"] is not None]
            sample.update(
                cpu_percent=live["cpu_percent"],
                memory_used_mb=live["memory_used_mb"],
                memory_total_mb=live["memory_total_mb"],
                gpu_percent=sum(g) / len(g) if g else None,
            )
        self.history.append(sample)


def _job_gpus(j: Job) -> int:
    r = (j.spec or {}).get("resources") or {}
    return int(r.get("gpus", 0) or 0) * int(r.get("nodes", 1) or 1)


def _max_rt(spec: dict[str, Any]) -> float | None:
    from aistack.spec import parse_duration_s

    try:
        return parse_duration_s(spec.get("max_runtime"))
    except Exception:  # noqa: BLE001
        return None


def _request(j: Job) -> JobRequest:
    spec = j.spec or {}
    r = spec.get("resources") or {}
    from aistack.compute.resources import parse_memory_mb

    return JobRequest(
        id=j.id,
        project=j.project,
        user=j.user,
        priority=j.priority,
        submit_time=_epoch(j.submitted_at),
        gpus=int(r.get("gpus", 0) or 0),
        gpu_type=r.get("gpu_type"),
        cpus=int(r.get("cpus", 1) or 1),
        memory_mb=parse_memory_mb(r.get("memory")) or 0,
        nodes=int(r.get("nodes", 1) or 1),
        max_runtime_s=_max_rt(spec),
        attained_service_s=j.attained_service_s,
        preemptible=bool(spec.get("preemptible", True)),
    )
