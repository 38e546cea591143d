"""Schemas of /models: the model registry (MLflow) as the dashboard and the SDK see it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ModelSummary(BaseModel):
    name: str
    latest_version: int | None
    aliases: dict[str, int]
    description: str = ""
    updated_ms: int | None = None


class ModelVersionPublic(BaseModel):
    name: str
    version: int
    run_id: str | None
    source: str
    status: str | None
    aliases: list[str]
    tags: dict[str, str]
    created_ms: int | None
    description: str = ""


class ModelDetail(BaseModel):
    name: str
    description: str = ""
    aliases: dict[str, int]
    versions: list[ModelVersionPublic]


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=2**63 - 1, description="version number to promote")
    to: str = Field(min_length=1, max_length=255, description="alias, e.g. production")
    require: list[str] = Field(
        default_factory=list,
        description="conditions on the run's metrics, e.g. 'loss<3.2'",
    )


class CheckPublic(BaseModel):
    condition: str
    metric: str
    actual: float | None
    passed: bool
    reason: str


class PromotionPublic(BaseModel):
    name: str
    version: int
    alias: str
    run_id: str | None
    previous_version: int | None
    checks: list[CheckPublic]
    promoted: bool


class LineagePublic(BaseModel):
    model: ModelVersionPublic
    run: dict | None
    job: dict | None
    code: dict | None
    datasets: list[dict]
    # services deployed with this version (lineage edges) and whether each still serves it;
    # None with ``services_error`` when the dataset catalog could not be read
    services: list[dict] | None = None
    services_error: str | None = None
