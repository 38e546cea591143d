"""/jobs: submit, list, get, cancel, logs, events."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from aistack.server.context import ServerContext
from aistack.server.db.models import JobEvent
from aistack.server.deps import get_ctx, get_db
from aistack.server.schemas.jobs import (
    JobCancel,
    JobCancelled,
    JobEventPublic,
    JobPublic,
    LogChunk,
)
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
    svc.check_project(db, spec.project, required=ctx.settings.require_projects)
    svc.check_workdir(spec, ctx.executor.name)
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
    return svc.to_public(job, ctx.settings.cancel_grace_s)


@router.get("/jobs", response_model=list[JobPublic])
def list_jobs(
    state: list[str] | None = Query(default=None),
    project: str | None = None,
    all: bool = True,
    limit: int = Query(default=500, ge=1, le=10000),
    before: str | None = Query(default=None, description="a job id: the page after it"),
    db: Session = Depends(get_db),
    ctx: ServerContext = Depends(get_ctx),
) -> list[JobPublic]:
    jobs = svc.list_jobs(
        db, states=state, project=project, include_finished=all, limit=limit, before=before
    )
    return [svc.to_public(j, ctx.settings.cancel_grace_s) for j in jobs]


@router.get("/jobs/{job_id}", response_model=JobPublic)
def get_job(
    job_id: str, db: Session = Depends(get_db), ctx: ServerContext = Depends(get_ctx)
) -> JobPublic:
    return svc.to_public(svc.get_job(db, job_id), ctx.settings.cancel_grace_s)


@router.post("/jobs/{job_id}/cancel", response_model=JobCancelled)
def cancel(
    job_id: str,
    body: JobCancel | None = Body(default=None),
    db: Session = Depends(get_db),
    ctx: ServerContext = Depends(get_ctx),
) -> JobCancelled:
    grace = body.grace_s if body is not None else None
    job, message = svc.cancel_job(
        db,
        svc.get_job(db, job_id),
        ctx.executor,
        ctx.settings.cancel_grace_s if grace is None else grace,
        reason=body.reason if body is not None else None,
        default_grace_s=ctx.settings.cancel_grace_s,
    )
    db.commit()
    if ctx.loop is not None:
        # cancelled while queued after an earlier attempt (a retry, a preemption): no process
        # ends, so the loop never ends its MLflow run; end it here (KILLED)
        ctx.loop.cancelled_off_loop(job)
        ctx.loop.wake()
    return JobCancelled(
        **svc.to_public(job, ctx.settings.cancel_grace_s).model_dump(), message=message
    )


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
