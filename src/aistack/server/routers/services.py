"""/services: deploy registered models as autoscaled endpoints (aistack.serving).

The logic lives in :mod:`aistack.serving.manager` (shared with ``aistack serve``); each
service runs its own controller process, so these calls return without waiting for
replicas (poll ``GET /services/{name}``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, status

from aistack.errors import ValidationError
from aistack.server.schemas.services import (
    ServiceCreate,
    ServiceDeleted,
    ServiceDeletePartial,
    ServiceLogs,
    ServicePublic,
    ServiceScale,
    ServiceSummary,
    ServiceUpdate,
)

router = APIRouter(tags=["services"])


def _server_side(ref: str, field: str) -> str:
    """A model reference as the server reads it. A local path is read on the server's
    machine, so a relative one (``./model``, ``../x``, ``file:model``) is refused: it would be
    read against the server's working directory, which a client neither sees nor chooses
    (``aistack serve deploy ./model`` reads it against the user's, in the CLI's process).
    Absolute paths stay: see :func:`aistack.serving.models.local_model_path` for why, and for
    the one answer every path that is not an MLflow model directory gets."""
    from aistack.serving.models import local_model_path
    from aistack.serving.spec import parse_model_ref

    kind, uri = parse_model_ref(ref)
    if kind == "path" and not local_model_path(uri).is_absolute():
        raise ValidationError(
            f"{field}: {ref!r} is a relative path, which the server would read against its own "
            "working directory",
            hint="give the model directory's absolute path on the server's machine "
            "(/srv/models/iris or file:///srv/models/iris), or register the model and deploy "
            "NAME@alias",
            field=field,
        )
    return ref


def _public(st: dict[str, Any]) -> ServicePublic:
    keep = set(ServicePublic.model_fields)
    data = {k: v for k, v in st.items() if k in keep}
    data["autoscaler"] = data.get("autoscaler") or {}
    return ServicePublic(**data)


@router.get("/services", response_model=list[ServiceSummary])
def list_services() -> list[ServiceSummary]:
    from aistack.serving import manager

    return [ServiceSummary(**s) for s in manager.list_services()]


# the fields of this API that the manager names otherwise (its errors say its own names)
_API_NAMES = {"downscale_cooldown_s": "cooldown_s"}


def _in_api_names(exc: ValidationError) -> ValidationError:
    """``exc`` naming this API's fields: ``cooldown_s: must be a number of seconds from 0 to
    86400, got 1e+308`` (the manager says ``downscale_cooldown_s``, a field the body has not)."""
    import re

    field = exc.details.get("field")
    if field not in _API_NAMES:
        return exc
    names = re.compile(r"\b(" + "|".join(map(re.escape, _API_NAMES)) + r")\b")

    def say(text: str) -> str:
        return names.sub(lambda m: _API_NAMES[m[1]], text)

    details = {**exc.details, "field": _API_NAMES[field]}
    return ValidationError(say(exc.message), hint=exc.hint and say(exc.hint), **details)


@router.post("/services", response_model=ServicePublic, status_code=status.HTTP_201_CREATED)
def deploy(body: ServiceCreate) -> ServicePublic:
    try:
        return _deploy(body)
    except ValidationError as exc:
        raised = _in_api_names(exc)
        if raised is exc:
            raise
        raise raised from None


def _deploy(body: ServiceCreate) -> ServicePublic:
    from aistack.serving import manager

    st = manager.deploy(
        _server_side(body.model, "model"),
        name=body.name,
        min_replicas=body.min_replicas,
        max_replicas=body.max_replicas,
        gpus=body.gpus,
        cpus=body.cpus,
        memory=body.memory,
        priority=body.priority,
        launcher=body.launcher,
        max_batch_size=body.max_batch_size,
        max_wait_ms=body.max_wait_ms,
        target_inflight=body.target_inflight,
        downscale_cooldown_s=body.cooldown_s,
        max_queued_requests=body.max_queued_requests,
        max_tokens=body.max_tokens,
        project=body.project,
        wait_ready_s=None,
    )
    return _public(st)


@router.get("/services/{name}", response_model=ServicePublic)
def get_service(name: str) -> ServicePublic:
    from aistack.serving import manager

    return _public(manager.status(name))


@router.post("/services/{name}/update", response_model=ServicePublic)
def update_service(name: str, body: ServiceUpdate) -> ServicePublic:
    """Start a rolling update; the rollout's progress is in ``rollout`` of GET /services/{name}."""
    from aistack.serving import manager

    target = _server_side(manager.target_ref(manager.status(name), body.to), "to")
    return _public(manager.update(name, target, wait_s=None))


@router.post("/services/{name}/scale", response_model=dict[str, Any])
def scale_service(name: str, body: ServiceScale) -> dict[str, Any]:
    from aistack.serving import manager

    return manager.scale(name, min_replicas=body.min_replicas, max_replicas=body.max_replicas)


@router.post("/services/{name}/restart", response_model=ServicePublic)
def restart_service(name: str) -> ServicePublic:
    """Start the controller again if it died (its running replicas are adopted)."""
    from aistack.serving import manager

    return _public(manager.restart(name, wait_ready_s=None))


@router.delete(
    "/services/{name}",
    response_model=ServiceDeleted,
    responses={
        409: {
            "model": ServiceDeletePartial,
            "description": "The service was deleted, but some of its replicas could not be "
            "stopped and may still run: details.not_stopped names them, the hint says how to "
            "stop them",
        }
    },
)
def delete_service(name: str) -> ServiceDeleted:
    """Stop the controller and every replica; the service's folder is kept (``kept_at``).
    Replicas the controller had left running are stopped here (``orphans_stopped``); any
    that still runs makes the answer a 409, after the service is deleted."""
    from aistack.serving import manager

    return ServiceDeleted(**manager.delete(name))


@router.get("/services/{name}/logs", response_model=ServiceLogs)
def service_logs(
    name: str,
    replica: str | None = Query(default=None, description="one replica id, e.g. r2"),
    tail: int = Query(default=100, ge=0, le=100_000),
) -> ServiceLogs:
    from aistack.serving import manager

    return ServiceLogs(name=name, logs=manager.logs(name, replica=replica, tail=tail))
