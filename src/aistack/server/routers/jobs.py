"""/jobs: submit, list, get, cancel, logs, events."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from aistack.server.context import ServerContext
from aistack.server.db.models import JobEvent
from aistack.server.deps import get_ctx, get_db
from aistack.server.schemas.jobs import JobCancel, JobEventPublic, JobPublic, LogChunk
from aistack.server.services import jobs as svc
from aistack.spec import parse_spec

router = APIRouter(tags=["jobs"])


@router.post("/jobs", response_model=JobPublic, status_code=201)
def submit(
    body: dict[str, Any] = Body(...),
    db: Session = Depends(get_db),
    ctx: ServerContext = Depends(get_ctx),
) -> JobPublic:
    spec = parse_spec(body, source="request body")
    nodes = ctx.loop.nodes() if ctx.loop is not None else ctx.executor.inventory()
    datasets = ctx.datasets() if spec.inputs else None
    if spec.inputs and datasets is None:
        raise ctx.datasets_unavailable()  # not "install aistack's dependencies" for a DB down
    job = svc.submit_job(db, spec, nodes=nodes, datasets=datasets)
    db.commit()
    svc.link_inputs(datasets, job)
    if ctx.loop is not None:
        ctx.loop.wake()
    from aistack.server.metrics import JOBS_SUBMITTED

    JOBS_SUBMITTED.labels(project=job.project).inc()
    return svc.to_public(job)


@router.get("/jobs", response_model=list[JobPublic])
def list_jobs(
    state: list[str] | None = Query(default=None),
    project: str | None = None,
    all: bool = True,
    limit: int = Query(default=500, ge=1, le=10000),
    before: str | None = Query(default=None, description="a job id: the page after it"),
    db: Session = Depends(get_db),
) -> list[JobPublic]:
    jobs = svc.list_jobs(
        db, states=state, project=project, include_finished=all, limit=limit, before=before
    )
    return [svc.to_public(j) for j in jobs]


@router.get("/jobs/{job_id}", response_model=JobPublic)
def get_job(job_id: str, db: Session = Depends(get_db)) -> JobPublic:
    return svc.to_public(svc.get_job(db, job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobPublic)
def cancel(
    job_id: str,
    body: JobCancel | None = Body(default=None),
    db: Session = Depends(get_db),
    ctx: ServerContext = Depends(get_ctx),
) -> JobPublic:
    job = svc.request_cancel(
        db,
        svc.get_job(db, job_id),
        ctx.executor,
        ctx.settings.cancel_grace_s,
        reason=body.reason if body is not None else None,
    )
    db.commit()
    if ctx.loop is not None:
        # cancelled while queued after an earlier attempt (a retry, a preemption): no process
        # ends, so the loop never ends its MLflow run; end it here (KILLED)
        ctx.loop.cancelled_off_loop(job)
        ctx.loop.wake()
    return svc.to_public(job)


@router.get("/jobs/{job_id}/logs", response_model=LogChunk)
def logs(
    job_id: str,
    offset: int = Query(default=0, ge=0, le=2**62),
    attempt: int | None = None,
    db: Session = Depends(get_db),
    ctx: ServerContext = Depends(get_ctx),
) -> LogChunk:
    return svc.read_logs(
        ctx.settings.jobs_dir, svc.get_job(db, job_id), offset=offset, attempt=attempt
    )


@router.get("/jobs/{job_id}/events", response_model=list[JobEventPublic])
def events(job_id: str, db: Session = Depends(get_db)) -> list[JobEventPublic]:
    job = svc.get_job(db, job_id)
    rows = db.execute(
        select(JobEvent).where(JobEvent.job_id == job.id).order_by(JobEvent.id)
    ).scalars()
    return [JobEventPublic(t=svc._utc(r.t) or r.t, kind=r.kind, message=r.message) for r in rows]
