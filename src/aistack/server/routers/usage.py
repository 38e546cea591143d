"""/usage: allocation records with measured utilization (priced by aistack.planning)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from aistack.server.db.models import AllocationRow, UsageSampleRow
from aistack.server.deps import get_db

router = APIRouter(tags=["usage"])


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.replace(tzinfo=dt.UTC).isoformat()


@router.get("/usage/allocations")
def allocations(
    project: str | None = None, since: dt.datetime | None = None, job_id: str | None = None,
    db: Session = Depends(get_db),
) -> list[dict[str, Any]]:
    """One record per allocation (job attempt × node): field names match
    ``aistack.planning.usage.AllocationRecord``."""
    q = select(AllocationRow).order_by(AllocationRow.id)
    if project:
        q = q.where(AllocationRow.project == project)
    if job_id:
        q = q.where(AllocationRow.job_id == job_id)
    if since is not None:
        s = since.astimezone(dt.UTC).replace(tzinfo=None) if since.tzinfo else since
        q = q.where((AllocationRow.end.is_(None)) | (AllocationRow.end >= s))
    return [{
        "job_id": a.job_id, "project": a.project, "user": a.user, "node": a.node,
        "gpus": len(a.gpus or []), "gpu_type": a.gpu_type, "cpus": len(a.cpus or []),
        "start": _iso(a.start), "end": _iso(a.end),
        "gpu_util": a.gpu_util_avg, "cpu_util": a.cpu_util_avg,
        "attempt": a.attempt, "memory_mb": a.memory_mb, "rss_max_mb": a.rss_max_mb,
        "gpu_mem_max_mb": a.gpu_mem_max_mb, "samples": a.samples,
    } for a in db.execute(q).scalars()]


@router.get("/usage/samples")
def samples(job_id: str, limit: int = Query(default=2000, le=100000), db: Session = Depends(get_db)) -> list[dict[str, Any]]:
    rows = db.execute(select(UsageSampleRow).where(UsageSampleRow.job_id == job_id).order_by(UsageSampleRow.t).limit(limit)).scalars()
    return [{"t": _iso(r.t), "cpu_percent": r.cpu_percent, "rss_mb": r.rss_mb, "gpu_util": r.gpu_util, "gpu_mem_mb": r.gpu_mem_mb} for r in rows]
