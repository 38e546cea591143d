"""HTTP shapes of jobs. ``JobCreate`` is the job spec itself; ``JobPublic`` is what the API
returns (and what ``aistack jobs --json`` prints)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aistack.spec import JobSpec

JobCreate = JobSpec

FINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMEOUT"})
ACTIVE_STATES = frozenset({"STARTING", "RUNNING", "CANCELLING", "PREEMPTING"})


class JobPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    project: str
    user: str
    kind: str
    state: str
    priority: int
    pending_reason: str | None = None
    estimated_start: dt.datetime | None = None
    exit_code: int | None = None
    # why the job failed, timed out or was cancelled
    failure_reason: str | None = None
    # why the job was asked to stop (the reason given with its cancel, else "cancelled by
    # user"), whatever it ended as: a job that exits 0 when stopped ends SUCCEEDED with it here
    stop_reason: str | None = None
    attempt: int
    retries_left: int
    devices: dict[str, Any] | None = None
    node: str | None = None
    resources: dict[str, Any]
    # the user's runtime limit (the scheduler's estimate for backfill), seconds; None: none
    max_runtime_s: float | None = None
    preemptible: bool = True
    command: str
    inputs: list[str] = []  # dataset versions, pinned at submit
    workdir: str | None = None
    distributed: str | None = None
    mlflow_run_id: str | None = None
    preempt_count: int = 0
    attained_service_s: float = 0.0
    submitted_at: dt.datetime
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None


class JobCancel(BaseModel):
    """Optional body of POST /jobs/{id}/cancel: why the job is stopped (shown as its
    ``stop_reason``, and as its ``failure_reason`` once it is CANCELLED; without one it is
    "cancelled by user")."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, min_length=1, max_length=500)

    @field_validator("reason")
    @classmethod
    def _printable(cls, v: str | None) -> str | None:
        if v is not None and not v.isprintable():
            raise ValueError("control characters cannot be shown in the jobs table; remove them")
        return v


class JobEventPublic(BaseModel):
    t: dt.datetime
    kind: str
    message: str


class LogChunk(BaseModel):
    job_id: str
    attempt: int
    offset: int
    next_offset: int
    text: str
    final: bool
