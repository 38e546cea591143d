"""Schemas of /services: model serving endpoints (see aistack.serving).

Their number fields are the service spec's (:mod:`aistack.serving.spec`), flattened: each is
checked by the spec's own check (:func:`~aistack.serving.spec.check_number`) before pydantic's,
so a bound, a bool, NaN or infinity, or a number sent as a string (``"5"``) is answered as
``aistack serve deploy`` and ``manager.deploy`` answer it (the field, the value, the range; a
hint that says what to set; ``details.field``), not with pydantic's "Input should be less than
or equal to 10000" (or "a finite number") and a pointer to the API docs, or read as 5. The
bounds declared here are for the OpenAPI schema; a test keeps them equal to the spec's.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo

from aistack.errors import ValidationError
from aistack.serving.spec import (
    DEFAULT_MAX_TOKENS,
    MAX_MAX_TOKENS,
    MAX_TARGET_INFLIGHT,
    MAX_TIME_S,
    MIN_MAX_TOKENS,
)


def _spec_fields() -> dict[str, FieldInfo]:
    """This API's number fields → the spec's field each one sets."""
    from aistack.serving.spec import (
        AutoscaleConfig,
        BatchingConfig,
        ReplicaResources,
        ServiceSpec,
    )

    auto, batch = AutoscaleConfig.model_fields, BatchingConfig.model_fields
    res, spec = ReplicaResources.model_fields, ServiceSpec.model_fields
    return {
        "min_replicas": auto["min_replicas"],
        "max_replicas": auto["max_replicas"],
        "target_inflight": auto["target_inflight"],
        "cooldown_s": auto["downscale_cooldown_s"],
        "gpus": res["gpus"],
        "cpus": res["cpus"],
        "priority": spec["priority"],
        "max_batch_size": batch["max_batch_size"],
        "max_wait_ms": batch["max_wait_ms"],
        "max_queued_requests": spec["max_queued_requests"],
    }


SPEC_FIELDS = _spec_fields()


def check_spec_numbers(data: Any) -> Any:
    """The spec's check of each number field of ``data`` (a request body) that is in
    :data:`SPEC_FIELDS`: the first one it refuses is a ValidationError with the spec's message
    and hint, naming this API's field (``cooldown_s``, ``cpus``: not ``downscale_cooldown_s``,
    ``resources.cpus``). ``null`` is left to the schema (a field that takes it means "the
    default")."""
    from pydantic_core import PydanticCustomError

    from aistack.serving.spec import check_number

    if not isinstance(data, dict):
        return data  # not an object: the schema says so
    for name, value in data.items():
        f = SPEC_FIELDS.get(name) if isinstance(name, str) else None
        if f is None or value is None:
            continue
        try:
            check_number(f, name, value)
        except PydanticCustomError as exc:
            hint = (exc.context or {}).get("hint")
            raise ValidationError(
                f"{name}: {exc.message()}",
                hint=hint if isinstance(hint, str) else None,
                field=name,
            ) from None
    return data


def check_model_ref(data: Any, field: str) -> Any:
    """An empty model reference in ``data[field]`` answered as the spec's parser answers it
    (pydantic said "String should have at least 1 character")."""
    from aistack.serving.spec import parse_model_ref

    value = data.get(field) if isinstance(data, dict) else None
    if isinstance(value, str) and not value.strip():
        try:
            parse_model_ref(value)
        except ValidationError as exc:
            message = exc.message.replace("model: ", f"{field}: ", 1)
            raise ValidationError(message, hint=exc.hint, field=field) from None
    return data


class ServiceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _as_the_spec_says(cls, data: Any) -> Any:
        return check_spec_numbers(check_model_ref(data, "model"))

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
    target_inflight: float = Field(default=4.0, gt=0, le=MAX_TARGET_INFLIGHT, allow_inf_nan=False)
    cooldown_s: float = Field(default=30.0, ge=0, le=MAX_TIME_S, allow_inf_nan=False)
    max_queued_requests: int | None = Field(
        default=None, ge=0, le=1_000_000, description="admission control (default 100)"
    )
    max_tokens: int | None = Field(
        default=None,
        ge=MIN_MAX_TOKENS,
        le=MAX_MAX_TOKENS,
        description="the most tokens one completion may ask for from a model that does not "
        f"say its context length (default {DEFAULT_MAX_TOKENS})",
    )
    project: str = "default"


class ServiceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _as_the_spec_says(cls, data: Any) -> Any:
        return check_model_ref(data, "to")

    to: str = Field(min_length=1, description="alias, NAME@alias, NAME:version or a URI")


class ServiceScale(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _as_the_spec_says(cls, data: Any) -> Any:
        return check_spec_numbers(data)

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
    p99_ms: float | None = None  # None: no request answered in the last 10 s


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


class ReplicaStopped(BaseModel):
    """A replica a delete stopped itself (its controller had left it running)."""

    replica: str | None = Field(description="the replica's id (r1, ...)")
    handle: str = Field(description="its aistack job id, or PID@START for a process")
    pid: int | None = Field(default=None, description="its process id (process replicas only)")


class ServiceDeleted(BaseModel):
    name: str
    deleted: bool
    orphans_stopped: int = Field(
        default=0,
        description="replicas the delete stopped itself: ones the service's controller had "
        "left running (it had died, or their stop failed)",
    )
    orphans: list[ReplicaStopped] = Field(
        default_factory=list, description="those replicas, one entry each"
    )
    kept_at: str = Field(description="where the service's folder (its logs) is kept")


class ReplicaNotStopped(BaseModel):
    """A replica a delete could not stop: it may still run."""

    replica: str | None = Field(description="the replica's id (r1, ...)")
    handle: str = Field(description="its aistack job id, or PID@START for a process")
    pid: int | None = Field(default=None, description="its process id (process replicas only)")
    error: str = Field(description="why it could not be stopped")


class ServiceDeletePartialDetails(BaseModel):
    deleted: bool = Field(description="true: the service is deleted all the same")
    kept_at: str = Field(description="where the service's folder (its logs) is kept")
    orphans_stopped: int = Field(description="replicas the delete did stop")
    not_stopped: list[ReplicaNotStopped]


class ServiceDeletePartial(BaseModel):
    """The 409 of a delete that left replicas running. The service is deleted (GET answers
    404 after it); ``message`` names each replica still running and ``hint`` the command
    that stops them (``aistack cancel ID ...``, or ``kill -KILL -- -PID`` for processes)."""

    code: Literal["conflict"]
    message: str
    hint: str | None = None
    details: ServiceDeletePartialDetails


class ServiceLogs(BaseModel):
    name: str
    logs: dict[str, list[str]]
