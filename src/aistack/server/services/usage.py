"""Allocation records as the planning layer reads them (``AllocationRecord`` field names)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aistack.server.db.models import AllocationRow, Project


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.replace(tzinfo=dt.UTC).isoformat()


def allocation_records(
    db: Session,
    *,
    project: str | None = None,
    since: dt.datetime | None = None,
    job_id: str | None = None,
) -> list[dict[str, Any]]:
    q = select(AllocationRow).order_by(AllocationRow.id)
    if project:
        q = q.where(AllocationRow.project == project)
    if job_id:
        q = q.where(AllocationRow.job_id == job_id)
    if since is not None:
        s = since.astimezone(dt.UTC).replace(tzinfo=None) if since.tzinfo else since
        q = q.where((AllocationRow.end.is_(None)) | (AllocationRow.end >= s))
    return [
        {
            "job_id": a.job_id,
            "project": a.project,
            "user": a.user,
            "node": a.node,
            "gpus": len(a.gpus or []),
            "gpu_type": a.gpu_type,
            "cpus": len(a.cpus or []),
            "start": _iso(a.start),
            "end": _iso(a.end),
            "gpu_util": a.gpu_util_avg,
            # rows written before the per-sample cap could average slightly above 100 %
            "cpu_util": None if a.cpu_util_avg is None else min(100.0, a.cpu_util_avg),
            "attempt": a.attempt,
            "memory_mb": a.memory_mb,
            "rss_max_mb": a.rss_max_mb,
            "gpu_mem_max_mb": a.gpu_mem_max_mb,
            "samples": a.samples,
        }
        for a in db.execute(q).scalars()
    ]


def budgets(db: Session) -> dict[str, float]:
    return {
        p.name: float(p.monthly_budget_usd)
        for p in db.execute(select(Project)).scalars()
        if p.monthly_budget_usd is not None
    }
