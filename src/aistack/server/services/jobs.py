"""Job operations on the metadata DB: submit, list, get, cancel, logs. The scheduling loop
(services/scheduling.py) moves jobs between states; these functions never start processes."""

from __future__ import annotations

import datetime as dt
import getpass
import logging
import os
import socket
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from aistack.compute.resources import Node
from aistack.errors import ConflictError, NotFoundError, ValidationError, short_repr
from aistack.server.db.models import Counter, Job, JobEvent, Project, utcnow
from aistack.server.schemas.jobs import ACTIVE_STATES, FINAL_STATES, JobPublic, LogChunk
from aistack.spec import (
    DEFAULT_GRACE_S,
    GRACE_ENV,
    JobSpec,
    check_feasible,
    grace_s_from_env,
    parse_duration_s,
    parse_spec,
)

log = logging.getLogger(__name__)
JOB_ID_MAX = 32  # the length of the jobs.id column (db.models.Job: String(32))


def _next_seq(session: Session) -> int:
    row = session.execute(
        update(Counter)
        .where(Counter.name == "job")
        .values(value=Counter.value + 1)
        .returning(Counter.value)
    ).scalar_one_or_none()
    if row is None:
        session.add(Counter(name="job", value=1))
        session.flush()
        return 1
    return int(row)


def add_event(
    session: Session, job_id: str, kind: str, message: str = "", *, t: dt.datetime | None = None
) -> None:
    """Record an event of the job, at ``t`` (naive UTC; default: now)."""
    session.add(JobEvent(job_id=job_id, kind=kind, message=message, t=t or utcnow()))


def submit_job(
    session: Session,
    spec: JobSpec | dict[str, Any],
    *,
    nodes: list[Node] | None = None,
    user: str | None = None,
    datasets: Any | None = None,
) -> Job:
    """Validate and store a job (state QUEUED). Raises ValidationError naming the field."""
    spec = parse_spec(spec)
    if nodes is not None:
        check_feasible(spec, nodes)
    job_id = uuid.uuid4().hex[:12]
    if spec.inputs:
        if datasets is None:
            raise ValidationError(
                "inputs: dataset versions were given but the storage layer is not available",
                hint="install aistack with its default dependencies, or remove `inputs`",
            )
        # pinned now (NotFoundError with a hint for unknown refs): `corpus@latest` is the version
        # that was latest at submit, the one lineage records and the job is told to read
        pinned = []
        for i, ref in enumerate(spec.inputs):
            try:
                pinned.append(datasets.resolve(ref).ref)
            except (ValidationError, NotFoundError) as exc:
                # the storage layer's message names the reference, not where it was given
                # ("dataset reference is empty"): say which of the inputs it is
                raise type(exc)(
                    f"inputs.{i}: {exc.message}",
                    hint=exc.hint,
                    **{**exc.details, "field": f"inputs.{i}"},
                ) from None
        spec = spec.model_copy(update={"inputs": pinned})
    seq = _next_seq(session)
    job = Job(
        id=job_id,
        seq=seq,
        name=spec.name,
        project=spec.project,
        user=spec.user or user or _default_user(),
        kind=spec.kind,
        spec=spec.model_dump(mode="json"),
        state="QUEUED",
        priority=spec.priority,
        retries_left=spec.retries,
        attempt=0,
        submitted_at=utcnow(),
        pending_reason="waiting for the scheduler",
    )
    session.add(job)
    session.flush()
    add_event(session, job_id, "submitted", f"queued with priority {spec.priority}")
    return job


def check_workdir(spec: JobSpec, executor: str) -> None:
    """Refuse at submit a ``workdir`` the job cannot start in, where that can be seen: with the
    local executor the job runs on this host, from this process's folder (a relative path is
    taken from it), so a folder missing here failed the job at its start ("exit code 1"). The
    Ray and Slurm executors run jobs on other hosts, whose folders this host may not see: left
    to the job (it fails saying the folder is missing there)."""
    wd = spec.workdir
    if executor != "local" or not wd:
        return
    p = Path(wd)
    if p.is_dir():
        if os.access(p, os.X_OK):
            return
        why, fix = "is a folder this server's user cannot enter", "give it access (chmod u+x)"
    elif p.exists():
        why, fix = "is not a folder", "give the folder the job runs in"
    else:
        why, fix = "does not exist", "create it, or give a folder that exists"
    tilde = "; '~' is not expanded here: give the full path" if wd.startswith("~") else ""
    raise ValidationError(
        f"workdir: {wd!r} {why} on {socket.gethostname()}, where the local executor runs jobs",
        hint=f"{fix}{tilde}",
        field="workdir",
    )


def link_inputs(datasets: Any, job: Job) -> None:
    """Reference the job's input dataset versions (gc keeps them) and record lineage.
    Call after the job is committed: the catalog may share the SQLite file, and SQLite has one
    writer at a time."""
    inputs = list((job.spec or {}).get("inputs") or [])
    if not inputs or datasets is None:
        return
    for ref in inputs:
        datasets.add_reference(ref, "job", job.id)
    datasets.record_lineage(inputs=inputs, job_id=job.id, outputs=[])


def _default_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return "default"


def get_job(session: Session, job_id: str, *, param: str = "job_id") -> Job:
    """The job with this id, or the only one whose id starts with it. ``param``: the request
    parameter that gave it, named by the error for an ambiguous prefix."""
    if len(job_id) > JOB_ID_MAX:
        # no id is that long; a LIKE pattern of over 50,000 bytes is an error in SQLite
        # ("LIKE or GLOB pattern too complex": a 500), and the message would echo all of it
        raise NotFoundError(
            f"{param}: no job has an id of {len(job_id)} characters ({job_id[:40]!r}...)",
            hint=f"job ids have at most {JOB_ID_MAX} characters; list jobs with "
            "`aistack jobs --all`",
            field=param,
        )
    job = session.get(Job, job_id) if job_id else None
    if job is None and job_id:
        # allow unique prefixes, as git does; the id is a literal prefix (% and _ escaped)
        pattern = job_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = (
            session.execute(select(Job).where(Job.id.like(pattern, escape="\\")).limit(2))
            .scalars()
            .all()
        )
        if len(rows) == 1:
            return rows[0]
        if len(rows) > 1:
            raise ValidationError(
                f"{param}: the prefix {job_id!r} is ambiguous: it matches several jobs",
                hint="give more characters of the id",
                field=param,
            )
    if job is None:
        # a page's ``before`` says so: "job 'x' not found" read as the listing's own error
        where = "" if param == "job_id" else f"{param}: "
        raise NotFoundError(
            f"{where}job {job_id!r} not found", hint="list jobs with `aistack jobs --all`"
        )
    return job


def list_jobs(
    session: Session,
    *,
    states: list[str] | None = None,
    project: str | None = None,
    include_finished: bool = True,
    limit: int = 500,
    before: str | None = None,
) -> list[Job]:
    """Newest first. ``before`` (a job id) pages on: only jobs submitted before that one, so a
    page never repeats or skips a job when new ones are submitted between two calls."""
    q = select(Job)
    if before:
        q = q.where(Job.seq < get_job(session, before, param="before").seq)
    if states:
        wanted = [s.strip().upper() for s in states]
        unknown = [s for s, w in zip(states, wanted, strict=True) if w not in ALL_STATES]
        if unknown:
            raise ValidationError(
                f"state: unknown state {', '.join(repr(s) for s in unknown)}",
                hint="use one of " + ", ".join(sorted(ALL_STATES)),
            )
        q = q.where(Job.state.in_(wanted))
    elif not include_finished:
        q = q.where(Job.state.not_in(FINAL_STATES))
    if project:
        q = q.where(Job.project == project)
    q = q.order_by(Job.seq.desc()).limit(limit)
    return list(session.execute(q).scalars())


def count_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.state, func.count()).group_by(Job.state)).all()
    return {s: int(n) for s, n in rows}


def stop_signal_of(job: Job) -> str:
    """The signal a stop (cancel, preemption, max_runtime) sends the job first."""
    return str((job.spec or {}).get("stop_signal") or "SIGTERM")


def stop_words(job: Job, grace_s: float, kill_at: dt.datetime | None = None) -> str:
    """A cancel's event text: "SIGTERM, then SIGKILL after 10 s" (with ``kill_at``, naive
    UTC: "..., at 12:00:05 UTC")."""
    at = f", at {clock(kill_at)}" if kill_at is not None else ""
    return f"{stop_signal_of(job)}, then SIGKILL after {grace_s:g} s{at}"


def clock(t: dt.datetime) -> str:
    """A naive-UTC time as "12:00:05 UTC" (the date too when it is not today's)."""
    now = utcnow()
    fmt = "%H:%M:%S" if t.date() == now.date() else "%Y-%m-%d %H:%M:%S"
    return t.strftime(fmt) + " UTC"


def kill_words(kill_at: dt.datetime, now: dt.datetime) -> str:
    """ "SIGKILL at 12:00:05 UTC (in 55 s)" / "(due now)", for a stopping job."""
    left = (kill_at - now).total_seconds()
    when = f"in {left:.0f} s" if left >= 0.5 else "due now"
    return f"SIGKILL at {clock(kill_at)} ({when})"


def _later(now: dt.datetime, seconds: float) -> dt.datetime:
    return now + dt.timedelta(seconds=max(0.0, float(seconds)))


def check_project(session: Session, name: str, *, required: bool) -> None:
    """With ``required`` (``AISTACK_REQUIRE_PROJECTS``), a project other than ``default`` must
    have been created (``aistack projects set NAME``): a ValidationError naming the closest
    existing projects otherwise. Without it a project is whatever a job names (no row: no
    quota, share 1)."""
    if not required or name == "default" or session.get(Project, name) is not None:
        return
    import difflib

    known = sorted(session.execute(select(Project.name)).scalars())
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    maybe = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValidationError(
        f"project: {name!r} does not exist (this server requires projects to be created, "
        f"AISTACK_REQUIRE_PROJECTS){maybe}",
        hint=f"create it with `aistack projects set {name}` (an admin's choice: it sets the "
        "project's quota and share), or submit to an existing project",
        field="project",
    )


def request_cancel(
    session: Session,
    job: Job,
    executor: Any,
    grace_s: float,
    *,
    reason: str | None = None,
    default_grace_s: float | None = None,
) -> Job:
    """:func:`cancel_job` without its answer's words."""
    return cancel_job(
        session, job, executor, grace_s, reason=reason, default_grace_s=default_grace_s
    )[0]


def cancel_job(
    session: Session,
    job: Job,
    executor: Any,
    grace_s: float,
    *,
    reason: str | None = None,
    default_grace_s: float | None = None,
) -> tuple[Job, str]:
    """Cancel ``job``: (the job, one line saying what happened and when the SIGKILL is due,
    for the API's answer). ``reason``: why the job is stopped (a service's controller says
    "scaled down by the autoscaler …"); without one it ends "cancelled by user". Stored in
    the job's ``failure_reason`` column; the API shows it as ``stop_reason`` (and, for a job
    that ends CANCELLED, as its ``failure_reason`` too; see :func:`to_public`). A second
    cancel keeps the first one's reason.

    The SIGKILL deadline (``job.kill_at``) follows the executors' rule for a second stop: the
    first one's stands, a later cancel may bring it forward, never postpone it. A cancel of a
    job already CANCELLING with a shorter grace period is passed to the executor (it was
    dropped: ``cancel --grace 2`` after ``--grace 60`` waited the 60 s) and the event says the
    new time; one with a longer or equal grace changes nothing, and its event and answer say
    the first deadline stands. A cancel of a job being preempted (PREEMPTING: it already got
    its stop signal) makes it end cancelled, with the preemption's deadline or this one's,
    whichever is sooner; its event says so (it read "SIGTERM, then SIGKILL after 0 s").
    ``default_grace_s``: the server's grace period (the preemption's; the API passes
    AISTACK_CANCEL_GRACE_S), to tell the grace the job finally got."""
    # every write is conditional on the state (and attempt) this session read: the scheduling
    # loop may have started, requeued or finished the job since; then decide again on a fresh
    # read (an unconditional write put a requeued job back to CANCELLING with no process to
    # signal: it stayed CANCELLING for ever)
    for _ in range(10):
        if job.state in FINAL_STATES:
            raise ConflictError(f"job {job.id} is already {job.state}", hint="nothing to cancel")
        if job.state == "QUEUED":
            # cancelled before, then requeued from a stale read (the loop ends it): the first
            # cancel's reason stands
            first = job.failure_reason if job.cancel_requested else None
            res = session.execute(
                update(Job)
                .where(Job.id == job.id, Job.state == "QUEUED")
                .values(
                    state="CANCELLED",
                    finished_at=utcnow(),
                    pending_reason=None,
                    failure_reason=first or reason or "cancelled by user while queued",
                )
            )
            session.refresh(job)
            if getattr(res, "rowcount", 0) == 1:
                add_event(
                    session,
                    job.id,
                    "cancelled",
                    "cancelled while queued" + (f": {reason}" if reason else ""),
                )
                return job, "cancelled while queued: it never ran"
            continue
        if job.state in ("CANCELLING", "PREEMPTING") and job.handle:
            done = _cancel_stopping(session, job, executor, grace_s, reason, default_grace_s)
            if done is None:
                continue
            return job, done
        if job.cancel_requested and job.cancel_grace_s is not None:
            # asked before it had a handle and not signalled yet: the shorter of the two grace
            # periods (none has started: the stop signal is sent once the job has a handle)
            grace_s = min(float(grace_s), job.cancel_grace_s)
        handle = job.handle
        signal = job.state in ACTIVE_STATES and bool(handle)
        now = utcnow()
        kill_at = _later(now, grace_s)
        # the reason the job will end with (_finish keeps it): this cancel's, or the first one's
        why: dict[str, Any] = {"cancel_grace_s": float(grace_s)}
        if not job.cancel_requested:
            why["failure_reason"] = reason
        res = session.execute(
            update(Job)
            .where(Job.id == job.id, Job.state == job.state, Job.attempt == job.attempt)
            .values(
                cancel_requested=True,
                **why,
                **({"state": "CANCELLING", "kill_at": kill_at} if signal else {}),
            )
        )
        session.refresh(job)
        if getattr(res, "rowcount", 0) != 1:
            continue
        if not signal:
            return job, (
                f"cancel recorded: the job is being started; it gets {stop_signal_of(job)} "
                f"once it runs, then SIGKILL after {float(grace_s):g} s"
            )
        add_event(
            session,
            job.id,
            "cancelling",
            stop_words(job, grace_s, kill_at) + (f" ({reason})" if reason else ""),
        )
        executor.cancel(handle, grace_s)
        return job, f"{stop_signal_of(job)} sent; {kill_words(kill_at, now)} unless it ends before"
    raise ConflictError(
        f"job {job.id} changed state while it was being cancelled", hint="try the cancel again"
    )


def _cancel_stopping(
    session: Session,
    job: Job,
    executor: Any,
    grace_s: float,
    reason: str | None,
    default_grace_s: float | None,
) -> str | None:
    """A cancel of a job that already got its stop signal (CANCELLING, PREEMPTING): the answer's
    words, or None when the job changed meanwhile (read again and decide again)."""
    now = utcnow()
    asked = _later(now, grace_s)
    old = job.kill_at
    sooner = old is None or asked < old
    kill_at = asked if sooner else old
    assert kill_at is not None
    preempted = job.state == "PREEMPTING"
    # the grace period counted from the first stop signal, for the end's "killed with SIGKILL
    # after the N s grace period": the first stop's (the preemption's is the server's), less
    # what this cancel took off it
    first = (
        job.cancel_grace_s
        if job.cancel_requested and job.cancel_grace_s is not None
        else (default_grace_s if default_grace_s is not None else float(grace_s))
    )
    if old is not None and sooner:
        first = round(max(0.0, first - (old - kill_at).total_seconds()), 1)  # "12.3 s"
    kept = (
        f"; the first cancel's reason stands ({job.failure_reason or 'cancelled by user'})"
        if reason and job.cancel_requested and reason != job.failure_reason
        else ""
    )
    if not preempted and not sooner:
        # nothing changes: no write, no executor call (Slurm's scancel --signal would send
        # the job its stop signal again)
        words = (
            f"already cancelling: the first cancel's {kill_words(kill_at, now)} stands "
            f"(a cancel never postpones it; this one's {float(grace_s):g} s grace period "
            f"would end later){kept}"
        )
        add_event(session, job.id, "cancelling", f"cancel again: {words}")
        return words
    values: dict[str, Any] = {"state": "CANCELLING", "kill_at": kill_at, "cancel_grace_s": first}
    if not job.cancel_requested:
        values.update(cancel_requested=True, failure_reason=reason)
    res = session.execute(
        update(Job)
        .where(
            Job.id == job.id,
            Job.state == job.state,
            Job.attempt == job.attempt,
            Job.kill_at.is_(None) if old is None else Job.kill_at == old,
        )
        .values(**values)
    )
    session.refresh(job)
    if getattr(res, "rowcount", 0) != 1:
        return None
    left = max(0.0, (kill_at - now).total_seconds())
    if preempted:
        moved = (
            f", brought forward from {clock(old)} by this cancel's {float(grace_s):g} s "
            "grace period"
            if old is not None and sooner
            else ""
        )
        words = (
            f"already stopping (preempted): it got {stop_signal_of(job)} at the preemption; "
            f"{kill_words(kill_at, now)}{moved}; it ends cancelled, not requeued"
        )
    else:
        words = (
            f"already cancelling: {kill_words(kill_at, now)}, brought forward"
            + (f" from {clock(old)}" if old is not None else "")
            + f" by this cancel's {float(grace_s):g} s grace period{kept}"
        )
    add_event(
        session,
        job.id,
        "cancelling",
        words + (f" ({reason})" if reason and preempted else ""),
    )
    # the executor's kill clock keeps the first deadline unless this one is sooner: pass what
    # is left of the deadline the job now has (a cancel after a preemption also tells the
    # executor it is a cancel now)
    executor.cancel(job.handle, float(grace_s) if sooner else left)
    return words


ALL_STATES = frozenset({"QUEUED"}) | ACTIVE_STATES | FINAL_STATES
STOPPING_STATES = frozenset({"CANCELLING", "PREEMPTING"})  # signalled; kill_at is due


def attempt_dir(jobs_dir: Path, job_id: str, attempt: int) -> Path:
    """``jobs_dir/<job id>/<attempt>``: the id must be one path segment and the attempt a whole
    number >= 0, so the folder is always inside ``jobs_dir`` (callers pass server-made ids)."""
    if (
        not isinstance(job_id, str)
        or job_id in ("", ".", "..")
        or any(c in job_id for c in "/\\\0")
    ):
        raise ValidationError(
            f"job id {short_repr(job_id)} is not a job id", hint="list jobs for their ids"
        )
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
        raise ValidationError(
            f"attempt {short_repr(attempt)} is not an attempt number",
            hint="attempts are numbered 0, 1, 2, …",
            field="attempt",
        )
    return jobs_dir / job_id / str(attempt)


def attempts_text(job_id: str, last: int) -> str:
    """ "job X has only attempt 0" / "job X has attempts 0 to 2": the attempts a job has had
    (``last``: its latest, job.attempt)."""
    if last <= 0:
        return f"job {job_id} has only attempt 0"
    return f"job {job_id} has attempts 0 to {last}"


def read_logs(
    jobs_dir: Path,
    job: Job,
    *,
    offset: int = 0,
    attempt: int | None = None,
    max_bytes: int = 1 << 20,
) -> LogChunk:
    att = job.attempt if attempt is None else attempt
    if not 0 <= att <= job.attempt:
        raise ValidationError(
            f"attempt {att}: {attempts_text(job.id, job.attempt)}",
            hint=f"leave attempt out for the latest one, attempt {job.attempt}",
            field="attempt",
        )
    path = attempt_dir(jobs_dir, job.id, att) / "output.log"
    text, nxt = "", offset
    final = job.state in FINAL_STATES
    if path.exists():
        with path.open("rb") as f:
            if offset > f.seek(0, 2):
                data = b""  # past the end (a huge offset): an empty chunk, not an error
            else:
                f.seek(offset)
                data = f.read(max_bytes)
        if len(data) == max_bytes or not final:
            # a chunk (or a file still being written) may end inside a character: leave its
            # first bytes to the next read instead of decoding half of it to U+FFFD
            data = _whole_utf8(data)
        nxt = offset + len(data)
        text = data.decode("utf-8", "replace")
    return LogChunk(
        job_id=job.id,
        attempt=att,
        offset=offset,
        next_offset=nxt,
        text=text,
        final=final,
    )


def _whole_utf8(data: bytes) -> bytes:
    """``data`` without an incomplete UTF-8 sequence at its end."""
    for back in range(1, min(4, len(data)) + 1):
        b = data[-back]
        if b & 0xC0 == 0x80:  # a continuation byte: look further back for the lead byte
            continue
        need = 2 if b & 0xE0 == 0xC0 else 3 if b & 0xF0 == 0xE0 else 4 if b & 0xF8 == 0xF0 else 1
        return data if back >= need else data[:-back]
    return data


def to_public(job: Job, default_grace_s: float | None = None) -> JobPublic:
    """The API's view of ``job``. ``default_grace_s``: the server's AISTACK_CANCEL_GRACE_S
    (the routers pass their settings'; 10 s without it), for the job's ``grace_s`` and
    ``max_runtime_grace_s``."""
    spec = job.spec or {}
    alloc = job.allocation or None
    server_grace = DEFAULT_GRACE_S if default_grace_s is None else float(default_grace_s)
    max_runtime_s = _runtime_s(spec.get("max_runtime"))
    return JobPublic(
        id=job.id,
        name=job.name,
        project=job.project,
        user=job.user,
        kind=job.kind,
        state=job.state,
        priority=job.priority,
        pending_reason=job.pending_reason if job.state == "QUEUED" else None,
        estimated_start=_utc(job.estimated_start) if job.state == "QUEUED" else None,
        kill_at=_utc(job.kill_at) if job.state in STOPPING_STATES else None,
        stop_signal=stop_signal_of(job),
        grace_s=stop_grace_s(job, server_grace),
        max_runtime_grace_s=(
            None if max_runtime_s is None else max_runtime_grace_s(spec, server_grace)
        ),
        exit_code=job.exit_code,
        **_reasons(job),
        attempt=job.attempt,
        retries_left=job.retries_left,
        devices=alloc,
        node=next(iter(alloc), None) if alloc else None,
        resources=spec.get("resources", {}),
        max_runtime_s=max_runtime_s,
        preemptible=bool(spec.get("preemptible", True)),
        command=spec.get("command") or spec.get("script") or "",
        inputs=list(spec.get("inputs") or []),
        workdir=spec.get("workdir"),
        distributed=spec.get("distributed"),
        mlflow_run_id=job.mlflow_run_id,
        preempt_count=job.preempt_count,
        attained_service_s=round(job.attained_service_s, 3),
        submitted_at=_utc(job.submitted_at) or job.submitted_at,  # stored NOT NULL
        started_at=_utc(job.started_at),
        finished_at=_utc(job.finished_at),
    )


def stop_grace_s(job: Job, default_grace_s: float) -> float:
    """Seconds from the job's stop signal to SIGKILL on a cancel or a preemption: its cancel's
    (``cancel_grace_s``: the one asked for, counted from the first stop signal), else the
    server's ``default_grace_s`` (a preemption's always)."""
    own = job.cancel_grace_s if job.cancel_requested else None
    return float(default_grace_s) if own is None else float(own)


def max_runtime_grace_s(spec: dict[str, Any], default_grace_s: float) -> float:
    """The grace period after max_runtime, as the executors read it at launch: the job's own
    AISTACK_GRACE_S, else the server's (see scheduling's launch request)."""
    try:
        return grace_s_from_env({GRACE_ENV: str(default_grace_s), **(spec.get("env") or {})})
    except ValidationError:  # (refused at submit since; an older stored spec)
        return default_grace_s


def _runtime_s(value: Any) -> float | None:
    """A stored spec's max_runtime in seconds (it was checked at submit; a value this
    version cannot read shows as None rather than failing the listing)."""
    if value is None:
        return None
    try:
        return parse_duration_s(value)
    except (ValidationError, ValueError, TypeError):
        return None


def _reasons(job: Job) -> dict[str, str | None]:
    """``failure_reason`` and ``stop_reason`` as the API shows them. The column holds the
    reason given with a cancel from the cancel on (request_cancel); a job that then did not
    fail (it exited 0, or is still stopping) showed it as the failure reason of a job that did
    not fail. Now: a cancelled job shows the reason as both (``failure_reason`` as before);
    a job asked to stop that has not failed shows it as ``stop_reason`` alone; a job that
    failed or timed out shows its failure."""
    reason = job.failure_reason
    if job.state == "CANCELLED":
        return {"failure_reason": reason, "stop_reason": reason}
    if job.cancel_requested and job.state not in ("FAILED", "TIMEOUT"):
        return {"failure_reason": None, "stop_reason": reason or "cancelled by user"}
    return {"failure_reason": reason, "stop_reason": None}


def _utc(t: dt.datetime | None) -> dt.datetime | None:  # type: ignore[return]
    if t is None:
        return None
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t
