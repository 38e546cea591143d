"""Job operations on the metadata DB: submit, list, get, cancel, logs. The scheduling loop
(services/scheduling.py) moves jobs between states; these functions never start processes."""

from __future__ import annotations

import datetime as dt
import getpass
import logging
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from aistack.compute.resources import Node
from aistack.errors import ConflictError, NotFoundError, ValidationError, short_repr
from aistack.server.db.models import Counter, Job, JobEvent, utcnow
from aistack.server.schemas.jobs import ACTIVE_STATES, FINAL_STATES, JobPublic, LogChunk
from aistack.spec import JobSpec, check_feasible, parse_duration_s, parse_spec

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
        raise NotFoundError(f"job {job_id!r} not found", hint="list jobs with `aistack jobs --all`")
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


def request_cancel(
    session: Session, job: Job, executor: Any, grace_s: float, *, reason: str | None = None
) -> Job:
    """``reason``: why the job is stopped (a service's controller says "scaled down by the
    autoscaler …"); without one it ends "cancelled by user". Stored in the job's
    ``failure_reason`` column; the API shows it as ``stop_reason`` (and, for a job that ends
    CANCELLED, as its ``failure_reason`` too; see :func:`to_public`). A second cancel keeps
    the first one's reason."""
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
                return job
            continue
        handle = job.handle
        signal = job.state in ACTIVE_STATES and bool(handle)
        # the reason the job will end with (_finish keeps it): this cancel's, or the first one's
        why = {} if job.cancel_requested else {"failure_reason": reason}
        res = session.execute(
            update(Job)
            .where(Job.id == job.id, Job.state == job.state, Job.attempt == job.attempt)
            .values(cancel_requested=True, **why, **({"state": "CANCELLING"} if signal else {}))
        )
        session.refresh(job)
        if getattr(res, "rowcount", 0) != 1:
            continue
        if signal:
            add_event(
                session,
                job.id,
                "cancelling",
                f"SIGTERM, then SIGKILL after {grace_s:g} s" + (f" ({reason})" if reason else ""),
            )
            executor.cancel(handle, grace_s)
        return job
    raise ConflictError(
        f"job {job.id} changed state while it was being cancelled", hint="try the cancel again"
    )


ALL_STATES = frozenset({"QUEUED"}) | ACTIVE_STATES | FINAL_STATES


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
            f"attempt: job {job.id} has attempts 0..{job.attempt}, not {att}",
            hint="leave out --attempt for the latest one",
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


def to_public(job: Job) -> JobPublic:
    spec = job.spec or {}
    alloc = job.allocation or None
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
        exit_code=job.exit_code,
        **_reasons(job),
        attempt=job.attempt,
        retries_left=job.retries_left,
        devices=alloc,
        node=next(iter(alloc), None) if alloc else None,
        resources=spec.get("resources", {}),
        max_runtime_s=_runtime_s(spec.get("max_runtime")),
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
