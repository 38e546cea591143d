"""/projects: GPU quotas, fair-share weights and monthly budgets."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from aistack.errors import NotFoundError
from aistack.server.db.models import Project
from aistack.server.deps import get_db

router = APIRouter(tags=["projects"])


class ProjectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gpu_quota: int | None = Field(
        default=None, ge=0, description="max GPUs held at once; null = unlimited"
    )
    monthly_budget_usd: float | None = Field(default=None, ge=0)
    share: float = Field(default=1.0, gt=0, description="fair-share weight")


class ProjectPublic(BaseModel):
    name: str
    gpu_quota: int | None
    monthly_budget_usd: float | None
    share: float


def _pub(p: Project) -> ProjectPublic:
    return ProjectPublic(
        name=p.name, gpu_quota=p.gpu_quota, monthly_budget_usd=p.monthly_budget_usd, share=p.share
    )


@router.get("/projects", response_model=list[ProjectPublic])
def list_projects(db: Session = Depends(get_db)) -> list[ProjectPublic]:
    return [_pub(p) for p in db.execute(select(Project).order_by(Project.name)).scalars()]


@router.get("/projects/{name}", response_model=ProjectPublic)
def get_project(name: str, db: Session = Depends(get_db)) -> ProjectPublic:
    p = db.get(Project, name)
    if p is None:
        raise NotFoundError(
            f"project {name!r} has no settings", hint="set them with PUT /api/v1/projects/NAME"
        )
    return _pub(p)


@router.put("/projects/{name}", response_model=ProjectPublic)
def put_project(name: str, body: ProjectUpdate, db: Session = Depends(get_db)) -> ProjectPublic:
    p = db.get(Project, name) or Project(name=name)
    p.gpu_quota, p.monthly_budget_usd, p.share = body.gpu_quota, body.monthly_budget_usd, body.share
    db.merge(p)
    db.commit()
    return _pub(db.get(Project, name))  # type: ignore[arg-type]
