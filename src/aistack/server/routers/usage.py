"""/usage: allocation records with measured utilization; /cost/report prices them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from aistack.errors import NotFoundError
from aistack.planning.catalog import Catalog
from aistack.server.db.models import Job, Project, UsageSampleRow
from aistack.server.deps import get_db
from aistack.server.routers.planning import _catalog
from aistack.server.schemas import UtcTime
from aistack.server.services.usage import _iso, allocation_records, budgets

router = APIRouter(tags=["usage"])


@router.get("/usage/allocations")
def allocations(
    project: str | None = None,
    since: UtcTime | None = None,
    job_id: str | None = None,
    db: Session = Depends(get_db),
) -> list[dict[str, Any]]:
    """One record per allocation (job attempt × node); field names match
    ``aistack.planning.usage.AllocationRecord``."""
    return allocation_records(db, project=project, since=since, job_id=job_id)


@router.get("/usage/samples")
def samples(
    job_id: str, limit: int = Query(default=2000, ge=1, le=100000), db: Session = Depends(get_db)
) -> list[dict[str, Any]]:
    """The job's newest ``limit`` usage samples, oldest first. (The oldest ``limit`` were
    returned: the job page's chart of a job running past ~33 minutes, a sample a second,
    stopped there and never showed its current use.) ``job_id`` is an id or a unique prefix, as
    elsewhere; an unknown one is a 404 (it was an empty list, as for a job without samples)."""
    from aistack.server.services.jobs import get_job

    job_id = get_job(db, job_id).id
    newest = (
        db.execute(
            select(UsageSampleRow)
            .where(UsageSampleRow.job_id == job_id)
            .order_by(UsageSampleRow.t.desc(), UsageSampleRow.id.desc())
            .limit(limit)
        )
        .scalars()
        .all()
    )
    rows = reversed(newest)
    return [
        {
            "t": _iso(r.t),
            "cpu_percent": r.cpu_percent,
            "rss_mb": r.rss_mb,
            "gpu_util": r.gpu_util,
            "gpu_mem_mb": r.gpu_mem_mb,
        }
        for r in rows
    ]


@router.get("/cost/report")
def cost_report(
    project: str | None = None,
    since: UtcTime | None = None,
    sheet: str | None = Query(
        default=None, description="price sheet, e.g. aws:on_demand or onprem"
    ),
    db: Session = Depends(get_db),
    cat: Catalog = Depends(_catalog),
) -> dict[str, Any]:
    """Measured usage priced under a price sheet, with budgets and the buy-vs-rent advice.

    Priced with the server's catalog (shipped + AISTACK_HOME/catalog/*.yaml), as /plan/usage
    and `aistack cost report` are: the shipped prices alone ignored the team's own."""
    from aistack.planning.usage import FIELDS, parse_records, price_usage

    if project is not None:
        # a mistyped project priced nothing with a note; GET /projects lists the same names
        # (one query: the projects table and the jobs' projects, as GET /projects lists them)
        known = {n for (n,) in db.execute(select(Project.name).union(select(Job.project)))}
        if project not in known:
            raise NotFoundError(
                f"project: unknown project {project!r}",
                hint=f"known projects: {', '.join(sorted(known))}"
                if known
                else "the server has no projects yet (they come with jobs or PUT "
                "/api/v1/projects/NAME)",
                field="project",
            )
    # budgets are per calendar month: their spend needs the records from its first day even
    # when the window starts later (price_usage keeps the window for everything else)
    month_start = dt.datetime.now(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    fetch_from = min(since, month_start) if since is not None else None
    rows = allocation_records(db, project=project, since=fetch_from)
    recs = parse_records([{k: r[k] for k in FIELDS} for r in rows])
    return price_usage(
        recs, sheet=sheet, since=since, project=project, budgets=budgets(db), catalog=cat
    ).to_dict()
