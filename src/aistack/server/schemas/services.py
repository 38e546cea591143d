"""Schemas of /services: model serving endpoints (see aistack.serving)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ServiceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        min_length=1, description="NAME, NAME@alias, NAME:version, models:/…, builtin:…"
    )
    name: str | None = Field(default=None, description="service name (default: from the model)")
    min_replicas: int = Field(default=1, ge=0, le=256)
    max_replicas: int = Field(default=4, ge=1, le=256)
    # the same bounds as a job's resources (aistack.spec.Resources): a replica is a job
    gpus: int = Field(default=0, ge=0, le=1_000_000)
    cpus: int = Field(default=1, ge=1, le=1_000_000)
    memory: str | None = None
    priority: int | None = Field(default=None, ge=-(2**31), le=2**31 - 1)
    launcher: Literal["auto", "process", "jobs"] = "auto"
    max_batch_size: int = Field(default=16, ge=1, le=1024)
    max_wait_ms: float = Field(default=5.0, ge=0, le=10_000, allow_inf_nan=False)
    target_inflight: float = Field(default=4.0, gt=0, allow_inf_nan=False)
    cooldown_s: float = Field(default=30.0, ge=0, allow_inf_nan=False)
    max_queued_requests: int | None = Field(
        default=None, ge=0, le=1_000_000, description="admission control (default 100)"
    )
    project: str = "default"


class ServiceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=1, description="alias, NAME@alias, NAME:version or a URI")


class ServiceScale(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_replicas: int | None = Field(default=None, ge=0, le=256)
    max_replicas: int | None = Field(default=None, ge=1, le=256)


class ServiceSummary(BaseModel):
    name: str
    model: str | None = None
    model_uri: str | None = None
    url: str | None = None
    status: str | None = None
    ready_replicas: int = 0
    desired_replicas: int = 0
    qps: float = 0.0
    p99_ms: float = 0.0


class ServicePublic(BaseModel):
    name: str
    model: str | None = None
    model_uri: str | None = None
    url: str | None = None
    status: str | None = None
    launcher: str | None = None
    desired_replicas: int = 0
    ready_replicas: int = 0
    min_replicas: int | None = None
    max_replicas: int | None = None
    inflight: int = 0
    metrics: dict[str, Any] = Field(default_factory=dict)
    replicas: list[dict[str, Any]] = Field(default_factory=list)
    autoscaler: dict[str, Any] = Field(default_factory=dict)
    rollout: dict[str, Any] | None = None
    events: list[dict[str, Any]] = Field(default_factory=list)


class ServiceDeleted(BaseModel):
    name: str
    deleted: bool
    orphans_stopped: int = 0
    kept_at: str


class ServiceLogs(BaseModel):
    name: str
    logs: dict[str, list[str]]
