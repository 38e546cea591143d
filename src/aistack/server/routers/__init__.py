"""REST resources. Each module named in ROUTERS exposes ``router`` (a FastAPI APIRouter) and is
mounted under /api/v1 with token auth. Modules that are not importable are skipped at start-up with a
log line (an optional extra may be missing)."""

ROUTERS: list[str] = [
    "jobs",
    "cluster",
    "projects",
    "usage",
    "datasets",
    "planning",
    "models",
    "services",
]
