"""HTTP shapes of jobs. ``JobCreate`` is the job spec itself; ``JobPublic`` is what the API
returns (and what ``aistack jobs --json`` prints)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from aistack.spec import (
    JobSpec,
    cancel_grace_hint,
    cancel_grace_problem,
    cancel_reason_hint,
    cancel_reason_problem,
)

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
    # CANCELLING or PREEMPTING (the job got its stop signal): when the executor sends SIGKILL
    # if the job has not ended by then (UTC; the first stop's grace period, or sooner when a
    # later cancel asked for a shorter one); None in every other state
    kill_at: dt.datetime | None = None
    stop_signal: str = Field(
        default="SIGTERM",
        description="the signal a cancel, a preemption or max_runtime sends the job first "
        "(its spec's stop_signal: SIGTERM, SIGINT or SIGUSR1); SIGKILL follows grace_s later "
        "if it has not ended",
    )
    grace_s: float = Field(
        default=10.0,
        description="seconds from the stop signal to SIGKILL on a cancel or a preemption: "
        "the grace period the job's cancel asked for (POST /jobs/{id}/cancel's grace_s; "
        "counted from its first stop signal, so a later, shorter cancel lowers it), else "
        "the server's AISTACK_CANCEL_GRACE_S, which a preemption always uses",
    )
    max_runtime_grace_s: float | None = Field(
        default=None,
        description="seconds from the stop signal to SIGKILL when the job exceeds its "
        "max_runtime: AISTACK_GRACE_S in the job's env, else the server's "
        "AISTACK_CANCEL_GRACE_S; None for a job without max_runtime",
    )
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


class JobCancelled(JobPublic):
    """The answer to POST /jobs/{id}/cancel: the job, and ``message``, one line saying what the
    cancel did and when the SIGKILL is due: "SIGTERM sent; SIGKILL at 12:00:05 UTC (in 60 s)
    unless it ends before"; for a job already stopping, whether this cancel brought the
    SIGKILL forward ("already cancelling: SIGKILL at ... (in 2 s), brought forward from ...")
    or left the first one's ("... stands (a cancel never postpones it; ...)")."""

    message: str


class JobCancel(BaseModel):
    """Optional body of POST /jobs/{id}/cancel: why the job is stopped (shown as its
    ``stop_reason``, and as its ``failure_reason`` once it is CANCELLED; without one it is
    "cancelled by user"), and ``grace_s``, the seconds between the job's stop signal and
    SIGKILL (0 to 3600, aistack.spec's CANCEL_GRACE_MAX_S; without it the server's
    ``AISTACK_CANCEL_GRACE_S``, 10 s by default). A cancel of a job that is already stopping
    keeps the first one's reason and SIGKILL time, unless its grace period ends sooner: then
    the SIGKILL comes sooner (a cancel never postpones it; the answer's ``message`` and the
    job's ``kill_at`` say when it is due)."""

    model_config = ConfigDict(extra="forbid")

    # (both checked by aistack.spec's cancel functions, which the SDK and the CLI use too)
    reason: str | None = None
    grace_s: float | None = None

    @field_validator("grace_s", mode="before")
    @classmethod
    def _grace(cls, v: Any) -> Any:
        # (checked here rather than with ge=/le=: pydantic's "less than or equal to 3600"
        # says no unit, NaN passes its bounds, and "10" or true would pass as numbers)
        if v is None:
            return v
        hint = cancel_grace_hint("grace_s")
        if not isinstance(v, int | float) or isinstance(v, bool):
            raise PydanticCustomError(
                "grace_type",
                "must be a number of seconds, got {got}",
                {"got": _shown(v), "hint": hint},
            )
        problem = cancel_grace_problem(v)
        if problem is not None:
            raise PydanticCustomError(
                "grace_range", "{problem}", {"problem": problem, "hint": hint}
            )
        return float(v)

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str | None) -> str | None:
        problem = None if v is None else cancel_reason_problem(v)
        if problem is not None:
            # (a custom error: pydantic's ValueError read "reason: Value error, control ...")
            raise PydanticCustomError(
                "reason_invalid",
                "{problem}",
                {"problem": problem, "hint": cancel_reason_hint("reason")},
            )
        return v


def _shown(v: Any) -> str:
    """A JSON value as it was sent ("true", '"10"'), shortened."""
    try:
        text = json.dumps(v)
    except (TypeError, ValueError):
        text = type(v).__name__
    return text if len(text) <= 40 else text[:37] + "..."


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
