"""/projects: GPU quotas, fair-share weights and monthly budgets."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from aistack.errors import NotFoundError, ValidationError
from aistack.server.db.models import Job, Project
from aistack.server.deps import get_db
from aistack.spec import NAME_HINT, valid_name

router = APIRouter(tags=["projects"])

MAX_GPU_QUOTA = 1_000_000
MAX_BUDGET_USD = 1e12
MAX_SHARE = 1e6


class ProjectUpdate(BaseModel):
    """A partial update: only the fields present in the body change. ``null`` clears a quota
    (unlimited GPUs) or a budget (none); ``share: null`` resets the weight to 1."""

    model_config = ConfigDict(extra="forbid")

    gpu_quota: int | None = Field(
        default=None, ge=0, le=MAX_GPU_QUOTA, description="max GPUs held at once; null = unlimited"
    )
    monthly_budget_usd: float | None = Field(
        default=None, ge=0, le=MAX_BUDGET_USD, allow_inf_nan=False
    )
    share: float | None = Field(
        default=None, gt=0, le=MAX_SHARE, allow_inf_nan=False, description="fair-share weight"
    )


class ProjectPublic(BaseModel):
    name: str
    gpu_quota: int | None
    monthly_budget_usd: float | None
    share: float


def _pub(p: Project) -> ProjectPublic:
    return ProjectPublic(
        name=p.name,
        gpu_quota=p.gpu_quota,
        monthly_budget_usd=p.monthly_budget_usd,
        share=1.0 if p.share is None else p.share,
    )


def _defaults(name: str) -> Project:
    """A project that has jobs but no settings: no quota, no budget, share 1."""
    return Project(name=name, gpu_quota=None, monthly_budget_usd=None, share=1.0)


@router.get("/projects", response_model=list[ProjectPublic])
def list_projects(db: Session = Depends(get_db)) -> list[ProjectPublic]:
    """Projects with settings, and those that only have jobs (with the defaults)."""
    rows = {p.name: p for p in db.execute(select(Project)).scalars()}
    for (name,) in db.execute(select(Job.project).distinct()):
        rows.setdefault(name, _defaults(name))
    return [_pub(rows[n]) for n in sorted(rows)]


@router.get("/projects/{name}", response_model=ProjectPublic)
def get_project(name: str, db: Session = Depends(get_db)) -> ProjectPublic:
    p = db.get(Project, name)
    if p is None and db.execute(select(Job.id).where(Job.project == name).limit(1)).first():
        p = _defaults(name)
    if p is None:
        raise NotFoundError(
            f"project {name!r} has no settings", hint="set them with PUT /api/v1/projects/NAME"
        )
    return _pub(p)


# what creates a project: one setting given (REST, CLI, SDK)
CREATE_HINT = (
    "a project is created by giving it at least one setting: PUT /api/v1/projects/{name} with "
    '{{"share": 1}}, `aistack projects set {name} --share 1` or '
    "Client().set_project({name!r}, share=1.0); `aistack projects` lists the existing ones"
)


@router.put("/projects/{name}", response_model=ProjectPublic)
def put_project(name: str, body: ProjectUpdate, db: Session = Depends(get_db)) -> ProjectPublic:
    """Change the settings in the body; the others keep their value. A project that does not
    exist is created with the settings given (the others at their defaults). An empty body
    changes nothing and creates nothing: it answers the project as GET does, and 404 for a
    project that does not exist (a misspelt name made a new project with the defaults, as
    ``kubectl``/``dstack`` never do for a get)."""
    if not valid_name(name):
        # the same rule as a job spec's `project:`, else no job could ever use this project
        raise ValidationError(f"project: {name!r} is not a valid name", hint=NAME_HINT)
    p = db.get(Project, name)
    if p is None and not body.model_fields_set:
        if db.execute(select(Job.id).where(Job.project == name).limit(1)).first():
            return _pub(_defaults(name))  # it has jobs: it exists, with the defaults
        raise NotFoundError(
            f"no project {name!r}: no settings were given, so none was created",
            hint=CREATE_HINT.format(name=name),
            project=name,
        )
    if p is None:
        p = Project(name=name, gpu_quota=None, monthly_budget_usd=None, share=1.0)
        db.add(p)
    for field in body.model_fields_set:  # a partial update: untouched fields keep their value
        value = getattr(body, field)
        setattr(p, field, 1.0 if field == "share" and value is None else value)
    db.commit()
    return _pub(p)
